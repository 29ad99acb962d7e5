//! `check [--json]`: diagnoses everything it can in one run — the config, the Graph token, the
//! permissions behind `groups/delta` and `users/delta`, then the directory (reachability, TLS,
//! bind, schema, each owned OU and the rights there: `directory::probe`) — and reports every
//! point, passed or not, with the reason and the fix; and the groups frozen because another
//! writer kept reverting them (from the state store, when no service holds it).
//!
//! Graph and AD are diagnosed side by side: an unreachable Graph still gets the AD report, and
//! the other way round. Exit 0 only when every point passed. Nothing printed carries a secret
//! (the findings are built from errors that carry none).

use std::path::Path;
use std::process::ExitCode;

use super::CliError;
use crate::config::Config;
use crate::directory::probe::{self, Finding};
use crate::graph::{GraphClient, GraphError};
use crate::model::Events;
use crate::queue::{QueueError, Store};

/// `check`: every finding on stdout (human lines, or a JSON array with `--json`); exit 1 if
/// any failed.
pub async fn check(cfg: Config, path: &Path, json: bool) -> Result<ExitCode, CliError> {
    let mut findings = vec![config_finding(&cfg, path)];
    let (graph, ad) = tokio::join!(graph_findings(&cfg), probe::diagnose(&cfg.ad));
    findings.extend(graph);
    findings.extend(ad);
    findings.push(frozen_finding(&cfg));
    report(&findings, json)
}

/// Groups frozen because another writer kept reverting them (the state store's record; a
/// running service holds the store, then its status page and metrics say it).
fn frozen_finding(cfg: &Config) -> Finding {
    const NAME: &str = "state.second_writers";
    if !cfg.state.path.exists() {
        return Finding::pass(NAME, "no state yet: nothing frozen");
    }
    let store = match Store::open_with(&cfg.state.path, cfg.state.cache_capacity) {
        Ok(s) => s,
        Err(QueueError::Locked { .. }) => {
            return Finding::pass(
                NAME,
                "the state is in use (the service runs): frozen groups are on its status page \
                 and in entra_writeback_frozen_groups",
            );
        }
        Err(e) => return Finding::pass(NAME, format!("state not read: {e}")),
    };
    match store.frozen_groups() {
        Ok(frozen) if frozen.is_empty() => Finding::pass(NAME, "no group frozen"),
        Ok(frozen) => Finding::fail(
            NAME,
            format!(
                "{} group(s) frozen: another tool keeps reverting what the service writes: {}",
                frozen.len(),
                frozen
                    .iter()
                    .take(5)
                    .map(|(id, why)| format!("{id} ({}: {})", why.dn, why.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "stop the other writer (Connect Sync group writeback, Cloud Sync, a script), then \
             `entra-writeback approve-writes --all` (or by id)",
        ),
        Err(e) => Finding::pass(NAME, format!("state not read: {e}")),
    }
}

/// The report of a config that did not load: the one finding there can be.
pub fn config_failed(path: &Path, error: &str, json: bool) -> ExitCode {
    let finding = Finding::fail(
        "config",
        format!("{}: {error}", path.display()),
        "the key named above (see README, Configuration)",
    );
    report(&[finding], json).unwrap_or(ExitCode::from(1))
}

fn config_finding(cfg: &Config, path: &Path) -> Finding {
    let mut detail = format!("ok ({})", path.display());
    if let Some(why) = &cfg.exposed_secrets {
        detail.push_str(&format!("; warning: {why}"));
    }
    Finding::pass("config", detail)
}

/// The token, then one request per delta stream (what `run` needs Graph to allow).
async fn graph_findings(cfg: &Config) -> Vec<Finding> {
    let token_fix = "graph.tenant_id, graph.client_id and graph.client_secret (env \
                     ENTRA_WRITEBACK_GRAPH_CLIENT_SECRET) or graph.client_certificate; \
                     graph.authority_url";
    let graph = match GraphClient::new(&cfg.graph, &cfg.sync, Events::none()) {
        Ok(g) => g,
        Err(e) => return graph_unavailable(Finding::fail("graph.token", e.to_string(), token_fix)),
    };
    if let Err(e) = graph.check_token().await {
        return graph_unavailable(Finding::fail("graph.token", e.to_string(), token_fix));
    }
    let token = Finding::pass(
        "graph.token",
        format!("token acquired for tenant {}", cfg.graph.tenant_id),
    );
    let groups = delta_finding(&graph, "groups", "Group.Read.All").await;
    let users = delta_finding(&graph, "users", "User.Read.All").await;
    vec![token, groups, users]
}

fn graph_unavailable(token: Finding) -> Vec<Finding> {
    let because = "no Graph token";
    vec![
        token,
        Finding::not_checked("graph.groups_delta", because),
        Finding::not_checked("graph.users_delta", because),
    ]
}

/// One GET of `<resource>/delta?$select=id`: the smallest request the permission `needs`.
async fn delta_finding(graph: &GraphClient, resource: &str, needs: &str) -> Finding {
    let name = format!("graph.{resource}_delta");
    let endpoint = if resource == "groups" {
        "groups_delta"
    } else {
        "users_delta"
    };
    let url = graph.initial_url(resource, "id");
    match graph.get_once(endpoint, &url, false).await {
        Ok(_) => Finding::pass(name, format!("{resource}/delta answers")),
        Err(e) => {
            let fix = match &e {
                GraphError::Http {
                    status: 403 | 401, ..
                }
                | GraphError::Unauthorized => format!(
                    "grant the app registration (graph.client_id) the Microsoft Graph \
                     application permission {needs}, with admin consent"
                ),
                _ => "graph.graph_url, and the network path to it".to_string(),
            };
            Finding::fail(name, e.to_string(), fix)
        }
    }
}

/// Prints the findings; exit 1 (and a summary on stderr) if any failed.
fn report(findings: &[Finding], json: bool) -> Result<ExitCode, CliError> {
    if json {
        let text =
            serde_json::to_string_pretty(findings).map_err(|e| CliError::ctx("check --json", e))?;
        println!("{text}");
    } else {
        for f in findings {
            // Server texts may end in newlines: one line per finding.
            let detail = f.detail.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("{} {}: {detail}", if f.ok { "✓" } else { "✗" }, f.name);
            if let (false, Some(fix)) = (f.ok, &f.fix) {
                println!("    fix: {fix}");
            }
        }
    }
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| f.name.as_str())
        .collect();
    if failed.is_empty() {
        if !json {
            println!("all {} checks passed", findings.len());
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: {} of {} checks failed: {}",
        failed.len(),
        findings.len(),
        failed.join(", ")
    );
    Ok(ExitCode::from(1))
}
