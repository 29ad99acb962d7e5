//! The LDAP connection: TLS (ldaps or StartTLS, verified), bind, reconnect on a dropped
//! connection, per-operation timeouts, and result-code mapping — the production
//! implementation of [`Ldap`].
//!
//! Operations go through [`Connection`], which holds `ad.connections` bound ldap3 handles and
//! sends operations to them in turn. ldap3 multiplexes requests over each, so clones can have
//! several operations in flight.
//!
//! # Guarantees
//! - Every bind and operation is reported as [`Event::AdOperation`] (its name, outcome and
//!   duration); a bind, or an operation that succeeds, as [`Event::AdReachable`] `up`; a bind
//!   that fails, or an operation that fails transiently, as `down`.
//! - A connection that breaks mid-operation is dropped, so the next operation on it reconnects.
//! - A paged search stays on one connection from its first page to its last (a paged-results
//!   cookie is valid only on the connection that got it).
//! - Every operation has the configured `ad.operation_timeout`; connecting has 15 s.
//!
//! Imports: [`crate::config`] (the `[ad]` section), [`crate::model`] (events), and the
//! sibling modules `error`, `paging`, `seam`, `tls`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ldap3::controls::{PagedResults, RawControl};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use tokio::sync::Mutex;

use super::error::{DirectoryError, ResultCode};
use super::paging::{MAX_PAGES, PAGED_RESULTS_OID, paged_cookie};
use super::seam::{DnForm, Ldap, PageSink};
use crate::config::AdConfig;
use crate::model::{Event, Events, dn};

/// The extended-DN control (`<GUID=..>;<SID=..>;dn` values), asking for string forms.
fn extended_dn_control() -> RawControl {
    // BER: SEQUENCE { INTEGER 1 }: 1 = SIDs and GUIDs as strings.
    RawControl {
        ctype: "1.2.840.113556.1.4.529".into(),
        crit: false,
        val: Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
    }
}

/// The controls that ask for `form`.
fn form_controls(form: DnForm) -> Vec<RawControl> {
    match form {
        DnForm::Plain => vec![],
        DnForm::Extended => vec![extended_dn_control()],
    }
}

/// An entry of a search result, its DN plain: with the extended-DN control, a DC may give the
/// entry's own name in the extended form too ("for all DNs in the search response",
/// MS-ADTS 3.1.1.3.4.1.5).
fn plain_entry(raw: ldap3::ResultEntry) -> SearchEntry {
    let mut e = SearchEntry::construct(raw);
    if e.dn.starts_with('<') {
        e.dn = dn::strip_extended(&e.dn).to_string();
    }
    e
}

/// A bound, reconnecting LDAP connection to the DC.
#[derive(Clone)]
pub struct Connection {
    cfg: Arc<AdConfig>,
    tls: Arc<rustls::ClientConfig>,
    /// One slot per connection (`None`: not connected yet, or dropped after a break).
    handles: Arc<[Mutex<Option<ldap3::Ldap>>]>,
    /// The slot the next operation goes to (modulo the number of slots).
    next: Arc<AtomicUsize>,
    events: Events,
}

/// The outcome of an ldap3 call, mapped to ours. A broken connection is `Err(Transport)` and
/// `broken` is set.
fn map_result<T>(
    op: &'static str,
    dn: &str,
    out: Result<(T, ldap3::LdapResult), LdapError>,
) -> (Result<T, DirectoryError>, bool) {
    let refused = |r: ldap3::LdapResult| DirectoryError::Operation {
        op,
        dn: dn.to_string(),
        rc: ResultCode(r.rc),
        message: r.text,
    };
    match out {
        Ok((v, r)) if r.rc == ResultCode::SUCCESS.0 => (Ok(v), false),
        Ok((_, r)) => (Err(refused(r)), false),
        Err(LdapError::LdapResult { result }) => (Err(refused(result)), false),
        Err(e) => (
            Err(DirectoryError::Transport {
                op,
                dn: dn.to_string(),
                detail: e.to_string(),
            }),
            true,
        ),
    }
}

