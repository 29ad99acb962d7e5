//! The commands that talk to Graph and AD: `run`, `run --once`, `plan`, `check`, `decommission`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{Notify, watch};

use super::CliError;
use crate::config::{Config, SoftDeleteAction};
use crate::directory::{Applier, Connection, Directory};
use crate::graph::GraphClient;
use crate::health::Health;
use crate::model::Events;
use crate::queue::{Store, mirror::DeletePolicy};
use crate::sync::Poller;
use crate::sync::quarantine::Quarantine;
use crate::sync::worker::Worker;

fn policy(cfg: &Config) -> DeletePolicy {
    DeletePolicy {
        threshold: cfg.ad.delete_threshold,
        soft_destructive: cfg.ad.soft_delete != SoftDeleteAction::Freeze,
    }
}

/// Connects to AD, retrying transient failures `[sync] max_attempts` times.
async fn open_directory(cfg: &Config, _health: &Health) -> Result<Directory, CliError> {
    let conn = Connection::new(&cfg.ad, Events::none()).map_err(|e| CliError::ctx("AD", e))?;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(cfg.sync.min_backoff)
        .with_max_delay(cfg.sync.max_backoff)
        .with_max_times(cfg.sync.max_attempts.saturating_sub(1) as usize)
        .with_jitter();
    (|| Directory::open(conn.clone()))
        .retry(backoff)
        .when(|e| e.is_transient())
        .notify(|e, d| {
            crate::metrics::get().retries.with_label_values(&["ad"]).inc();
            tracing::warn!(error = %e, wait_ms = d.as_millis() as u64, "AD not reachable; retrying");
        })
        .await
        .map_err(|e| CliError::ctx("AD", e))
}

/// The cloud check every destructive action passes, over the same client (tokens, rate
/// ceiling) as the poller.
fn oracle(graph: GraphClient) -> Arc<dyn crate::directory::CloudOracle> {
    Arc::new(super::cloud::GraphOracle(graph))
}

fn graph_client(cfg: &Config) -> Result<GraphClient, CliError> {
    GraphClient::new(&cfg.graph, &cfg.sync).map_err(|e| CliError::ctx("Graph", e))
}

fn open_store(cfg: &Config) -> Result<Store, CliError> {
    Store::open(&cfg.state.path).map_err(|e| CliError::ctx("state", e))
}

