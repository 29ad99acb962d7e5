//! The LDAP connection: TLS (ldaps or StartTLS, verified), bind, reconnect on a dropped
//! connection, per-operation timeouts and metrics, and result-code classification.
//!
//! Operations go through [`Connection`], which holds one bound ldap3 handle. ldap3 multiplexes
//! requests over it, so clones can have several operations in flight.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::controls::{PagedResults, RawControl};
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
    /// `protocolError` (also used for a malformed response control).
    pub const PROTOCOL_ERROR: u32 = 2;
}

/// OID of the Simple Paged Results control (RFC 2696).
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// A paged search gives up after this many pages (a server looping on its cookie).
const MAX_PAGES: usize = 100_000;

/// One BER TLV: (tag, value, rest), definite lengths only.
fn ber_tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The cookie of a paged-results response value `SEQUENCE { INTEGER size, OCTET STRING
/// cookie }`, or `None` if it is malformed (never a panic on what a server sends).
pub fn paged_cookie(value: &[u8]) -> Option<Vec<u8>> {
    let (0x30, seq, _) = ber_tlv(value)? else {
        return None;
    };
    let (0x02, _, rest) = ber_tlv(seq)? else {
        return None;
    };
    let (0x04, cookie, _) = ber_tlv(rest)? else {
        return None;
    };
    Some(cookie.to_vec())
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

    /// Searches with the Simple Paged Results control (RFC 2696), `page_size` entries per page,
    /// so that a Windows DC's `MaxPageSize` (1,000) never truncates the answer
    /// (`sizeLimitExceeded`). Returns every entry and the number of pages read.
    pub async fn search_paged(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        page_size: usize,
    ) -> Result<(Vec<SearchEntry>, usize), DirectoryError> {
        let timeout = self.cfg.operation_timeout;
        let attrs: Vec<String> = attrs.iter().map(|s| s.to_string()).collect();
        let mut all = Vec::new();
        let mut cookie: Vec<u8> = Vec::new();
        for pages in 1..=MAX_PAGES {
            let control: RawControl = PagedResults {
                size: page_size.clamp(1, i32::MAX as usize) as i32,
                cookie: std::mem::take(&mut cookie),
            }
            .into();
            let attrs = attrs.clone();
            let (entries, next) = self
                .run("search", base, |mut l| async move {
                    let r = l
                        .with_timeout(timeout)
                        .with_controls(vec![control])
                        .search(base, scope, filter, attrs)
                        .await?;
                    let next =
                        r.1.ctrls
                            .iter()
                            .find(|c| c.1.ctype == PAGED_RESULTS_OID)
                            .map(|c| c.1.val.as_deref().and_then(paged_cookie));
                    let entries: Vec<SearchEntry> =
                        r.0.into_iter().map(SearchEntry::construct).collect();
                    Ok(((entries, next), r.1))
                })
                .await?;
            all.extend(entries);
            match next {
                // No control: the server does not page (it sent everything).
                None => return Ok((all, pages)),
                Some(None) => {
                    return Err(DirectoryError::Operation {
                        op: "search",
                        dn: base.to_string(),
                        rc: rc::PROTOCOL_ERROR,
                        message: "malformed paged-results control in the response".into(),
                    });
                }
                Some(Some(c)) if c.is_empty() => return Ok((all, pages)),
                Some(Some(c)) => cookie = c,
            }
        }
        Err(DirectoryError::Operation {
            op: "search",
            dn: base.to_string(),
            rc: rc::PROTOCOL_ERROR,
            message: format!("paged search did not end after {MAX_PAGES} pages"),
        })
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

#[cfg(test)]
mod paging_tests {
    use super::paged_cookie;

    #[test]
    fn cookies_parse_and_garbage_is_refused() {
        // SEQUENCE { INTEGER 0, OCTET STRING "ab" }
        assert_eq!(
            paged_cookie(&[0x30, 0x07, 0x02, 0x01, 0x00, 0x04, 0x02, b'a', b'b']),
            Some(b"ab".to_vec())
        );
        // The last page: an empty cookie.
        assert_eq!(
            paged_cookie(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00]),
            Some(vec![])
        );
        // Long-form length.
        let mut v = vec![0x30, 0x81, 0x86, 0x02, 0x01, 0x00, 0x04, 0x81, 0x80];
        v.extend([7u8; 128]);
        assert_eq!(paged_cookie(&v), Some(vec![7u8; 128]));
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x02, 0x01],
            &[0x31, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00],
            &[0x30, 0x05, 0x02, 0x01, 0x00, 0x05, 0x00],
            &[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(paged_cookie(bad), None, "{bad:?}");
        }
    }
}
