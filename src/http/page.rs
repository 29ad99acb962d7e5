//! The status page: one self-contained HTML document rendered from a [`Snapshot`].
//!
//! No scripts, fonts, images or style sheets are fetched (everything is inline), so it works
//! on an isolated host and through a plain SSH tunnel. It reloads itself every
//! [`REFRESH_SECS`] seconds (`<meta http-equiv="refresh">`). Every value that comes from
//! outside (group names, error texts, config values) is HTML-escaped.
//!
//! This file lays out the document and its list sections; the status tiles are in `tiles`, the
//! HTML pieces (escaping, durations, pills) in `format`, the style sheet in `style`.

mod format;
mod frozen;
mod style;
#[cfg(test)]
mod tests;
mod tiles;

use std::fmt::Write as _;

use super::snapshot::{DeadEntry, Snapshot};
use crate::observe::status::{ChangeEntry, RoundEntry};

use format::{ago, clock, group_cell, pill};
pub use format::{dur_ms, esc};
use style::CSS;

/// Seconds between automatic reloads.
pub const REFRESH_SECS: u32 = 5;
/// Rounds listed on the page (`/status.json` has every one kept).
const ROUNDS_SHOWN: usize = 10;
/// Group changes listed on the page (`/status.json` has every one kept).
const CHANGES_SHOWN: usize = 30;

/// The initial-sync progress bar and the rounds running now, when there are any.
fn progress(out: &mut String, s: &Snapshot) {
    if let Some(p) = &s.initial_sync {
        let done = p.applied + p.dead_letters;
        let pct = if p.queued > 0 {
            (done as f64 * 100.0 / p.queued as f64).min(100.0)
        } else {
            0.0
        };
        let _ = write!(
            out,
            r#"<h2>Initial sync in progress <span class="count">({phase}, {el})</span></h2>
<p>Graph: {items} item(s) read on {pages} page(s). AD: {done} of {queued} queued change(s) done ({dead} dead-lettered).</p>
<div class="bar"><div style="width:{pct:.1}%"></div></div>"#,
            phase = esc(p.phase),
            el = dur_ms((p.elapsed_secs * 1000.0) as u64),
            items = p.graph_items,
            pages = p.graph_pages,
            queued = p.queued,
            dead = p.dead_letters,
        );
    }
    if !s.in_flight.is_empty() {
        out.push_str("<h2>Rounds running</h2><table><tr><th>Stream</th><th>Kind</th><th>Started</th><th>Pages</th><th>Items</th><th>Queued</th></tr>");
        for f in &s.in_flight {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td class="t">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                esc(f.resource),
                if f.full { "full" } else { "incremental" },
                ago(s.now_ms, f.started_ms),
                f.pages,
                f.items,
                f.enqueued
            );
        }
        out.push_str("</table>");
    }
}

