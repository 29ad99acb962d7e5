//! Diagnosing the directory for `check`: can the service reach the DC, speak TLS to it, bind,
//! read the schema, see each OU it owns and do there what it does to groups. Each question is
//! answered separately ([`Finding`]), so one run names everything that is wrong.
//!
//! # Guarantees
//! - The only object it writes is its own throw-away group (`CN=entra-writeback-check-<hex>`,
//!   see [`rights`]), created in each owned OU and deleted again; it never modifies, renames or
//!   deletes an object it did not create in this run. The throw-away carries no anchor
//!   (`Group_…`), so a running service never takes it for one of its groups.
//! - A failure says why and what to change: the config key, or the right to grant (the
//!   delegation of `deploy/ad/`). What depends on a failed step is reported as not checked.
//! - No secret in a finding: errors carry URLs, DNs and result codes, never the bind password.
//!
//! The connection steps (reachability, TLS, bind) use [`Connection`]; everything after them
//! runs over the [`Ldap`] seam, so the in-memory fake tests it.
//!
//! Imports: the directory's own modules, [`crate::config`] (`[ad]`), [`crate::model`] (events).

pub mod rights;

use std::time::Duration;

use ldap3::Scope;
use serde::Serialize;

use super::error::{DirectoryError, ResultCode};
use super::seam::{DnForm, Ldap};
use super::{Connection, Directory};
use crate::config::AdConfig;
use crate::model::{Events, dn};

/// Where the delegation is, for the fixes that name a right.
pub const DELEGATION: &str =
    "deploy/ad/ (Grant-EntraWritebackPermissions.ps1 for Windows AD, samba-delegate.sh for Samba)";

/// One diagnosed point: passed or not, why, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable name, e.g. `ad.bind` or `ad.delete[OU=Cloud Groups,DC=…]`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to change (a config key, a right to grant); `None` when it passed.
    pub fix: Option<String>,
}

impl Finding {
    /// A point that passed.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A point that failed, with the fix.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A point that could not be checked because an earlier one failed.
    pub fn not_checked(name: impl Into<String>, because: &str) -> Finding {
        Finding {
            name: name.into(),
            ok: false,
            detail: format!("not checked: {because}"),
            fix: Some("fix the failure above first".into()),
        }
    }
}

/// What the schema offers the service (detected, never required).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// `msDS-ExternalDirectoryObjectId` (Windows Server 2016 schema).
    pub external_id: bool,
    /// `mailNickname` (Exchange's schema extension).
    pub mail_nickname: bool,
}

/// Every OU the service owns, with the `[ad]` key that names it (duplicates once).
pub fn owned_ous(cfg: &AdConfig) -> Vec<(&'static str, String)> {
    let mut all = vec![("ad.target_ou", cfg.target_ou.clone())];
    all.extend(
        cfg.target_ou_m365
            .iter()
            .map(|o| ("ad.target_ou_m365", o.clone())),
    );
    all.extend(
        cfg.soft_delete_ou
            .iter()
            .map(|o| ("ad.soft_delete_ou", o.clone())),
    );
    all.extend(
        cfg.previous_ous
            .iter()
            .map(|o| ("ad.previous_ous", o.clone())),
    );
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (key, ou) in all {
        if !out.iter().any(|(_, o)| dn::same_dn(o, &ou)) {
            out.push((key, ou));
        }
    }
    out
}

/// Diagnoses `[ad]` against the DC: reachability, TLS, bind, schema, then every owned OU.
pub async fn diagnose(cfg: &AdConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    match connect(cfg, &mut out).await {
        Some(conn) => match Directory::open(conn).await {
            Ok(dir) => out.extend(diagnose_directory(&dir, cfg).await),
            Err(e) => {
                out.push(Finding::fail(
                    "ad.schema",
                    format!("cannot read the rootDSE or the schema: {e}"),
                    "the account must be able to read the rootDSE and the schema container \
                     (Authenticated Users can by default)",
                ));
                out.extend(skip_ous(cfg, "the directory could not be read"));
            }
        },
        None => {
            out.push(Finding::not_checked("ad.schema", "no bound connection"));
            out.extend(skip_ous(cfg, "no bound connection"));
        }
    }
    out
}

