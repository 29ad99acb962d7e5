//! `docs/production.md` cannot drift from the code:
//!
//! - every `entra-writeback …` command in its shell blocks parses with the real command line
//!   (so every command and flag it names exists), and every `deploy/…` script it names exists;
//! - a shell block that runs without a tenant, a DC or systemd (making the app certificate,
//!   converting the AD CA) is run, and what it makes is loaded by the service's own code: the
//!   certificate as the Graph client credential, the CA as the PEM `ca_file` reads;
//! - a block that cannot run here (PowerShell, systemd, the Entra portal) says "not run here";
//! - every TOML block parses with the real config loader;
//! - it names the Graph permissions `check` asks for, the commands and keys of a migration, and
//!   it is linked from the README.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use entra_writeback::cli::Cli;
use entra_writeback::config::{AssertionAlgorithm, Config};
use entra_writeback::graph::certificate::CertificateCredential;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn guide() -> String {
    std::fs::read_to_string(repo("docs/production.md")).unwrap()
}

/// One fenced block: its language, its text, and the prose line just before it.
struct Block {
    lang: String,
    body: String,
    before: String,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    let mut prose: Vec<&str> = Vec::new();
    while let Some(line) = lines.next() {
        let Some(lang) = line.trim_start().strip_prefix("```") else {
            if !line.trim().is_empty() {
                prose.push(line);
            }
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.trim_start().starts_with("```"))
            .collect();
        let before = prose[prose.len().saturating_sub(3)..].join(" ");
        out.push(Block {
            lang: lang.trim().to_string(),
            body: body.join("\n"),
            before,
        });
    }
    out
}

/// The block's commands: continuation lines joined, comments and blanks left out.
fn commands(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (part, more) = match line.strip_suffix('\\').or_else(|| line.strip_suffix('`')) {
            Some(p) => (p.trim(), true),
            None => (line, false),
        };
        current.push_str(part);
        current.push(' ');
        if !more {
            out.push(current.trim().to_string());
            current.clear();
        }
    }
    out
}

/// Shell-like words: whitespace-separated, `"…"` and `'…'` quoting.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

fn not_run_here(b: &Block) -> bool {
    b.before.to_lowercase().contains("not run here")
}

#[test]
fn every_command_of_the_guide_exists_and_every_script_it_names_too() {
    let mut parsed = 0;
    for b in blocks(&guide()) {
        for cmd in commands(&b.body) {
            let w = words(&cmd);
            if w[0] == "entra-writeback" {
                if let Err(e) = Cli::try_parse_from(&w) {
                    panic!("`{cmd}` does not parse:\n{e}");
                }
                parsed += 1;
            }
            for path in w
                .iter()
                .filter(|w| w.contains("deploy/") || w.contains("deploy\\"))
            {
                let path = path.trim_start_matches(".\\").replace('\\', "/");
                assert!(
                    repo(&path).exists(),
                    "`{cmd}` names {path}, which is not in the repo"
                );
            }
        }
    }
    assert!(parsed >= 4, "only {parsed} entra-writeback commands found");
}

#[test]
fn blocks_that_cannot_run_here_say_so_and_the_others_are_run() {
    let dir = tempfile::tempdir().unwrap();
    // What the Windows step before the conversion exports: the AD CA in DER.
    let ca = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=Corp Root CA",
            "-keyout",
            "ca.key",
            "-outform",
            "der",
        ])
        .args(["-out", "ad-ca.cer"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        ca.status.success(),
        "{}",
        String::from_utf8_lossy(&ca.stderr)
    );
    let mut ran = 0;
    for b in blocks(&guide()) {
        let runnable = b.lang == "sh"
            && commands(&b.body).iter().all(|c| {
                c.starts_with("openssl") || c.starts_with("cat") || c.starts_with("chmod")
            });
        match b.lang.as_str() {
            "toml" => {}
            "sh" if runnable => {
                let out = Command::new("sh")
                    .args(["-euc", &b.body])
                    .current_dir(dir.path())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}\n{}",
                    b.body,
                    String::from_utf8_lossy(&out.stderr)
                );
                ran += 1;
            }
            // Commands checked by the test above: the service's own, or a repo script run by
            // the test lab (samba-delegate.sh) and CI (verify.sh).
            "sh" if commands(&b.body)
                .iter()
                .all(|c| c.starts_with("entra-writeback ") || c.starts_with("deploy/")) => {}
            _ => assert!(
                not_run_here(&b),
                "a ```{} block neither runs here nor says \"not run here\":\n{}",
                b.lang,
                b.body
            ),
        }
    }
    assert_eq!(ran, 2, "the certificate and the CA conversion blocks");
    // The certificate works as the Graph credential; the CA is the PEM `ca_file` reads.
    let pem = dir.path().join("app.pem");
    CertificateCredential::from_pem_file(&pem, AssertionAlgorithm::RS256)
        .unwrap_or_else(|e| panic!("the guide's app.pem is refused: {e}"));
    let ca = std::fs::read_to_string(dir.path().join("ad-ca.pem")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
}

#[test]
fn every_toml_block_is_a_config_the_loader_accepts() {
    let mut n = 0;
    for b in blocks(&guide()).into_iter().filter(|b| b.lang == "toml") {
        let cfg = Config::parse(&b.body, Path::new("production.md"), |_| {
            Some("from-the-environment".into())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", b.body));
        assert!(
            cfg.graph.client_certificate.is_some(),
            "a certificate credential"
        );
        n += 1;
        if b.body.contains("Group_{id}") {
            assert_eq!(cfg.ad.cn_template, "Group_{id}");
            assert!(!cfg.ad.rename_taken_over && cfg.ad.target_ou_m365.is_none());
        }
    }
    assert_eq!(n, 2, "the production config and Connect's layout");
}

#[test]
fn it_names_the_permissions_check_asks_for_and_the_migration_steps() {
    let text = guide();
    // The permissions `check` names in its fix (src/cli/check.rs), and the optional ones.
    let check = std::fs::read_to_string(repo("src/cli/check.rs")).unwrap();
    for permission in ["Group.Read.All", "User.Read.All"] {
        assert!(
            check.contains(permission) && text.contains(permission),
            "{permission}"
        );
    }
    for needle in [
        "Group-OnPremisesSyncBehavior.ReadWrite.All",
        "writebackConfiguration",
        "admin consent",
        "https://login.microsoftonline.us",
        "https://dod-graph.microsoft.us",
        "https://microsoftgraph.chinacloudapi.cn",
        "rename_taken_over",
        "second_writer_window",
        "approve-writes",
        "deletes every group it",
        "## Migrating from Connect Sync or Cloud Sync",
    ] {
        assert!(
            text.contains(needle),
            "docs/production.md does not mention {needle}"
        );
    }
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    assert!(
        readme.contains("(docs/production.md)"),
        "README does not link the guide"
    );
}

#[test]
fn the_helpers_split_commands_as_a_shell_would() {
    assert_eq!(
        commands("a \\\n  b # x\n# c\n\nd"),
        ["a b # x", "d"],
        "continuations joined, comment lines dropped"
    );
    assert_eq!(words(r#"x "a b" 'c' d"#), ["x", "a b", "c", "d"]);
    let b = blocks("intro, not run here:\n\n```sh\nrm -rf /\n```\n");
    assert_eq!((b[0].lang.as_str(), b[0].body.as_str()), ("sh", "rm -rf /"));
    assert!(not_run_here(&b[0]));
}