/// The dead letters shown, and how many more `queue list --dead` has.
fn dead_letters(out: &mut String, s: &Snapshot) {
    let total = s.queue.as_ref().map_or(0, |q| q.dead_letters);
    let _ = write!(
        out,
        r#"<h2 id="dead-letters">Dead letters <span class="count">({total})</span></h2>"#
    );
    if s.dead_letters.is_empty() {
        out.push_str(r#"<p class="empty">None.</p>"#);
        return;
    }
    out.push_str("<table><tr><th>Seq</th><th>Group</th><th>Change</th><th>Class</th><th>Reason</th><th>When</th></tr>");
    for d in &s.dead_letters {
        let DeadEntry {
            seq,
            group_id,
            group_name,
            kind,
            class,
            error,
            at_ms,
        } = d;
        let _ = write!(
            out,
            r#"<tr class="dead"><td class="n">{seq}</td><td>{}</td><td>{}</td><td>{}</td><td class="err">{}</td><td class="t">{}</td></tr>"#,
            group_cell(group_id, group_name.as_deref()),
            esc(kind),
            pill("bad", class),
            esc(error),
            ago(s.now_ms, *at_ms)
        );
    }
    out.push_str("</table>");
    if (s.dead_letters.len() as u64) < total {
        let _ = write!(
            out,
            r#"<p class="empty">{} more: <code>entra-writeback queue list --dead</code>.</p>"#,
            total - s.dead_letters.len() as u64
        );
    }
}

/// The newest applied (or failed) group changes.
fn changes(out: &mut String, s: &Snapshot) {
    let _ = write!(
        out,
        r#"<h2 id="changes">Last applied changes <span class="count">(newest {} of the last {} kept)</span></h2>"#,
        CHANGES_SHOWN.min(s.changes.len()),
        s.changes.len()
    );
    if s.changes.is_empty() {
        out.push_str(r#"<p class="empty">No change applied since start.</p>"#);
        return;
    }
    out.push_str("<table><tr><th>When</th><th>Group</th><th>Work</th><th>Changes</th><th>Outcome</th><th>Lag</th><th>Took</th><th>Error</th></tr>");
    for c in s.changes.iter().take(CHANGES_SHOWN) {
        let ChangeEntry {
            at_ms,
            group_id,
            group_name,
            work,
            changes,
            outcome,
            lag_ms,
            duration_ms,
            error_class,
            error,
        } = c;
        let class = match *outcome {
            "applied" => "ok",
            "retrying" => "warn",
            _ => "bad",
        };
        let err = match (error_class, error) {
            (Some(k), Some(e)) => format!("{} {}", pill("bad", k), esc(e)),
            _ => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr class="change"><td class="t">{}</td><td>{}</td><td>{}</td><td class="n">{changes}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="err">{err}</td></tr>"#,
            clock(*at_ms),
            group_cell(group_id, group_name.as_deref()),
            esc(work),
            pill(class, &outcome.replace('_', " ")),
            lag_ms.map(dur_ms).unwrap_or_default(),
            dur_ms(*duration_ms),
        );
    }
    out.push_str("</table>");
}

/// The newest delta rounds with changes or errors, after a count of the quiet ones.
fn rounds(out: &mut String, s: &Snapshot) {
    let _ = write!(
        out,
        r#"<h2 id="rounds">Last delta rounds <span class="count">(newest {} of the last {} kept)</span></h2>"#,
        ROUNDS_SHOWN.min(s.rounds.len()),
        s.rounds.len()
    );
    let q = &s.quiet_rounds;
    if let Some(last) = q.last_ms {
        let _ = write!(
            out,
            r#"<p class="totals">Not listed: {} empty incremental round(s) since start, the latest {}.</p>"#,
            q.count,
            ago(s.now_ms, last)
        );
    }
    if s.rounds.is_empty() {
        out.push_str(r#"<p class="empty">No round with changes or errors since start.</p>"#);
        return;
    }
    out.push_str("<table><tr><th>Ended</th><th>Stream</th><th>Kind</th><th>Result</th><th>Pages</th><th>Items</th><th>Queued</th><th>Took</th><th>Error</th></tr>");
    for r in s.rounds.iter().take(ROUNDS_SHOWN) {
        let RoundEntry {
            finished_ms,
            resource,
            kind,
            result,
            pages,
            items,
            enqueued,
            held_deletes,
            duration_ms,
            error,
        } = r;
        let class = match *result {
            "ok" => "ok",
            "resync" => "warn",
            _ => "bad",
        };
        let mut note = error.as_deref().map(esc).unwrap_or_default();
        if *held_deletes > 0 {
            note.push_str(&format!("{held_deletes} delete(s) held"));
        }
        let _ = write!(
            out,
            r#"<tr class="round"><td class="t">{}</td><td>{}</td><td>{}</td><td>{}</td><td class="n">{pages}</td><td class="n">{items}</td><td class="n">{enqueued}</td><td class="n">{}</td><td class="err">{note}</td></tr>"#,
            clock(*finished_ms),
            esc(resource),
            esc(kind),
            pill(class, result),
            dur_ms(*duration_ms),
        );
    }
    out.push_str("</table>");
}

/// The whole page.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let title = if s.ready {
        "ready"
    } else if s.queue.is_none() {
        "store unreadable"
    } else {
        "NOT READY"
    };
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>entra-writeback: {title}</title>
<style>{CSS}</style></head><body>
<header><h1>entra-writeback <span class="id">{version}</span></h1>
<div class="meta">Entra ID tenant <b>{tenant}</b> ({graph}) → Active Directory <b>{ad}</b>, {ou}.
Polls every {poll}. Updated {now} UTC; this page reloads every {REFRESH_SECS} s.</div></header><main>"#,
        version = esc(s.version),
        tenant = esc(&s.about.tenant_id),
        graph = esc(&s.about.graph_url),
        ad = esc(&s.about.ad_url),
        ou = esc(&s.about.target_ou),
        poll = dur_ms((s.about.poll_interval_secs * 1000.0) as u64),
        now = clock(s.now_ms),
    );
    tiles::section(&mut out, s);
    progress(&mut out, s);
    dead_letters(&mut out, s);
    frozen::section(&mut out, s);
    rounds(&mut out, s);
    changes(&mut out, s);
    out.push_str(
        r#"</main><footer>Also: <a href="/status.json">/status.json</a> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></footer></body></html>
"#,
    );
    out
}
