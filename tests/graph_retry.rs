//! Graph retries and the request rate, against graph-sim and a real Samba AD DC: Retry-After
//! precision and backoff, at most `[sync] max_attempts` tries, and the configured
//! requests-per-second ceiling. Each test reads graph-sim's request log.

mod common;
#[path = "graph_fidelity/support.rs"]
mod support;

use common::samba;
use common::service::tail;
use common::sim::{GraphSim, oid};
use serde_json::{Value, json};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn throttling_honours_retry_after_and_backs_off_without_tight_loops() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-throttle").await;
    let g = oid(0x3004, 1);
    let sim = GraphSim::start(vec![], vec![sec(&g, "Throttled 0", vec![])], &[]);
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();

    // (status, Retry-After, count, lowest and highest allowed gap in ms). The gap is measured
    // between graph-sim's answer to the throttled request and its answer to the retry, so it is
    // never shorter than the client's wait: the lower bounds are exact (Retry-After; without it,
    // MIN_RETRY_WAIT = 100 ms) and catch a client that retries early. The upper bounds are the
    // point of Retry-After precision (it is not padded with the backoff, nor doubled): the wait
    // itself (Retry-After, or at most max_backoff = 1 s without one) plus 1.1-1.5 s for the
    // retry's round trip and scheduling on a loaded 2-core machine, against a few ms measured.
    let cases: [(u16, Option<&str>, u32, f64, f64); 4] = [
        (429, Some("1.5"), 1, 1500.0, 3000.0),
        (503, Some("0.4"), 1, 400.0, 1500.0),
        (504, None, 3, 100.0, 2500.0),
        (429, None, 2, 100.0, 2500.0),
    ];
    for (i, (status, ra, count, lo, hi)) in cases.into_iter().enumerate() {
        let mut t = json!({"count": count, "status": status});
        if let Some(ra) = ra {
            t["retry_after"] = json!(ra);
        }
        sim.faults(json!({ "throttle": t })).await;
        sim.put_group(&g, json!({"displayName": format!("Throttled {}", i + 1)}))
            .await;
        sim.clear_requests().await;
        svc.once_ok();
        let log = sim.requests().await;
        let reqs = graph_requests(&log);
        let throttled: Vec<usize> = (0..reqs.len())
            .filter(|&k| reqs[k]["status"] == status)
            .collect();
        assert_eq!(throttled.len(), count as usize, "{reqs:?}");
        for k in throttled {
            let gap = reqs[k + 1]["at_ms"].as_f64().unwrap() - reqs[k]["at_ms"].as_f64().unwrap();
            println!("HTTP {status} Retry-After {ra:?}: next request {gap:.0} ms later");
            assert!(
                gap >= lo && gap < hi,
                "HTTP {status} Retry-After {ra:?}: retried after {gap} ms"
            );
            assert_eq!(
                reqs[k + 1]["path"],
                reqs[k]["path"],
                "the same request is retried"
            );
            assert_eq!(reqs[k + 1]["query"], reqs[k]["query"]);
        }
        let name = &ad(dc, &ou).await[&anchor(&g)].0;
        assert_eq!(name, &format!("Throttled {}", i + 1));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_rate_stays_under_the_configured_ceiling() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gf-rate").await;
    let groups: Vec<Value> = (0..12)
        .map(|i| sec(&oid(0x3005, i), &format!("Rate {i}"), vec![]))
        .collect();
    let sim = GraphSim::start(vec![], groups, &["--page-size", "1"]);
    let svc = service(&sim, dc, &ou, "max_requests_per_second = 4", "", "");
    svc.once_ok();
    assert_eq!(ad(dc, &ou).await.len(), 12);
    let log = sim.requests().await;
    let at: Vec<f64> = graph_requests(&log)
        .iter()
        .map(|r| r["at_ms"].as_f64().unwrap())
        .collect();
    assert!(at.len() >= 13, "{} requests", at.len());
    // Never 5 requests within one second. The log stamps each request when it is answered, so a
    // window can look shorter than the limiter made it by the difference of two requests'
    // latencies (loopback, a page of one group: a few ms); 100 ms covers that on a loaded
    // machine, while a limiter letting 5 through (in bursts of its rate) shows ~0 ms and one
    // at 4.5/s shows 889 ms.
    for w in at.windows(5) {
        assert!(
            w[4] - w[0] >= 900.0,
            "5 requests within {} ms: {at:?}",
            w[4] - w[0]
        );
    }
    let span = at[at.len() - 1] - at[0];
    println!("{} Graph requests at ≤ 4/s took {span:.0} ms", at.len());
    assert!(
        span >= ((at.len() - 1) / 4) as f64 * 1000.0 - 150.0,
        "{span} ms"
    );
}

/// A request that keeps failing (503, no Retry-After) is tried exactly `[sync] max_attempts`
/// times, each try after a real wait, and then the round fails (nothing is half-committed: once
/// Graph recovers, the change lands).
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_request_is_tried_exactly_max_attempts_times() {
    let dc = samba::shared();
    let ou = dc.fresh_ou("gr-attempts").await;
    let g = oid(0x3004, 11);
    let sim = GraphSim::start(vec![], vec![sec(&g, "Attempts 0", vec![])], &[]);
    let svc = service(&sim, dc, &ou, "", "", "");
    svc.once_ok();
    let mut configured = 4;
    for max in [4, 2, 1] {
        edit_graph(
            &svc,
            "",
            &[(
                &format!("max_attempts = {configured}\n"),
                &format!("max_attempts = {max}\n"),
            )],
        );
        configured = max;
        sim.faults(
            json!({"throttle": {"count": 1000, "status": 503, "path": "/v1.0/users/delta"}}),
        )
        .await;
        sim.put_group(&g, json!({"displayName": format!("Attempts {max}")}))
            .await;
        sim.clear_requests().await;
        let out = svc.run(&["run", "--once"]);
        assert!(!out.status.success(), "{}", tail(&stderr(&out)));
        let log = sim.requests().await;
        let reqs = graph_requests(&log);
        let seen: Vec<(&Value, &Value)> = reqs.iter().map(|r| (&r["path"], &r["status"])).collect();
        assert_eq!(
            reqs.len(),
            max,
            "max_attempts = {max}: one request tried {max} times, no other: {seen:?}"
        );
        assert!(
            reqs.iter()
                .all(|r| r["status"] == 503 && r["path"] == "/v1.0/users/delta"),
            "{seen:?}"
        );
        for w in reqs.windows(2) {
            let gap = w[1]["at_ms"].as_f64().unwrap() - w[0]["at_ms"].as_f64().unwrap();
            assert!(gap >= 100.0, "retried {gap} ms later: never a tight loop");
        }
        sim.clear_faults().await;
        svc.once_ok();
        assert_eq!(
            ad(dc, &ou).await[&anchor(&g)].0,
            format!("Attempts {max}"),
            "the change lands once Graph recovers"
        );
    }
}
