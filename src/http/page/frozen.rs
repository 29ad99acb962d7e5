//! The status page's list of groups frozen because another writer kept reverting them (shown
//! only when there is one): which group, its DN, what was reverted, since when, and the
//! command that releases it.

use std::fmt::Write as _;

use super::super::snapshot::{FrozenEntry, Snapshot};
use super::format::{ago, esc, group_cell};

/// The section, if any group is frozen.
pub(super) fn section(out: &mut String, s: &Snapshot) {
    if s.frozen.is_empty() {
        return;
    }
    let _ = write!(
        out,
        r#"<h2 id="frozen">Frozen: another writer <span class="count">({})</span></h2><p class="empty">Nothing is written to these groups. Stop the other tool (Connect Sync group writeback, Cloud Sync, a script), then run <code>entra-writeback approve-writes --all</code> (or by id).</p>"#,
        s.frozen.len()
    );
    out.push_str("<table><tr><th>Group</th><th>DN</th><th>Reverted</th><th>Since</th></tr>");
    for f in &s.frozen {
        let FrozenEntry {
            group_id,
            group_name,
            dn,
            detail,
            since_ms,
        } = f;
        let _ = write!(
            out,
            r#"<tr class="dead"><td>{}</td><td>{}</td><td class="err">{}</td><td class="t">{}</td></tr>"#,
            group_cell(group_id, group_name.as_deref()),
            esc(dn),
            esc(detail),
            ago(s.now_ms, *since_ms)
        );
    }
    out.push_str("</table>");
}
