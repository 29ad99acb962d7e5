//! The LDAP connection: TLS (ldaps or StartTLS, verified), bind, reconnect on a dropped
//! connection, per-operation timeouts and metrics, and result-code classification.
//!
//! Operations go through [`Connection`], which holds one bound ldap3 handle. ldap3 multiplexes
//! requests over it, so clones can have several operations in flight.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::controls::RawControl;
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use tokio::sync::Mutex;

use crate::config::AdConfig;
use crate::health::Health;
use crate::metrics;

/// LDAP result codes the service reasons about (RFC 4511; AD uses them the same way).
pub mod rc {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// `noSuchAttribute` (Windows, removing a value that is not there).
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    /// `noSuchObject`.
    pub const NO_SUCH_OBJECT: u32 = 32;
    /// `invalidCredentials`.
    pub const INVALID_CREDENTIALS: u32 = 49;
    /// `busy`.
    pub const BUSY: u32 = 51;
    /// `unavailable`.
    pub const UNAVAILABLE: u32 = 52;
    /// `unwillingToPerform` (Samba: removing a non-member).
    pub const UNWILLING: u32 = 53;
    /// `entryAlreadyExists` / `attributeOrValueExists` are 68 / 20.
    pub const ALREADY_EXISTS: u32 = 68;
    /// `attributeOrValueExists`.
    pub const VALUE_EXISTS: u32 = 20;
    /// `other` (AD sometimes uses it for transient trouble).
    pub const OTHER: u32 = 80;
    /// Time or admin limits, server side.
    pub const TIME_LIMIT: u32 = 3;
}

/// Why an LDAP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No connection could be made (refused, unreachable, TLS handshake, timeout).
    #[error("cannot connect to AD at {url}: {detail}")]
    Connect {
        /// Server URL (no credentials in it).
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The bind was refused.
    #[error("AD bind as {bind_dn} failed: result {rc}: {message}")]
    Bind {
        /// The account.
        bind_dn: String,
        /// LDAP result code.
        rc: u32,
        /// Server text.
        message: String,
    },
    /// The TLS configuration is unusable (unreadable CA file, say).
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// An operation failed with a result code.
    #[error("LDAP {op} on `{dn}` failed: result {rc}: {message}")]
    Operation {
        /// Operation name.
        op: &'static str,
        /// Target DN or base.
        dn: String,
        /// LDAP result code.
        rc: u32,
        /// Server text.
        message: String,
    },
    /// The connection broke during an operation, or it timed out.
    #[error("LDAP {op} on `{dn}` did not complete: {detail}")]
    Transport {
        /// Operation name.
        op: &'static str,
        /// Target DN or base.
        dn: String,
        /// What happened.
        detail: String,
    },
    /// The target OU does not exist (transient: an operator may be restoring it).
    #[error("target OU `{ou}` does not exist (or is not visible to the service account)")]
    TargetOuMissing {
        /// The OU.
        ou: String,
    },
    /// An object we would create or rename to is held by something we do not own, or our anchor
    /// is on more than one object.
    #[error("conflict ({kind}): {detail}")]
    Conflict {
        /// Bounded kind: `name`, `sam_account_name`, `duplicate_anchor`.
        kind: &'static str,
        /// Human detail.
        detail: String,
    },
}

impl DirectoryError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            DirectoryError::Connect { .. }
            | DirectoryError::Transport { .. }
            | DirectoryError::TargetOuMissing { .. } => true,
            DirectoryError::Operation { rc, .. } => {
                matches!(
                    *rc,
                    rc::BUSY | rc::UNAVAILABLE | rc::OTHER | rc::TIME_LIMIT | 11
                )
            }
            DirectoryError::Bind { rc, .. } => *rc != rc::INVALID_CREDENTIALS,
            DirectoryError::Tls(_) | DirectoryError::Conflict { .. } => false,
        }
    }

    /// Bounded label for metrics and dead letters.
    pub fn class(&self) -> &'static str {
        match self {
            DirectoryError::Connect { .. } => "connect",
            DirectoryError::Bind { .. } => "bind",
            DirectoryError::Tls(_) => "tls",
            DirectoryError::Operation { .. } => "ldap_result",
            DirectoryError::Transport { .. } => "transport",
            DirectoryError::Conflict { .. } => "conflict",
            DirectoryError::TargetOuMissing { .. } => "target_ou_missing",
        }
    }

    /// The LDAP result code, if the server gave one.
    pub fn result_code(&self) -> Option<u32> {
        match self {
            DirectoryError::Operation { rc, .. } => Some(*rc),
            _ => None,
        }
    }
}

/// A bound, reconnecting LDAP connection to the DC.
#[derive(Clone)]
pub struct Connection {
    cfg: Arc<AdConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    handle: Arc<Mutex<Option<ldap3::Ldap>>>,
    health: Health,
}

fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            DirectoryError::Tls(format!("cannot read ad.ca_file {}: {e}", ca_file.display()))
        })?;
    if certs.is_empty() {
        return Err(DirectoryError::Tls(format!(
            "ad.ca_file {} holds no certificate",
            ca_file.display()
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| DirectoryError::Tls(format!("ad.ca_file {}: {e}", ca_file.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

impl Connection {
    /// Prepares a connection (TLS material is read now; the network is touched on first use).
    pub fn new(cfg: &AdConfig, health: Health) -> Result<Connection, DirectoryError> {
        let tls = cfg.ca_file.as_deref().map(tls_config).transpose()?;
        Ok(Connection {
            cfg: Arc::new(cfg.clone()),
            tls,
            handle: Arc::new(Mutex::new(None)),
            health,
        })
    }

    /// The configuration it was made from.
    pub fn config(&self) -> &AdConfig {
        &self.cfg
    }

    /// Connects and binds, recording the outcome in [`Health`] (`/readyz`, `ad_up`).
    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let result = self.connect_and_bind().await;
        match &result {
            Ok(_) => self.health.ad_ok(),
            Err(_) => self.health.ad_failed(),
        }
        result
    }

    async fn connect_and_bind(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let started = Instant::now();
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(10))
            .set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let connect_err = |detail: String| DirectoryError::Connect {
            url: self.cfg.url.clone(),
            detail,
        };
        let (conn, mut ldap) = tokio::time::timeout(
            Duration::from_secs(15),
            LdapConnAsync::with_settings(settings, &self.cfg.url),
        )
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection closed");
            }
        });
        let password = self
            .cfg
            .bind_password
            .as_ref()
            .map(|s| s.expose())
            .unwrap_or("");
        let bind = ldap
            .with_timeout(self.cfg.operation_timeout)
            .simple_bind(&self.cfg.bind_dn, password)
            .await;
        let m = metrics::get();
        m.ad_duration
            .with_label_values(&["bind"])
            .observe(started.elapsed().as_secs_f64());
        let result = match bind {
            Ok(r) if r.rc == rc::SUCCESS => Ok(ldap),
            Ok(r) => Err(DirectoryError::Bind {
                bind_dn: self.cfg.bind_dn.clone(),
                rc: r.rc,
                message: r.text,
            }),
            Err(e) => Err(connect_err(e.to_string())),
        };
        m.ad_operations
            .with_label_values(&["bind", if result.is_ok() { "ok" } else { "error" }])
            .inc();
        result
    }

    /// A bound handle: the current one, or a new connection.
    pub async fn handle(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let mut h = self.handle.lock().await;
        if let Some(l) = h.as_mut()
            && !l.is_closed()
        {
            return Ok(l.clone());
        }
        let l = self.connect().await?;
        *h = Some(l.clone());
        Ok(l)
    }

    /// Drops the handle so the next operation reconnects.
    async fn reset(&self) {
        *self.handle.lock().await = None;
    }

    /// Runs one operation with timing, metrics and error mapping; a broken connection is reset.
    async fn run<T, F, Fut>(&self, op: &'static str, dn: &str, f: F) -> Result<T, DirectoryError>
    where
        F: FnOnce(ldap3::Ldap) -> Fut,
        Fut: Future<Output = Result<(T, ldap3::LdapResult), LdapError>>,
    {
        let ldap = self.handle().await?;
        let started = Instant::now();
        let out = f(ldap).await;
        let m = metrics::get();
        m.ad_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        let result = match out {
            Ok((v, r)) if r.rc == rc::SUCCESS => Ok(v),
            Ok((_, r)) => Err(DirectoryError::Operation {
                op,
                dn: dn.to_string(),
                rc: r.rc,
                message: r.text,
            }),
            Err(LdapError::LdapResult { result }) => Err(DirectoryError::Operation {
                op,
                dn: dn.to_string(),
                rc: result.rc,
                message: result.text,
            }),
            Err(e) => {
                self.reset().await;
                Err(DirectoryError::Transport {
                    op,
                    dn: dn.to_string(),
                    detail: e.to_string(),
                })
            }
        };
        m.ad_operations
            .with_label_values(&[op, if result.is_ok() { "ok" } else { "error" }])
            .inc();
        if let Err(e) = &result {
            if e.is_transient() {
                self.health.ad_failed();
            }
        } else {
            self.health.ad_ok();
        }
        result
    }

    /// Searches; referrals are skipped. `controls` apply to this search only.
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        controls: Vec<RawControl>,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let timeout = self.cfg.operation_timeout;
        let attrs: Vec<String> = attrs.iter().map(|s| s.to_string()).collect();
        self.run("search", base, |mut l| async move {
            let r = l
                .with_timeout(timeout)
                .with_controls(controls)
                .search(base, scope, filter, attrs)
                .await?;
            let entries =
                r.0.into_iter()
                    .map(SearchEntry::construct)
                    .collect::<Vec<_>>();
            Ok((entries, r.1))
        })
        .await
    }

    /// Adds an entry.
    pub async fn add(
        &self,
        dn: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> Result<(), DirectoryError> {
        let timeout = self.cfg.operation_timeout;
        self.run("add", dn, |mut l| async move {
            let attrs: Vec<(&str, HashSet<&str>)> = attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
                .collect();
            let r = l.with_timeout(timeout).add(dn, attrs).await?;
            Ok(((), r))
        })
        .await
    }

    /// Modifies an entry.
    pub async fn modify(&self, dn: &str, mods: Vec<Mod<String>>) -> Result<(), DirectoryError> {
        let timeout = self.cfg.operation_timeout;
        self.run("modify", dn, |mut l| async move {
            let r = l.with_timeout(timeout).modify(dn, mods).await?;
            Ok(((), r))
        })
        .await
    }

    /// Deletes an entry.
    pub async fn delete(&self, dn: &str) -> Result<(), DirectoryError> {
        let timeout = self.cfg.operation_timeout;
        self.run("delete", dn, |mut l| async move {
            let r = l.with_timeout(timeout).delete(dn).await?;
            Ok(((), r))
        })
        .await
    }

    /// Renames (and optionally moves) an entry.
    pub async fn rename(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let timeout = self.cfg.operation_timeout;
        self.run("modrdn", dn, |mut l| async move {
            let r = l
                .with_timeout(timeout)
                .modifydn(dn, new_rdn, true, new_parent)
                .await?;
            Ok(((), r))
        })
        .await
    }

    /// Connects and binds now (for `check` and start-up).
    pub async fn bind_check(&self) -> Result<(), DirectoryError> {
        self.reset().await;
        self.handle().await.map(|_| ())
    }
}
