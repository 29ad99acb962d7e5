//! The module layering of `src/`, checked from the source text (no build needed).
//!
//! - Every reference from one top-level module to another (`use crate::x`, `crate::x::…` in
//!   code, comments aside) must point down the layers of ARCHITECTURE.md.
//! - No import cycle between top-level modules, whatever the table says.
//! - No domain module (model, config, graph, queue, directory, sync) names `observe`: the
//!   domain reports through `model::Events` and never reaches observability.
//! - No source file grows past [`MAX_LINES`] lines unless listed in [`LONG_FILES`] with why.
//!   (Functions over 80 lines are caught by clippy's `too_many_lines`, see `clippy.toml`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import. `cli` is the composition root and may import all.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("config", &["model"]),
    ("graph", &["model", "config"]),
    ("queue", &["model", "config", "graph"]),
    ("directory", &["model", "config", "graph", "queue"]),
    ("sync", &["model", "config", "graph", "queue", "directory"]),
    ("observe", &["model"]),
    ("http", &["model", "config", "queue", "observe"]),
    (
        "cli",
        &[
            "model",
            "config",
            "graph",
            "queue",
            "directory",
            "sync",
            "observe",
            "http",
        ],
    ),
];

/// The domain: what must never import `observe`.
const DOMAIN: &[&str] = &["model", "config", "graph", "queue", "directory", "sync"];

/// The longest a source file may be without a stated reason.
const MAX_LINES: usize = 500;

/// Files allowed to be longer, and why.
const LONG_FILES: &[(&str, &str)] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/graph/page.rs` → `graph`), or `None` for the
/// crate root and binaries.
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "bin")).then(|| name.to_string())
}

/// The code of a line, without its `//` comment (doc comments included).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The top-level modules `text` refers to through `crate::`.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = code_of(line);
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
    }
    out
}

/// module → modules it refers to, with one file per edge for the messages.
fn import_graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for f in files {
        let Some(from) = module_of(&f) else { continue };
        let text = std::fs::read_to_string(&f).expect("source is readable");
        let edges = graph.entry(from.clone()).or_default();
        for to in references(&text) {
            if to != from {
                edges.entry(to).or_insert_with(|| f.clone());
            }
        }
    }
    graph
}

/// A cycle through the graph, if there is one (as the list of modules on it).
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_import_points_down_the_layers() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, edges) in import_graph() {
        let Some(may) = allowed.get(from.as_str()) else {
            wrong.push(format!(
                "src/{from}: a top-level module missing from ALLOWED (and ARCHITECTURE.md)"
            ));
            continue;
        };
        for (to, file) in edges {
            if !may.contains(&to.as_str()) {
                wrong.push(format!("{from} → {to} (in {})", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = import_graph();
    assert!(
        graph.len() >= ALLOWED.len(),
        "the scan found too few modules"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_domain_never_imports_observability() {
    let graph = import_graph();
    let offenders: Vec<String> = DOMAIN
        .iter()
        .filter_map(|m| {
            graph
                .get(*m)
                .and_then(|e| e.get("observe"))
                .map(|f| format!("{m} (in {})", f.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "domain modules importing observe: {offenders:?}; report through model::Events instead"
    );
}

#[test]
fn the_checks_themselves_see_imports_and_cycles() {
    let text = "use crate::graph::page;\n// crate::observe in a comment\nlet x = crate::queue::Store::open();";
    assert_eq!(
        references(text),
        BTreeSet::from(["graph".to_string(), "queue".to_string()])
    );
    let mut g: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), "x".into());
    g.entry("b".into())
        .or_default()
        .insert("a".into(), "y".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
    g.get_mut("b").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}

#[test]
fn no_source_file_is_too_long() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let exempt: BTreeMap<&str, &str> = LONG_FILES.iter().copied().collect();
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            let rel = f.strip_prefix(src()).ok()?.to_str()?.to_string();
            (lines > MAX_LINES && !exempt.contains_key(rel.as_str()))
                .then(|| format!("src/{rel}: {lines} lines"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them, or list them in LONG_FILES with why):\n{}",
        long.join("\n")
    );
}
