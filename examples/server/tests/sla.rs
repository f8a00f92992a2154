//! The SLA runtime in a real server (process driver, embedded router, the stock `metrics`
//! workflow measuring): a service that answers slower than its SLA allows gets a second
//! instance by itself, and the SLA event is in the event log.

use std::time::Duration;

use reqwest::Method;

mod common;

use common::{Server, get, parse, post, send, undeploy};
use vamp_core::testkit::{free_port, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_is_escalated_to_a_second_instance() {
    // The resync an hour away: the escalation itself must set the change going (issue 16).
    let server = Server::start(&[
        ("sla.period", "1"),
        ("synchronization.period", "3600"),
        ("workflows.stock", "true"),
    ])
    .await;
    let u = &server.url;
    // The stock `metrics` workflow publishes the response times the SLA judges: every second.
    common::tune_stock_workflow(
        u,
        "metrics",
        &[
            ("VAMP_WORKFLOW_EXECUTION_PERIOD", "1"),
            ("METRICS_TIME_WINDOW", "1"),
        ],
    )
    .await;
    let exe = env!("CARGO_BIN_EXE_vamp-server");
    // 150 ms per answer, against an SLA of 100 ms.
    let breed = format!(
        "name: slow:1.0.0\ndeployable: {{type: command, definition: \"'{exe}' demo-app\"}}\n\
         ports: {{web: 8080/http}}\nenvironment_variables: {{VAMP_DEMO_LATENCY_MS: \"150\"}}\n"
    );
    post(201, &format!("{u}/breeds"), &breed).await;
    let gateway = free_port();
    let name = unique("sla");
    let blueprint = format!(
        "name: {name}\ngateways:\n  {gateway}: c/web\nclusters:\n  c:\n    breed: slow:1.0.0\n    sla:\n\
         \x20     type: response_time_sliding_window\n\
         \x20     threshold: {{upper: 100, lower: 10}}\n\
         \x20     window: {{interval: 3, cooldown: 600}}\n\
         \x20     escalations:\n\
         \x20       - {{type: scale_instances, minimum: 1, maximum: 2, scale_by: 1}}\n"
    );
    common::deploy(u, &name, &blueprint).await;

    // Traffic through the gateway until the second instance runs (bounded: 60 s).
    let client = reqwest::Client::new();
    let deployment = format!("{u}/deployments/{name}");
    vamp_core::testkit::eventually_within(
        "the escalation to 2 instances",
        Duration::from_secs(60),
        || async {
            let requests = (0..4).map(|_| {
                client
                    .get(format!("http://127.0.0.1:{gateway}/"))
                    .timeout(Duration::from_secs(5))
                    .send()
            });
            let _ = futures::future::join_all(requests).await;
            let (_, _, body) = send(Method::GET, &deployment, None).await;
            let service = parse(&body)["clusters"]["c"]["services"][0].clone();
            let escalated = service["scale"]["instances"] == 2
                && service["instances"]
                    .as_array()
                    .is_some_and(|i| i.len() == 2);
            if escalated {
                return Ok(());
            }
            let (_, _, events) = send(Method::GET, &format!("{u}/events?per_page=20"), None).await;
            // What the metrics workflow did, should it not measure (a CI flake once).
            let (_, _, runs) = send(
                Method::GET,
                &format!("{u}/workflows/metrics/executions"),
                None,
            )
            .await;
            let (_, _, status) =
                send(Method::GET, &format!("{u}/workflows/metrics/status"), None).await;
            Err(format!(
                "{service}\nevents: {events}\nmetrics workflow {status}: {runs}"
            ))
        },
    )
    .await;

    let body = get(200, &format!("{u}/events?tag=sla&tag=deployment:{name}")).await;
    let events = parse(&body);
    let tags: Vec<&serde_json::Value> = events
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| &e["tags"])
        .collect();
    assert_eq!(
        tags.len(),
        1,
        "one SLA event (the cooldown holds): {events}"
    );
    assert!(
        tags[0]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "sla:escalate")),
        "{events}"
    );
    let body = get(
        200,
        &format!("{u}/events?tag=metrics:responseTime&tag=gateways:{name}/c/web"),
    )
    .await;
    assert!(
        parse(&body).as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["value"].as_f64().is_some_and(|v| v >= 150.0))),
        "the gateway's response time was measured: {body}"
    );
    undeploy(u, &name, "name: x\nclusters:\n  c: slow:1.0.0\n").await;
    server.stop().await;
}