/// `run --once`: one full delta round, drain the queue, exit 0 only if it drained cleanly.
pub async fn run_once(cfg: Config) -> Result<ExitCode, CliError> {
    let store = open_store(&cfg)?;
    let health = Health::default();
    let wake = Arc::new(Notify::new());
    let graph = graph_client(&cfg)?;
    let poller = Poller::new(
        graph.clone(),
        store.clone(),
        policy(&cfg),
        wake,
        Events::none(), // wired by the lead
    );
    let report = poller
        .cycle()
        .await
        .map_err(|e| CliError::ctx("Graph round", e))?;
    let dir = open_directory(&cfg, &health).await?;
    let dead_before = store
        .stats()
        .map_err(|e| CliError::ctx("state", e))?
        .dead_letters;
    let worker = Worker::new(
        store.clone(),
        Applier::new(dir, store.clone(), oracle(graph), false),
        cfg.sync.clone(),
        Events::none(),
    );
    let (_stop_tx, stop) = watch::channel(false);
    let drained = worker.drain(&stop).await;
    store.flush().await.map_err(|e| CliError::ctx("state", e))?;
    let stats = store.stats().map_err(|e| CliError::ctx("state", e))?;
    let drained = drained.map_err(|e| CliError::ctx("applying to AD", e))?;
    tracing::info!(
        pages = report.pages,
        enqueued = report.enqueued,
        applied = drained.applied,
        dead = drained.dead,
        remaining = stats.depth,
        ldap_operations = ldap_operations(),
        "run --once finished"
    );
    if stats.dead_letters > dead_before || stats.depth > 0 {
        eprintln!(
            "error: {} new dead letter(s), {} change(s) still queued (see `entra-writeback queue list --dead`)",
            stats.dead_letters - dead_before,
            stats.depth
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// LDAP operations made by this process so far (from the metrics).
fn ldap_operations() -> u64 {
    let m = crate::metrics::get();
    ["bind", "search", "add", "modify", "modrdn", "delete"]
        .iter()
        .flat_map(|op| ["ok", "error"].map(|r| m.ad_operations.with_label_values(&[op, r]).get()))
        .sum()
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// `run`: poll, queue and apply until SIGTERM/SIGINT; serves `/metrics`, `/healthz`, `/readyz`.
pub async fn run(cfg: Config) -> Result<ExitCode, CliError> {
    let store = open_store(&cfg)?;
    let health = Health::default();
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop) = watch::channel(false);
    let window = (cfg.graph.poll_interval * 3).max(Duration::from_secs(60));
    let http = crate::http::Context {
        health: health.clone(),
        ready_window: window,
        store: store.clone(),
        about: crate::status::About::new(&cfg, window),
        status_access: crate::http::StatusAccess::from_config(
            cfg.http.listen,
            cfg.http.status_token.as_ref(),
        ),
    };
    let status_access = http.status_access.describe();
    let (addr, server) = crate::http::bind(cfg.http.listen, http, stop.clone())
        .await
        .map_err(|e| CliError::ctx(&format!("http.listen {}", cfg.http.listen), e))?;
    tracing::info!(%addr, status_page = status_access, "serving the status page (/), /metrics, /healthz, /readyz");
    let server = tokio::spawn(server);

    let graph = graph_client(&cfg)?;
    let poller = Poller::new(
        graph.clone(),
        store.clone(),
        policy(&cfg),
        wake.clone(),
        Events::none(), // wired by the lead
    );
    let quarantine = Arc::new(Quarantine::new(
        cfg.sync.quarantine_after,
        cfg.sync.quarantine_interval,
        Events::none(),
    ));
    let poll_task = {
        let mut stop = stop.clone();
        let interval = cfg.graph.poll_interval;
        let (health, store, quarantine) = (health.clone(), store.clone(), quarantine.clone());
        tokio::spawn(async move {
            loop {
                match poller.cycle().await {
                    Ok(_) => {
                        health.set_storage_failed(false);
                        quarantine.success();
                    }
                    Err(e) => {
                        quarantine.failure();
                        tracing::error!(error = %e, "poll cycle failed; cursor kept, retrying next interval");
                        if let crate::sync::PollError::Store(se) = &e {
                            // Disk full or I/O error: stop taking pages, report unready, and
                            // reopen the database until it is writable again.
                            health.set_storage_failed(true);
                            if se.is_transient() {
                                let store = store.clone();
                                match tokio::task::spawn_blocking(move || store.recover()).await {
                                    Ok(Ok(())) => {
                                        tracing::info!("state store reopened and writable")
                                    }
                                    Ok(Err(e)) => {
                                        tracing::warn!(error = %e, "state store still failing")
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "state store recovery task failed")
                                    }
                                }
                            }
                        }
                    }
                }
                if crate::sync::sleep_or_stop(quarantine.cadence(interval), &mut stop).await {
                    return;
                }
            }
        })
    };

    let work_task = {
        let (store, health, cfg, wake) = (store.clone(), health.clone(), cfg.clone(), wake.clone());
        let quarantine = quarantine.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let dir = loop {
                match open_directory(&cfg, &health).await {
                    Ok(d) => break d,
                    Err(e) => {
                        tracing::error!(error = %e, "AD unavailable; changes keep queueing");
                        if crate::sync::sleep_or_stop(cfg.sync.max_backoff, &mut stop).await {
                            return;
                        }
                    }
                }
            };
            crate::metrics::count_managed_groups(&dir).await;
            tokio::spawn(crate::health::keep_ad_fresh(
                dir.clone(),
                health.clone(),
                window / 3,
                stop.clone(),
            ));
            let worker = Worker::new(
                store.clone(),
                Applier::new(dir, store, oracle(graph), false),
                cfg.sync.clone(),
                Events::none(),
            );
            worker.run(wake, stop, quarantine).await;
        })
    };

    let trim_task = {
        let (store, cfg) = (store.clone(), cfg.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                match store.trim_journal(
                    cfg.state.journal_retention.as_millis() as u64,
                    cfg.state.journal_max_entries,
                ) {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "journal trimmed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "journal trim failed"),
                }
                if crate::sync::sleep_or_stop(Duration::from_secs(600), &mut stop).await {
                    return;
                }
            }
        })
    };

    let reconcile_task = {
        let (store, wake) = (store.clone(), wake.clone());
        let interval = cfg.sync.reconcile_interval;
        let mut stop = stop.clone();
        tokio::spawn(async move {
            if interval.is_zero() {
                return;
            }
            loop {
                if crate::sync::sleep_or_stop(interval, &mut stop).await {
                    return;
                }
                match store.enqueue_reconcile_all() {
                    Ok(Some(n)) => {
                        tracing::info!(groups = n, "periodic reconciliation queued");
                        wake.notify_one();
                    }
                    Ok(None) => tracing::info!(
                        "periodic reconciliation skipped: a full enumeration is pending or in \
                         progress (its end reconciles every group)"
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot queue periodic reconciliation"),
                }
            }
        })
    };

    shutdown_signal().await;
    tracing::info!("stopping: finishing in-flight work");
    let _ = stop_tx.send(true);
    let all = async {
        let _ = poll_task.await;
        let _ = work_task.await;
        let _ = trim_task.await;
        let _ = reconcile_task.await;
        let _ = server.await;
    };
    if tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight work did not finish within 30 s; abandoning it (it stays queued)"
        );
    }
    store.flush().await.map_err(|e| CliError::ctx("state", e))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// `plan`: a full round into a scratch store, then a dry-run reconcile against AD.
