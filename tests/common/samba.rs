//! Test harness for a real Samba Active Directory domain controller.
//!
//! Integration tests that talk to AD share one Samba DC per test process:
//! [`shared()`] runs `deploy/samba-ad.sh start` once (the script reuses an
//! instance that is already running on the same IP, so test binaries run one
//! after another, or even in parallel, share it too) and parses the
//! `EW_AD_*` lines it prints.
//!
//! Isolation comes from OUs, not from DCs: every test creates its own OU with
//! [`SambaDc::fresh_ou`] and works only below it. Those OUs live under the lab OU
//! (`OU=Writeback Lab,…`), where `deploy/samba-ad.sh` gave the service account `svc-writeback`
//! the group writeback delegation of `deploy/ad/samba-delegate.sh`: the service binds as that
//! account ([`SambaDc::svc_bind_dn`]), never as the administrator, while the tests' own LDAP
//! client ([`SambaDc::connect`]) plays the administrator who seeds and inspects AD. Two things are domain-wide
//! and need unique values across tests: `sAMAccountName` and the anchors
//! (`msDS-ExternalDirectoryObjectId` / `adminDescription`); build them with
//! [`unique_suffix`].
//!
//! A test that needs Samba fails when Samba cannot be started: it never skips.
//!
//! Environment: `EW_TEST_SAMBA_IP` picks the loopback IP (default
//! `127.0.0.2`); the script also honours `ENTRA_WRITEBACK_CACHE`, `TMPDIR`
//! and `SAMBA_MAX_RUNTIME`.
//!
//! Samba facts this module relies on (verified against Samba 4.17):
//! - it never splits `member` into ranges by itself, but honours an explicit
//!   `member;range=LO-HI` request and answers `member;range=LO-HI` (more to
//!   come) or `member;range=LO-*` (last chunk), as Windows does;
//! - with the extended-DN control (`1.2.840.113556.1.4.529`, flag 1) each
//!   `member` value reads `<GUID=…>;<SID=S-1-5-…>;CN=…`;
//! - `objectSid` and `objectGUID` come back binary (usually in
//!   `SearchEntry::bin_attrs`, in `attrs` when the bytes happen to be UTF-8).
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

pub mod acl;
mod entry;
mod seed;
pub use entry::*;

/// The loopback IP used when `EW_TEST_SAMBA_IP` is not set.
pub const DEFAULT_IP: &str = "127.0.0.2";

/// OID of the AD extended-DN control (`LDAP_SERVER_EXTENDED_DN_OID`).
pub const EXTENDED_DN_OID: &str = "1.2.840.113556.1.4.529";

/// BER value of the extended-DN control asking for the string forms
/// (`SEQUENCE { INTEGER 1 }`): `<GUID=xxxxxxxx-…>;<SID=S-1-5-…>;DN`.
const EXTENDED_DN_STRING_FORM: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x01];

/// Values asked for per ranged-retrieval round trip; Windows' default
/// `MaxValRange` is 1,500, so this is what a real client sees at most.
const RANGE_STEP: usize = 1500;

/// Attributes every group read returns on top of `*` (`*` already covers
/// them on Samba, but naming them documents what the tests rely on).
const GROUP_ATTRS: &[&str] = &[
    "*",
    "uSNChanged",
    "objectSid",
    "objectGUID",
    "groupType",
    "sAMAccountName",
];

