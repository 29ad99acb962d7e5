//! The configuration reference cannot drift from the config code.
//!
//! - `docs/configuration.md` lists exactly the keys the loader accepts. The key list is not
//!   written here: it is read from the loader itself, which refuses an unknown key by naming
//!   every field of its table (`deny_unknown_fields`), so probing each table with an unknown
//!   key walks the whole tree.
//! - Every documented default is the loader's: setting a key to its documented default gives
//!   the same configuration as leaving it out. Every key documented as required is refused by
//!   name when missing, and the others may be left out.
//! - Every documented environment override sets its key, and the credential named after the
//!   key (`$CREDENTIALS_DIRECTORY`) does too, through the real binary.
//! - Every `ENTRA_WRITEBACK_*` variable the code reads is documented, and nothing else is.
//! - `deploy/entra-writeback.example.toml` and the Kubernetes ConfigMap parse with the real
//!   loader, and the example names every key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use entra_writeback::config::{CREDENTIALS_DIRECTORY, Config, SECRET_SOURCES};

/// The required keys only: the smallest configuration the loader accepts.
const MINIMAL: &str = r#"
[graph]
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret = "s"
[ad]
url = "ldaps://dc1.corp.example.com"
bind_dn = "CN=svc-writeback,OU=Service,DC=corp,DC=example,DC=com"
bind_password = "p"
target_ou = "OU=Cloud Groups,DC=corp,DC=example,DC=com"
[state]
path = "/var/lib/entra-writeback"
"#;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses with no environment; the error as text.
fn parse_with(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
    Config::parse(text, Path::new("t.toml"), env).map_err(|e| e.to_string())
}

fn parse(text: &str) -> Result<Config, String> {
    parse_with(text, |_| None)
}

/// `[a.b]\n__probe__ = 0`: the loader's answer names the fields of table `a.b` if it is one.
fn fields_of_table(path: &[String]) -> Option<Vec<String>> {
    let header = if path.is_empty() {
        String::new()
    } else {
        format!("[{}]\n", path.join("."))
    };
    let err = parse(&format!("{header}__probe__ = 0\n")).expect_err("a probe key is refused");
    let (_, after) = err.split_once("unknown field `__probe__`")?;
    let expected = after
        .split_once("expected")
        .map_or("", |(_, list)| list)
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some(expected)
}

/// Every leaf key the loader accepts, dotted (`graph.scope.group_types`).
fn loader_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut tables = vec![Vec::<String>::new()];
    while let Some(table) = tables.pop() {
        let fields = fields_of_table(&table).expect("each table refuses an unknown key by name");
        assert!(!fields.is_empty(), "table {table:?} lists no fields");
        for field in fields {
            let mut path = table.clone();
            path.push(field);
            if fields_of_table(&path).is_some() {
                tables.push(path);
            } else {
                keys.insert(path.join("."));
            }
        }
    }
    keys
}

/// A row of the key tables in docs/configuration.md.
#[derive(Debug)]
struct Row {
    default: String,
    env: Option<String>,
}

/// The rows of docs/configuration.md whose first cell is a dotted key in backticks.
fn documented_keys() -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for line in read("docs/configuration.md").lines() {
        let cells: Vec<&str> = line
            .split(" | ")
            .map(|c| c.trim_matches('|').trim())
            .collect();
        let Some(key) = cells[0].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        if !key.contains('.') || cells.len() < 4 {
            continue;
        }
        let env = cells[2].trim_matches('`');
        let row = Row {
            default: cells[1].to_owned(),
            env: env.starts_with("ENTRA_WRITEBACK_").then(|| env.to_owned()),
        };
        assert!(rows.insert(key.to_owned(), row).is_none(), "{key} twice");
    }
    rows
}

