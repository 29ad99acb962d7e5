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
//! The state is process-wide and fed by [`crate::status`]'s hooks. No tracing event is ever
//! emitted while this module's locks are held (the log writer takes one of them).

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::model::event::RoundTally;
use crate::model::now_ms;
use crate::status::RoundEntry;

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

struct Settings {
    mode: Mode,
    interval: Duration,
}

static DISABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns progress reporting off for this process (`plan`: its "applied" changes are dry runs).
pub fn disable() {
    DISABLED.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn settings() -> &'static Settings {
    static S: OnceLock<Settings> = OnceLock::new();
    S.get_or_init(|| {
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
    })
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

struct Bars {
    multi: MultiProgress,
    streams: BTreeMap<&'static str, ProgressBar>,
    ad: ProgressBar,
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
}

impl Sync {
    /// A sync that starts now.
    fn new(started_ms: u64) -> Sync {
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

fn state() -> MutexGuard<'static, Option<Sync>> {
    static S: Mutex<Option<Sync>> = Mutex::new(None);
    S.lock().unwrap_or_else(|p| p.into_inner())
}

/// The bars on screen, if any: what [`LogWriter`] suspends.
fn shown() -> MutexGuard<'static, Option<MultiProgress>> {
    static B: Mutex<Option<MultiProgress>> = Mutex::new(None);
    B.lock().unwrap_or_else(|p| p.into_inner())
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

/// The running initial sync, if any.
pub fn snapshot() -> Option<SyncSnapshot> {
    state().as_ref().map(snapshot_of)
}

fn rate(n: usize, since: Option<Instant>) -> f64 {
    let secs = since.map_or(0.0, |t| t.elapsed().as_secs_f64());
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn stream_message(s: &Stream) -> String {
    let what = format!("{} items, {} pages", s.items(), s.pages());
    if s.finished && !s.running {
        format!("{what}: done")
    } else {
        format!("{what} ({:.0} items/s)", rate(s.items(), s.started))
    }
}

fn make_bars(s: &Sync) -> Bars {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
    let spinner = ProgressStyle::with_template("{spinner:.cyan} {prefix:<13} {msg}")
        .expect("valid template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓");
    let mut streams = BTreeMap::new();
    for (resource, prefix) in [("users", "Graph users"), ("groups", "Graph groups")] {
        let b = ProgressBar::new_spinner().with_style(spinner.clone());
        b.set_prefix(prefix);
        b.set_message(
            s.streams
                .get(resource)
                .map_or("waiting".into(), stream_message),
        );
        let b = multi.add(b);
        b.enable_steady_tick(Duration::from_millis(120));
        streams.insert(resource, b);
    }
    // No length until something is queued: a zero-length bar would be drawn full.
    let ad = ProgressBar::no_length().with_style(
        ProgressStyle::with_template(
            "{spinner:.green} {prefix:<13} [{bar:32.green/dim}] {pos}/{len} changes {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    ad.set_prefix("AD");
    let ad = multi.add(ad);
    ad.enable_steady_tick(Duration::from_millis(120));
    *shown() = Some(multi.clone());
    Bars { multi, streams, ad }
}

/// `4s`, `2m05s`, `1h02m`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Rate, ETA and dead letters for the AD bar.
fn ad_message(s: &Sync) -> String {
    let done = s.finished();
    let rate = rate(done, s.first_finished);
    let mut msg = format!("({rate:.0}/s");
    if s.groups_done && rate > 0.0 {
        let left = s.queued().saturating_sub(done) as f64 / rate;
        msg.push_str(&format!(", ETA {}", short(Duration::from_secs_f64(left))));
    }
    msg.push(')');
    if s.dead > 0 {
        msg.push_str(&format!(", {} dead-lettered", s.dead));
    }
    msg
}

fn draw(s: &mut Sync) {
    if settings().mode != Mode::Bars {
        return;
    }
    if s.bars.is_none() && s.started.elapsed() >= BAR_DELAY {
        s.bars = Some(make_bars(s));
    }
    let Some(bars) = &s.bars else { return };
    for (resource, bar) in &bars.streams {
        if let Some(st) = s.streams.get(resource) {
            bar.set_message(stream_message(st));
        }
    }
    let queued = s.queued().max(s.finished());
    if queued > 0 {
        bars.ad.set_length(queued as u64);
    }
    bars.ad.set_position(s.finished() as u64);
    bars.ad.set_message(ad_message(s));
}

fn clear_bars(s: &mut Sync) {
    if let Some(bars) = s.bars.take() {
        for (resource, bar) in &bars.streams {
            match s.streams.get(resource) {
                Some(st) => bar.finish_with_message(stream_message(st)),
                None => bar.finish_with_message("nothing to read"),
            }
        }
        bars.ad.finish_with_message(ad_message(s));
        *shown() = None;
        drop(bars.multi);
    }
}

/// Progress line due now (log-lines mode), or the end of the sync.
fn after_update(guard: &mut Option<Sync>) -> Option<Line> {
    let s = guard.as_mut()?;
    if s.complete() {
        clear_bars(s);
        let snap = snapshot_of(s);
        *guard = None;
        return Some(Line::Complete(snap));
    }
    draw(s);
    if settings().mode == Mode::Lines && s.last_line.elapsed() >= settings().interval {
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

/// Hook (through [`crate::status::page`]): a page of `resource` was committed.
pub fn page(resource: &'static str, so_far: &RoundTally) {
    let line = {
        let mut guard = state();
        if guard.is_none() {
            if !so_far.full || DISABLED.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            *guard = Some(Sync::new(now_ms()));
        }
        let s = guard.as_mut().expect("just set");
        let st = s.streams.entry(resource).or_default();
        st.running = true;
        st.started.get_or_insert_with(Instant::now);
        st.pages = so_far.pages;
        st.items = so_far.items;
        st.enqueued = so_far.enqueued;
        after_update(&mut guard)
    };
    emit(line);
}

/// Hook (through [`crate::status::round_finished`]): a round ended, well or not.
pub fn round_finished(round: &RoundEntry) {
    let line = {
        let mut guard = state();
        let Some(s) = guard.as_mut() else { return };
        let Some(st) = s.streams.get_mut(round.resource) else {
            return;
        };
        if round.result != "error" {
            // The round's own totals are final; the last page hook saw the same.
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
        if round.resource == "groups" && round.result != "error" {
            s.groups_done = true;
        }
        after_update(&mut guard)
    };
    emit(line);
}

/// Hook (through [`crate::status`]): the worker finished changes (applied or dead-lettered).
pub fn finished_changes(applied: usize, dead: usize) {
    let line = {
        let mut guard = state();
        let Some(s) = guard.as_mut() else { return };
        s.first_finished.get_or_insert_with(Instant::now);
        s.applied += applied;
        s.dead += dead;
        after_update(&mut guard)
    };
    emit(line);
}

/// At exit: takes the bars down and, if a sync is still unfinished, says how far it got.
pub fn finish() {
    let unfinished = {
        let mut guard = state();
        let mut s = guard.take();
        if let Some(s) = s.as_mut() {
            clear_bars(s);
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

/// The tracing writer: stderr, printed above the progress bars while they are shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One call per event (tracing-subscriber formats a whole line, then writes it).
        let bars = shown().clone();
        match bars {
            Some(m) => m.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync() -> Sync {
        Sync::new(0)
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