/// A running Samba AD DC, as described by `deploy/samba-ad.sh`.
#[derive(Debug, Clone)]
pub struct SambaDc {
    /// `ldap://IP` (plain; simple bind is allowed on it).
    pub url: String,
    /// `ldaps://IP`, served with a certificate signed by [`Self::ca_file`].
    pub ldaps_url: String,
    /// The domain administrator's DN.
    pub bind_dn: String,
    /// The domain administrator's password.
    pub bind_password: String,
    /// `DC=example,DC=test`.
    pub base_dn: String,
    /// PEM CA certificate that verifies the DC (IP and `dc1.example.test`).
    pub ca_file: PathBuf,
    /// The instance directory (holds `samba.log`, `tls/`, the database).
    pub dir: PathBuf,
    /// The service account (`CN=svc-writeback,CN=Users,…`): delegated group writeback on
    /// `OU=Cloud Groups` and [`Self::lab_ou`] (so on every [`Self::fresh_ou`]) and nothing else.
    pub svc_bind_dn: String,
    /// Password of [`Self::svc_bind_dn`].
    pub svc_bind_password: String,
    /// `OU=Writeback Lab,…`: the parent of every [`Self::fresh_ou`], delegated to
    /// [`Self::svc_bind_dn`].
    pub lab_ou: String,
    /// Whether the schema has `msDS-ExternalDirectoryObjectId` (it does,
    /// unless the DC was started with `--no-schema-patch`).
    pub schema_patched: bool,
    /// Whether the schema also has Exchange's `mailNickname` (a DC started with
    /// `--exchange-schema`).
    pub exchange_schema: bool,
}

static SHARED: OnceLock<SambaDc> = OnceLock::new();

/// `deploy/samba-ad.sh`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/samba-ad.sh")
}

/// Stops the `deploy/samba-ad.sh` instance on this IP when dropped (also on panic).
pub struct StopOnDrop(pub &'static str);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop(self.0);
    }
}

/// Runs `deploy/samba-ad.sh stop --ip IP` (quietly; stopping nothing is fine). Never for the
/// shared DC.
pub fn stop(ip: &str) {
    assert_ne!(ip, DEFAULT_IP, "the shared DC is never stopped by a test");
    let _ = Command::new("bash")
        .arg(script())
        .args(["stop", "--ip", ip])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The DC shared by every test of this process, started on first use.
///
/// Panics, with the script's output, if the DC cannot be started.
pub fn shared() -> &'static SambaDc {
    SHARED.get_or_init(|| {
        let ip = std::env::var("EW_TEST_SAMBA_IP").unwrap_or_else(|_| DEFAULT_IP.to_owned());
        SambaDc::start(&ip)
    })
}

impl SambaDc {
    /// Runs `deploy/samba-ad.sh start --ip IP` and parses what it prints.
    /// Blocking; [`shared()`] is the usual entry point.
    pub fn start(ip: &str) -> SambaDc {
        Self::start_with(ip, &[])
    }

    /// A DC of the test's own on `ip` (never the shared one), started with `samba-ad.sh start
    /// --ip IP ARGS…` (e.g. `--no-schema-patch`), and the guard that stops exactly that
    /// instance when dropped, also on panic. The guard exists before the script runs, so a
    /// start that fails half-way leaves nothing behind either.
    pub fn start_owned(ip: &'static str, args: &[&str]) -> (StopOnDrop, SambaDc) {
        assert_ne!(ip, DEFAULT_IP, "the shared DC is never stopped by a test");
        let guard = StopOnDrop(ip);
        (guard, Self::start_with(ip, args))
    }