/// The schema and every owned OU, over any [`Ldap`] (the part after the bind).
pub async fn diagnose_directory<L: Ldap>(dir: &Directory<L>, cfg: &AdConfig) -> Vec<Finding> {
    let (schema, features) = schema(dir).await;
    let mut out = vec![schema];
    let ous = owned_ous(cfg);
    for (key, ou) in &ous {
        let mut others = Vec::new();
        if dn::same_dn(ou, &cfg.target_ou) {
            for (_, other) in ous.iter().filter(|(_, o)| !dn::same_dn(o, ou)) {
                // A missing OU is its own finding; no move is tried there.
                if matches!(dir.dn_exists(other).await, Ok(true)) {
                    others.push(other.as_str());
                } else {
                    let name = format!("ad.move[{ou} -> {other}]");
                    out.push(Finding::not_checked(name, "that OU cannot be read"));
                }
            }
        }
        out.extend(rights::ou(dir, features, key, ou, &others).await);
    }
    for ou in &cfg.adopt_ous {
        // Originals are only modified there (anchor, attributes, members), never created,
        // so reading the OU is what can be checked without touching an original.
        let name = format!("ad.adopt_ous[{ou}]");
        out.push(match dir.dn_exists(ou).await {
            Ok(true) => Finding::pass(
                name,
                "exists; originals found by objectSid under it are managed in place",
            ),
            Ok(false) => Finding::fail(
                name,
                "does not exist, or the account cannot read it",
                "create it or fix the DN; delegate write of member, displayName, description, \
                 adminDescription and msDS-ExternalDirectoryObjectId on its groups (deploy/ad/)",
            ),
            Err(e) => Finding::fail(name, format!("cannot be read: {e}"), "see ad.bind"),
        });
    }
    out
}

fn skip_ous(cfg: &AdConfig, because: &str) -> Vec<Finding> {
    owned_ous(cfg)
        .into_iter()
        .map(|(_, ou)| Finding::not_checked(format!("ad.ou[{ou}]"), because))
        .collect()
}

/// Whether the URL's scheme or `starttls` makes the connection TLS.
fn uses_tls(cfg: &AdConfig) -> bool {
    cfg.url.to_ascii_lowercase().starts_with("ldaps://") || cfg.starttls
}

/// The `host:port` the URL points at (ldaps 636, ldap 389 by default).
fn address(url: &str) -> Result<(String, u16), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("`{url}` names no host"))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = parsed
        .port()
        .unwrap_or(if parsed.scheme() == "ldaps" { 636 } else { 389 });
    Ok((host, port))
}

/// A TCP connection to the DC, within 10 s.
async fn reachable(url: &str) -> Result<String, String> {
    let (host, port) = address(url)?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(format!("{host}:{port} accepts connections")),
        Ok(Err(e)) => Err(format!("cannot connect to AD at {host}:{port}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to AD at {host}:{port}: no answer within 10 s"
        )),
    }
}

fn tls_detail(cfg: &AdConfig) -> String {
    let anchors = match &cfg.ca_file {
        Some(p) => format!("the CA in ad.ca_file ({})", p.display()),
        None => "the system's trusted roots".into(),
    };
    if cfg.url.to_ascii_lowercase().starts_with("ldaps://") {
        format!("ldaps: the DC's certificate is verified against {anchors} (TLS 1.2+)")
    } else if cfg.starttls {
        format!("StartTLS: the DC's certificate is verified against {anchors} (TLS 1.2+)")
    } else {
        "none: plain ldap:// accepted by ad.allow_insecure_ldap = true; the bind password \
         crosses the network in clear (a lab DC only)"
            .into()
    }
}

