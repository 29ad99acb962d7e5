//! The tiles at the top of the page (readiness, AD, rounds, lag, queue, quarantine, managed
//! groups) and the line of totals since start under them: the state at a glance.

use std::fmt::Write as _;

use crate::http::Snapshot;

use super::format::{ago, clock, dur_ms, esc, tile};

/// The tile section and the totals line.
pub(super) fn section(out: &mut String, s: &Snapshot) {
    out.push_str(r#"<section class="tiles">"#);
    health(out, s);
    rounds_and_lag(out, s);
    queue(out, s);
    tile(
        out,
        "",
        "Managed groups",
        &s.totals.managed_groups.to_string(),
        &format!("in {}", esc(&s.about.target_ou)),
    );
    out.push_str("</section>");
    totals(out, s);
}

/// Readiness (with the reasons when not ready) and whether AD answers.
fn health(out: &mut String, s: &Snapshot) {
    let now = s.now_ms;
    if s.ready {
        tile(out, "ok", "Readiness", "Ready", "/readyz answers 200");
    } else {
        let reasons: String = s
            .not_ready
            .iter()
            .map(|r| format!("<li>{}</li>", esc(r)))
            .collect();
        tile(
            out,
            "bad",
            "Readiness",
            "Not ready",
            &format!("<ul>{reasons}</ul>"),
        );
    }
    let ad_detail = match s.last_ad_ok_ms {
        Some(t) => format!("last answered {}", ago(now, t)),
        None => "never answered".into(),
    };
    if s.ad_up {
        tile(out, "ok", "Active Directory", "Reachable", &ad_detail);
    } else {
        tile(out, "bad", "Active Directory", "Unreachable", &ad_detail);
    }
}

/// The last successful round (bad once outside the readiness window) and replication lag.
fn rounds_and_lag(out: &mut String, s: &Snapshot) {
    let now = s.now_ms;
    match s.last_successful_round_ms {
        Some(t) => {
            let age = now.saturating_sub(t);
            let class = if (age as f64) / 1000.0 <= s.about.ready_window_secs {
                "ok"
            } else {
                "bad"
            };
            tile(
                out,
                class,
                "Last successful round",
                &format!("{} ago", dur_ms(age)),
                &format!("at {}", clock(t)),
            );
        }
        None => tile(
            out,
            "warn",
            "Last successful round",
            "None yet",
            "since start",
        ),
    }
    match (s.lag.p50_ms, s.lag.p95_ms, s.lag.last_ms) {
        (Some(p50), Some(p95), Some(last)) => {
            let class = if p95 > 120_000 { "warn" } else { "ok" };
            tile(
                out,
                class,
                "Replication lag",
                &dur_ms(p50),
                &format!(
                    "median of the last {}; p95 {}, last {}",
                    s.lag.samples,
                    dur_ms(p95),
                    dur_ms(last)
                ),
            );
        }
        _ => tile(
            out,
            "",
            "Replication lag",
            "–",
            "no change applied since start",
        ),
    }
}

/// Queue depth, dead letters and held deletes (or the store's error), then quarantine.
fn queue(out: &mut String, s: &Snapshot) {
    match &s.queue {
        Some(q) => {
            let oldest = q.oldest_age_secs.unwrap_or(0.0);
            let class = if q.depth > 0 && oldest > 300.0 {
                "warn"
            } else {
                "ok"
            };
            let detail = match q.oldest_age_secs {
                Some(a) => format!("oldest queued {}", dur_ms((a * 1000.0) as u64)),
                None => "empty".into(),
            };
            tile(out, class, "Queue depth", &q.depth.to_string(), &detail);
            let class = if q.dead_letters > 0 { "bad" } else { "ok" };
            tile(
                out,
                class,
                "Dead letters",
                &q.dead_letters.to_string(),
                "see below; <code>replay --dead</code> re-queues them",
            );
            if q.frozen_groups > 0 {
                tile(
                    out,
                    "bad",
                    "Frozen groups",
                    &q.frozen_groups.to_string(),
                    "another writer reverts them; see below",
                );
            }
            if q.held_deletes > 0 {
                tile(
                    out,
                    "warn",
                    "Held deletes",
                    &q.held_deletes.to_string(),
                    "over delete_threshold; run <code>approve-deletes</code>",
                );
            }
        }
        None => tile(
            out,
            "bad",
            "State store",
            "Unreadable",
            &esc(s.queue_error.as_deref().unwrap_or("")),
        ),
    }
    if s.quarantined {
        tile(
            out,
            "bad",
            "Quarantine",
            "Quarantined",
            "backing off after repeated failures",
        );
    } else {
        tile(out, "ok", "Quarantine", "No", "not quarantined");
    }
}

/// What happened since start, in one line under the tiles.
fn totals(out: &mut String, s: &Snapshot) {
    let t = &s.totals;
    let _ = write!(
        out,
        r#"<p class="totals">Since start ({} ago): {} change(s) queued, {} applied, {} dead-lettered, {} retries, {} failed round(s), {} conflict(s).</p>"#,
        dur_ms(s.now_ms.saturating_sub(s.started_ms)),
        t.enqueued,
        t.applied,
        t.dead_lettered,
        t.retries,
        t.failed_rounds,
        t.conflicts
    );
}