    /// Runs `deploy/samba-ad.sh start --ip IP ARGS…` and parses what it prints.
    pub fn start_with(ip: &str, args: &[&str]) -> SambaDc {
        let script = script();
        // Bounded: a start that hangs fails the test instead of hanging CI. `timeout` sends
        // TERM, on which the script stops the samba it started.
        let output = Command::new("timeout")
            .args(["--kill-after=30", "600", "bash"])
            .arg(&script)
            .args(["start", "--ip", ip])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            panic!(
                "{} start --ip {ip} failed ({}):\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}",
                script.display(),
                output.status
            );
        }
        Self::from_env_lines(&stdout).unwrap_or_else(|missing| {
            panic!(
                "{} start printed no {missing} line:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                script.display()
            )
        })
    }

    /// Builds a `SambaDc` from `EW_AD_*=value` lines; `Err` names the first
    /// missing key.
    pub fn from_env_lines(text: &str) -> Result<SambaDc, &'static str> {
        let vars: HashMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.trim().split_once('='))
            .filter(|(key, _)| key.starts_with("EW_AD_"))
            // A value with a space is single-quoted, for the shell's `eval`.
            .map(|(key, value)| (key, value.trim_matches('\'')))
            .collect();
        let get = |key: &'static str| vars.get(key).map(|v| (*v).to_owned()).ok_or(key);
        Ok(SambaDc {
            url: get("EW_AD_URL")?,
            ldaps_url: get("EW_AD_LDAPS_URL")?,
            bind_dn: get("EW_AD_BIND_DN")?,
            bind_password: get("EW_AD_BIND_PASSWORD")?,
            base_dn: get("EW_AD_BASE_DN")?,
            ca_file: get("EW_AD_CA_FILE")?.into(),
            dir: get("EW_AD_DIR")?.into(),
            svc_bind_dn: get("EW_AD_SVC_BIND_DN")?,
            svc_bind_password: get("EW_AD_SVC_BIND_PASSWORD")?,
            lab_ou: get("EW_AD_LAB_OU")?,
            schema_patched: get("EW_AD_SCHEMA_PATCHED")? == "true",
            exchange_schema: vars.get("EW_AD_EXCHANGE_SCHEMA") == Some(&"true"),
        })
    }

    /// The OU the service writes to by default (`OU=Cloud Groups,…`); it
    /// exists on every instance. Tests should prefer [`Self::fresh_ou`].
    pub fn cloud_groups_ou(&self) -> String {
        format!("OU=Cloud Groups,{}", self.base_dn)
    }

    /// A new connection over `ldap://`, simple-bound as the administrator.
    pub async fn connect(&self) -> Ldap {
        self.connect_as(&self.bind_dn, &self.bind_password).await
    }

    /// A new connection over `ldap://`, simple-bound as `dn`.
    pub async fn connect_as(&self, dn: &str, password: &str) -> Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url));
        ldap3::drive!(conn);
        expect_ok(
            ldap.simple_bind(dn, password)
                .await
                .and_then(|r| r.success()),
            &format!("simple bind as {dn} to {}", self.url),
        );
        ldap
    }

    /// A new TLS connection verified against [`Self::ca_file`] with rustls
    /// (ldaps://, or ldap:// + StartTLS), simple-bound as the administrator.
    pub async fn connect_tls(&self, starttls: bool) -> Ldap {
        let url = if starttls { &self.url } else { &self.ldaps_url };
        let settings = LdapConnSettings::new()
            .set_config(self.rustls_config())
            .set_starttls(starttls);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .unwrap_or_else(|e| panic!("TLS connect to {url} (starttls={starttls}): {e}"));
        ldap3::drive!(conn);
        expect_ok(
            ldap.simple_bind(&self.bind_dn, &self.bind_password)
                .await
                .and_then(|r| r.success()),
            &format!("simple bind over TLS to {url}"),
        );
        ldap
    }

    /// A rustls client configuration trusting only the test CA.
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.ca_file.display()))
        {
            let cert = cert.unwrap_or_else(|e| panic!("parse {}: {e}", self.ca_file.display()));
            roots.add(cert).expect("add the test CA to the root store");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("rustls protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Creates `OU=<name>-<unique suffix>,<lab OU>` and returns its DN: the service account
    /// inherits its delegation there.
    pub async fn fresh_ou(&self, name: &str) -> String {
        self.fresh_ou_under(name, &self.lab_ou).await
    }

    /// Creates `OU=<name>-<unique suffix>,<base DN>`, outside the lab OU: the service account
    /// has no right there (until a test delegates it with `deploy/ad/samba-delegate.sh`).
    pub async fn fresh_undelegated_ou(&self, name: &str) -> String {
        self.fresh_ou_under(name, &self.base_dn).await
    }

    async fn fresh_ou_under(&self, name: &str, parent: &str) -> String {
        let rdn_value = format!("{name}-{}", unique_suffix());
        let dn = format!("OU={},{parent}", ldap3::dn_escape(rdn_value.as_str()));
        let mut ldap = self.connect().await;
        let attrs = vec![
            ("objectClass", HashSet::from(["organizationalUnit"])),
            (
                "description",
                HashSet::from(["entra-writeback integration test"]),
            ),
        ];
        expect_ok(
            ldap.add(&dn, attrs).await.and_then(|r| r.success()),
            &format!("add {dn}"),
        );
        let _ = ldap.unbind().await;
        dn
    }

    /// Creates a user `CN=<sam>,<ou>` with `sAMAccountName = sam` and returns
    /// its DN and its `objectSid` as a string (`S-1-5-21-…`).
    ///
    /// `sAMAccountName` is unique across the whole domain, so tests sharing
    /// the DC must not reuse a `sam`: add [`unique_suffix`] (AD limits user
    /// names to 20 characters; Samba does not enforce it).
    pub async fn create_user(&self, ou: &str, sam: &str) -> (String, String) {
        let dn = format!("CN={},{ou}", ldap3::dn_escape(sam));
        let mut ldap = self.connect().await;
        let attrs = vec![
            ("objectClass", HashSet::from(["user"])),
            ("sAMAccountName", HashSet::from([sam])),
        ];
        match ldap.add(&dn, attrs).await.and_then(|r| r.success()) {
            Ok(_) => {}
            Err(LdapError::LdapResult { result }) if result.rc == 68 => panic!(
                "add {dn}: already exists (68: {}); sAMAccountName '{sam}' is domain-wide, \
                 make it unique with unique_suffix()",
                result.text
            ),
            Err(e) => panic!("add {dn}: {e}"),
        }
        let entry = read_base(&mut ldap, &dn, &["objectSid"], false)
            .await
            .unwrap_or_else(|| panic!("the new user {dn} cannot be read back"));
        let sid = entry_sid(&entry).unwrap_or_else(|| panic!("{dn} has no valid objectSid"));
        let _ = ldap.unbind().await;
        (dn, sid)
    }

    /// Creates `n` users `<prefix><i>` under `ou` over one connection and returns their SIDs
    /// in order. `prefix` must be unique in the domain (use [`unique_suffix`]).
    pub async fn create_users(&self, ou: &str, prefix: &str, n: usize) -> Vec<String> {
        let mut ldap = self.connect().await;
        let mut sids = Vec::with_capacity(n);
        for i in 0..n {
            let sam = format!("{prefix}{i}");
            let dn = format!("CN={},{ou}", ldap3::dn_escape(sam.as_str()));
            let attrs = vec![
                ("objectClass", HashSet::from(["user"])),
                ("sAMAccountName", HashSet::from([sam.as_str()])),
            ];
            expect_ok(
                ldap.add(&dn, attrs).await.and_then(|r| r.success()),
                &format!("add {dn}"),
            );
            let entry = read_base(&mut ldap, &dn, &["objectSid"], false)
                .await
                .unwrap_or_else(|| panic!("the new user {dn} cannot be read back"));
            sids.push(entry_sid(&entry).unwrap_or_else(|| panic!("{dn} has no valid objectSid")));
        }
        let _ = ldap.unbind().await;
        sids
    }

    /// The group under `ou` whose `msDS-ExternalDirectoryObjectId` or
    /// `adminDescription` equals `anchor` (e.g. `Group_<objectId>`), read
    /// like [`Self::groups_in`]. Panics if more than one group matches.
    pub async fn group_by_anchor(&self, ou: &str, anchor: &str) -> Option<SearchEntry> {
        let value = ldap3::ldap_escape(anchor);
        let filter = if self.schema_patched {
            format!(
                "(&(objectClass=group)(|(msDS-ExternalDirectoryObjectId={value})(adminDescription={value})))"
            )
        } else {
            format!("(&(objectClass=group)(adminDescription={value}))")
        };
        let mut groups = self.search_groups(ou, &filter).await;
        assert!(
            groups.len() <= 1,
            "{} groups under {ou} carry the anchor {anchor}: {:?}",
            groups.len(),
            groups.iter().map(|g| &g.dn).collect::<Vec<_>>()
        );
        groups.pop()
    }

    /// Every group below `ou` (subtree), sorted by DN, with all attributes
    /// (`*` plus `uSNChanged`, `objectSid`, `objectGUID`, `groupType`,
    /// `sAMAccountName`) and `member` read completely by ranged retrieval.
    /// `member` is absent for an empty group, as in LDAP.
    pub async fn groups_in(&self, ou: &str) -> Vec<SearchEntry> {
        self.search_groups(ou, "(objectClass=group)").await
    }

    /// The SIDs (`S-1-5-…`) of every member of `group_dn`, read with the
    /// extended-DN control and ranged retrieval. Members without a SID (e.g.
    /// contacts) are left out.
    pub async fn member_sids(&self, group_dn: &str) -> BTreeSet<String> {
        self.try_member_sids(group_dn)
            .await
            .unwrap_or_else(|| panic!("read member of {group_dn}: no such entry"))
    }

    /// [`Self::member_sids`], or `None` if the group does not exist (any more): for snapshots
    /// taken while a service may be renaming or deleting groups.
    pub async fn try_member_sids(&self, group_dn: &str) -> Option<BTreeSet<String>> {
        let mut ldap = self.connect().await;
        let values = try_read_ranged(&mut ldap, group_dn, "member", true).await;
        let _ = ldap.unbind().await;
        Some(
            values?
                .iter()
                .filter_map(|v| extended_dn_sid(v).map(str::to_owned))
                .collect(),
        )
    }

    /// Adds a group (as the administrator) with the given single-valued attributes: an object
    /// the service did not create, for ownership, conflict and adoption tests.
    pub async fn add_group(&self, dn: &str, attrs: Vec<(&str, &str)>) {
        let mut ldap = self.connect().await;
        let mut all: Vec<(&str, HashSet<&str>)> = vec![("objectClass", HashSet::from(["group"]))];
        all.extend(attrs.into_iter().map(|(k, v)| (k, HashSet::from([v]))));
        ldap.add(dn, all)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("add {dn}: {e}"));
        let _ = ldap.unbind().await;
    }

    /// The groups matching `filter` under `ou`, each with its whole `member` list. A running
    /// service may rename or delete a group between the search and its member read; then the
    /// search is taken again, so the result is one consistent listing.
    async fn search_groups(&self, ou: &str, filter: &str) -> Vec<SearchEntry> {
        for _ in 0..50 {
            if let Some(groups) = self.try_search_groups(ou, filter).await {
                return groups;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("groups under {ou} kept changing during 50 searches");
    }

    /// One attempt of [`Self::search_groups`]; `None` if a group vanished while it was read.
    async fn try_search_groups(&self, ou: &str, filter: &str) -> Option<Vec<SearchEntry>> {
        let mut ldap = self.connect().await;
        let (entries, _) = expect_ok(
            ldap.search(ou, Scope::Subtree, filter, GROUP_ATTRS)
                .await
                .and_then(|r| r.success()),
            &format!("search {filter} under {ou}"),
        );
        let mut groups = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut entry = SearchEntry::construct(entry);
            let members = try_read_ranged(&mut ldap, &entry.dn, "member", false).await;
            let Some(members) = members else {
                let _ = ldap.unbind().await;
                return None;
            };
            replace_attr(&mut entry, "member", members);
            groups.push(entry);
        }
        let _ = ldap.unbind().await;
        groups.sort_by(|a, b| a.dn.cmp(&b.dn));
        Some(groups)
    }
}

/// A suffix unique across test processes and calls: `<pid>-<n>-<ms>` where n
/// counts calls in this process and ms is the wall clock in milliseconds
/// (base 36, to stay short).
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{}-{n}-{}", std::process::id(), base36(ms))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

/// Reads one entry (scope base); `None` if it does not exist.
async fn read_base(
    ldap: &mut Ldap,
    dn: &str,
    attrs: &[&str],
    extended_dn: bool,
) -> Option<SearchEntry> {
    if extended_dn {
        ldap.with_controls(extended_dn_control());
    }
    match ldap.search(dn, Scope::Base, "(objectClass=*)", attrs).await {
        Ok(result) => match result.success() {
            Ok((mut entries, _)) => entries.pop().map(SearchEntry::construct),
            Err(LdapError::LdapResult { result }) if result.rc == 32 => None,
            Err(e) => panic!("read {dn}: {e}"),
        },
        Err(e) => panic!("read {dn}: {e}"),
    }
}

/// Reads every value of `attr` on `dn` with explicit ranged retrieval
/// (`attr;range=LO-HI`), following the ranges the server answers with until
/// one ends in `*`. Works whether or not the server would have split the
/// attribute itself.
///
/// `None` if the entry does not exist (any more: a running service may
/// rename or delete it between a search and this read).
async fn try_read_ranged(
    ldap: &mut Ldap,
    dn: &str,
    attr: &str,
    extended_dn: bool,
) -> Option<Vec<String>> {
    let mut values = Vec::new();
    let mut low = 0usize;
    loop {
        let request = format!("{attr};range={low}-{}", low + RANGE_STEP - 1);
        let entry = read_base(ldap, dn, &[request.as_str()], extended_dn).await?;
        let prefix = format!("{attr};range=");
        let chunk = entry
            .attrs
            .into_iter()
            .find(|(k, _)| starts_with_ci(k, &prefix) || k.eq_ignore_ascii_case(attr));
        let Some((key, chunk)) = chunk else {
            // No values at all, or none from `low` on.
            break;
        };
        values.extend(chunk);
        if key.eq_ignore_ascii_case(attr) {
            // The server ignored the range and sent everything.
            break;
        }
        let range = &key[prefix.len()..];
        let (_, high) = range
            .split_once('-')
            .unwrap_or_else(|| panic!("bad range '{key}' reading {dn}"));
        if high == "*" {
            break;
        }
        let high: usize = high
            .parse()
            .unwrap_or_else(|_| panic!("bad range '{key}' reading {dn}"));
        assert!(high >= low, "range '{key}' goes backwards reading {dn}");
        low = high + 1;
    }
    Some(values)
}

/// Replaces every form of `attr` (`attr`, `attr;range=…`) with `values`;
/// removes it when `values` is empty.
fn replace_attr(entry: &mut SearchEntry, attr: &str, values: Vec<String>) {
    let with_options = format!("{attr};");
    let is_attr = |k: &str| k.eq_ignore_ascii_case(attr) || starts_with_ci(k, &with_options);
    entry.attrs.retain(|k, _| !is_attr(k));
    entry.bin_attrs.retain(|k, _| !is_attr(k));
    if !values.is_empty() {
        entry.attrs.insert(attr.to_owned(), values);
    }
}

/// ASCII case-insensitive `starts_with` (attribute names are ASCII).
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn extended_dn_control() -> RawControl {
    RawControl {
        ctype: EXTENDED_DN_OID.to_owned(),
        crit: true,
        val: Some(EXTENDED_DN_STRING_FORM.to_vec()),
    }
}

fn expect_ok<T>(result: Result<T, LdapError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_parse() {
        let text = "EW_AD_URL=ldap://127.0.0.2\nEW_AD_LDAPS_URL=ldaps://127.0.0.2\n\
            EW_AD_BIND_DN=CN=Administrator,CN=Users,DC=example,DC=test\n\
            EW_AD_BIND_PASSWORD=Passw0rd!Test\nEW_AD_BASE_DN=DC=example,DC=test\n\
            EW_AD_CA_FILE=/tmp/x/tls/ca.pem\nEW_AD_DIR=/tmp/x\nEW_AD_PID=42\n\
            EW_AD_SVC_BIND_DN=CN=svc-writeback,CN=Users,DC=example,DC=test\n\
            EW_AD_SVC_BIND_PASSWORD=Svc-Passw0rd!\nEW_AD_SCHEMA_PATCHED=true\n\
            EW_AD_LAB_OU='OU=Writeback Lab,DC=example,DC=test'\n";
        let dc = SambaDc::from_env_lines(text).expect("all keys");
        assert_eq!(dc.bind_dn, "CN=Administrator,CN=Users,DC=example,DC=test");
        assert_eq!(
            dc.lab_ou, "OU=Writeback Lab,DC=example,DC=test",
            "quotes dropped"
        );
        assert_eq!(dc.ca_file, PathBuf::from("/tmp/x/tls/ca.pem"));
        assert!(dc.schema_patched);
        assert!(
            !dc.exchange_schema,
            "an instance from before the flag has no Exchange schema"
        );
        assert_eq!(
            SambaDc::from_env_lines("EW_AD_URL=ldap://x").unwrap_err(),
            "EW_AD_LDAPS_URL"
        );
    }

    #[test]
    fn unique_suffixes_differ() {
        assert_ne!(unique_suffix(), unique_suffix());
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
    }
}