fn bind_fix(rc: ResultCode) -> String {
    match rc.0 {
        49 => "ad.bind_dn and ad.bind_password (or env ENTRA_WRITEBACK_AD_BIND_PASSWORD): \
               the DC refused them (AD's `data 52e`: wrong password, `775`: locked out, \
               `532`/`773`: password expired or must change, `533`: account disabled)"
            .into(),
        8 => "the DC requires an encrypted connection for a simple bind: use ldaps:// or \
              starttls = true"
            .into(),
        _ => "ad.bind_dn: the DN of an enabled account of the domain".into(),
    }
}

/// Reachability, TLS and bind; the bound connection when all three passed.
async fn connect(cfg: &AdConfig, out: &mut Vec<Finding>) -> Option<Connection> {
    let conn = match Connection::new(cfg, Events::none()) {
        Ok(c) => c,
        Err(e) => {
            let fix = "ad.ca_file: a readable PEM file holding the certificate of the CA that \
                       signs the DC's certificate";
            out.push(Finding::fail("ad.tls", e.to_string(), fix));
            out.push(Finding::not_checked(
                "ad.bind",
                "the TLS material is unusable",
            ));
            return None;
        }
    };
    match reachable(&cfg.url).await {
        Ok(detail) => out.push(Finding::pass("ad.reachable", detail)),
        Err(detail) => {
            out.push(Finding::fail(
                "ad.reachable",
                detail,
                "ad.url: a DC reachable from this machine (ldaps 636, ldap and StartTLS 389); \
                 check DNS, routing and firewalls",
            ));
            out.push(Finding::not_checked("ad.tls", "the DC is not reachable"));
            out.push(Finding::not_checked("ad.bind", "the DC is not reachable"));
            return None;
        }
    }
    match conn.handle().await {
        Ok(_) => {
            out.push(Finding::pass("ad.tls", tls_detail(cfg)));
            out.push(Finding::pass(
                "ad.bind",
                format!("bound as {}", cfg.bind_dn),
            ));
            Some(conn)
        }
        Err(e @ DirectoryError::Bind { rc, .. }) => {
            out.push(Finding::pass("ad.tls", tls_detail(cfg)));
            out.push(Finding::fail("ad.bind", e.to_string(), bind_fix(rc)));
            None
        }
        Err(e) => {
            out.extend(connect_failed(cfg, &e));
            None
        }
    }
}

/// A connection that failed after TCP worked: TLS (certificate, protocol version) or the
/// server (no LDAP answer).
fn connect_failed(cfg: &AdConfig, e: &DirectoryError) -> Vec<Finding> {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let tls_trouble = ["certificate", "tls", "handshake", "alert"]
        .iter()
        .any(|w| lower.contains(w));
    if uses_tls(cfg) && tls_trouble {
        let fix = if lower.contains("tls 1.2 or 1.3") {
            "enable TLS 1.2 (or 1.3) on the DC: entra-writeback refuses TLS 1.0 and 1.1"
        } else {
            "ad.ca_file: a readable PEM file holding the certificate of the CA that signs the \
             DC's certificate (and ad.url naming a host that certificate is for)"
        };
        return vec![
            Finding::fail("ad.tls", text, fix),
            Finding::not_checked("ad.bind", "no TLS connection"),
        ];
    }
    let fix = "ad.url: the LDAP server of a DC (it took the connection but did not answer LDAP)";
    vec![
        Finding::not_checked("ad.tls", "the connection failed before TLS was settled"),
        Finding::fail("ad.bind", text, fix),
    ]
}

