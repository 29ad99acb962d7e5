//! Prometheus metrics: an [`Observer`] of the domain's events. Every name starts with
//! `entra_writeback_`; label values are bounded (`&'static str` kinds and classes, never an
//! object id or an error message).
//!
//! # May import
//! [`crate::model`] only. One [`Metrics`] per process, made by the composition root (`cli`)
//! and rendered by `/metrics`; nothing reaches it but events.

use std::time::Duration;

use crate::model::event::{Event, GroupOutcome, ManagedGroups, Observer, RoundTally};
use crate::model::{QueueStats, Resource, now_ms};

use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};

mod families;

use families::{AD_OPS, AdFamilies, CloudFamilies, WorkFamilies, registered};

/// All of the service's metrics, registered in one registry.
pub struct Metrics {
    registry: Registry,
    cloud: CloudFamilies,
    ad: AdFamilies,
    work: WorkFamilies,
}

impl Metrics {
    /// A fresh registry with every metric of the service, all at zero (build_info at 1).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let build = registered(
            &registry,
            GaugeVec::new(
                Opts::new("entra_writeback_build_info", "Build information; always 1."),
                &["version"],
            )
            .expect("valid metric"),
        );
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        Metrics {
            cloud: CloudFamilies::new(&registry),
            ad: AdFamilies::new(&registry),
            work: WorkFamilies::new(&registry),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }

    /// Sets `entra_writeback_ready` (the `/metrics` handler does, from the readiness it
    /// computes, so the gauge agrees with `/readyz`).
    pub fn set_ready(&self, ready: bool) {
        self.work.ready.set(ready as i64);
    }

    /// LDAP operations so far per operation (`bind`, `search`, `add`, …), any outcome: what
    /// `run --once` reports, less what opening the directory cost.
    pub fn ad_operations_by_op(&self) -> Vec<(&'static str, u64)> {
        AD_OPS
            .iter()
            .map(|op| {
                let n = ["ok", "error"]
                    .map(|r| self.ad.operations.with_label_values(&[op, r]).get())
                    .iter()
                    .sum();
                (*op, n)
            })
            .collect()
    }

    /// LDAP operations so far, all kinds and outcomes.
    pub fn ad_operations_total(&self) -> u64 {
        AD_OPS
            .iter()
            .flat_map(|op| {
                ["ok", "error"].map(|r| self.ad.operations.with_label_values(&[op, r]).get())
            })
            .sum()
    }

    fn group_finished(&self, seen_ms: &[u64], outcome: &GroupOutcome) {
        let n = seen_ms.len() as u64;
        match outcome {
            GroupOutcome::Applied => {
                let now = now_ms();
                for t in seen_ms {
                    self.work
                        .replication_lag
                        .observe(now.saturating_sub(*t) as f64 / 1000.0);
                }
                self.work
                    .changes_applied
                    .with_label_values(&["ok"])
                    .inc_by(n);
            }
            GroupOutcome::DeadLettered { .. } => {
                self.work
                    .changes_applied
                    .with_label_values(&["dead"])
                    .inc_by(n);
                self.work.dead_letters_total.inc_by(n);
            }
            GroupOutcome::Retrying { .. } => {}
        }
    }

    fn round_finished(
        &self,
        resource: Resource,
        duration: Duration,
        outcome: &Result<RoundTally, String>,
    ) {
        let res = resource.as_str();
        self.cloud
            .round_duration
            .with_label_values(&[res])
            .observe(duration.as_secs_f64());
        let (kind, result) = match outcome {
            Ok(t) => (
                if t.full { "full" } else { "incremental" },
                if t.resyncs > 0 { "resync" } else { "ok" },
            ),
            Err(_) => ("unknown", "error"),
        };
        self.cloud
            .rounds
            .with_label_values(&[res, kind, result])
            .inc();
    }

    fn queue(&self, s: &QueueStats) {
        self.work.queue_depth.set(s.depth as i64);
        self.work
            .queue_oldest_age
            .set(s.oldest_age_secs.unwrap_or(0.0));
        self.work.dead_letters.set(s.dead_letters as i64);
        self.work.held_deletes.set(s.held_deletes as i64);
        self.work.frozen_groups.set(s.frozen_groups as i64);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Observer for Metrics {
    fn observe(&self, event: &Event) {
        match event {
            Event::GraphRequest {
                endpoint,
                status_class,
            } => self
                .cloud
                .requests
                .with_label_values(&[endpoint, status_class])
                .inc(),
            Event::GraphThrottled { endpoint } => {
                self.cloud.throttled.with_label_values(&[endpoint]).inc()
            }
            Event::GraphRetryAfter { waited } => {
                self.cloud.retry_after_seconds.inc_by(waited.as_secs_f64())
            }
            Event::Retry { stage } => self.work.retries.with_label_values(&[stage]).inc(),
            Event::GroupLookup { result } => self.cloud.lookups.with_label_values(&[result]).inc(),
            Event::PageCommitted { .. } | Event::Storage { .. } => {}
            Event::RoundFinished {
                resource,
                duration,
                outcome,
            } => self.round_finished(*resource, *duration, outcome),
            Event::CycleSucceeded => self.cloud.last_round_ts.set(now_ms() as f64 / 1000.0),
            Event::ChangesEnqueued { kind, count } => self
                .cloud
                .changes_enqueued
                .with_label_values(&[kind])
                .inc_by(*count),
            Event::MembersSkipped { reason, count } => self
                .ad
                .members_skipped
                .with_label_values(&[reason])
                .inc_by(*count),
            Event::AdOperation { op, ok, duration } => {
                self.ad
                    .duration
                    .with_label_values(&[op])
                    .observe(duration.as_secs_f64());
                self.ad
                    .operations
                    .with_label_values(&[*op, if *ok { "ok" } else { "error" }])
                    .inc();
            }
            Event::AdReachable { up } => self.ad.up.set(*up as i64),
            Event::Conflict { kind } => self.ad.conflicts.with_label_values(&[kind]).inc(),
            Event::ManagedGroups(ManagedGroups::Counted(n)) => {
                self.ad.managed_groups.set(*n as i64)
            }
            Event::ManagedGroups(ManagedGroups::Created) => self.ad.managed_groups.inc(),
            Event::ManagedGroups(ManagedGroups::Deleted) => self.ad.managed_groups.dec(),
            Event::ReconcileCorrection { kind, count } => self
                .ad
                .reconcile_corrections
                .with_label_values(&[kind])
                .inc_by(*count),
            Event::DeleteCancelled { reason } => {
                self.ad.deletes_cancelled.with_label_values(&[reason]).inc()
            }
            Event::GroupFinished {
                seen_ms, outcome, ..
            } => self.group_finished(seen_ms, outcome),
            Event::ChangeRetried => self
                .work
                .changes_applied
                .with_label_values(&["retry"])
                .inc(),
            Event::SecondWriter { kind, .. } => {
                self.ad.second_writers.with_label_values(&[kind]).inc()
            }
            Event::ParkedGroups { count } => self.work.parked_groups.set(*count as i64),
            Event::Quarantine { active } => self.work.quarantined.set(*active as i64),
            Event::Queue(stats) => self.queue(stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one exported series, e.g. `entra_writeback_ad_up`.
    fn value(m: &Metrics, series: &str) -> f64 {
        let prefix = format!("{series} ");
        m.render()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("{series} is not exported"))
    }

    #[test]
    fn events_move_the_series_they_name() {
        let m = Metrics::new();
        assert_eq!(value(&m, "entra_writeback_ad_up"), 0.0);
        m.observe(&Event::AdReachable { up: true });
        m.observe(&Event::AdOperation {
            op: "add",
            ok: false,
            duration: Duration::from_millis(3),
        });
        m.observe(&Event::ManagedGroups(ManagedGroups::Counted(5)));
        m.observe(&Event::ManagedGroups(ManagedGroups::Deleted));
        m.observe(&Event::GroupFinished {
            group_id: "g".into(),
            work: "upsert",
            seen_ms: vec![now_ms(), now_ms()],
            duration: Duration::from_millis(1),
            outcome: GroupOutcome::DeadLettered {
                class: "ldap",
                error: "x".into(),
            },
        });
        m.observe(&Event::RoundFinished {
            resource: Resource::Groups,
            duration: Duration::from_secs(1),
            outcome: Err("down".into()),
        });
        assert_eq!(value(&m, "entra_writeback_ad_up"), 1.0);
        assert_eq!(
            value(
                &m,
                r#"entra_writeback_ad_operations_total{op="add",result="error"}"#
            ),
            1.0
        );
        assert_eq!(value(&m, "entra_writeback_managed_groups"), 4.0);
        assert_eq!(value(&m, "entra_writeback_dead_letters_total"), 2.0);
        assert_eq!(
            value(
                &m,
                r#"entra_writeback_changes_applied_total{result="dead"}"#
            ),
            2.0
        );
        assert_eq!(
            value(
                &m,
                r#"entra_writeback_delta_rounds_total{kind="unknown",resource="groups",result="error"}"#
            ),
            1.0
        );
        assert_eq!(m.ad_operations_total(), 1);
    }
}
