//! Drawing initial-sync progress: indicatif bars on a terminal, and the log writer that
//! keeps log lines above them.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{BAR_DELAY, Mode, Shown, Stream, Sync, lock};

/// The bars of one sync.
pub(super) struct Bars {
    multi: MultiProgress,
    streams: BTreeMap<&'static str, ProgressBar>,
    ad: ProgressBar,
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

fn make_bars(s: &Sync, shown: &Shown) -> Bars {
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
    *lock(shown) = Some(multi.clone());
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

pub(super) fn draw(s: &mut Sync, shown: &Shown) {
    if s.settings.mode != Mode::Bars {
        return;
    }
    if s.bars.is_none() && s.started.elapsed() >= BAR_DELAY {
        s.bars = Some(make_bars(s, shown));
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

pub(super) fn clear_bars(s: &mut Sync, shown: &Shown) {
    if let Some(bars) = s.bars.take() {
        for (resource, bar) in &bars.streams {
            match s.streams.get(resource) {
                Some(st) => bar.finish_with_message(stream_message(st)),
                None => bar.finish_with_message("nothing to read"),
            }
        }
        bars.ad.finish_with_message(ad_message(s));
        *lock(shown) = None;
        drop(bars.multi);
    }
}

/// The tracing writer: stderr, printed above the progress bars while they are shown.
#[derive(Clone, Default)]
pub struct LogWriter(pub(super) Shown);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One call per event (tracing-subscriber formats a whole line, then writes it).
        let bars = lock(&self.0).clone();
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
