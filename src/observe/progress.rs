//! Progress of long initial syncs.
//!
//! An *initial sync* starts with the first committed page of a full enumeration (no cursor yet:
//! first start, `resync`, or Graph forcing a resync) and ends when the groups round has reached
//! its deltaLink and every change queued meanwhile has left the queue (applied or
//! dead-lettered). Graph gives no total for a delta enumeration, so the Graph side shows counts
//! and rates; the AD side is a real bar (changes finished of changes queued by the rounds, with
//! an ETA). Changes the worker queues itself (a parent group re-queued once its nested group
//! exists) are not counted: they may be applied just after the sync is reported complete.
//!
//! While one runs:
//! - **stdout is a terminal**: indicatif bars on stdout, from the first second on (a quick
//!   sync does not flicker): a spinner per Graph stream and a bar for AD. Log lines (stderr)
//!   are printed above the bars, never through them: install [`LogWriter`] as the tracing
//!   writer.
//! - **otherwise** (a service manager, a pipe): a progress log line every
//!   `ENTRA_WRITEBACK_PROGRESS_INTERVAL` (humantime, default `10s`).
//!
//! Either way one summary line is logged when it ends. `ENTRA_WRITEBACK_PROGRESS=log` forces
//! log lines on a terminal too, `off` turns both off (the summary line stays).
//!
//! [`Progress`] is an [`Observer`] of the domain's events (pages committed, rounds finished,
//! groups applied). No tracing event is ever emitted while its locks are held (the log writer
//! takes one of them).
//!
//! # May import
//! [`crate::model`] only.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::MultiProgress;
use serde::Serialize;

use crate::model::event::{Event, GroupOutcome, Observer, RoundTally};
use crate::model::{Resource, now_ms};

/// Bars appear only once a sync has run this long.
const BAR_DELAY: Duration = Duration::from_secs(1);
/// Default spacing of progress log lines.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bars on a terminal.
    Bars,
    /// Periodic log lines.
    Lines,
    /// Only the summary line.
    Off,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    mode: Mode,
    interval: Duration,
}

impl Settings {
    /// From `ENTRA_WRITEBACK_PROGRESS` and `ENTRA_WRITEBACK_PROGRESS_INTERVAL`.
    fn from_env() -> Settings {
        let want = std::env::var("ENTRA_WRITEBACK_PROGRESS").unwrap_or_default();
        let mode = match want.trim() {
            "off" => Mode::Off,
            "log" => Mode::Lines,
            _ if io::stdout().is_terminal() => Mode::Bars,
            _ => Mode::Lines,
        };
        let interval = std::env::var("ENTRA_WRITEBACK_PROGRESS_INTERVAL")
            .ok()
            .and_then(|v| humantime::parse_duration(v.trim()).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_INTERVAL);
        Settings { mode, interval }
    }
}

/// The bars on screen, if any: what [`LogWriter`] suspends. Shared with the log writer.
type Shown = Arc<Mutex<Option<MultiProgress>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One Graph stream's counts during the sync (several rounds if one failed and resumed).
#[derive(Default)]
struct Stream {
    /// Pages and items of this stream's finished rounds.
    done_pages: usize,
    done_items: usize,
    /// The running round's totals so far.
    pages: usize,
    items: usize,
    enqueued: usize,
    /// A round is running.
    running: bool,
    /// A round reached its deltaLink.
    finished: bool,
    /// First page seen.
    started: Option<Instant>,
}

impl Stream {
    fn pages(&self) -> usize {
        self.done_pages + self.pages
    }
    fn items(&self) -> usize {
        self.done_items + self.items
    }
}

struct Sync {
    started: Instant,
    started_ms: u64,
    streams: BTreeMap<&'static str, Stream>,
    /// Changes queued by finished rounds since the sync began.
    queued_done: usize,
    applied: usize,
    dead: usize,
    /// When the first change finished (the AD rate is measured from there).
    first_finished: Option<Instant>,
    /// The groups stream reached its deltaLink.
    groups_done: bool,
    last_line: Instant,
    bars: Option<Bars>,
    settings: Settings,
}

impl Sync {
    /// A sync that starts now.
    fn new(started_ms: u64, settings: Settings) -> Sync {
        Sync {
            started: Instant::now(),
            started_ms,
            streams: BTreeMap::new(),
            queued_done: 0,
            applied: 0,
            dead: 0,
            first_finished: None,
            groups_done: false,
            last_line: Instant::now(),
            bars: None,
            settings,
        }
    }
}