pub async fn plan(cfg: Config) -> Result<ExitCode, CliError> {
    crate::progress::disable();
    let scratch = Store::open_temporary().map_err(|e| CliError::ctx("scratch store", e))?;
    let health = Health::default();
    let graph = graph_client(&cfg)?;
    let poller = Poller::new(
        graph.clone(),
        scratch.clone(),
        policy(&cfg),
        Arc::new(Notify::new()),
        Events::none(),
    );
    poller
        .cycle()
        .await
        .map_err(|e| CliError::ctx("Graph round", e))?;
    let dir = open_directory(&cfg, &health).await?;
    let applier = Applier::new(dir, scratch.clone(), oracle(graph), true);
    let worker = Worker::new(scratch, applier.clone(), cfg.sync.clone(), Events::none());
    let (_tx, stop) = watch::channel(false);
    worker
        .drain(&stop)
        .await
        .map_err(|e| CliError::ctx("planning", e))?;
    let ops = applier.take_planned();
    if ops.is_empty() {
        println!("AD is up to date: no changes.");
    } else {
        print!("{}", crate::directory::plan::render(&ops));
        println!("\n{} operation(s); nothing was written.", ops.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `check`: config, Graph token, AD bind, target OU exists and allows creating groups.
pub async fn check(cfg: Config) -> Result<ExitCode, CliError> {
    println!("config: ok");
    let graph = graph_client(&cfg)?;
    graph
        .check_token()
        .await
        .map_err(|e| CliError::ctx("Graph token", e))?;
    println!("graph: token acquired for tenant {}", cfg.graph.tenant_id);
    let conn = Connection::new(&cfg.ad, Events::none()).map_err(|e| CliError::ctx("AD", e))?;
    let dir = Directory::open(conn)
        .await
        .map_err(|e| CliError::ctx("AD", e))?;
    println!(
        "ad: bound as {} (msDS-ExternalDirectoryObjectId in schema: {})",
        cfg.ad.bind_dn, dir.has_external_id
    );
    if !dir
        .target_ou_exists()
        .await
        .map_err(|e| CliError::ctx("AD", e))?
    {
        return Err(CliError(format!(
            "ad.target_ou `{}` does not exist (or is not visible to {})",
            cfg.ad.target_ou, cfg.ad.bind_dn
        )));
    }
    if !dir
        .can_create_groups()
        .await
        .map_err(|e| CliError::ctx("AD", e))?
    {
        return Err(CliError(format!(
            "{} may not create groups in ad.target_ou `{}`",
            cfg.ad.bind_dn, cfg.ad.target_ou
        )));
    }
    println!(
        "ad: target OU {} exists and allows creating groups",
        cfg.ad.target_ou
    );
    Ok(ExitCode::SUCCESS)
}

/// `decommission`: list owned groups; with `yes`, delete them all.
pub async fn decommission(cfg: Config, yes: bool) -> Result<ExitCode, CliError> {
    let health = Health::default();
    let dir = open_directory(&cfg, &health).await?;
    let owned = dir.list_owned().await.map_err(|e| CliError::ctx("AD", e))?;
    println!(
        "{} group(s) owned by entra-writeback under {}:",
        owned.len(),
        cfg.ad.target_ou
    );
    for (_, g) in &owned {
        println!("  {}", g.dn);
    }
    if !yes {
        println!("nothing deleted; run with --yes to delete them all");
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0;
    for (_, g) in &owned {
        if let Err(e) = dir.conn.delete(&g.dn).await {
            eprintln!("cannot delete {}: {e}", g.dn);
            failed += 1;
        }
    }
    println!("deleted {} group(s)", owned.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
