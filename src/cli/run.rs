//! The commands that talk to Graph and AD: `run`, `run --once`, `plan`, `decommission` (`check`
//! is `super::check`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::CliError;
use super::loops::{self, ApplyParts};
use crate::config::{Config, SoftDeleteAction, WritebackConfigurationMode};
use crate::directory::adopt::adopted_by_place;
use crate::directory::{Applier, Connection, Directory};
use crate::graph::GraphClient;
use crate::model::{Event, Events};
use crate::observe::Observers;
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
pub(super) async fn open_directory(cfg: &Config, events: &Events) -> Result<Directory, CliError> {
    let conn = Connection::new(&cfg.ad, events.clone()).map_err(|e| CliError::ctx("AD", e))?;
    (|| Directory::open(conn.clone()))
        .retry(cfg.sync.backoff(Duration::ZERO))
        .when(|e| e.is_transient())
        .notify(|e, d| {
            events.emit(Event::Retry { stage: "ad" });
            tracing::warn!(error = %e, wait_ms = d.as_millis() as u64, "AD not reachable; retrying");
        })
        .await
        .map(|dir| {
            dir.honouring_writeback_configuration(
                cfg.graph.writeback_configuration == WritebackConfigurationMode::Honour,
            )
        })
        .map_err(|e| CliError::ctx("AD", e))
}

/// The cloud check every destructive action passes, over the same client (tokens, rate
/// ceiling) as the poller.
pub(super) fn oracle(graph: GraphClient) -> Arc<dyn crate::directory::CloudOracle> {
    Arc::new(super::cloud::GraphOracle(graph))
}

fn graph_client(cfg: &Config, events: &Events) -> Result<GraphClient, CliError> {
    GraphClient::new(&cfg.graph, &cfg.sync, events.clone()).map_err(|e| CliError::ctx("Graph", e))
}

fn open_store(cfg: &Config) -> Result<Store, CliError> {
    Store::open_with(&cfg.state.path, cfg.state.cache_capacity)
        .map_err(|e| CliError::ctx("state", e))
}

