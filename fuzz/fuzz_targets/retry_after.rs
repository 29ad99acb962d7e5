//! Fuzzes the `Retry-After` header parser (`graph::client::parse_retry_after`): any header
//! text gives `None` or a delay of at most an hour, never a panic (negative, NaN, huge).
#![no_main]

use std::time::Duration;

use entra_writeback::graph::client::parse_retry_after;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return; // the client drops non-UTF-8 header values before parsing
    };
    if let Some(d) = parse_retry_after(header) {
        assert!(d <= Duration::from_secs(3600), "{header:?} → {d:?}");
    }
});