/// The schema features the service uses, and the finding that reports them.
async fn schema<L: Ldap>(dir: &Directory<L>) -> (Finding, Features) {
    let found = async {
        let root = dir
            .conn
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &["schemaNamingContext"],
                DnForm::Plain,
            )
            .await?;
        let schema = root
            .first()
            .and_then(|e| super::read::first(e, "schemaNamingContext"))
            .unwrap_or_default();
        dir.conn
            .search(
                &schema,
                Scope::OneLevel,
                "(|(lDAPDisplayName=msDS-ExternalDirectoryObjectId)(lDAPDisplayName=mailNickname))",
                &["lDAPDisplayName"],
                DnForm::Plain,
            )
            .await
    }
    .await;
    let entries = match found {
        Ok(e) => e,
        Err(e) => {
            let fix = "the account must be able to read the schema container (Authenticated \
                       Users can by default)";
            return (
                Finding::fail("ad.schema", e.to_string(), fix),
                Features::default(),
            );
        }
    };
    let has = |name: &str| {
        entries.iter().any(|e| {
            super::read::first(e, "lDAPDisplayName").is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    };
    let features = Features {
        external_id: has("msDS-ExternalDirectoryObjectId") || dir.has_external_id,
        mail_nickname: has("mailNickname"),
    };
    let detail = format!(
        "msDS-ExternalDirectoryObjectId: {}; mailNickname: {}",
        if features.external_id {
            "yes (the anchor goes there and in adminDescription)"
        } else {
            "no (the anchor goes in adminDescription only; the Windows Server 2016 schema adds it)"
        },
        if features.mail_nickname {
            "yes"
        } else {
            "no (no Exchange schema; not written)"
        },
    );
    (Finding::pass("ad.schema", detail), features)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::fake::ad_config;

    #[test]
    fn addresses_default_their_port_by_scheme() {
        assert_eq!(
            address("ldaps://dc1.example.test").unwrap(),
            ("dc1.example.test".into(), 636)
        );
        assert_eq!(
            address("ldap://127.0.0.2").unwrap(),
            ("127.0.0.2".into(), 389)
        );
        assert_eq!(address("ldap://[::1]:3389").unwrap(), ("::1".into(), 3389));
        assert!(address("not a url").is_err());
    }

    #[test]
    fn owned_ous_carry_their_key_once() {
        let mut cfg = ad_config("OU=A,DC=x");
        cfg.soft_delete_ou = Some("OU=B,DC=x".into());
        cfg.previous_ous = vec!["ou=a,dc=x".into(), "OU=C,DC=x".into()];
        assert_eq!(
            owned_ous(&cfg),
            vec![
                ("ad.target_ou", "OU=A,DC=x".to_string()),
                ("ad.soft_delete_ou", "OU=B,DC=x".to_string()),
                ("ad.previous_ous", "OU=C,DC=x".to_string()),
            ]
        );
    }

    #[test]
    fn the_tls_detail_says_what_protects_the_bind() {
        let mut cfg = ad_config("OU=A,DC=x");
        assert!(tls_detail(&cfg).starts_with("ldaps:"));
        cfg.url = "ldap://dc".into();
        cfg.starttls = true;
        assert!(tls_detail(&cfg).starts_with("StartTLS:"));
        cfg.starttls = false;
        assert!(tls_detail(&cfg).contains("allow_insecure_ldap"));
        assert!(bind_fix(ResultCode(49)).contains("ad.bind_password"));
    }

    #[test]
    fn a_failed_connection_is_put_on_tls_only_when_tls_says_so() {
        let cfg = ad_config("OU=A,DC=x");
        let connect = |detail: &str| DirectoryError::Connect {
            url: cfg.url.clone(),
            detail: detail.into(),
        };
        let bad_cert = connect_failed(&cfg, &connect("invalid peer certificate: UnknownIssuer"));
        assert_eq!(
            (bad_cert[0].name.as_str(), bad_cert[0].ok),
            ("ad.tls", false)
        );
        assert!(bad_cert[0].fix.as_deref().unwrap().contains("ad.ca_file"));
        let old = connect_failed(
            &cfg,
            &connect("alert; the DC does not speak TLS 1.2 or 1.3"),
        );
        assert!(old[0].fix.as_deref().unwrap().contains("enable TLS 1.2"));
        let silent = connect_failed(&cfg, &connect("timeout: deadline has elapsed"));
        assert_eq!((silent[1].name.as_str(), silent[1].ok), ("ad.bind", false));
        assert!(silent.iter().all(|f| !f.detail.contains("certificate")));
    }
}
