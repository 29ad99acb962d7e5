//! Small HTML pieces the sections are built from: escaping, durations and timestamps for people,
//! tiles, pills and group cells. Everything from outside passes through [`esc`] here.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

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

/// A timestamp as RFC 3339, to the second (UTC).
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `<span title="2025-01-02T03:04:05Z">12 s ago</span>`.
pub(super) fn ago(now: u64, t: u64) -> String {
    format!(
        r#"<span title="{}">{} ago</span>"#,
        rfc3339(t),
        dur_ms(now.saturating_sub(t))
    )
}

/// Time of day (UTC) with the full timestamp as a tooltip.
pub(super) fn clock(t: u64) -> String {
    let full = rfc3339(t);
    let hms = full.get(11..19).unwrap_or(&full).to_string();
    format!(r#"<span title="{full}">{hms}</span>"#)
}

/// One status tile: `class` is `ok`, `warn`, `bad` or empty; `value` and `detail` are HTML.
pub(super) fn tile(out: &mut String, class: &str, key: &str, value: &str, detail: &str) {
    let _ = write!(
        out,
        r#"<div class="tile {class}"><div class="k">{key}</div><div class="v">{value}</div><div class="d">{detail}</div></div>"#
    );
}

/// A coloured pill around escaped `text`.
pub(super) fn pill(class: &str, text: &str) -> String {
    format!(r#"<span class="pill p-{class}">{}</span>"#, esc(text))
}

/// A group as its (escaped) name followed by its id, or the id alone.
pub(super) fn group_cell(id: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!(r#"{} <span class="id">{}</span>"#, esc(n), esc(id)),
        None => format!(r#"<span class="id">{}</span>"#, esc(id)),
    }
}
