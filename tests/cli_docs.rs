//! The shell completions (`deploy/completions/`) and man pages (`deploy/man/`) committed in
//! the repository are exactly what `cargo run --example gen-docs` generates from the command
//! line definition today: a changed flag or help text fails here until they are regenerated.

#[path = "../examples/gen-docs/generate.rs"]
mod generate;

use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir`, by name, with its content.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let fresh = tempfile::tempdir().unwrap();
    generate::write_all(fresh.path()).unwrap();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for sub in [generate::COMPLETIONS, generate::MAN] {
        let want = files(&fresh.path().join(sub));
        let have = files(&deploy.join(sub));
        assert!(want.len() >= 3, "{sub}: generated only {:?}", want.keys());
        let stale: Vec<_> = want
            .iter()
            .filter(|(name, body)| have.get(*name) != Some(body))
            .map(|(name, _)| name)
            .chain(have.keys().filter(|name| !want.contains_key(*name)))
            .collect();
        assert!(
            stale.is_empty(),
            "deploy/{sub} is out of date ({stale:?}): run `cargo run --example gen-docs`"
        );
    }
    let man = files(&deploy.join(generate::MAN));
    let page = String::from_utf8_lossy(&man["entra-writeback.1"]);
    assert!(
        page.contains("approve\\-deletes") && page.contains("\\-\\-config"),
        "{page}"
    );
    assert!(
        man.contains_key("entra-writeback-queue-status.1"),
        "{:?}",
        man.keys()
    );
}
