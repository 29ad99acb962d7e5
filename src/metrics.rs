//! Prometheus metrics. Every name starts with `entra_writeback_`; label values are bounded
//! (`&'static str` kinds and classes, never an object id or an error message).

use std::sync::OnceLock;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

/// All of the service's metrics, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// Graph HTTP requests by endpoint and status class.
    pub graph_requests: IntCounterVec,
    /// 429/503/504 answers by endpoint.
    pub graph_throttled: IntCounterVec,
    /// Point lookups of a group's cloud state (`graph::lookup`), by result: how often the
    /// service had to ask whether a group is live, soft-deleted or purged, and how often Graph
    /// could not say.
    pub graph_lookups: IntCounterVec,
    /// Seconds spent waiting on `Retry-After`.
    pub graph_retry_after_seconds: prometheus::Counter,
    /// Delta rounds by resource, kind and result.
    pub rounds: IntCounterVec,
    /// Delta round duration.
    pub round_duration: HistogramVec,
    /// Unix time of the last fully successful poll cycle.
    pub last_round_ts: Gauge,
    /// Changes queued by kind.
    pub changes_enqueued: IntCounterVec,
    /// Changes finished by result.
    pub changes_applied: IntCounterVec,
    /// Pending changes.
    pub queue_depth: IntGauge,
    /// Age of the oldest pending change.
    pub queue_oldest_age: Gauge,
    /// Current dead letters.
    pub dead_letters: IntGauge,
    /// Dead letters created.
    pub dead_letters_total: IntCounter,
    /// Deletes held by the threshold.
    pub held_deletes: IntGauge,
    /// LDAP operations by kind and result.
    pub ad_operations: IntCounterVec,
    /// LDAP operation latency.
    pub ad_duration: HistogramVec,
    /// 1 if the last AD bind succeeded.
    pub ad_up: IntGauge,
    /// Retries by stage.
    pub retries: IntCounterVec,
    /// Change seen in Graph → applied in AD.
    pub replication_lag: Histogram,
    /// Members not written, by reason.
    pub members_skipped: IntCounterVec,
    /// Ownership and naming conflicts.
    pub conflicts: IntCounterVec,
    /// Groups the service owns in AD (last count).
    pub managed_groups: IntGauge,
    /// Drift corrected by reconciliation.
    pub reconcile_corrections: IntCounterVec,
    /// Destructive actions cancelled at execution, by why the group was kept.
    pub deletes_cancelled: IntCounterVec,
    /// Groups parked after repeated transient failures (others proceed meanwhile).
    pub parked_groups: IntGauge,
    /// 1 while quarantined.
    pub quarantined: IntGauge,
    /// 1 while `/readyz` would answer 200.
    pub ready: IntGauge,
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

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(format!("entra_writeback_{name}"), help).buckets(buckets),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let build = GaugeVec::new(
            Opts::new("entra_writeback_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        r.register(Box::new(build.clone())).expect("unique metric");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        let retry_after = prometheus::Counter::new(
            "entra_writeback_graph_retry_after_seconds_total",
            "Seconds waited because Graph sent Retry-After.",
        )
        .expect("valid metric");
        r.register(Box::new(retry_after.clone()))
            .expect("unique metric");
        let lag = Histogram::with_opts(
            HistogramOpts::new(
                "entra_writeback_replication_lag_seconds",
                "Time from a change being read from Graph to AD confirming it.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(lag.clone())).expect("unique metric");
        let dead_total = IntCounter::new(
            "entra_writeback_dead_letters_total",
            "Changes dead-lettered.",
        )
        .expect("valid");
        r.register(Box::new(dead_total.clone()))
            .expect("unique metric");
        let m = Metrics {
            graph_requests: counter_vec(
                &r,
                "graph_requests_total",
                "Graph HTTP requests.",
                &["endpoint", "status_class"],
            ),
            graph_throttled: counter_vec(
                &r,
                "graph_throttled_total",
                "Graph 429/503/504 answers.",
                &["endpoint"],
            ),
            graph_lookups: counter_vec(
                &r,
                "graph_lookups_total",
                "Group state lookups (live, soft-deleted, purged) and failed lookups.",
                &["result"],
            ),
            graph_retry_after_seconds: retry_after,
            rounds: counter_vec(
                &r,
                "delta_rounds_total",
                "Delta rounds.",
                &["resource", "kind", "result"],
            ),
            round_duration: histogram_vec(
                &r,
                "delta_round_duration_seconds",
                "Delta round duration.",
                &["resource"],
                vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                ],
            ),
            last_round_ts: gauge(
                &r,
                "last_successful_round_timestamp_seconds",
                "Unix time of the last successful poll cycle.",
            ),
            changes_enqueued: counter_vec(
                &r,
                "changes_enqueued_total",
                "Changes queued.",
                &["kind"],
            ),
            changes_applied: counter_vec(
                &r,
                "changes_applied_total",
                "Changes finished.",
                &["result"],
            ),
            queue_depth: int_gauge(&r, "queue_depth", "Pending changes."),
            queue_oldest_age: gauge(
                &r,
                "queue_oldest_age_seconds",
                "Age of the oldest pending change.",
            ),
            dead_letters: int_gauge(&r, "dead_letters", "Current dead letters."),
            dead_letters_total: dead_total,
            held_deletes: int_gauge(&r, "held_deletes", "Deletes held by the delete threshold."),
            ad_operations: counter_vec(
                &r,
                "ad_operations_total",
                "LDAP operations.",
                &["op", "result"],
            ),
            ad_duration: histogram_vec(
                &r,
                "ad_operation_duration_seconds",
                "LDAP operation latency.",
                &["op"],
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            ),
            ad_up: int_gauge(&r, "ad_up", "1 if the last AD bind succeeded."),
            retries: counter_vec(&r, "retries_total", "Retries.", &["stage"]),
            replication_lag: lag,
            members_skipped: counter_vec(
                &r,
                "members_skipped_total",
                "Members not written to AD.",
                &["reason"],
            ),
            conflicts: counter_vec(
                &r,
                "conflicts_total",
                "Ownership and naming conflicts.",
                &["kind"],
            ),
            managed_groups: int_gauge(&r, "managed_groups", "Groups owned in AD."),
            reconcile_corrections: counter_vec(
                &r,
                "reconcile_corrections_total",
                "Drift corrected.",
                &["kind"],
            ),
            deletes_cancelled: counter_vec(
                &r,
                "deletes_cancelled_total",
                "Destructive actions cancelled when re-checked at execution.",
                &["reason"],
            ),
            parked_groups: int_gauge(
                &r,
                "parked_groups",
                "Groups waiting out their own backoff after repeated transient failures.",
            ),
            quarantined: int_gauge(&r, "quarantined", "1 while quarantined."),
            ready: int_gauge(&r, "ready", "1 while ready."),
            registry: r,
        };
        // Pre-create the common series so dashboards and alerts see zeros, not gaps.
        for stage in ["graph", "ad"] {
            m.retries.with_label_values(&[stage]);
        }
        for result in ["ok", "retry", "dead"] {
            m.changes_applied.with_label_values(&[result]);
        }
        // Every labelled family gets its known label values up front: a family without a series
        // is left out of the exposition altogether, and `rate()` over it is "no data", not 0.
        for endpoint in [
            "token",
            "users_delta",
            "groups_delta",
            "group_get",
            "deleted_item_get",
        ] {
            m.graph_throttled.with_label_values(&[endpoint]);
            for class in ["2xx", "4xx", "5xx", "error"] {
                m.graph_requests.with_label_values(&[endpoint, class]);
            }
        }
        for result in ["live", "soft_deleted", "purged", "error"] {
            m.graph_lookups.with_label_values(&[result]);
        }
        for resource in ["users", "groups"] {
            m.round_duration.with_label_values(&[resource]);
            for kind in ["full", "incremental"] {
                for result in ["ok", "resync"] {
                    m.rounds.with_label_values(&[resource, kind, result]);
                }
            }
            m.rounds.with_label_values(&[resource, "unknown", "error"]);
        }
        for kind in ["upsert", "reconcile", "delete", "sweep"] {
            m.changes_enqueued.with_label_values(&[kind]);
        }
        for op in ["bind", "search", "add", "modify", "modrdn", "delete"] {
            m.ad_duration.with_label_values(&[op]);
            for result in ["ok", "error"] {
                m.ad_operations.with_label_values(&[op, result]);
            }
        }
        for reason in [
            "cloud_only",
            "unresolved",
            "unsupported_type",
            "not_in_scope",
        ] {
            m.members_skipped.with_label_values(&[reason]);
        }
        for kind in [
            "name",
            "sam_account_name",
            "anchor_mismatch",
            "duplicate_anchor",
        ] {
            m.conflicts.with_label_values(&[kind]);
        }
        for reason in ["wanted", "live_in_cloud", "disagreement"] {
            m.deletes_cancelled.with_label_values(&[reason]);
        }
        for kind in ["attribute", "member_add", "member_remove", "orphan"] {
            m.reconcile_corrections.with_label_values(&[kind]);
        }
        m
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Counts a Graph response (or transport failure) and passes it on.
pub fn observe_graph(
    endpoint: &'static str,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, crate::graph::GraphError> {
    let class = match &resp {
        Ok(r) => match r.status().as_u16() {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        Err(_) => "error",
    };
    get()
        .graph_requests
        .with_label_values(&[endpoint, class])
        .inc();
    resp.map_err(crate::graph::GraphError::network)
}

/// Sets `managed_groups` from AD (one search for our anchors under the target OU), so the
/// gauge is right from start-up rather than only after the next full round's sweep.
pub async fn count_managed_groups(dir: &crate::directory::Directory) {
    match dir.list_owned().await {
        Ok(owned) => get().managed_groups.set(owned.len() as i64),
        Err(e) => tracing::warn!(error = %e, "cannot count the groups owned in AD"),
    }
}

/// Sets the queue gauges from the store; a store that cannot be read marks storage as failing.
pub fn publish_queue_gauges(store: &crate::queue::Store, health: &crate::health::Health) {
    let m = get();
    match store.stats() {
        Ok(s) => {
            m.queue_depth.set(s.depth as i64);
            m.queue_oldest_age.set(s.oldest_age_secs.unwrap_or(0.0));
            m.dead_letters.set(s.dead_letters as i64);
            m.held_deletes.set(s.held_deletes as i64);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read queue stats");
            health.set_storage_failed(true);
        }
    }
}
