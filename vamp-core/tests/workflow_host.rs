//! The `vamp` object of JavaScript workflows, answered by the facade in-process: every method,
//! and bad calls refused with what to fix.

use std::sync::Arc;

use serde_json::{Value, json};
use vamp_core::Vamp;
use vamp_core::memory::{MemoryDriver, RecordingRouter};
use vamp_core::traits::{LatencyHistogram, RouteStats, ScriptHost};
use vamp_core::workflow::WorkflowHost;

fn host() -> WorkflowHost {
    host_with(RecordingRouter::last_only())
}

fn host_with(router: RecordingRouter) -> WorkflowHost {
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .router(Arc::new(router))
        .build()
        .unwrap();
    WorkflowHost::new(vamp, "test")
}

#[tokio::test]
async fn artifacts_are_created_read_listed_updated_and_removed() {
    let h = host();
    let breed = json!({"name": "web:1", "deployable": "web:1"});
    let stored = h.call("create", json!(["breeds", breed])).await.unwrap();
    assert_eq!(stored["name"], "web:1");
    let got = h.call("get", json!(["breed", "web:1"])).await.unwrap();
    assert_eq!(got["deployable"]["definition"], "web:1");
    assert_eq!(
        h.call("get", json!(["breeds", "nope"])).await.unwrap(),
        Value::Null
    );
    let updated = h
        .call("update", json!(["breeds", "web:1", "deployable: web:2\n"]))
        .await;
    // DSL text keeps its own name: here it has none, so it is refused with the reason.
    assert!(updated.is_err());
    h.call(
        "update",
        json!(["breeds", "web:1", {"deployable": "web:2"}]),
    )
    .await
    .unwrap();
    let all = h.call("list", json!(["breeds"])).await.unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["deployable"]["definition"], "web:2");
    assert_eq!(
        h.call("remove", json!(["breeds", "web:1"])).await.unwrap(),
        json!(true)
    );
    assert_eq!(
        h.call("remove", json!(["breeds", "web:1"])).await.unwrap(),
        json!(false)
    );
}

#[tokio::test]
async fn events_are_published_and_read_back_newest_first() {
    let h = host();
    for n in 1..=2 {
        let e = h
            .call("event", json!([["canary", "canary:shop"], n, "metrics"]))
            .await
            .unwrap();
        assert_eq!(e["type"], "metrics");
    }
    let events = h.call("events", json!([["canary:shop"]])).await.unwrap();
    assert_eq!(events[0]["value"], 2);
    assert_eq!(events.as_array().map(Vec::len), Some(2));
    assert!(
        h.call("event", json!([[], 1])).await.is_err(),
        "a tag is required"
    );
}

