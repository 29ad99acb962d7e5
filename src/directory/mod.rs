//! Active Directory: the LDAP connection, the cloud-group → AD mapping, planning operations
//! and applying them.
//!
//! # Guarantees
//! - The service only ever modifies or deletes an object that carries its anchor
//!   `adminDescription = Group_<objectId>` under an owned OU (the contract's ownership rule).
//!   An object matching only `msDS-ExternalDirectoryObjectId` is a reported conflict, never
//!   modified.
//! - Names are never used to find what to change; a name clash with an object we do not own
//!   is a conflict, reported and left alone.
//! - Every search that can return many entries is paged (RFC 2696), so a Windows DC's
//!   `MaxPageSize` never truncates what the service sees.
//! - What happens is reported through the [`Events`] handed in at construction; nothing here
//!   reaches an observability module or a global.
//!
//! All of it runs over the [`Ldap`] seam: [`Connection`] (ldap3) in production, the in-memory
//! `fake::FakeDirectory` in in-process tests (compiled for tests or with the `fake` feature).
//!
//! # May import
//! [`crate::model`], [`crate::config`], [`crate::graph`] (user identities, Graph errors) and
//! [`crate::queue`] (the mirror the applier reads, the safety rules); never [`crate::sync`],
//! [`crate::cli`] or an observability module.

pub mod adopt;
pub mod apply;
mod create;
pub mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod ldap;
pub mod listed_members;
pub mod mail;
mod mail_clash;
pub mod mapping;
mod members;
pub mod owned;
mod paging;
pub mod plan;
pub mod probe;
pub mod range;
mod read;
mod remembered;
pub mod retire;
pub mod seam;
pub mod takeover;
mod tls;
pub mod work;
pub mod writers;

use std::sync::Arc;

use ldap3::Scope;

use crate::config::AdConfig;
use crate::model::Events;

pub use apply::{Applier, ApplyError, Work};
pub use error::{DirectoryError, ResultCode, TlsError};
pub use ldap::Connection;
pub use retire::CloudOracle;
pub use seam::{DnForm, Ldap};

/// Values asked for per ranged read of `member` (`member;range=LO-HI`): Windows' default
/// `MaxValRange`, the most a Windows DC returns per read.
pub const DEFAULT_MEMBER_RANGE_STEP: usize = 1500;

/// The directory as the service sees it: a connection plus what was learned at start-up.
#[derive(Clone)]
pub struct Directory<L = Connection> {
    /// The connection.
    pub conn: L,
    /// The domain naming context (`DC=...`).
    pub domain_base: String,
    /// Whether the schema has `msDS-ExternalDirectoryObjectId` (Windows Server 2016 schema).
    pub has_external_id: bool,
    /// Whether the schema has `mailNickname` (an Exchange schema extension).
    pub has_mail_nickname: bool,
    /// Where groups are written (the default OU).
    pub target_ou: String,
    /// Every OU the service writes to; it owns anchored groups there and nowhere else.
    pub owned_ous: Vec<String>,
    /// Naming and placement rules.
    pub rules: mapping::MappingRules,
    /// Entries per page of a paged search (`ad.search_page_size`).
    pub page_size: usize,
    /// Values asked for per ranged read of `member` ([`DEFAULT_MEMBER_RANGE_STEP`]; see
    /// [`Directory::with_member_range_step`]).
    member_range_step: usize,
    /// The `[ad]` section it was opened with.
    cfg: Arc<AdConfig>,
    /// Where what happens is reported.
    events: Events,
}

impl Directory<Connection> {
    /// Binds, reads the rootDSE and detects the schema; reports through the connection's
    /// [`Events`].
    pub async fn open(conn: Connection) -> Result<Directory, DirectoryError> {
        let cfg = conn.config().clone();
        let events = conn.events().clone();
        Directory::open_with(conn, &cfg, events).await
    }
}

impl<L: Ldap> Directory<L> {
    /// Reads the rootDSE and detects the schema over any [`Ldap`]; `cfg` is the `[ad]`
    /// section (OUs, naming rules, page size), `events` where what happens is reported.
    pub async fn open_with(
        conn: L,
        cfg: &AdConfig,
        events: Events,
    ) -> Result<Directory<L>, DirectoryError> {
        let root = conn
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                &["defaultNamingContext", "schemaNamingContext"],
                DnForm::Plain,
            )
            .await?;
        let root = root.first().ok_or_else(|| DirectoryError::Connect {
            url: cfg.url.clone(),
            detail: "the server returned no rootDSE".into(),
        })?;
        let domain_base = read::first(root, "defaultNamingContext").unwrap_or_default();
        let schema = read::first(root, "schemaNamingContext").unwrap_or_default();
        let found = if schema.is_empty() {
            Vec::new()
        } else {
            conn.search(
                &schema,
                Scope::OneLevel,
                "(|(lDAPDisplayName=msDS-ExternalDirectoryObjectId)(lDAPDisplayName=mailNickname))",
                &["lDAPDisplayName"],
                DnForm::Plain,
            )
            .await?
        };
        let has = |name: &str| {
            found.iter().any(|e| {
                read::first(e, "lDAPDisplayName").is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        };
        let (has_external_id, has_mail_nickname) =
            (has("msDS-ExternalDirectoryObjectId"), has("mailNickname"));
        tracing::info!(domain = %domain_base, has_external_id, has_mail_nickname, "connected to AD");
        let mut rules = mapping::MappingRules::from_config(cfg);
        rules.mail.mail_nickname = has_mail_nickname;
        Ok(Directory {
            conn,
            domain_base,
            has_external_id,
            has_mail_nickname,
            target_ou: cfg.target_ou.clone(),
            owned_ous: cfg.owned_ous(),
            rules,
            page_size: cfg.search_page_size,
            member_range_step: DEFAULT_MEMBER_RANGE_STEP,
            cfg: Arc::new(cfg.clone()),
            events,
        })
    }

    /// The same directory reading `member` in ranges of `step` values (at least 1) instead of
    /// [`DEFAULT_MEMBER_RANGE_STEP`]: an internal seam, so tests can force many ranges on a
    /// CI-sized group (Samba honours any explicit range but never splits by itself).
    pub fn with_member_range_step(mut self, step: usize) -> Directory<L> {
        self.member_range_step = step.max(1);
        self
    }

    /// The same directory mapping `groupType` from each group's `onPremisesGroupType` when
    /// `honour` (`graph.writeback_configuration = "honour"`).
    pub fn honouring_writeback_configuration(mut self, honour: bool) -> Directory<L> {
        self.rules.honour_writeback = honour;
        self.rules.mail.by_type = honour;
        self
    }

    /// The `[ad]` section it was opened with.
    pub fn config(&self) -> &AdConfig {
        &self.cfg
    }

    /// The handle it reports through.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Whether the target OU exists (and is visible to the service account).
    pub async fn target_ou_exists(&self) -> Result<bool, DirectoryError> {
        self.dn_exists(&self.target_ou).await
    }
}
