//! Fuzzes the configuration parser (`Config::parse`): any text, valid TOML or not, must give
//! `Ok` or a clean `Err` that names a key, never a panic. Seeds: complete and partial configs.
#![no_main]

use std::path::Path;

use entra_writeback::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // `Config::load` reads the file as UTF-8 first
    };
    let env = |name: &str| name.ends_with("PASSWORD").then(|| "from-env".to_string());
    match Config::parse(text, Path::new("fuzz.toml"), env) {
        Ok(cfg) => {
            // A config that parses can be shown without panicking (secrets redacted).
            let shown = format!("{cfg:?}");
            assert!(!shown.contains("from-env"), "a secret leaked into Debug");
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