impl Connection {
    /// Prepares a connection (TLS material is read now; the network is touched on first use).
    /// Binds and operations are reported through `events`.
    pub fn new(cfg: &AdConfig, events: Events) -> Result<Connection, DirectoryError> {
        let tls = super::tls::client_config(cfg.ca_file.as_deref())?;
        Ok(Connection {
            cfg: Arc::new(cfg.clone()),
            tls,
            handles: (0..cfg.connections.max(1))
                .map(|_| Mutex::new(None))
                .collect(),
            next: Arc::new(AtomicUsize::new(0)),
            events,
        })
    }

    /// The configuration it was made from.
    pub fn config(&self) -> &AdConfig {
        &self.cfg
    }

    /// The handle it reports through.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Connects and binds, reporting whether AD answered ([`Event::AdReachable`]).
    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let result = self.connect_and_bind().await;
        self.events.emit(Event::AdReachable { up: result.is_ok() });
        result
    }

    async fn connect_and_bind(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let started = Instant::now();
        let settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(10))
            .set_starttls(self.cfg.starttls)
            .set_config(self.tls.clone());
        let connect_err = |detail: String| DirectoryError::Connect {
            url: self.cfg.url.clone(),
            detail: super::tls::explain(&detail, self.cfg.ca_file.as_deref()),
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
        let duration = started.elapsed();
        let result = match bind {
            Ok(r) if r.rc == ResultCode::SUCCESS.0 => Ok(ldap),
            Ok(r) => Err(DirectoryError::Bind {
                bind_dn: self.cfg.bind_dn.clone(),
                rc: ResultCode(r.rc),
                message: r.text,
            }),
            Err(e) => Err(connect_err(e.to_string())),
        };
        self.events.emit(Event::AdOperation {
            op: "bind",
            ok: result.is_ok(),
            duration,
        });
        result
    }

    /// A bound handle of the first connection: the current one, or a new connection.
    pub async fn handle(&self) -> Result<ldap3::Ldap, DirectoryError> {
        self.handle_on(0).await
    }

    /// The slot the next operation goes to.
    fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len()
    }

    /// A bound handle of connection `slot`: the current one, or a new connection.
    async fn handle_on(&self, slot: usize) -> Result<ldap3::Ldap, DirectoryError> {
        let mut h = self.handles[slot].lock().await;
        if let Some(l) = h.as_mut()
            && !l.is_closed()
        {
            return Ok(l.clone());
        }
        let l = self.connect().await?;
        *h = Some(l.clone());
        Ok(l)
    }

    /// Drops every handle so the next operations reconnect.
    async fn reset(&self) {
        for h in self.handles.iter() {
            *h.lock().await = None;
        }
    }

    /// Runs one operation on the next connection ([`Self::run_on`]).
    async fn run<T, F, Fut>(&self, op: &'static str, dn: &str, f: F) -> Result<T, DirectoryError>
    where
        F: FnOnce(ldap3::Ldap) -> Fut,
        Fut: Future<Output = Result<(T, ldap3::LdapResult), LdapError>>,
    {
        self.run_on(self.pick(), op, dn, f).await
    }

    /// Runs one operation on connection `slot` with timing, events and error mapping; a
    /// broken connection is dropped.
    async fn run_on<T, F, Fut>(
        &self,
        slot: usize,
        op: &'static str,
        dn: &str,
        f: F,
    ) -> Result<T, DirectoryError>
    where
        F: FnOnce(ldap3::Ldap) -> Fut,
        Fut: Future<Output = Result<(T, ldap3::LdapResult), LdapError>>,
    {
        let ldap = self.handle_on(slot).await?;
        let started = Instant::now();
        let out = f(ldap).await;
        let duration = started.elapsed();
        let (result, broken) = map_result(op, dn, out);
        if broken {
            *self.handles[slot].lock().await = None;
        }
        self.events.emit(Event::AdOperation {
            op,
            ok: result.is_ok(),
            duration,
        });
        match &result {
            Ok(_) => self.events.emit(Event::AdReachable { up: true }),
            Err(e) if e.is_transient() => self.events.emit(Event::AdReachable { up: false }),
            Err(_) => {}
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
            let entries = r.0.into_iter().map(plain_entry).collect::<Vec<_>>();
            Ok((entries, r.1))
        })
        .await
    }

    /// One page of a paged search: its entries, and the server's cookie (`None`: no paging
    /// control in the answer; `Some(None)`: a malformed one).
    async fn search_page(
        &self,
        slot: usize,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<String>,
        controls: Vec<RawControl>,
    ) -> Result<(Vec<SearchEntry>, Option<Option<Vec<u8>>>), DirectoryError> {
        let timeout = self.cfg.operation_timeout;
        self.run_on(slot, "search", base, |mut l| async move {
            let r = l
                .with_timeout(timeout)
                .with_controls(controls)
                .search(base, scope, filter, attrs)
                .await?;
            let next =
                r.1.ctrls
                    .iter()
                    .find(|c| c.1.ctype == PAGED_RESULTS_OID)
                    .map(|c| c.1.val.as_deref().and_then(paged_cookie));
            let entries: Vec<SearchEntry> = r.0.into_iter().map(plain_entry).collect();
            Ok(((entries, next), r.1))
        })
        .await
    }

    /// Searches with the Simple Paged Results control (RFC 2696), `page_size` entries per page,
    /// so that a Windows DC's `MaxPageSize` (1,000) never truncates the answer
    /// (`sizeLimitExceeded`). Each page's entries go to `sink`; returns the number of pages.
    #[allow(clippy::too_many_arguments)] // as `Ldap::search_paged`
    pub async fn search_paged(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
        page_size: usize,
        sink: PageSink<'_>,
    ) -> Result<usize, DirectoryError> {
        let attrs: Vec<String> = attrs.iter().map(|s| s.to_string()).collect();
        // Every page on the connection that got the cookie.
        let slot = self.pick();
        let mut cookie: Vec<u8> = Vec::new();
        let protocol_error = |message: String| DirectoryError::Operation {
            op: "search",
            dn: base.to_string(),
            rc: ResultCode::PROTOCOL_ERROR,
            message,
        };
        for pages in 1..=MAX_PAGES {
            let control: RawControl = PagedResults {
                size: page_size.clamp(1, i32::MAX as usize) as i32,
                cookie: std::mem::take(&mut cookie),
            }
            .into();
            let mut controls = vec![control];
            controls.extend(form_controls(form));
            let (entries, next) = self
                .search_page(slot, base, scope, filter, attrs.clone(), controls)
                .await?;
            sink(entries);
            match next {
                // No control: the server does not page (it sent everything).
                None => return Ok(pages),
                Some(None) => {
                    return Err(protocol_error(
                        "malformed paged-results control in the response".into(),
                    ));
                }
                Some(Some(c)) if c.is_empty() => return Ok(pages),
                Some(Some(c)) => cookie = c,
            }
        }
        Err(protocol_error(format!(
            "paged search did not end after {MAX_PAGES} pages"
        )))
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

impl Ldap for Connection {
    fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
    ) -> impl Future<Output = Result<Vec<SearchEntry>, DirectoryError>> + Send {
        Connection::search(self, base, scope, filter, attrs, form_controls(form))
    }

    fn search_paged(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        form: DnForm,
        page_size: usize,
        sink: PageSink<'_>,
    ) -> impl Future<Output = Result<usize, DirectoryError>> + Send {
        Connection::search_paged(self, base, scope, filter, attrs, form, page_size, sink)
    }

    fn add(
        &self,
        dn: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        Connection::add(self, dn, attrs)
    }

    fn modify(
        &self,
        dn: &str,
        mods: Vec<Mod<String>>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        Connection::modify(self, dn, mods)
    }

    fn rename(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        Connection::rename(self, dn, new_rdn, new_parent)
    }

    fn delete(&self, dn: &str) -> impl Future<Output = Result<(), DirectoryError>> + Send {
        Connection::delete(self, dn)
    }
}
