//! The SLA runtime on the in-memory driver, fed `metrics:responseTime` events as the stock
//! `metrics` workflow publishes them: slow responses escalate (one more instance), fast ones
//! de-escalate, the cooldown holds, and SLA events posted by anyone drive escalations.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use vamp_core::memory::{MemoryDriver, MemoryPersistence, RecordingRouter};
use vamp_core::model::*;
use vamp_core::{Vamp, dsl};

fn one(text: &str) -> Artifact {
    dsl::read(text, None).unwrap().remove(0)
}

/// A deployment `shop` with cluster `web` under `sla` (YAML, indented for the cluster), converged;
/// `stored` (YAML documents) are stored first.
async fn deployed(sla: &str, stored: &str) -> (Vamp, RecordingRouter) {
    let router = RecordingRouter::default();
    let vamp = Vamp::builder()
        .persistence(Arc::new(MemoryPersistence::default()))
        .driver(Arc::new(MemoryDriver::default()))
        .router(Arc::new(router.clone()))
        .build()
        .unwrap();
    let text = format!(
        "---\nkind: breeds\nname: web:1\ndeployable: img\nports: {{web: 8080/http}}\n{stored}"
    );
    for a in dsl::read(&text, None).unwrap() {
        vamp.put(a).await.unwrap();
    }
    let Artifact::Blueprint(bp) = one(&format!(
        "kind: blueprints\nname: shop\nclusters:\n  web:\n    breed: web:1\n    sla:\n{sla}"
    )) else {
        panic!("a blueprint")
    };
    vamp.deploy("shop", &bp).await.unwrap();
    while !vamp.reconcile().await.unwrap().converged {}
    (vamp, router)
}

const SLA: &str = "      type: response_time_sliding_window
      threshold: {upper: 100, lower: 10}
      window: {interval: 60, cooldown: 30}
      escalations:
        - type: scale_instances
          minimum: 1
          maximum: 2
          scale_by: 1
";

/// What the stock `metrics` workflow publishes for the cluster's gateway: its mean
/// response time `ms` at `at` (spec §5.2).
async fn measured(vamp: &Vamp, ms: f64, at: DateTime<Utc>) {
    let mut e = Event::new(
        ["gateways:shop/web/web", "gateway", "metrics:responseTime"],
        serde_json::json!(ms),
    );
    e.kind = "metrics".into();
    e.timestamp = at;
    vamp.publish(&e).await.unwrap();
}

/// A route-level value of the same gateway, tagged as the workflow tags them (its gateway's
/// tags and more): never read as the gateway's.
async fn route_measured(vamp: &Vamp, ms: f64, at: DateTime<Utc>) {
    let mut e = Event::new(
        [
            "gateways:shop/web/web",
            "gateway",
            "routes:shop/web/web:1/web",
            "route",
            "metrics:responseTime",
        ],
        serde_json::json!(ms),
    );
    e.kind = "metrics".into();
    e.timestamp = at;
    vamp.publish(&e).await.unwrap();
}

async fn instances(vamp: &Vamp) -> u32 {
    let d = vamp.deployment("shop").await.unwrap().unwrap();
    d.clusters["web"].services[0]
        .scale
        .as_ref()
        .map_or(1, |s| s.instances)
}

fn start() -> DateTime<Utc> {
    Utc::now() + Duration::seconds(1)
}

#[tokio::test]
async fn slow_responses_escalate_and_fast_ones_deescalate_after_the_cooldown() {
    let (vamp, _router) = deployed(SLA, "").await;
    let t0 = start();
    let first = vamp.sla_pass_at(t0).await.unwrap();
    assert!(
        first.checks.is_empty() && first.scaled.is_empty(),
        "no metrics, no check"
    );

    // 500 ms responses on the gateway (one route answering in 1 ms does not count).
    measured(&vamp, 500.0, t0 + Duration::seconds(10)).await;
    route_measured(&vamp, 1.0, t0 + Duration::seconds(10)).await;
    let slow = vamp.sla_pass_at(t0 + Duration::seconds(10)).await.unwrap();
    assert_eq!(slow.checks.len(), 1, "{slow:?}");
    assert!(slow.checks[0].tags.contains(&"sla:escalate".to_owned()));
    assert!(slow.checks[0].tags.contains(&"deployment:shop".to_owned()));
    assert_eq!(slow.checks[0].value["response_time"], 500.0);
    assert_eq!(slow.scaled.len(), 1, "{slow:?}");
    assert_eq!(
        (slow.scaled[0].1.as_str(), slow.scaled[0].2.as_str()),
        ("web", "web:1")
    );
    assert_eq!(instances(&vamp).await, 2);
    while !vamp.reconcile().await.unwrap().converged {}
    assert_eq!(
        vamp.deployment("shop").await.unwrap().unwrap().clusters["web"].services[0]
            .instances
            .len(),
        2,
        "the escalation redeployed the service"
    );

    // Still slow, but within interval + cooldown of the last SLA event: no new one.
    measured(&vamp, 500.0, t0 + Duration::seconds(20)).await;
    let held = vamp.sla_pass_at(t0 + Duration::seconds(20)).await.unwrap();
    assert!(held.checks.is_empty() && held.scaled.is_empty(), "{held:?}");

    // 100 s later, fast responses only in the window: de-escalate back to one instance.
    measured(&vamp, 1.0, t0 + Duration::seconds(100)).await;
    let fast = vamp.sla_pass_at(t0 + Duration::seconds(100)).await.unwrap();
    assert_eq!(fast.checks.len(), 1, "{fast:?}");
    assert!(fast.checks[0].tags.contains(&"sla:deescalate".to_owned()));
    assert_eq!(fast.checks[0].value["response_time"], 1.0);
    assert_eq!(instances(&vamp).await, 1);
    while !vamp.reconcile().await.unwrap().converged {}

    // At the minimum, a further de-escalation changes nothing.
    measured(&vamp, 1.0, t0 + Duration::seconds(200)).await;
    let floor = vamp.sla_pass_at(t0 + Duration::seconds(200)).await.unwrap();
    assert_eq!(floor.checks.len(), 1);
    assert!(floor.scaled.is_empty(), "{floor:?}");
    assert_eq!(instances(&vamp).await, 1);
}