#[tokio::test]
async fn bad_calls_say_what_to_fix() {
    let h = host();
    let e = h.call("launch", json!([])).await.unwrap_err().to_string();
    assert!(
        e.contains("vamp.launch is not a method") && e.contains("setWeights"),
        "{e}"
    );
    let e = h
        .call("list", json!(["spaceships"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an artifact kind"), "{e}");
    let e = h
        .call("get", json!(["breeds"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("argument 2 (name)"), "{e}");
    let e = h
        .call("setWeights", json!(["nope", {"a": 101}]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("0–100"), "{e}");
    let e = h
        .call("setWeights", json!(["nope", {"a": "50%"}]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    assert_eq!(h.call("deployments", json!([])).await.unwrap(), json!([]));
    assert_eq!(h.call("gateways", json!([])).await.unwrap(), json!([]));
    assert_eq!(h.call("stats", json!([])).await.unwrap(), json!([]));
}

/// The router's counters and the newest health and metrics events, as the node client's
/// `count`, `average`, `percentile`, `health` and `metrics` gave them.
#[tokio::test]
async fn traffic_figures_come_from_the_routers_counters_and_the_newest_events() {
    let router = RecordingRouter::last_only();
    let route = |name: &str, requests: u64, fast: u64| RouteStats {
        gateway: "shop/web".into(),
        route: name.into(),
        requests,
        errors: 0,
        latency: LatencyHistogram {
            // `fast` answers within 10 ms, the rest within 100 ms.
            buckets: vec![(10.0, fast), (100.0, requests - fast)],
            sum_ms: 5.0 * fast as f64 + 50.0 * (requests - fast) as f64,
        },
    };
    router.set_stats(vec![route("a", 80, 80), route("b", 20, 0)]);
    let h = host_with(router);
    assert_eq!(
        h.call("count", json!(["shop/web"])).await.unwrap(),
        json!(100)
    );
    assert_eq!(
        h.call("count", json!(["shop/web", "b"])).await.unwrap(),
        json!(20)
    );
    assert_eq!(h.call("count", json!(["nope"])).await.unwrap(), json!(0));
    assert_eq!(
        h.call("average", json!(["shop/web", "b"])).await.unwrap(),
        json!(50.0)
    );
    assert_eq!(
        h.call("average", json!(["nope"])).await.unwrap(),
        Value::Null
    );
    let p50 = h.call("percentile", json!(["shop/web", 50])).await.unwrap();
    assert!(p50.as_f64().is_some_and(|v| v <= 10.0), "{p50}");
    let p99 = h.call("percentile", json!(["shop/web", 99])).await.unwrap();
    assert!(
        p99.as_f64().is_some_and(|v| v > 10.0 && v <= 100.0),
        "{p99}"
    );
    assert!(
        h.call("percentile", json!(["shop/web", 120]))
            .await
            .is_err()
    );

    assert_eq!(
        h.call("health", json!(["shop/web"])).await.unwrap(),
        Value::Null
    );
    h.call("event", json!([["gateways:shop/web", "health"], 0]))
        .await
        .unwrap();
    h.call("event", json!([["gateways:shop/web", "health"], 1]))
        .await
        .unwrap();
    h.call(
        "event",
        json!([["gateways:shop/web", "routes:b", "metrics:rate"], 4.5]),
    )
    .await
    .unwrap();
    // A route's value, tagged as the stock workflow tags it (the gateway's tags and more),
    // is not the gateway's.
    h.call(
        "event",
        json!([
            [
                "gateways:shop/web",
                "gateway",
                "routes:b",
                "route",
                "health"
            ],
            0
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        h.call("health", json!(["shop/web"])).await.unwrap(),
        json!(1)
    );
    assert_eq!(
        h.call("health", json!(["shop/web", "b"])).await.unwrap(),
        json!(0)
    );
    assert_eq!(
        h.call("metrics", json!(["shop/web", "rate", "b"]))
            .await
            .unwrap(),
        json!(4.5)
    );
    assert_eq!(
        h.call("metrics", json!(["shop/web", "rate", "a"]))
            .await
            .unwrap(),
        Value::Null
    );
}

#[tokio::test]
async fn traffic_is_what_the_counters_grew_by_since_the_first_call() {
    let router = RecordingRouter::last_only();
    let stats = |requests: u64, errors: u64| {
        vec![RouteStats {
            gateway: "shop/web".into(),
            route: "shop/web/a".into(),
            requests,
            errors,
            latency: LatencyHistogram {
                buckets: vec![(f64::INFINITY, requests)],
                sum_ms: 4.0 * requests as f64,
            },
        }]
    };
    router.set_stats(stats(10, 0));
    let h = host_with(router.clone());
    let first = h.call("traffic", json!([60])).await.unwrap();
    assert_eq!(first["seconds"], json!(0.0), "the baseline: {first}");
    assert_eq!(first["counted"], json!(true));
    assert_eq!(first["gateways"][0]["requests"], json!(0));
    router.set_stats(stats(25, 3));
    let t = h.call("traffic", json!([60])).await.unwrap();
    let g = &t["gateways"][0];
    assert_eq!(g["name"], "shop/web", "{t}");
    assert_eq!(
        (g["requests"].as_u64(), g["errors"].as_u64()),
        (Some(15), Some(3))
    );
    assert_eq!(g["responseTime"], json!(4.0));
    assert_eq!(g["routes"][0]["name"], "shop/web/a");
    assert_eq!(g["routes"][0]["requests"], json!(15));
    assert!(h.call("traffic", json!([0])).await.is_err());
    assert!(h.call("traffic", json!(["soon"])).await.is_err());
}

#[tokio::test]
async fn the_stock_workflows_install_once_and_refuse_deletion() {
    use vamp_core::model::{Kind, WorkflowStatus};
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .build()
        .unwrap();
    let installed = vamp.install_stock_workflows().await.unwrap();
    assert_eq!(installed, ["health", "metrics", "allocation"]);
    assert!(
        vamp.install_stock_workflows().await.unwrap().is_empty(),
        "what is stored stays as it is"
    );
    let refused = vamp.delete(Kind::Workflow, "health").await;
    assert!(
        matches!(refused, Err(vamp_core::Error::Refused { .. })),
        "{refused:?}"
    );
    assert!(
        vamp.set_workflow_status("metrics", WorkflowStatus::Stopping)
            .await
            .is_err()
    );
    assert!(
        vamp.set_workflow_status("metrics", WorkflowStatus::Suspending)
            .await
            .unwrap()
            .is_some(),
        "suspending is allowed"
    );
    assert!(
        vamp.get(Kind::Workflow, "allocation")
            .await
            .unwrap()
            .is_some()
    );
}
