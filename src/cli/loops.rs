//! The long-running loops of `run`, each a named function under one [`CancellationToken`]:
//! poll (Graph → queue), apply (queue → AD), probe (keeps AD readiness honest when idle),
//! trim (the journal) and reconcile (periodic full convergence). `run` spawns them into one
//! `JoinSet` and cancels the token on SIGTERM/SIGINT; each loop checks it between steps, and
//! the poller between pages.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::run::{open_directory, oracle};
use crate::config::Config;
use crate::directory::{Applier, Directory};
use crate::graph::GraphClient;
use crate::model::event::ManagedGroups;
use crate::model::{Event, Events, now_ms};
use crate::queue::Store;
use crate::sync::{PollError, Poller};
use crate::sync::{Quarantine, Worker, sleep_or_stop};

/// Poll: a users + groups cycle every `poll_interval` (the quarantine cadence after repeated
/// failures). A store failure (disk full, I/O error) marks storage failed and reopens the
/// database until it is writable again; the cursor never moves past an unwritten page.
pub async fn poll(
    poller: Poller,
    store: Store,
    quarantine: Arc<Quarantine>,
    events: Events,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        match poller.cycle(&stop).await {
            Ok(_) => {
                events.emit(Event::Storage { failed: false });
                quarantine.success();
            }
            Err(PollError::Stopped) => return,
            Err(e) => {
                quarantine.failure();
                tracing::error!(error = %e, "poll cycle failed; cursor kept, retrying next interval");
                if let PollError::Store(se) = &e {
                    events.emit(Event::Storage { failed: true });
                    if se.is_transient() {
                        recover_store(&store).await;
                    }
                }
            }
        }
        if sleep_or_stop(quarantine.cadence(interval), &stop).await {
            return;
        }
    }
}

/// Reopens the store in place after a storage failure.
async fn recover_store(store: &Store) {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.recover()).await {
        Ok(Ok(())) => tracing::info!("state store reopened and writable"),
        Ok(Err(e)) => tracing::warn!(error = %e, "state store still failing"),
        Err(e) => tracing::warn!(error = %e, "state store recovery task failed"),
    }
}

/// What the apply loop needs besides the configuration.
pub struct ApplyParts {
    /// The open store.
    pub store: Store,
    /// The Graph client (for the cloud check before destructive actions).
    pub graph: GraphClient,
    /// Woken by the poller after each committed page.
    pub wake: Arc<Notify>,
    /// Shared with the poll loop.
    pub quarantine: Arc<Quarantine>,
    /// Where everything is reported.
    pub events: Events,
    /// Receives the directory once connected (for the probe).
    pub connected: watch::Sender<Option<Directory>>,
}

/// Apply: connects to AD (retrying while it is down; changes keep queueing), starts counting the
/// owned groups beside it, then runs the worker until stopped.
pub async fn apply(cfg: Config, parts: ApplyParts, stop: CancellationToken) {
    let dir = loop {
        match open_directory(&cfg, &parts.events).await {
            Ok(d) => break d,
            Err(e) => {
                tracing::error!(error = %e, "AD unavailable; changes keep queueing");
                if sleep_or_stop(cfg.sync.max_backoff, &stop).await {
                    return;
                }
            }
        }
    };
    // Counting the owned groups reads every one of them: beside the worker, once it is idle.
    tokio::spawn(count_owned_when_idle(
        dir.clone(),
        parts.store.clone(),
        parts.events.clone(),
        cfg.graph.poll_interval,
        stop.clone(),
    ));
    let _ = parts.connected.send(Some(dir.clone()));
    let applier = Applier::new(dir, parts.store.clone(), oracle(parts.graph), false);
    let worker = Worker::new(parts.store, applier, cfg.sync.clone(), parts.events);
    worker.run(parts.wake, stop, parts.quarantine).await;
}

/// The longest wait between two attempts to count the owned groups.
const COUNT_RETRY_MAX: Duration = Duration::from_secs(600);

/// Counts the groups owned in AD (for `entra_writeback_managed_groups`) once the changes of
/// the first poll interval are applied. The count reads every owned group, which a DC
/// answers with one scan of the owned OUs (Samba's single process serves nothing else
/// meanwhile): a change made right after a restart goes first. A failed count is tried
/// again when the queue is next empty, after a wait that doubles up to 10 minutes.
async fn count_owned_when_idle(
    dir: Directory,
    store: Store,
    events: Events,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut wait = interval;
    loop {
        if sleep_or_stop(wait, &stop).await {
            return;
        }
        if store.depth() > 0 {
            continue;
        }
        match dir.count_owned().await {
            Ok(n) => {
                events.emit(Event::ManagedGroups(ManagedGroups::Counted(n as u64)));
                return;
            }
            Err(e) => {
                wait = (wait * 2).min(COUNT_RETRY_MAX);
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "cannot count the groups owned in AD");
            }
        }
    }
}