impl Sync {
    fn queued(&self) -> usize {
        self.queued_done + self.streams.values().map(|s| s.enqueued).sum::<usize>()
    }
    fn finished(&self) -> usize {
        self.applied + self.dead
    }
    fn graph_items(&self) -> usize {
        self.streams.values().map(Stream::items).sum()
    }
    fn graph_pages(&self) -> usize {
        self.streams.values().map(Stream::pages).sum()
    }
    fn complete(&self) -> bool {
        self.groups_done
            && !self.streams.values().any(|s| s.running)
            && self.finished() >= self.queued()
    }
    fn phase(&self) -> &'static str {
        if self.groups_done {
            "applying to AD"
        } else {
            "reading Graph"
        }
    }
}

/// What a hook decided to log once the locks are released.
enum Line {
    Progress(SyncSnapshot),
    Complete(SyncSnapshot),
}

/// Initial sync progress, for the status page.
#[derive(Debug, Clone, Serialize)]
pub struct SyncSnapshot {
    /// When the sync began (Unix ms).
    pub started_ms: u64,
    /// Seconds since.
    pub elapsed_secs: f64,
    /// `reading Graph` or `applying to AD`.
    pub phase: &'static str,
    /// Graph pages committed.
    pub graph_pages: usize,
    /// Graph items read.
    pub graph_items: usize,
    /// Changes queued.
    pub queued: usize,
    /// Changes applied.
    pub applied: usize,
    /// Changes dead-lettered.
    pub dead_letters: usize,
}

fn snapshot_of(s: &Sync) -> SyncSnapshot {
    SyncSnapshot {
        started_ms: s.started_ms,
        elapsed_secs: s.started.elapsed().as_secs_f64(),
        phase: s.phase(),
        graph_pages: s.graph_pages(),
        graph_items: s.graph_items(),
        queued: s.queued(),
        applied: s.applied,
        dead_letters: s.dead,
    }
}

/// Progress line due now (log-lines mode), or the end of the sync.
fn after_update(guard: &mut Option<Sync>, shown: &Shown) -> Option<Line> {
    let s = guard.as_mut()?;
    if s.complete() {
        clear_bars(s, shown);
        let snap = snapshot_of(s);
        *guard = None;
        return Some(Line::Complete(snap));
    }
    draw(s, shown);
    if s.settings.mode == Mode::Lines && s.last_line.elapsed() >= s.settings.interval {
        s.last_line = Instant::now();
        return Some(Line::Progress(snapshot_of(s)));
    }
    None
}

fn emit(line: Option<Line>) {
    match line {
        Some(Line::Progress(p)) => tracing::info!(
            phase = p.phase,
            elapsed_s = p.elapsed_secs.round() as u64,
            graph_pages = p.graph_pages,
            graph_items = p.graph_items,
            queued = p.queued,
            applied = p.applied,
            dead_letters = p.dead_letters,
            remaining = p.queued.saturating_sub(p.applied + p.dead_letters),
            "initial sync in progress"
        ),
        Some(Line::Complete(p)) => tracing::info!(
            elapsed_s = (p.elapsed_secs * 10.0).round() / 10.0,
            graph_pages = p.graph_pages,
            graph_items = p.graph_items,
            applied = p.applied,
            dead_letters = p.dead_letters,
            "initial sync complete"
        ),
        None => {}
    }
}

/// Initial-sync progress: an [`Observer`]. One per process, shared with its [`LogWriter`].
pub struct Progress {
    settings: Settings,
    state: Mutex<Option<Sync>>,
    shown: Shown,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Progress shown as the environment asks (see the module doc).
    pub fn new() -> Progress {
        Progress {
            settings: Settings::from_env(),
            state: Mutex::new(None),
            shown: Shown::default(),
        }
    }

