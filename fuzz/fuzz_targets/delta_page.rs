//! Fuzzes the Graph delta page parser (`graph::page`): arbitrary bytes must never panic, and a
//! page that parses must keep the invariants the poller relies on (exactly one absolute link;
//! every object and member has a non-empty id). Seeds: `tests/fixtures/graph/*.json`.
#![no_main]

use entra_writeback::graph::page::{NextStep, parse_group_page, parse_user_page};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = parse_group_page(data) {
        let (NextStep::Next(link) | NextStep::Delta(link)) = &page.link;
        assert!(url::Url::parse(link).is_ok(), "link is an absolute URL");
        for g in &page.items {
            assert!(!g.id.is_empty());
            assert!(g.members.iter().all(|m| !m.member.id.is_empty()));
        }
    }
    if let Ok(page) = parse_user_page(data) {
        assert!(page.items.iter().all(|u| !u.id.is_empty()));
    }
});