/// `text` with `key` (dotted) set to the TOML value `value`, or removed when `None`.
fn with_key(text: &str, key: &str, value: Option<&str>) -> String {
    let mut doc: toml::Table = text.parse().unwrap();
    let parts: Vec<&str> = key.split('.').collect();
    let (leaf, tables) = parts.split_last().unwrap();
    let mut table = &mut doc;
    for part in tables {
        let entry = table
            .entry(*part)
            .or_insert(toml::Value::Table(Default::default()));
        table = entry.as_table_mut().unwrap();
    }
    match value {
        Some(v) => {
            let parsed: toml::Table = format!("v = {v}").parse().unwrap_or_else(|e| {
                panic!("{key}: documented default `{v}` is not a TOML value: {e}")
            });
            table.insert(leaf.to_string(), parsed["v"].clone());
        }
        None => {
            table.remove(*leaf);
        }
    }
    toml::to_string(&doc).unwrap()
}

/// The first line where two pretty `Debug` renderings differ, as (left, right).
fn first_difference(a: &str, b: &str) -> Option<(String, String)> {
    let (mut a, mut b) = (a.lines(), b.lines());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return None,
            (x, y) if x == y => {}
            (x, y) => return Some((x.unwrap_or("").into(), y.unwrap_or("").into())),
        }
    }
}

#[test]
fn the_reference_lists_exactly_the_keys_the_loader_accepts() {
    let code = loader_keys();
    assert!(
        code.len() > 40 && code.contains("graph.scope.group_types"),
        "{code:?}"
    );
    let doc: BTreeSet<String> = documented_keys().into_keys().collect();
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let unknown: Vec<_> = doc.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md is out of date: keys missing from it: {undocumented:?}; \
         keys it lists that the loader refuses: {unknown:?}"
    );
}

#[test]
fn documented_defaults_are_the_loaders_and_required_keys_are_required() {
    let base = format!("{:#?}", parse(MINIMAL).unwrap());
    let minimal_keys: BTreeSet<String> = {
        let doc: toml::Table = MINIMAL.parse().unwrap();
        doc.iter()
            .flat_map(|(t, v)| {
                v.as_table()
                    .unwrap()
                    .keys()
                    .map(move |k| format!("{t}.{k}"))
            })
            .collect()
    };
    let mut required = BTreeSet::new();
    let mut checked = 0;
    for (key, row) in documented_keys() {
        if row.default == "required" {
            let err = parse(&with_key(MINIMAL, &key, None)).expect_err(&key);
            let leaf = key.rsplit('.').next().unwrap();
            assert!(err.contains(leaf), "{key} missing: {err}");
            required.insert(key);
        } else if let Some(value) = row
            .default
            .strip_prefix('`')
            .and_then(|d| d.strip_suffix('`'))
        {
            let cfg = parse(&with_key(MINIMAL, &key, Some(value)))
                .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
            let diff = first_difference(&format!("{cfg:#?}"), &base);
            assert!(
                diff.is_none(),
                "{key}: documented default {value}: {diff:?}"
            );
            checked += 1;
        } else {
            assert_eq!(
                row.default, "unset",
                "{key}: default is `value`, required or unset"
            );
        }
    }
    assert_eq!(
        required, minimal_keys,
        "required keys are exactly MINIMAL's"
    );
    assert!(checked > 30, "only {checked} defaults checked");
}

#[test]
fn each_documented_environment_override_sets_its_key() {
    let documented: BTreeMap<String, String> = documented_keys()
        .into_iter()
        .filter_map(|(key, row)| Some((row.env?, key)))
        .collect();
    let code: BTreeMap<String, String> = SECRET_SOURCES
        .iter()
        .map(|(env, key)| (env.to_string(), key.to_string()))
        .collect();
    assert_eq!(
        documented, code,
        "environment overrides in docs/configuration.md"
    );
    for (env, key) in &code {
        let wanted = parse(&with_key(MINIMAL, key, Some("\"from-env\""))).unwrap();
        let without = with_key(MINIMAL, key, None);
        let got = parse_with(&without, |name| (name == env).then(|| "from-env".into()))
            .unwrap_or_else(|e| panic!("{env}: {e}"));
        assert_eq!(
            format!("{got:?}"),
            format!("{wanted:?}"),
            "{env} sets {key}"
        );
    }
}