    /// The tracing writer that keeps log lines above this progress's bars.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter(self.shown.clone())
    }

    /// The running initial sync, if any.
    pub fn snapshot(&self) -> Option<SyncSnapshot> {
        lock(&self.state).as_ref().map(snapshot_of)
    }

    /// Runs `f` on the sync in progress (starting one if `start`), then decides what to log.
    fn update(&self, start: bool, f: impl FnOnce(&mut Sync)) {
        let line = {
            let mut guard = lock(&self.state);
            if guard.is_none() {
                if !start {
                    return;
                }
                *guard = Some(Sync::new(now_ms(), self.settings));
            }
            f(guard.as_mut().expect("just set"));
            after_update(&mut guard, &self.shown)
        };
        emit(line);
    }

    /// A page of `resource` was committed; a full round's first page starts a sync.
    fn page(&self, resource: &'static str, so_far: &RoundTally) {
        self.update(so_far.full, |s| {
            let st = s.streams.entry(resource).or_default();
            st.running = true;
            st.started.get_or_insert_with(Instant::now);
            st.pages = so_far.pages;
            st.items = so_far.items;
            st.enqueued = so_far.enqueued;
        });
    }

    /// A round ended, well or not.
    fn round_finished(&self, resource: &'static str, outcome: &Result<RoundTally, String>) {
        self.update(false, |s| {
            let Some(st) = s.streams.get_mut(resource) else {
                return;
            };
            if let Ok(round) = outcome {
                // The round's own totals are final; the last page event saw the same.
                st.pages = round.pages;
                st.items = round.items;
                st.enqueued = round.enqueued;
                st.finished = true;
            }
            st.done_pages += st.pages;
            st.done_items += st.items;
            let enqueued = st.enqueued;
            (st.pages, st.items, st.enqueued, st.running) = (0, 0, 0, false);
            s.queued_done += enqueued;
            if resource == Resource::Groups.as_str() && outcome.is_ok() {
                s.groups_done = true;
            }
        });
    }

    /// The worker finished changes (applied or dead-lettered).
    fn finished_changes(&self, applied: usize, dead: usize) {
        self.update(false, |s| {
            s.first_finished.get_or_insert_with(Instant::now);
            s.applied += applied;
            s.dead += dead;
        });
    }

    /// At exit: takes the bars down and, if a sync is still unfinished, says how far it got.
    pub fn finish(&self) {
        let unfinished = {
            let mut guard = lock(&self.state);
            let mut s = guard.take();
            if let Some(s) = s.as_mut() {
                clear_bars(s, &self.shown);
            }
            s.map(|s| snapshot_of(&s))
        };
        if let Some(p) = unfinished {
            tracing::info!(
                phase = p.phase,
                graph_items = p.graph_items,
                queued = p.queued,
                applied = p.applied,
                dead_letters = p.dead_letters,
                "initial sync not finished; it resumes at the next start"
            );
        }
    }
}

impl Observer for Progress {
    fn observe(&self, event: &Event) {
        match event {
            Event::PageCommitted { resource, round } => self.page(resource.as_str(), round),
            Event::RoundFinished {
                resource, outcome, ..
            } => self.round_finished(resource.as_str(), outcome),
            Event::GroupFinished {
                seen_ms, outcome, ..
            } => match outcome {
                GroupOutcome::Applied => self.finished_changes(seen_ms.len(), 0),
                GroupOutcome::DeadLettered { .. } => self.finished_changes(0, seen_ms.len()),
                GroupOutcome::Retrying { .. } => {}
            },
            _ => {}
        }
    }
}

mod bars;

pub use bars::LogWriter;
use bars::{Bars, clear_bars, draw};

#[cfg(test)]
mod tests {
    use super::*;

    fn sync() -> Sync {
        Sync::new(
            0,
            Settings {
                mode: Mode::Off,
                interval: DEFAULT_INTERVAL,
            },
        )
    }

    #[test]
    fn a_sync_completes_only_after_the_groups_round_and_the_drain() {
        let mut s = sync();
        s.streams.insert(
            "users",
            Stream {
                running: false,
                finished: true,
                done_items: 10,
                ..Default::default()
            },
        );
        // Users done, nothing queued yet: still reading Graph.
        assert!(!s.complete());
        s.streams.insert(
            "groups",
            Stream {
                running: true,
                enqueued: 5,
                ..Default::default()
            },
        );
        s.applied = 5;
        assert!(!s.complete(), "groups round still running");
        let g = s.streams.get_mut("groups").unwrap();
        (g.running, g.enqueued) = (false, 0);
        s.queued_done = 7;
        s.groups_done = true;
        assert_eq!(s.phase(), "applying to AD");
        assert!(!s.complete(), "2 changes still queued");
        s.dead = 2;
        assert!(s.complete());
    }
}
