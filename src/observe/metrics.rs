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

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

/// All of the service's metrics, registered in one registry.
pub struct Metrics {
    registry: Registry,
    cloud: CloudFamilies,
    ad: AdFamilies,
    work: WorkFamilies,
}

/// Reading Graph: requests, throttling, lookups, rounds, what the rounds queued.
struct CloudFamilies {
    requests: IntCounterVec,
    throttled: IntCounterVec,
    lookups: IntCounterVec,
    retry_after_seconds: prometheus::Counter,
    rounds: IntCounterVec,
    round_duration: HistogramVec,
    last_round_ts: Gauge,
    changes_enqueued: IntCounterVec,
}

/// Writing AD: operations, reachability, conflicts, the groups owned, corrections.
struct AdFamilies {
    operations: IntCounterVec,
    duration: HistogramVec,
    up: IntGauge,
    members_skipped: IntCounterVec,
    conflicts: IntCounterVec,
    managed_groups: IntGauge,
    reconcile_corrections: IntCounterVec,
    deletes_cancelled: IntCounterVec,
}

/// The queue and the worker: outcomes, depth, lag, retries, parking, quarantine, readiness.
struct WorkFamilies {
    changes_applied: IntCounterVec,
    queue_depth: IntGauge,
    queue_oldest_age: Gauge,
    dead_letters: IntGauge,
    dead_letters_total: IntCounter,
    held_deletes: IntGauge,
    retries: IntCounterVec,
    replication_lag: Histogram,
    parked_groups: IntGauge,
    quarantined: IntGauge,
    ready: IntGauge,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(format!("entra_writeback_{name}"), help), labels)
        .expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(format!("entra_writeback_{name}"), help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(format!("entra_writeback_{name}"), help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

/// A one-label histogram family with a series per value of `series`.
fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    series: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(format!("entra_writeback_{name}"), help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    for s in series {
        h.with_label_values(&[s]);
    }
    h
}

/// Label values each labelled family starts with, so dashboards and alerts see zeros, not
/// gaps: a family without a series is left out of the exposition altogether, and `rate()`
/// over it is "no data", not 0.
const ENDPOINTS: [&str; 5] = [
    "token",
    "users_delta",
    "groups_delta",
    "group_get",
    "deleted_item_get",
];
const STATUS_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "error"];
const RESOURCES: [&str; 2] = ["users", "groups"];
const AD_OPS: [&str; 6] = ["bind", "search", "add", "modify", "modrdn", "delete"];
const ROUND_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];
const AD_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const LAG_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

/// Registers `c` in `r` and hands it back.
fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

/// A labelled counter family with the given series pre-created.
fn counters(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    series: &[Vec<&str>],
) -> IntCounterVec {
    let c = counter_vec(r, name, help, labels);
    for s in series {
        c.with_label_values(s);
    }
    c
}

/// Every combination of `a` × `b`, as label value lists.
fn cross<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Vec<&'a str>> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| vec![*x, *y]))
        .collect()
}

/// Single-label series lists.
fn each<'a>(values: &[&'a str]) -> Vec<Vec<&'a str>> {
    values.iter().map(|v| vec![*v]).collect()
}

impl CloudFamilies {
    fn new(r: &Registry) -> CloudFamilies {
        let mut rounds_series = Vec::new();
        for res in RESOURCES {
            for kind in ["full", "incremental"] {
                for result in ["ok", "resync"] {
                    rounds_series.push(vec![res, kind, result]);
                }
            }
            rounds_series.push(vec![res, "unknown", "error"]);
        }
        let graph_series = cross(&ENDPOINTS, &STATUS_CLASSES);
        CloudFamilies {
            requests: counters(
                r,
                "graph_requests_total",
                "Graph HTTP requests.",
                &["endpoint", "status_class"],
                &graph_series,
            ),
            throttled: counters(
                r,
                "graph_throttled_total",
                "Graph 429/503/504 answers.",
                &["endpoint"],
                &each(&ENDPOINTS),
            ),
            lookups: counters(
                r,
                "graph_lookups_total",
                "Group state lookups (live, soft-deleted, purged) and failed lookups.",
                &["result"],
                &each(&["live", "soft_deleted", "purged", "error"]),
            ),
            retry_after_seconds: registered(
                r,
                prometheus::Counter::new(
                    "entra_writeback_graph_retry_after_seconds_total",
                    "Seconds waited because Graph sent Retry-After.",
                )
                .expect("valid metric"),
            ),
            rounds: counters(
                r,
                "delta_rounds_total",
                "Delta rounds.",
                &["resource", "kind", "result"],
                &rounds_series,
            ),
            round_duration: histogram_vec(
                r,
                "delta_round_duration_seconds",
                "Delta round duration.",
                &["resource"],
                &RESOURCES,
                &ROUND_BUCKETS,
            ),
            last_round_ts: gauge(
                r,
                "last_successful_round_timestamp_seconds",
                "Unix time of the last successful poll cycle.",
            ),
            changes_enqueued: counters(
                r,
                "changes_enqueued_total",
                "Changes queued.",
                &["kind"],
                &each(&["upsert", "reconcile", "delete", "sweep"]),
            ),
        }
    }
}