/// Probe: whenever AD has not answered for `every`, reads the target OU (one base-scope
/// search, reconnecting if the DC dropped the idle connection), so `/readyz` and
/// `entra_writeback_ad_up` say whether AD is reachable now, not merely whether there was work
/// lately. Waits for the apply loop's connection first.
pub async fn probe(
    mut connected: watch::Receiver<Option<Directory>>,
    last_ad_ok_ms: impl Fn() -> Option<u64> + Send,
    every: Duration,
    stop: CancellationToken,
) {
    let every = every.max(Duration::from_secs(1));
    let dir = tokio::select! {
        d = connected.wait_for(Option::is_some) => match d {
            Ok(d) => d.clone().expect("waited for Some"),
            Err(_) => return,
        },
        _ = stop.cancelled() => return,
    };
    loop {
        if sleep_or_stop(every, &stop).await {
            return;
        }
        let idle =
            last_ad_ok_ms().is_none_or(|t| now_ms().saturating_sub(t) >= every.as_millis() as u64);
        if !idle {
            continue;
        }
        match dir.target_ou_exists().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                target_ou = %dir.target_ou,
                "AD probe: the target OU is gone or no longer visible"
            ),
            Err(e) => tracing::warn!(error = %e, "AD probe failed"),
        }
    }
}

/// Trim: every 10 minutes, the journal is cut to `[state] journal_retention` and
/// `journal_max_entries`.
pub async fn trim(store: Store, cfg: Config, stop: CancellationToken) {
    loop {
        match store.trim_journal(
            cfg.state.journal_retention.as_millis() as u64,
            cfg.state.journal_max_entries,
        ) {
            Ok(n) if n > 0 => tracing::info!(removed = n, "journal trimmed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "journal trim failed"),
        }
        if sleep_or_stop(Duration::from_secs(600), &stop).await {
            return;
        }
    }
}

/// Reconcile: every `[sync] reconcile_interval` (0 = never), every group is queued for full
/// convergence, unless a full enumeration is pending or running (its end reconciles anyway),
/// or the last full convergence (an initial sync, a resync or the previous reconciliation) is
/// still being applied: AD slower than the interval must not grow the queue without end, and
/// a second reconcile of groups a bulk pass has already written costs each a search.
pub async fn reconcile(
    store: Store,
    wake: Arc<Notify>,
    interval: Duration,
    stop: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    loop {
        if sleep_or_stop(interval, &stop).await {
            return;
        }
        if let Ok(Some(seq)) = store.last_sweep()
            && store.pending_through(seq).unwrap_or(false)
        {
            tracing::info!(
                "periodic reconciliation skipped: the last full convergence is still being applied"
            );
            continue;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::page::NextStep;
    use crate::queue::mirror::DeletePolicy;
    use crate::queue::testing::drain;
    use crate::queue::tests::group;

    #[tokio::test]
    async fn no_periodic_reconciliation_while_the_initial_sync_is_still_being_applied() {
        let store = Store::open_temporary().unwrap();
        let policy = DeletePolicy {
            threshold: 100,
            soft_destructive: false,
        };
        let end = NextStep::Delta("https://graph.test/v1.0/groups/delta?$deltatoken=1".into());
        let groups = [group("a", "A", &[]), group("b", "B", &[])];
        store
            .commit_group_page(&groups, &end, None, policy, &|_, p| p.eligible())
            .unwrap();
        let initial = store.stats().unwrap().depth;
        assert_eq!(initial, 3, "two reconciles and the sweep");
        // The worker has applied the sweep (its newest lane may take it first), not the rest.
        store.ack(&[store.last_sweep().unwrap().unwrap()]).unwrap();
        let stop = CancellationToken::new();
        let interval = Duration::from_millis(20);
        let looping = tokio::spawn(reconcile(
            store.clone(),
            Arc::new(Notify::new()),
            interval,
            stop.clone(),
        ));
        tokio::time::sleep(interval * 10).await;
        assert_eq!(store.stats().unwrap().depth, 2, "nothing queued meanwhile");
        drain(&store);
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while store.stats().unwrap().depth == 0 {
            assert!(std::time::Instant::now() < until, "never reconciled");
            tokio::time::sleep(interval).await;
        }
        // One reconciliation at a time: two reconciles and a sweep, however many ticks pass.
        tokio::time::sleep(interval * 10).await;
        assert_eq!(store.stats().unwrap().depth, 3);
        stop.cancel();
        looping.await.unwrap();
    }
}