#[tokio::test]
async fn old_metrics_and_unsettled_clusters_are_not_judged() {
    let (vamp, _router) = deployed(SLA, "").await;
    let t0 = start();
    // A slow value older than the interval (60 s) is out of the window.
    measured(&vamp, 900.0, t0).await;
    let idle = vamp.sla_pass_at(t0 + Duration::seconds(61)).await.unwrap();
    assert!(idle.checks.is_empty() && idle.scaled.is_empty(), "{idle:?}");
    // A service being redeployed is not checked.
    let mut scale = Scale {
        instances: 2,
        ..Scale::default()
    };
    scale.cpu = Cpu::from_millis(200);
    vamp.scale("shop", "web", "web:1", scale).await.unwrap();
    measured(&vamp, 500.0, t0 + Duration::seconds(200)).await;
    let busy = vamp.sla_pass_at(t0 + Duration::seconds(200)).await.unwrap();
    assert!(busy.checks.is_empty(), "{busy:?}");
}

/// Posts an SLA event for `shop/web` at `at`.
async fn post(vamp: &Vamp, direction: &str, at: DateTime<Utc>) {
    let mut event = Event::new(
        ["sla", "deployment:shop", "cluster:web", direction],
        serde_json::Value::Null,
    );
    event.timestamp = at;
    vamp.publish(&event).await.unwrap();
}

#[tokio::test]
async fn posted_sla_events_drive_escalations_by_reference() {
    let sla = "      type: escalation_only\n      escalations: [more, cpu]\n";
    let escalations = "---\nkind: escalations\nname: more\ntype: scale_instances\nminimum: 1\nmaximum: 2\nscale_by: 1\n\
                       ---\nkind: escalations\nname: cpu\ntype: scale_cpu\nminimum: 0.1\nmaximum: 4\nscale_by: 0.5\n";
    let (vamp, _router) = deployed(sla, escalations).await;
    let cpu = vamp.deployment("shop").await.unwrap().unwrap().clusters["web"].services[0]
        .scale
        .clone()
        .unwrap_or_default()
        .cpu
        .millis();
    let t0 = start();
    post(&vamp, "sla:escalate", t0).await;
    let report = vamp.sla_pass_at(t0 + Duration::seconds(1)).await.unwrap();
    // Two escalations form one to_all group (spec §1.9): both apply.
    assert_eq!(report.scaled.len(), 1, "{report:?}");
    let scale = &report.scaled[0].3;
    assert_eq!((scale.instances, scale.cpu.millis()), (2, cpu + 500));
    // The event is not escalated twice.
    let again = vamp.sla_pass_at(t0 + Duration::seconds(2)).await.unwrap();
    assert!(again.scaled.is_empty());
    // At the instance maximum, the cpu escalation still applies (Vamp lost it: spec §10 Q8).
    post(&vamp, "sla:escalate", t0 + Duration::seconds(3)).await;
    let third = vamp.sla_pass_at(t0 + Duration::seconds(4)).await.unwrap();
    let scale = &third.scaled[0].3;
    assert_eq!((scale.instances, scale.cpu.millis()), (2, cpu + 1000));
}

#[tokio::test]
async fn the_window_includes_what_was_published_before_the_first_pass() {
    // Response times published before this runtime's first pass (an earlier server's).
    let (vamp, _router) = deployed(SLA, "").await;
    let t0 = start();
    for (seconds, value) in [(5, 400.0), (8, 600.0)] {
        let mut e = Event::new(
            ["gateways:shop/web/web", "gateway", "metrics:responseTime"],
            serde_json::json!(value),
        );
        e.kind = "metrics".into();
        e.timestamp = t0 + Duration::seconds(seconds);
        vamp.publish(&e).await.unwrap();
    }
    let pass = vamp.sla_pass_at(t0 + Duration::seconds(10)).await.unwrap();
    assert_eq!(pass.checks.len(), 1, "{pass:?}");
    assert_eq!(pass.checks[0].value["response_time"], 500.0);
    assert_eq!(instances(&vamp).await, 2);
}

#[tokio::test]
async fn a_posted_sla_event_starts_the_cooldown() {
    let (vamp, _router) = deployed(SLA, "").await;
    let t0 = start();
    let _ = vamp.sla_pass_at(t0).await.unwrap();
    // Normal response times: no SLA event, but the cluster's last one has been looked up.
    measured(&vamp, 50.0, t0 + Duration::seconds(10)).await;
    let calm = vamp.sla_pass_at(t0 + Duration::seconds(10)).await.unwrap();
    assert!(calm.checks.is_empty(), "{calm:?}");
    post(&vamp, "sla:escalate", t0 + Duration::seconds(15)).await;
    measured(&vamp, 500.0, t0 + Duration::seconds(20)).await;
    let pass = vamp.sla_pass_at(t0 + Duration::seconds(20)).await.unwrap();
    assert_eq!(pass.scaled.len(), 1, "the posted event escalates: {pass:?}");
    assert!(pass.checks.is_empty(), "and holds the check off: {pass:?}");
}
