//! The metric families, grouped by what they describe, each registered with its known label
//! values so dashboards and alerts see zeros rather than gaps.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

/// Reading Graph: requests, throttling, lookups, rounds, what the rounds queued.
pub(super) struct CloudFamilies {
    pub(super) requests: IntCounterVec,
    pub(super) throttled: IntCounterVec,
    pub(super) lookups: IntCounterVec,
    pub(super) retry_after_seconds: prometheus::Counter,
    pub(super) rounds: IntCounterVec,
    pub(super) round_duration: HistogramVec,
    pub(super) last_round_ts: Gauge,
    pub(super) changes_enqueued: IntCounterVec,
}

/// Writing AD: operations, reachability, conflicts, the groups owned, corrections.
pub(super) struct AdFamilies {
    pub(super) operations: IntCounterVec,
    pub(super) duration: HistogramVec,
    pub(super) up: IntGauge,
    pub(super) members_skipped: IntCounterVec,
    pub(super) conflicts: IntCounterVec,
    pub(super) managed_groups: IntGauge,
    pub(super) reconcile_corrections: IntCounterVec,
    pub(super) deletes_cancelled: IntCounterVec,
    pub(super) second_writers: IntCounterVec,
}

/// The queue and the worker: outcomes, depth, lag, retries, parking, quarantine, readiness.
pub(super) struct WorkFamilies {
    pub(super) changes_applied: IntCounterVec,
    pub(super) queue_depth: IntGauge,
    pub(super) queue_oldest_age: Gauge,
    pub(super) dead_letters: IntGauge,
    pub(super) dead_letters_total: IntCounter,
    pub(super) held_deletes: IntGauge,
    pub(super) frozen_groups: IntGauge,
    pub(super) retries: IntCounterVec,
    pub(super) replication_lag: Histogram,
    pub(super) parked_groups: IntGauge,
    pub(super) quarantined: IntGauge,
    pub(super) ready: IntGauge,
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
const ENDPOINTS: [&str; 6] = [
    "token",
    "users_delta",
    "groups_delta",
    "group_get",
    "deleted_item_get",
    "sync_behavior_get",
];
const STATUS_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "error"];
const RESOURCES: [&str; 2] = ["users", "groups"];
pub(super) const AD_OPS: [&str; 6] = ["bind", "search", "add", "modify", "modrdn", "delete"];
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
pub(super) fn registered<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: C,
) -> C {
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
    pub(super) fn new(r: &Registry) -> CloudFamilies {
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
    pub(super) fn new(r: &Registry) -> AdFamilies {
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
                    "member_limit",
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
                    "proxy_address",
                    "adopt",
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
                &each(&["wanted", "live_in_cloud", "disagreement", "adopted"]),
            ),
            second_writers: counters(
                r,
                "second_writer_detected_total",
                "Groups frozen because another tool kept reverting what the service wrote.",
                &["kind"],
                &each(&["attribute", "member"]),
            ),
        }
    }
}

impl WorkFamilies {
    pub(super) fn new(r: &Registry) -> WorkFamilies {
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
            frozen_groups: int_gauge(
                r,
                "frozen_groups",
                "Groups frozen because another writer reverted them, until approve-writes.",
            ),
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
