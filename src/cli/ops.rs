//! Offline queue operations: `queue`, `replay`, `resync`, `approve-deletes`, `approve-writes`.
//!
//! They open the state directory directly, so the service must be stopped (sled allows one
//! process); a running service is reported clearly.

use std::process::ExitCode;
use std::time::Duration;

use super::{CliError, QueueView};
use crate::config::Config;
use crate::model::now_ms;
use crate::queue::Store;

fn open(cfg: &Config) -> Result<Store, CliError> {
    Store::open_with(&cfg.state.path, cfg.state.cache_capacity)
        .map_err(|e| CliError::ctx("cannot open the queue", e))
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string())
        .unwrap_or_else(|| "-".into())
}

/// `queue status|list|show`.
pub fn queue(cfg: Config, view: QueueView) -> Result<ExitCode, CliError> {
    let store = open(&cfg)?;
    match view {
        QueueView::Status { json } => print_status(&store, json)?,
        QueueView::List { dead, json, limit } => print_list(&store, dead, json, limit)?,
        QueueView::Show { seq } => match store.show(seq).map_err(read_failed)? {
            Some(v) => println!(
                "{}",
                serde_json::to_string_pretty(&v).expect("serializable")
            ),
            None => return Err(CliError(format!("no change with sequence number {seq}"))),
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn read_failed(e: impl std::fmt::Display) -> CliError {
    CliError::ctx("reading the queue", e)
}

/// `queue status [--json]`.
fn print_status(store: &Store, json: bool) -> Result<(), CliError> {
    let s = store.stats().map_err(read_failed)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("serializable")
        );
        return Ok(());
    }
    println!("pending changes:   {}", s.depth);
    println!("oldest pending:    {}", secs(s.oldest_age_secs));
    println!("dead letters:      {}", s.dead_letters);
    println!("held deletes:      {}", s.held_deletes);
    println!("frozen groups:     {}", s.frozen_groups);
    println!("cursor age:        {}", secs(s.cursor_age_secs));
    println!(
        "full round:        {}",
        if s.full_round_in_progress {
            "pending/in progress"
        } else {
            "no"
        }
    );
    println!("journal entries:   {}", s.journal_entries);
    println!("groups mirrored:   {}", s.mirrored_groups);
    Ok(())
}

/// `queue list [--dead] [--json] [--limit N]`.
fn print_list(store: &Store, dead: bool, json: bool, limit: usize) -> Result<(), CliError> {
    let rows: Vec<serde_json::Value> = if dead {
        store
            .list_dead(limit)
            .map_err(read_failed)?
            .into_iter()
            .map(|(seq, d)| serde_json::json!({"seq": seq, "dead_letter": d}))
            .collect()
    } else {
        store
            .list_pending(limit)
            .map_err(read_failed)?
            .into_iter()
            .map(|(seq, c)| serde_json::json!({"seq": seq, "change": c}))
            .collect()
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("serializable")
        );
    } else if rows.is_empty() {
        println!(
            "{}",
            if dead {
                "no dead letters"
            } else {
                "queue is empty"
            }
        );
    } else {
        for r in rows {
            println!("{}", list_line(&r));
        }
    }
    Ok(())
}

/// One row of `queue list`: sequence, kind, group, age, error.
fn list_line(r: &serde_json::Value) -> String {
    let c = r
        .get("change")
        .or_else(|| r.pointer("/dead_letter/change"))
        .cloned()
        .unwrap_or_default();
    let age = c["seen_ms"]
        .as_u64()
        .map(|t| now_ms().saturating_sub(t) as f64 / 1000.0);
    let err = r
        .pointer("/dead_letter/error")
        .and_then(|e| e.as_str())
        .unwrap_or("");
    format!(
        "{:>20}  {:<9} {:<38} {:>8}  {err}",
        r["seq"],
        c["kind"].as_str().unwrap_or("?"),
        c["group_id"].as_str().unwrap_or("?"),
        secs(age)
    )
}

/// Parses `--since`: RFC 3339 (`2026-11-22T10:00:00Z`) or a duration ago (`2h`).
pub fn parse_since(s: &str) -> Result<u64, CliError> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now_ms().saturating_sub(d.as_millis() as u64));
    }
    Err(CliError(format!(
        "--since `{s}`: use RFC 3339 (2026-11-22T10:00:00Z) or a duration such as 2h"
    )))
}

/// `replay`.
pub fn replay(
    cfg: Config,
    dead: bool,
    since: Option<String>,
    from: Option<u64>,
    group: Option<String>,
) -> Result<ExitCode, CliError> {
    if !dead && since.is_none() && from.is_none() && group.is_none() {
        return Err(CliError(
            "replay needs --dead, --since TIME, --from SEQ or --group ID".into(),
        ));
    }
    let since = since.as_deref().map(parse_since).transpose()?;
    let store = open(&cfg)?;
    let fail = |e| CliError::ctx("replay", e);
    if dead {
        let n = store.replay_dead().map_err(fail)?;
        println!("re-queued {n} dead letter(s)");
    }
    if since.is_some() || from.is_some() || group.is_some() {
        let ids = store
            .replay_journal(since, from, group.as_deref())
            .map_err(fail)?;
        println!("re-queued a reconcile of {} group(s)", ids.len());
        for id in ids {
            println!("  {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `resync`.
pub fn resync(cfg: Config) -> Result<ExitCode, CliError> {
    open(&cfg)?
        .reset_cursors()
        .map_err(|e| CliError::ctx("resync", e))?;
    println!("delta cursors cleared: the next round is a full enumeration that reconciles AD");
    Ok(ExitCode::SUCCESS)
}

/// `approve-deletes`.
pub fn approve_deletes(cfg: Config, all: bool, ids: Vec<String>) -> Result<ExitCode, CliError> {
    let store = open(&cfg)?;
    let fail = |e| CliError::ctx("approve-deletes", e);
    if !all && ids.is_empty() {
        let held = store.held_deletes().map_err(fail)?;
        println!(
            "{} delete(s) held; approve with --all or by id:",
            held.len()
        );
        for (id, reason) in held {
            println!("  {id}  ({})", reason.as_str());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let released = store
        .approve_deletes(if all { None } else { Some(&ids) })
        .map_err(fail)?;
    println!("released {} delete(s)", released.len());
    Ok(ExitCode::SUCCESS)
}

/// `approve-writes`: without ids, the frozen groups and why; with ids (or `--all`), release them
/// (each gets a reconcile queued).
pub fn approve_writes(cfg: Config, all: bool, ids: Vec<String>) -> Result<ExitCode, CliError> {
    let store = open(&cfg)?;
    let fail = |e| CliError::ctx("approve-writes", e);
    if !all && ids.is_empty() {
        let frozen = store.frozen_groups().map_err(fail)?;
        println!(
            "{} group(s) frozen (another writer); once it is stopped, release with --all or by id:",
            frozen.len()
        );
        for (id, why) in frozen {
            println!("  {id}  {}: {}", why.dn, why.detail);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(unknown) = ids.iter().find(|id| matches!(store.frozen(id), Ok(None))) {
        return Err(CliError(format!("group {unknown} is not frozen")));
    }
    let released = store
        .approve_writes(if all { None } else { Some(&ids) })
        .map_err(fail)?;
    println!(
        "released {} group(s); a reconcile of each is queued",
        released.len()
    );
    for id in released {
        println!("  {id}");
    }
    Ok(ExitCode::SUCCESS)
}
