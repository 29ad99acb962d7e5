//! The SIGKILL stream test's tenant and its kills: a stream of bursts of tenant changes, and
//! the moment to kill the service (a groups round in flight right after an ack).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::samba::{SambaDc, unique_suffix};
use super::service::{Service, tail};
use super::sim::{GraphSim, oid, user};
use super::wait::{self, LogCounter};

/// A deterministic pseudo-random sequence (no extra crate needed).
pub struct Lcg(pub u64);
impl Lcg {
    /// The next value in `0..n`.
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The stream test's tenant: `USERS` synced users (created in AD) and `GROUPS` groups of ten.
pub struct Stream {
    tag: u32,
    /// Cloud user id → SID of its AD user.
    pub sid_of: BTreeMap<String, String>,
    /// The users, for graph-sim.
    pub users: Vec<Value>,
    /// The groups, for graph-sim.
    pub groups: Vec<Value>,
}

/// Synced users of the stream tenant.
pub const USERS: usize = 200;
/// Groups of the stream tenant.
pub const GROUPS: u32 = 60;

impl Stream {
    /// Creates the users in AD (in an OU of their own) and the tenant around them.
    pub async fn new(dc: &SambaDc) -> Stream {
        let users_ou = dc.fresh_ou("stream-users").await;
        let tag = 0xd00;
        let sids = dc
            .create_users(&users_ou, &format!("st{}-", unique_suffix()), USERS)
            .await;
        let uid = |i: usize| oid(tag, 1000 + i as u32);
        Stream {
            tag,
            sid_of: (0..USERS).map(|i| (uid(i), sids[i].clone())).collect(),
            users: (0..USERS)
                .map(|i| super::synced_user(&uid(i), &sids[i]))
                .collect(),
            groups: (0..GROUPS)
                .map(|g| json!({"id": oid(tag, g), "displayName": format!("Stream {g}"), "securityEnabled": true,
                                "groupTypes": [], "members": (0..10).map(|k| user(&uid((g as usize * 3 + k) % USERS))).collect::<Vec<_>>()}))
                .collect(),
        }
    }

    fn user(&self, i: u64) -> Value {
        user(&oid(self.tag, 1000 + i as u32))
    }

    /// 500 tenant changes: 10 % renames (half of them with a new description), 50 % member
    /// adds, 40 % member removals, on random groups.
    pub fn burst(&self, rng: &mut Lcg) -> Vec<Value> {
        (0..500)
            .map(|_| {
                let g = oid(self.tag, rng.next(GROUPS as u64) as u32);
                match rng.next(10) {
                    0 => {
                        let mut p = json!({"displayName": format!("Stream r{}", rng.next(1_000_000))});
                        if rng.next(2) == 0 {
                            p["description"] = json!(format!("about {}", rng.next(1_000_000)));
                        }
                        json!({"op": "put_group", "id": g, "properties": p})
                    }
                    1..=5 => json!({"op": "members", "id": g, "add": [self.user(rng.next(USERS as u64))], "remove": []}),
                    _ => json!({"op": "members", "id": g, "add": [], "remove": [self.user(rng.next(USERS as u64))]}),
                }
            })
            .collect()
    }

    /// Posts a burst and waits for the moment to SIGKILL: a groups round in flight (its cursor
    /// points mid-round) right after an ack (which sled has not flushed yet, so after the
    /// restart that change is applied again: the crash window between apply and ack). A groups
    /// round that read changes and ended without that moment (say the worker waited for a
    /// slow DC) gets another burst. Returns the number of changes posted.
    pub async fn kill_mid_round_after_ack(
        &self,
        sim: &GraphSim,
        svc: &Service,
        rng: &mut Lcg,
    ) -> usize {
        let busy_rounds = |s: &Value| {
            s["rounds"].as_array().map_or(0, |r| {
                r.iter()
                    .filter(|r| r["resource"] == "groups" && r["items"].as_u64() > Some(0))
                    .count()
            })
        };
        let mut acked = LogCounter::new(svc, ACKED);
        let (mut posted, mut rounds_at_burst, mut seen) = (0, None, acked.poll());
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let s = wait::status(svc).await.unwrap_or_default();
            let fresh = acked.poll() > seen;
            seen = acked.count;
            if fresh && rounds_at_burst.is_some() && wait::round_in_flight(&s, "groups") {
                return posted;
            }
            if rounds_at_burst.is_none_or(|n| busy_rounds(&s) > n) {
                let ops = self.burst(rng);
                posted += ops.len();
                sim.bulk(ops).await;
                rounds_at_burst = Some(busy_rounds(&s));
            }
            if Instant::now() >= deadline {
                panic!(
                    "no groups round in flight right after an ack:\n{}",
                    tail(&wait::run_log(svc))
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Sequence numbers of the queued changes acked in `log`, counting how many were acked more
/// than once (their ack died with the process): (acked, re-applied).
pub fn acks(log: &str) -> (usize, usize) {
    let mut seen = BTreeSet::new();
    let (mut applied, mut reapplied) = (0, 0);
    for line in log.lines().filter(|l| l.contains(ACKED)) {
        let v: Value = serde_json::from_str(line).unwrap();
        for seq in v["seqs"]
            .as_str()
            .unwrap()
            .trim_matches(['[', ']'])
            .split(", ")
            .filter(|s| !s.is_empty())
        {
            applied += 1;
            if !seen.insert(seq.to_string()) {
                reapplied += 1;
            }
        }
    }
    (applied, reapplied)
}

/// The worker's debug line after a group's changes were acked (it carries their seqs).
pub const ACKED: &str = "\"message\":\"acked\"";