/// `run --once`: one full delta round, drain the queue, exit 0 only if it drained cleanly.
pub async fn run_once(cfg: Config, observers: Observers) -> Result<ExitCode, CliError> {
    let store = open_store(&cfg)?;
    let events = observers.events();
    let wake = Arc::new(Notify::new());
    let graph = graph_client(&cfg, &events)?;
    let stop = CancellationToken::new();
    let poller = Poller::new(
        graph.clone(),
        store.clone(),
        policy(&cfg),
        wake,
        events.clone(),
    );
    // Connecting to AD (TLS, bind, rootDSE, schema probe) overlaps the Graph rounds.
    let (report, dir) = tokio::try_join!(
        async {
            poller
                .cycle(&stop)
                .await
                .map_err(|e| CliError::ctx("Graph round", e))
        },
        open_directory(&cfg, &events)
    )?;
    // Binding, the rootDSE and the schema probe: the session's cost, not the changes'.
    let setup = observers.metrics.ad_operations_by_op();
    let dead_before = store
        .stats()
        .map_err(|e| CliError::ctx("state", e))?
        .dead_letters;
    let applier = Applier::new(dir, store.clone(), oracle(graph), false);
    let worker = Worker::new(store.clone(), applier, cfg.sync.clone(), events);
    let drained = worker.drain(&stop).await;
    store.flush().await.map_err(|e| CliError::ctx("state", e))?;
    let stats = store.stats().map_err(|e| CliError::ctx("state", e))?;
    let drained = drained.map_err(|e| CliError::ctx("applying to AD", e))?;
    let work: Vec<(&str, u64)> = observers
        .metrics
        .ad_operations_by_op()
        .into_iter()
        .zip(&setup)
        .map(|((op, n), (_, before))| (op, n - before))
        .collect();
    tracing::info!(
        pages = report.pages,
        enqueued = report.enqueued,
        applied = drained.applied,
        dead = drained.dead,
        remaining = stats.depth,
        ldap_operations = observers.metrics.ad_operations_total(),
        ldap_work_operations = work.iter().map(|(_, n)| n).sum::<u64>(),
        ldap_work = %work_summary(&work),
        peak_rss_kib = super::usage::peak_rss_kib(),
        cpu_ms = super::usage::cpu_ms(),
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

/// `add=2 modify=4 search=5`: the non-zero counts, for the `run --once` summary.
fn work_summary(work: &[(&str, u64)]) -> String {
    work.iter()
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| format!("{op}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
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

/// Binds the monitoring listener; returns the server future (it ends when `stop` fires).
async fn serve_http(
    cfg: &Config,
    observers: &Observers,
    store: &Store,
    window: Duration,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, CliError> {
    let http = crate::http::Context {
        observers: observers.clone(),
        events: observers.events(),
        ready_window: window,
        store: store.clone(),
        about: crate::http::About::new(cfg, window),
        status_access: crate::http::StatusAccess::from_config(
            cfg.http.listen,
            cfg.http.status_token.as_ref(),
        ),
    };
    let status_access = http.status_access.describe();
    let tls = match cfg.http.tls() {
        Some((cert, key)) => {
            Some(crate::http::server_config(cert, key).map_err(|e| CliError::ctx("HTTP TLS", e))?)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (addr, server) = crate::http::bind(cfg.http.listen, tls, http, stop)
        .await
        .map_err(|e| CliError::ctx(&format!("http.listen {}", cfg.http.listen), e))?;
    tracing::info!(%addr, scheme, status_page = status_access, "serving the status page (/), /metrics, /healthz, /readyz");
    Ok(server)
}

/// `run`: poll, queue and apply until SIGTERM/SIGINT; serves `/metrics`, `/healthz`, `/readyz`.
pub async fn run(cfg: Config, observers: Observers) -> Result<ExitCode, CliError> {
    let store = open_store(&cfg)?;
    let events = observers.events();
    let wake = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let window = (cfg.graph.poll_interval * 3).max(Duration::from_secs(60));
    let server = serve_http(&cfg, &observers, &store, window, stop.clone()).await?;
    let graph = graph_client(&cfg, &events)?;
    let quarantine = Arc::new(Quarantine::new(
        cfg.sync.quarantine_after,
        cfg.sync.quarantine_interval,
        events.clone(),
    ));
    let poller = Poller::new(
        graph.clone(),
        store.clone(),
        policy(&cfg),
        wake.clone(),
        events.clone(),
    );
    let (connected, directory) = watch::channel(None);
    let readiness = observers.readiness.clone();
    let mut tasks = JoinSet::new();
    tasks.spawn(server);
    tasks.spawn(loops::poll(
        poller,
        store.clone(),
        quarantine.clone(),
        events.clone(),
        cfg.graph.poll_interval,
        stop.clone(),
    ));
    let parts = ApplyParts {
        store: store.clone(),
        graph,
        wake: wake.clone(),
        quarantine,
        events,
        connected,
    };
    tasks.spawn(loops::apply(cfg.clone(), parts, stop.clone()));
    tasks.spawn(loops::probe(
        directory,
        move || readiness.last_ad_ok_ms(),
        window / 3,
        stop.clone(),
    ));
    tasks.spawn(loops::trim(store.clone(), cfg.clone(), stop.clone()));
    tasks.spawn(loops::reconcile(
        store.clone(),
        wake,
        cfg.sync.reconcile_interval,
        stop.clone(),
    ));

    shutdown_signal().await;
    tracing::info!("stopping: finishing in-flight work");
    stop.cancel();
    let all = async { while tasks.join_next().await.is_some() {} };
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
    // A dry run reports nothing: its "applied" changes are not real.
    let events = Events::none();
    let scratch = Store::open_temporary().map_err(|e| CliError::ctx("scratch store", e))?;
    let graph = graph_client(&cfg, &events)?;
    let stop = CancellationToken::new();
    let poller = Poller::new(
        graph.clone(),
        scratch.clone(),
        policy(&cfg),
        Arc::new(Notify::new()),
        events.clone(),
    );
    poller
        .cycle(&stop)
        .await
        .map_err(|e| CliError::ctx("Graph round", e))?;
    let dir = open_directory(&cfg, &events).await?;
    let applier = Applier::new(dir, scratch.clone(), oracle(graph), true);
    let worker = Worker::new(scratch, applier.clone(), cfg.sync.clone(), events);
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

/// `decommission`: list owned groups; with `yes`, delete them all, except adopted originals
/// (under `ad.adopt_ous`), which are released.
pub async fn decommission(cfg: Config, yes: bool) -> Result<ExitCode, CliError> {
    let dir = open_directory(&cfg, &Events::none()).await?;
    let owned = dir.list_owned().await.map_err(|e| CliError::ctx("AD", e))?;
    println!(
        "{} group(s) owned by entra-writeback under {}:",
        owned.len(),
        cfg.ad.target_ou
    );
    for (_, g) in &owned {
        if adopted_by_place(&g.dn, &cfg.ad) {
            println!("  {} (adopted original: released, not deleted)", g.dn);
        } else {
            println!("  {}", g.dn);
        }
    }
    if !yes {
        println!(
            "nothing deleted; run with --yes to delete them all (adopted originals are released)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (mut deleted, mut released, mut failed) = (0, 0, 0);
    for (_, g) in &owned {
        // An adopted original existed before the service; it holds the SID of live ACLs.
        // Turning writeback off hands it back (anchor removed), never deletes it.
        let adopted = adopted_by_place(&g.dn, &cfg.ad);
        let result = if adopted {
            dir.release(g).await
        } else {
            dir.conn.delete(&g.dn).await
        };
        match result {
            Err(e) => {
                eprintln!("cannot delete or release {}: {e}", g.dn);
                failed += 1;
            }
            Ok(()) if adopted => released += 1,
            Ok(()) => deleted += 1,
        }
    }
    println!(
        "deleted {deleted} group(s); released {released} adopted original(s) (kept, anchor removed)"
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
