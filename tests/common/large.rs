//! A large group written back to real Samba AD, shared by the CI-sized scale test
//! (`tests/large_group.rs`) and the 50,000-member benchmark (`benches/large_group.rs`).
//!
//! Members need AD objects with SIDs; SIDs of a foreign domain become foreign security
//! principals on first use, which is far cheaper to set up than thousands of user accounts.
//! The tenant holds the large group (members `0..n`), a one-member companion group (the
//! baseline a one-member change on the large group is compared with), and `spare` more users
//! that tests and benchmarks add one at a time.

use serde_json::{Value, json};

use super::samba::SambaDc;
use super::service::{Options, Service};
use super::sim::{GraphSim, oid, user};

/// Member values per LDAP modify, set explicitly so operation counts can be reasoned about.
pub const MEMBER_BATCH: u64 = 1000;

/// The tenant and the service configured for it.
pub struct LargeGroup {
    /// The simulator serving the tenant.
    pub sim: GraphSim,
    /// The service, writing to [`Self::ou`] over StartTLS.
    pub svc: Service,
    /// The fresh OU the groups land in.
    pub ou: String,
    /// Object id of the large group.
    pub big: String,
    /// Object id of the one-member companion group.
    pub small: String,
    /// Members of the large group at start.
    pub n: u32,
    tag: u32,
    domain: String,
}

impl LargeGroup {
    /// A tenant with an `n`-member group, its companion and `spare` unused users, graph-sim
    /// slicing the group over pages of 1,000 members as Graph does; nothing is written yet.
    pub async fn new(dc: &SambaDc, n: u32, spare: u32, tag: u32) -> LargeGroup {
        LargeGroup::sliced(dc, n, spare, tag, 1000).await
    }

    /// [`LargeGroup::new`] with pages of `slice` members: a slice as large as the group puts
    /// it all on one page, as a hostile or broken upstream could.
    pub async fn sliced(dc: &SambaDc, n: u32, spare: u32, tag: u32, slice: u32) -> LargeGroup {
        let ou = dc.fresh_ou("large").await;
        let salt = oid(tag, 0);
        // The tag in the domain too: tenants of one process never share a member SID.
        let domain = format!(
            "S-1-5-21-{}-{}-{}",
            4000 + tag,
            u32::from_str_radix(&salt[27..33], 16).unwrap(),
            std::process::id()
        );
        // Offset by the tag: the last 12 characters of an id (which the sAMAccountName uses)
        // carry only the process salt and `n`, and one process may build several tenants;
        // above every user id (`1000 + i`).
        let (big, small) = (
            oid(tag, 0x80_0000 + tag * 4 + 1),
            oid(tag, 0x80_0000 + tag * 4 + 2),
        );
        let users: Vec<Value> = (0..n + spare + 1)
            .map(
                |i| json!({"id": user_id(tag, i), "onPremisesSecurityIdentifier": sid(&domain, i)}),
            )
            .collect();
        let members: Vec<Value> = (0..n).map(|i| user(&user_id(tag, i))).collect();
        let groups = vec![
            json!({"id": big, "displayName": "Large Group", "securityEnabled": true,
                   "groupTypes": [], "members": members}),
            json!({"id": small, "displayName": "Small Group", "securityEnabled": true,
                   "groupTypes": [], "members": [user(&user_id(tag, n + spare))]}),
        ];
        let sim = GraphSim::start(
            users,
            groups,
            &["--page-size", "2000", "--member-slice", &slice.to_string()],
        );
        let svc = Service::with(dc, &ou, options(dc, &sim));
        LargeGroup {
            sim,
            svc,
            ou,
            big,
            small,
            n,
            tag,
            domain,
        }
    }

    /// Object id of user `i`.
    pub fn user_id(&self, i: u32) -> String {
        user_id(self.tag, i)
    }

    /// SID of user `i` (a foreign-domain SID).
    pub fn sid(&self, i: u32) -> String {
        sid(&self.domain, i)
    }

    /// A member reference to user `i`.
    pub fn member(&self, i: u32) -> Value {
        user(&self.user_id(i))
    }

    /// Adds user `i` to `group` in the tenant.
    pub async fn add(&self, group: &str, i: u32) {
        self.sim.members(group, vec![self.member(i)], vec![]).await;
    }

    /// Removes user `i` from `group` in the tenant.
    pub async fn remove(&self, group: &str, i: u32) {
        self.sim.members(group, vec![], vec![self.member(i)]).await;
    }

    /// `run --once`; returns its `ldap_operations` and the log.
    pub fn once(&self) -> (u64, String) {
        let log = self.svc.once_ok();
        (ldap_ops(&log), log)
    }
}

/// The service's options: StartTLS, explicit member batches, short retries.
pub fn options(dc: &SambaDc, sim: &GraphSim) -> Options {
    Options {
        ad_extra: format!("member_batch_size = {MEMBER_BATCH}"),
        tail: "[sync]\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\nmax_attempts = 4\n".into(),
        ..Options::new(dc, sim)
    }
}

fn user_id(tag: u32, i: u32) -> String {
    oid(tag, 1000 + i)
}

fn sid(domain: &str, i: u32) -> String {
    format!("{domain}-{}", 100_000 + i)
}

pub use super::summary::ldap_ops;