#[test]
fn a_credential_named_after_its_key_stands_in_for_it_in_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let text = with_key(MINIMAL, "ad.bind_password", None);
    let text = with_key(&text, "graph.client_secret", None);
    let text = with_key(
        &text,
        "state.path",
        Some(&format!("{:?}", state.display().to_string())),
    );
    let config = dir.path().join("entra-writeback.toml");
    std::fs::write(&config, text).unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let run = |creds: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_entra-writeback"));
        cmd.arg("--config").arg(&config).args(["queue", "status"]);
        for (env, _) in SECRET_SOURCES {
            cmd.env_remove(env);
        }
        cmd.env_remove(CREDENTIALS_DIRECTORY);
        if let Some(dir) = creds {
            cmd.env(CREDENTIALS_DIRECTORY, dir);
        }
        cmd.output().unwrap()
    };
    let out = run(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("graph.client_secret"),
        "{stderr}"
    );
    std::fs::write(creds.join("graph.client_secret"), "cred-secret\n").unwrap();
    let out = run(Some(&creds));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("ad.bind_password"),
        "{stderr}"
    );
    std::fs::write(creds.join("ad.bind_password"), "cred-password\n").unwrap();
    let out = run(Some(&creds));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains("cred-secret") && !all.contains("cred-password"),
        "{all}"
    );
}

/// The `ENTRA_WRITEBACK_*` names written as string literals anywhere in `src/`.
fn variables_in_code(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            variables_in_code(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("\"ENTRA_WRITEBACK_").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if piece[name.len()..].starts_with('"') {
                    found.insert(format!("ENTRA_WRITEBACK_{name}"));
                }
            }
        }
    }
}

#[test]
fn every_environment_variable_the_code_reads_is_documented() {
    let mut code = BTreeSet::from([CREDENTIALS_DIRECTORY.to_string()]);
    variables_in_code(&repo("src"), &mut code);
    assert!(
        code.contains("ENTRA_WRITEBACK_LOG") && code.len() > 6,
        "{code:?}"
    );
    let doc = read("docs/configuration.md");
    let (_, section) = doc
        .split_once("## Environment variables")
        .expect("docs/configuration.md has an \"Environment variables\" section");
    let section = section.split("\n## ").next().unwrap();
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_owned))
        .collect();
    assert_eq!(
        documented, code,
        "docs/configuration.md, Environment variables"
    );
}

/// The TOML of the Kubernetes ConfigMap's `entra-writeback.toml` key (a YAML block scalar).
fn configmap_toml() -> String {
    let yaml = read("deploy/kubernetes/configmap.yaml");
    let (_, block) = yaml
        .split_once("entra-writeback.toml: |\n")
        .expect("the config key");
    let lines: Vec<&str> = block
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    lines.join("\n")
}

/// The secrets, as the deployment gives them: from the environment or credentials.
fn deployed_secret(name: &str) -> Option<String> {
    SECRET_SOURCES
        .iter()
        .any(|(env, _)| *env == name)
        .then(|| "from-a-secret".to_string())
}

/// The dotted keys a TOML file sets or shows commented out (`# key = ...` under a `[table]`
/// or `# [table]` header).
fn keys_named_in(text: &str) -> BTreeSet<String> {
    let mut table = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start_matches(['#', ' ']);
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
            table = header.0.to_owned();
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim_end();
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                keys.insert(format!("{table}.{key}"));
            }
        }
    }
    keys
}

#[test]
fn the_example_config_and_the_kubernetes_configmap_parse_with_the_real_loader() {
    let example = read("deploy/entra-writeback.example.toml");
    parse_with(&example, deployed_secret).expect("deploy/entra-writeback.example.toml");
    let named = keys_named_in(&example);
    let missing: Vec<_> = loader_keys()
        .into_iter()
        .filter(|k| !named.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "the example config does not name {missing:?}"
    );
    let cfg = parse_with(&configmap_toml(), deployed_secret).expect("configmap.yaml");
    assert_eq!(cfg.state.path, Path::new("/var/lib/entra-writeback"));
    let secret = read("deploy/kubernetes/secret.yaml");
    for (_, key) in SECRET_SOURCES {
        assert!(
            secret.contains(&format!("\n  {key}: ")),
            "secret.yaml lacks {key}"
        );
    }
}
