//! The page's tests: escaping, a troubled instance that must say what is wrong, durations.

use super::*;

#[test]
fn escapes_markup_and_quotes() {
    assert_eq!(
        esc(r#"<script>"a"&'b'</script>"#),
        "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;"
    );
}

fn troubled() -> Snapshot {
    use crate::http::snapshot::About;
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
        frozen: vec![crate::http::snapshot::FrozenEntry {
            group_id: "g2".into(),
            group_name: Some("Sales".into()),
            dn: "CN=Group_g2,OU=Cloud Groups,DC=corp".into(),
            detail: "member S-1-5-21-1-2-3-1105 was added twice and removed each time".into(),
            since_ms: now - 60_000,
        }],
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
        "Frozen: another writer",
        "member S-1-5-21-1-2-3-1105 was added twice and removed each time",
        "approve-writes --all",
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