impl AdFamilies {
    fn new(r: &Registry) -> AdFamilies {
        AdFamilies {
            operations: counters(
                r,
                "ad_operations_total",
                "LDAP operations.",
                &["op", "result"],
                &cross(&AD_OPS, &["ok", "error"]),
            ),
            duration: histogram_vec(
                r,
                "ad_operation_duration_seconds",
                "LDAP operation latency.",
                &["op"],
                &AD_OPS,
                &AD_BUCKETS,
            ),
            up: int_gauge(r, "ad_up", "1 if the last AD bind succeeded."),
            members_skipped: counters(
                r,
                "members_skipped_total",
                "Members not written to AD.",
                &["reason"],
                &each(&[
                    "cloud_only",
                    "unresolved",
                    "unsupported_type",
                    "not_in_scope",
                ]),
            ),
            conflicts: counters(
                r,
                "conflicts_total",
                "Ownership and naming conflicts.",
                &["kind"],
                &each(&[
                    "name",
                    "sam_account_name",
                    "anchor_mismatch",
                    "duplicate_anchor",
                ]),
            ),
            managed_groups: int_gauge(r, "managed_groups", "Groups owned in AD."),
            reconcile_corrections: counters(
                r,
                "reconcile_corrections_total",
                "Drift corrected.",
                &["kind"],
                &each(&["attribute", "member_add", "member_remove", "orphan"]),
            ),
            deletes_cancelled: counters(
                r,
                "deletes_cancelled_total",
                "Destructive actions cancelled when re-checked at execution.",
                &["reason"],
                &each(&["wanted", "live_in_cloud", "disagreement"]),
            ),
        }
    }
}

impl WorkFamilies {
    fn new(r: &Registry) -> WorkFamilies {
        WorkFamilies {
            changes_applied: counters(
                r,
                "changes_applied_total",
                "Changes finished.",
                &["result"],
                &each(&["ok", "retry", "dead"]),
            ),
            queue_depth: int_gauge(r, "queue_depth", "Pending changes."),
            queue_oldest_age: gauge(
                r,
                "queue_oldest_age_seconds",
                "Age of the oldest pending change.",
            ),
            dead_letters: int_gauge(r, "dead_letters", "Current dead letters."),
            dead_letters_total: registered(
                r,
                IntCounter::new(
                    "entra_writeback_dead_letters_total",
                    "Changes dead-lettered.",
                )
                .expect("valid metric"),
            ),
            held_deletes: int_gauge(r, "held_deletes", "Deletes held by the delete threshold."),
            retries: counters(
                r,
                "retries_total",
                "Retries.",
                &["stage"],
                &each(&["graph", "ad"]),
            ),
            replication_lag: registered(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "entra_writeback_replication_lag_seconds",
                        "Time from a change being read from Graph to AD confirming it.",
                    )
                    .buckets(LAG_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            parked_groups: int_gauge(
                r,
                "parked_groups",
                "Groups waiting out their own backoff after repeated transient failures.",
            ),
            quarantined: int_gauge(r, "quarantined", "1 while quarantined."),
            ready: int_gauge(r, "ready", "1 while ready."),
        }
    }
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

    /// LDAP operations counted so far, all kinds and results.
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
            Event::ParkedGroups { count } => self.work.parked_groups.set(*count as i64),
            Event::Quarantine { active } => self.work.quarantined.set(*active as i64),
            Event::Queue(stats) => self.queue(stats),
        }
    }
}
