//! The status page: one self-contained HTML document rendered from a [`Snapshot`].
//!
//! No scripts, fonts, images or style sheets are fetched (everything is inline), so it works
//! on an isolated host and through a plain SSH tunnel. It reloads itself every
//! [`REFRESH_SECS`] seconds (`<meta http-equiv="refresh">`). Every value that comes from
//! outside (group names, error texts, config values) is HTML-escaped.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::snapshot::{DeadEntry, Snapshot};
use crate::observe::status::{ChangeEntry, RoundEntry};

/// Seconds between automatic reloads.
pub const REFRESH_SECS: u32 = 5;
/// Rounds listed on the page (`/status.json` has every one kept).
const ROUNDS_SHOWN: usize = 10;
/// Group changes listed on the page (`/status.json` has every one kept).
const CHANGES_SHOWN: usize = 30;

const CSS: &str = r#"
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--mute:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#fff}
header{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--bg)}
header h1{font-size:18px;margin:0 0 2px}
header .meta{color:var(--mute);font-size:12.5px}
main{padding:8px 24px 24px}
h2{font-size:15px;margin:22px 0 8px}
h2 .count{color:var(--mute);font-weight:normal}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px;margin-top:14px}
.tile{border:1px solid var(--line);border-left:5px solid var(--mute);border-radius:6px;padding:8px 12px}
.tile .k{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.tile .v{font-size:20px;font-weight:600}
.tile .d{font-size:12px;color:var(--mute)}
.ok{border-left-color:var(--ok)} .ok .v{color:var(--ok)}
.warn{border-left-color:var(--warn)} .warn .v{color:var(--warn)}
.bad{border-left-color:var(--bad)} .bad .v{color:var(--bad)}
.tile ul{margin:2px 0 0 16px;padding:0;font-size:12px;color:var(--bad)}
.totals{color:var(--mute);font-size:12.5px;margin-top:10px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{white-space:nowrap;color:var(--mute)}
.id{font:11.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--mute);white-space:nowrap}
.err{color:var(--bad);word-break:break-word}
.pill{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;border:1px solid currentColor;white-space:nowrap}
.p-ok{color:var(--ok)} .p-warn{color:var(--warn)} .p-bad{color:var(--bad)} .p-mute{color:var(--mute)}
.empty{color:var(--mute);font-style:italic}
.bar{height:10px;background:var(--bg);border:1px solid var(--line);border-radius:5px;overflow:hidden;max-width:520px}
.bar>div{height:100%;background:var(--ok)}
footer{padding:10px 24px;color:var(--mute);font-size:12px;border-top:1px solid var(--line)}
footer a{color:inherit}
"#;

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration for people: `850 ms`, `4.2 s`, `3m 05s`, `2h 07m`, `3d 04h`.
pub fn dur_ms(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `<span title="2025-01-02T03:04:05Z">12 s ago</span>`.
fn ago(now: u64, t: u64) -> String {
    format!(
        r#"<span title="{}">{} ago</span>"#,
        rfc3339(t),
        dur_ms(now.saturating_sub(t))
    )
}

/// Time of day (UTC) with the full timestamp as a tooltip.
fn clock(t: u64) -> String {
    let full = rfc3339(t);
    let hms = full.get(11..19).unwrap_or(&full).to_string();
    format!(r#"<span title="{full}">{hms}</span>"#)
}

fn tile(out: &mut String, class: &str, key: &str, value: &str, detail: &str) {
    let _ = write!(
        out,
        r#"<div class="tile {class}"><div class="k">{key}</div><div class="v">{value}</div><div class="d">{detail}</div></div>"#
    );
}

fn pill(class: &str, text: &str) -> String {
    format!(r#"<span class="pill p-{class}">{}</span>"#, esc(text))
}

fn group_cell(id: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!(r#"{} <span class="id">{}</span>"#, esc(n), esc(id)),
        None => format!(r#"<span class="id">{}</span>"#, esc(id)),
    }
}

fn tiles(out: &mut String, s: &Snapshot) {
    let now = s.now_ms;
    out.push_str(r#"<section class="tiles">"#);
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
    tile(
        out,
        "",
        "Managed groups",
        &s.totals.managed_groups.to_string(),
        &format!("in {}", esc(&s.about.target_ou)),
    );
    out.push_str("</section>");
    let t = &s.totals;
    let _ = write!(
        out,
        r#"<p class="totals">Since start ({} ago): {} change(s) queued, {} applied, {} dead-lettered, {} retries, {} failed round(s), {} conflict(s).</p>"#,
        dur_ms(now.saturating_sub(s.started_ms)),
        t.enqueued,
        t.applied,
        t.dead_lettered,
        t.retries,
        t.failed_rounds,
        t.conflicts
    );
}

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
    tiles(&mut out, s);
    progress(&mut out, s);
    dead_letters(&mut out, s);
    rounds(&mut out, s);
    changes(&mut out, s);
    out.push_str(
        r#"</main><footer>Also: <a href="/status.json">/status.json</a> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></footer></body></html>
"#,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>"a"&'b'</script>"#),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;"
        );
    }

    fn troubled() -> Snapshot {
        use super::super::snapshot::About;
        use crate::observe::status::*;
        let now = 1_700_000_000_000;
        Snapshot {
            version: "0.0.0",
            now_ms: now,
            started_ms: now - 90_000,
            about: About {
                tenant_id: "contoso".into(),
                target_ou: "OU=Cloud Groups,DC=corp".into(),
                ready_window_secs: 60.0,
                ..About::default()
            },
            ready: false,
            not_ready: vec!["no successful AD bind recently", "quarantined"],
            ad_up: false,
            last_ad_ok_ms: None,
            quarantined: true,
            last_successful_round_ms: Some(now - 600_000),
            queue: None,
            queue_error: Some("disk full".into()),
            lag: LagSummary::default(),
            totals: Totals::default(),
            in_flight: vec![InFlight {
                resource: "groups",
                full: true,
                started_ms: now - 5_000,
                pages: 12,
                items: 1200,
                enqueued: 900,
            }],
            initial_sync: Some(crate::observe::progress::SyncSnapshot {
                started_ms: now - 5_000,
                elapsed_secs: 5.0,
                phase: "reading Graph",
                graph_pages: 12,
                graph_items: 1200,
                queued: 900,
                applied: 300,
                dead_letters: 0,
            }),
            dead_letters: vec![],
            rounds: vec![],
            quiet_rounds: QuietRounds {
                count: 7,
                last_ms: Some(now - 2_000),
            },
            changes: vec![ChangeEntry {
                at_ms: now - 1_000,
                group_id: "g1".into(),
                group_name: Some("<b>Evil</b> & Co".into()),
                work: "upsert",
                changes: 1,
                outcome: "retrying",
                lag_ms: None,
                duration_ms: 1_500,
                error_class: Some("connect"),
                error: Some("cannot reach AD".into()),
            }],
        }
    }

    #[test]
    fn a_troubled_instance_says_what_is_wrong() {
        let html = render(&troubled());
        for want in [
            "<title>entra-writeback: store unreadable</title>",
            "Not ready",
            "<li>no successful AD bind recently</li>",
            "Unreachable",
            "Quarantined",
            "disk full",
            "Initial sync in progress",
            "1200 item(s) read on 12 page(s)",
            "300 of 900 queued change(s) done",
            "width:33.3%",
            "Rounds running",
            "&lt;b&gt;Evil&lt;/b&gt; &amp; Co",
            "retrying",
            "cannot reach AD",
            "No round with changes or errors since start.",
            "Not listed: 7 empty incremental round(s) since start, the latest",
        ] {
            assert!(html.contains(want), "missing {want:?} in {html}");
        }
        assert!(!html.contains("<b>Evil</b>"), "group names must be escaped");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(dur_ms(850), "850 ms");
        assert_eq!(dur_ms(4_200), "4.2 s");
        assert_eq!(dur_ms(185_000), "3m 05s");
        assert_eq!(dur_ms(7_620_000), "2h 07m");
        assert_eq!(dur_ms(273_600_000), "3d 04h");
    }
}
