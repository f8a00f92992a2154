//! Automated canary releases end to end (issue 18): the process driver runs the demo service
//! (errors and latency injected into the canary), the embedded router serves it, a client
//! sends traffic through the deployment's gateway, and the rollout shifts, judges and rolls
//! back by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

mod common;

use common::{Server, delete, expect, get, parse, post, put, send, yaml};
use vamp_core::testkit::{eventually, eventually_within, free_port, unique};

// `phase` polls with a 30 s bound of its own: it prints the last status when it gives up.

/// Breeds `app:1.0.0` (stable) and `app:2.0.0` (canary; `canary_env` injects errors or
/// latency), deployed as `name` with the canary at 0%, reachable on an external gateway port.
async fn shop(u: &str, name: &str, canary_env: &str) -> u16 {
    let exe = env!("CARGO_BIN_EXE_vamp-server");
    for (version, env) in [("1.0.0", ""), ("2.0.0", canary_env)] {
        let breed = format!(
            "name: {name}-app:{version}\ndeployable: {{type: command, definition: \"'{exe}' demo-app --app-version {version}\"}}\nports: {{web: 8080/http}}\nenvironment_variables: {{{env}}}\n"
        );
        let (status, _, body) =
            send(Method::POST, &format!("{u}/breeds"), Some(yaml(&breed))).await;
        assert_eq!(status, 201, "{body}");
    }
    let port = free_port();
    let blueprint = format!(
        "name: {name}\ngateways:\n  {port}: app/web\nclusters:\n  app:\n    services: [{name}-app:1.0.0, {name}-app:2.0.0]\n    gateways:\n      web:\n        routes:\n          {name}-app:1.0.0: {{weight: 100%}}\n          {name}-app:2.0.0: {{weight: 0%}}\n"
    );
    common::deploy(u, name, &blueprint).await;
    // Both versions running.
    let url = format!("{u}/deployments/{name}");
    eventually("both versions deployed", || {
        let url = url.clone();
        async move {
            let (_, _, body) = send(Method::GET, &url, None).await;
            let services = parse(&body)["clusters"]["app"]["services"]
                .as_array()?
                .clone();
            services
                .iter()
                .all(|s| s["status"]["phase"]["name"] == "Done")
                .then_some(())
        }
    })
    .await;
    // And served through the gateway (the router learns the instances' addresses on the next
    // reconcile): the rollouts' claims are about what happens after this.
    eventually("the gateway serving", || async move {
        reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
    port
}

fn rollout_spec(name: &str, steps: &str, metrics: &str) -> String {
    format!(
        "name: {name}\ngateway: {name}/app/web\nstable: {name}/app/{name}-app:1.0.0/web\ncanary: {name}/app/{name}-app:2.0.0/web\nsteps:\n{steps}analysis:\n  interval: 1s\n  min_requests: 20\n  metrics:\n{metrics}"
    )
}

const STEPS: &str = "  - weight: 20%\n  - analysis: {}\n  - weight: 60%\n  - analysis: {}\n";
const METRICS: &str = "    - {metric: success-rate, min: 99%, critical: true}\n    - {metric: latency-p99, max_ratio: 3}\n";

/// A client sending requests through `port` until stopped: (sent, failed).
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = tokio::spawn({
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            async move {
                let client = reqwest::Client::new();
                // Bounded: at most 60 s of traffic whatever happens.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                    sent.fetch_add(1, Ordering::Relaxed);
                    let answer = client
                        .get(format!("http://127.0.0.1:{port}/"))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    let failure = match answer {
                        Ok(r) if r.status().is_success() => None,
                        Ok(r) => Some(format!("status {}", r.status())),
                        Err(e) => Some(format!("{e:?}")),
                    };
                    if let Some(failure) = failure
                        && failed.fetch_add(1, Ordering::Relaxed) < 3
                    {
                        eprintln!(
                            "load: request {} failed: {failure}",
                            sent.load(Ordering::Relaxed)
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Load {
            stop,
            sent,
            failed,
            task,
        }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

async fn rollout(u: &str, name: &str) -> Value {
    let body = get(200, &format!("{u}/rollouts/{name}")).await;
    parse(&body)
}

/// Waits (bounded) until the rollout's phase is one of `phases`.
async fn phase(u: &str, name: &str, phases: &[&str]) -> Value {
    let what = format!("rollout {name} to be {phases:?}");
    vamp_core::testkit::eventually_within(&what, Duration::from_secs(30), || async {
        let r = rollout(u, name).await;
        let now = r["status"]["phase"].as_str().unwrap_or_default();
        if phases.contains(&now) {
            Ok(r)
        } else {
            Err(r["status"].to_string())
        }
    })
    .await
}

/// The weights the gateway's two routes have now.
async fn weights(u: &str, name: &str) -> (String, String) {
    let (_, _, body) = send(Method::GET, &format!("{u}/gateways/{name}/app/web"), None).await;
    let g = parse(&body);
    let w = |v: &str| {
        g["routes"][format!("{name}/app/{name}-app:{v}/web")]["weight"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (w("1.0.0"), w("2.0.0"))
}

async fn start_rollout(u: &str, spec: &str) {
    post(202, &format!("{u}/rollouts"), spec).await;
}

async fn teardown(u: &str, name: &str) {
    common::undeploy(
        u,
        name,
        &format!(
            "name: {name}\nclusters:\n  app:\n    services: [{name}-app:1.0.0, {name}-app:2.0.0]\n"
        ),
    )
    .await;
}

/// A healthy canary under load, judged by `metrics`: `Succeeded`, all of the traffic on it,
/// no client request failed across the shifts. Returns the rollout.
async fn healthy_canary_succeeds(u: &str, name: &str, metrics: &str) -> Value {
    let port = shop(u, name, "").await;
    let load = Load::start(port);
    start_rollout(u, &rollout_spec(name, STEPS, metrics)).await;
    let r = phase(u, name, &["Succeeded", "RolledBack", "Aborted"]).await;
    let (sent, failed) = load.stop().await;
    assert_eq!(r["status"]["phase"], "Succeeded", "{r}");
    assert_eq!(weights(u, name).await, ("0%".to_owned(), "100%".to_owned()));
    assert!(sent > 100, "traffic flowed: {sent}");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} client requests failed across the shifts"
    );
    r
}

/// A canary 200 ms slower than stable under load, judged by `metrics`: rolled back by the
/// `max_ratio` check on `metric`, all of the traffic back on stable.
async fn slow_canary_rolled_back(u: &str, name: &str, metrics: &str, metric: &str) {
    let port = shop(u, name, "VAMP_DEMO_LATENCY_MS: \"200\"").await;
    let load = Load::start(port);
    // The client waits for each answer: a 200 ms canary at 20% gets about 4 requests a
    // second, and a mean is judged only on `min_requests` of them.
    let spec = rollout_spec(name, STEPS, metrics).replace("min_requests: 20", "min_requests: 8");
    start_rollout(u, &spec).await;
    let r = phase(u, name, &["Succeeded", "RolledBack", "Aborted"]).await;
    load.stop().await;
    assert_eq!(r["status"]["phase"], "RolledBack", "{r}");
    let reason = r["status"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(metric) && reason.contains("max_ratio"),
        "{reason}"
    );
    assert_eq!(weights(u, name).await, ("100%".to_owned(), "0%".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_takes_the_traffic_and_no_request_fails() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let name = unique("ok");
    healthy_canary_succeeds(u, &name, METRICS).await;
    // Prometheus has it.
    let metrics = reqwest::get(u.replace("/api/v1", "/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!("vamp_rollout_phase{{rollout=\"{name}\"}} 2"))
            && metrics.contains(&format!(
                "vamp_rollout_canary_weight{{rollout=\"{name}\"}} 100"
            )),
        "{metrics}"
    );
    teardown(u, &name).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_and_the_verdict_says_why() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let name = unique("bad");
    let port = shop(u, &name, "VAMP_DEMO_ERROR_RATE: \"0.2\"").await;
    let load = Load::start(port);
    start_rollout(u, &rollout_spec(&name, STEPS, METRICS)).await;
    let r = phase(u, &name, &["Succeeded", "RolledBack", "Aborted"]).await;
    load.stop().await;
    assert_eq!(r["status"]["phase"], "RolledBack", "{r}");
    assert_eq!(
        weights(u, &name).await,
        ("100%".to_owned(), "0%".to_owned())
    );
    // Judged at the first interval that could: one verdict, a failure.
    let intervals = r["status"]["intervals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(intervals.len(), 1, "{r}");
    let (_, _, body) = send(
        Method::GET,
        &format!("{u}/events?tag=rollouts:{name}&tag=verdict:fail"),
        None,
    )
    .await;
    let events = parse(&body);
    let verdict = &events[0]["value"];
    let text = verdict["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("success-rate") && text.contains("canary requests"),
        "the numbers that failed it: {verdict}"
    );
    assert!(
        verdict["canary"]["errors"].as_u64().unwrap_or(0) > 0,
        "{verdict}"
    );
    teardown(u, &name).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_canary_is_rolled_back_by_the_latency_ratio() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let name = unique("slow");
    slow_canary_rolled_back(u, &name, METRICS, "latency-p99").await;
    teardown(u, &name).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_hand_edits_and_undeploys() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let name = unique("cmd");
    shop(u, &name, "").await;
    // Held at 30% by an open-ended pause; later at 60% by a long one.
    let spec = rollout_spec(
        &name,
        "  - weight: 30%\n  - pause: {}\n  - weight: 60%\n  - pause: 1h\n",
        METRICS,
    );
    start_rollout(u, &spec).await;
    let r = phase(u, &name, &["Paused"]).await;
    assert!(
        r["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("promote"),
        "{r}"
    );
    assert_eq!(
        weights(u, &name).await,
        ("70%".to_owned(), "30%".to_owned())
    );
    // A change of the spec while it works is refused only while it progresses: paused, fine.
    put(202, &format!("{u}/rollouts/{name}"), &spec).await;
    // Abort: the stable route takes it all back.
    let cmd = |c: &str| format!("{u}/rollouts/{name}/{c}");
    let body = expect(202, Method::POST, &cmd("abort"), None).await;
    assert_eq!(parse(&body)["status"]["phase"], "Aborted");
    assert_eq!(
        weights(u, &name).await,
        ("100%".to_owned(), "0%".to_owned())
    );
    let _ = expect(409, Method::POST, &cmd("abort"), None).await;
    // Retry: from the first step again.
    expect(202, Method::POST, &cmd("retry"), None).await;
    phase(u, &name, &["Paused"]).await;
    assert_eq!(
        weights(u, &name).await,
        ("70%".to_owned(), "30%".to_owned())
    );
    // Promote past the pause, then a hand edit of the weights pauses it with the reason.
    expect(202, Method::POST, &cmd("promote"), None).await;
    assert_eq!(
        weights(u, &name).await,
        ("40%".to_owned(), "60%".to_owned())
    );
    let changed = spec.replace("pause: 1h", "pause: 2h");
    let _ = put(409, &format!("{u}/rollouts/{name}"), &changed).await;
    let edit = format!(
        "name: {name}/app/web\nroutes:\n  {name}/app/{name}-app:1.0.0/web: {{weight: 90%}}\n  {name}/app/{name}-app:2.0.0/web: {{weight: 10%}}\n"
    );
    put(202, &format!("{u}/gateways/{name}/app/web"), &edit).await;
    let r = phase(u, &name, &["Paused"]).await;
    assert!(
        r["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("by hand"),
        "{r}"
    );
    // Resumed, it goes on from the weights as they are; undeploying aborts it.
    expect(202, Method::POST, &cmd("resume"), None).await;
    teardown(u, &name).await;
    let r = phase(u, &name, &["Aborted"]).await;
    assert!(
        r["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("gone"),
        "{r}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rollouts_are_refused_naming_the_field_and_nothing_is_stored() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let name = unique("refuse");
    shop(u, &name, "").await;
    let good = rollout_spec(&name, STEPS, METRICS);
    for (body, words) in [
        (
            good.replace(&format!("gateway: {name}/app/web"), "gateway: nowhere"),
            vec!["UnresolvedRolloutRouteError", "gateway"],
        ),
        (
            good.replace(
                &format!("canary: {name}/app/{name}-app:2.0.0/web"),
                &format!("canary: {name}/app/nope/web"),
            ),
            vec!["UnresolvedRolloutRouteError", "canary"],
        ),
        (
            good.replace("weight: 60%", "weight: 160%"),
            vec!["RouteWeightError", "steps[2].weight", "line"],
        ),
        (
            good.replace("latency-p99", "latency-p42"),
            vec![
                "UnsupportedRolloutMetric",
                "analysis.metrics[1].metric",
                "line",
            ],
        ),
    ] {
        let (status, _, text) =
            send(Method::POST, &format!("{u}/rollouts"), Some(yaml(&body))).await;
        assert_eq!(status, 400, "{text}");
        for w in words {
            assert!(text.contains(w), "'{w}' missing from {text}");
        }
    }
    start_rollout(u, &good).await;
    let second = good.replacen(&format!("name: {name}"), &format!("name: {name}-2"), 1);
    let text = post(400, &format!("{u}/rollouts"), &second).await;
    assert!(text.contains("RolloutConflictError"), "{text}");
    let (_, headers, _) = send(Method::GET, &format!("{u}/rollouts"), None).await;
    assert_eq!(headers["x-total-count"], "1", "only the good one is stored");
    let _ = delete(202, &format!("{u}/rollouts/{name}"), None).await;
    teardown(u, &name).await;
    server.stop().await;
}

/// Kills whatever the process driver under `0` still records, however the test ends.
struct Reap(std::path::PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(driver) = vamp_drivers::process::ProcessDriver::new(
            vamp_drivers::process::ProcessConfig::new(self.0.clone()),
        ) {
            driver.kill_all_now();
        }
    }
}

/// A `vamp-server` process on SQLite under `data`, API on `api`.
fn server_process(data: &std::path::Path, api: u16) -> vamp_core::testkit::child::Running {
    let running = vamp_core::testkit::child::Running::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_vamp-server"))
            .arg("--data")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .env(
                "VAMP_GATEWAYS__PORTS",
                vamp_core::testkit::gateway_port_slice(),
            )
            .env("VAMP_DRIVER__KIND", "process")
            .env("RUST_LOG", "warn"),
    );
    running.wait_for_line("vamp-server listening", Duration::from_secs(30));
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_goes_on_at_the_same_step_after_kill_9() {
    let data = tempfile::tempdir().expect("tempdir");
    let _reap = Reap(data.path().join("process"));
    let api = free_port();
    let u = format!("http://127.0.0.1:{api}/api/v1");
    let mut server = server_process(data.path(), api);
    let name = unique("k9");
    shop(&u, &name, "").await;
    let spec = rollout_spec(
        &name,
        "  - weight: 30%\n  - pause: 1h\n  - weight: 60%\n",
        METRICS,
    );
    start_rollout(&u, &spec).await;
    let before = eventually("the first shift", || {
        let u = u.clone();
        let name = name.clone();
        async move {
            let r = rollout(&u, &name).await;
            (r["status"]["step"] == 1).then_some(r)
        }
    })
    .await;
    assert_eq!(
        weights(&u, &name).await,
        ("70%".to_owned(), "30%".to_owned())
    );
    // kill -9: no shutdown of any kind.
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let _server = server_process(data.path(), api);
    // A few passes later: the same step, the same weights, nothing repeated.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let r = rollout(&u, &name).await;
        assert_eq!(r["status"]["step"], 1, "{:#}", r["status"]);
        assert_eq!(r["status"]["phase"], "Progressing", "{:#}", r["status"]);
        assert_eq!(r["status"]["started"], before["status"]["started"]);
        assert_eq!(
            weights(&u, &name).await,
            ("70%".to_owned(), "30%".to_owned())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = expect(
        202,
        Method::POST,
        &format!("{u}/rollouts/{name}/abort"),
        None,
    )
    .await;
    teardown(&u, &name).await;
}

/// The same rollouts through a real local HAProxy (issue 18, point 8): its counters (requests,
/// 5xx, the average response time) judge the canary, weights move through its runtime API.
#[cfg(feature = "haproxy")]
mod through_haproxy {
    use super::*;

    async fn server() -> Option<Server> {
        let haproxy = vamp_core::testkit::services::service("haproxy")?;
        Some(
            Server::start(&[
                ("router.kind", "haproxy-local"),
                ("router.haproxy", haproxy.as_str()),
            ])
            .await,
        )
    }

    const MEAN: &str = "    - {metric: success-rate, min: 99%, critical: true}\n    - {metric: latency-mean, max_ratio: 3}\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_healthy_canary_succeeds_and_no_request_fails() {
        let Some(server) = server().await else {
            return;
        };
        let u = &server.url;
        let name = unique("hok");
        let r = healthy_canary_succeeds(u, &name, MEAN).await;
        // The verdicts were made on HAProxy's counters.
        let passed = r["status"]["intervals"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|i| i["verdict"] == "pass")
            .map(|i| i["canary"]["requests"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>();
        assert!(
            !passed.is_empty() && passed.iter().all(|n| *n >= 20),
            "passes on at least min_requests canary requests: {r}"
        );
        teardown(u, &name).await;
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_canary_is_rolled_back_by_the_mean_latency() {
        let Some(server) = server().await else {
            return;
        };
        let u = &server.url;
        let name = unique("hslow");
        slow_canary_rolled_back(u, &name, MEAN, "latency-mean").await;
        teardown(u, &name).await;
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn percentiles_are_refused_where_haproxy_cannot_measure_them() {
        let Some(server) = server().await else {
            return;
        };
        let u = &server.url;
        let name = unique("hp99");
        shop(u, &name, "").await;
        let text = post(
            400,
            &format!("{u}/rollouts"),
            &rollout_spec(&name, STEPS, METRICS),
        )
        .await;
        for w in [
            "UnsupportedRolloutMetric",
            "analysis.metrics[1].metric",
            "latency-mean",
        ] {
            assert!(text.contains(w), "'{w}' missing from {text}");
        }
        let (_, headers, _) = send(Method::GET, &format!("{u}/rollouts"), None).await;
        assert_eq!(headers["x-total-count"], "0", "nothing stored");
        teardown(u, &name).await;
        server.stop().await;
    }
}

/// Rollouts judged by a real Prometheus and gated by real webhooks (issue 19).
mod calls {
    use std::sync::Mutex;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use vamp_core::testkit::services::{PrivatePrometheus, service};

    use super::*;

    /// Serves `app` on a free loopback port; returns `127.0.0.1:<port>`.
    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        address
    }

    fn with(name: &str, metrics: &str, more: &str) -> String {
        format!(
            "name: {name}\ngateway: {name}/app/web\nstable: {name}/app/{name}-app:1.0.0/web\ncanary: {name}/app/{name}-app:2.0.0/web\nsteps:\n  - weight: 20%\n  - analysis: {{}}\n  - weight: 60%\n  - analysis: {{}}\nanalysis:\n  interval: 2s\n  min_requests: 20\n  consecutive_error_limit: 1\n  metrics:\n{metrics}{more}"
        )
    }

    /// A Prometheus scraping the server's own `/metrics` and a test target every second.
    async fn prometheus(server: &Server, dir: &std::path::Path) -> Option<PrivatePrometheus> {
        let binary = service("prometheus")?;
        let target = serve(Router::new().route(
            "/metrics",
            get(|| async { "# TYPE vamp_test_score gauge\nvamp_test_score 1\n" }),
        ))
        .await;
        let own = server
            .url
            .trim_start_matches("http://")
            .trim_end_matches("/api/v1")
            .to_owned();
        Some(PrivatePrometheus::start(binary, dir, &[own, target], Duration::from_secs(1)).await)
    }

    fn checks(prometheus: &str) -> String {
        format!(
            "    - {{metric: success-rate, min: 99%, critical: true}}\n    - {{name: canary-5xx, provider: prometheus, url: \"{prometheus}\", query: \"sum(increase(vamp_route_errors_total{{route=\\\"{{{{canary}}}}\\\"}}[{{{{interval}}}}])) / sum(increase(vamp_route_requests_total{{route=\\\"{{{{canary}}}}\\\"}}[{{{{interval}}}}]))\", max: 0.01}}\n    - {{name: score, provider: prometheus, url: \"{prometheus}\", query: \"max(vamp_test_score)\", min: 1}}\n"
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prometheus_judges_a_healthy_canary_and_its_outage_only_pauses() {
        let server = Server::start(&[]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let Some(mut prom) = prometheus(&server, dir.path()).await else {
            return;
        };
        let u = &server.url;
        let name = unique("prom");
        let port = shop(u, &name, "").await;
        let load = Load::start(port);
        // Windows of 4 s: at least three scrapes in each (two can miss a sample).
        let spec = with(&name, &checks(&prom.url()), "").replace("interval: 2s", "interval: 4s");
        start_rollout(u, &spec).await;
        let r = phase(u, &name, &["Succeeded", "RolledBack", "Aborted", "Paused"]).await;
        let (sent, failed) = load.stop().await;
        if r["status"]["phase"] != "Succeeded" {
            let seen = reqwest::get(format!(
                "{}/api/v1/query?query=vamp_route_requests_total",
                prom.url()
            ))
            .await
            .expect("ask Prometheus")
            .text()
            .await
            .unwrap_or_default();
            panic!("{:#}\nPrometheus has: {seen}", r["status"]);
        }
        assert_eq!(failed, 0, "{failed} of {sent} requests failed");
        // The verdicts used Prometheus' numbers.
        let judged: Vec<f64> = r["status"]["intervals"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .flat_map(|i| i["checks"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["metric"] == "canary-5xx" && c["verdict"] == "pass")
            .filter_map(|c| c["canary"].as_f64())
            .collect();
        assert!(!judged.is_empty(), "{:#}", r["status"]);
        assert!(judged.iter().all(|v| *v <= 0.01), "{judged:?}");
        teardown(u, &name).await;

        // Prometheus down: no answer is no verdict; after the error limit the rollout pauses,
        // the weights held, never rolled back.
        prom.stop().await;
        let name = unique("promdown");
        let port = shop(u, &name, "").await;
        let load = Load::start(port);
        start_rollout(u, &with(&name, &checks(&prom.url()), "")).await;
        let r = phase(u, &name, &["Paused", "RolledBack", "Succeeded", "Aborted"]).await;
        load.stop().await;
        let status = &r["status"];
        assert_eq!(status["phase"], "Paused", "{status:#}");
        let reason = status["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("without an answer"), "{reason}");
        assert_eq!(status["verdicts"]["fail"], 0, "{status:#}");
        assert_eq!(
            weights(u, &name).await,
            ("80%".to_owned(), "20%".to_owned())
        );
        teardown(u, &name).await;
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_gate_the_rollout_and_hear_every_phase_change() {
        // A webhook service whose answers the test changes.
        #[derive(Default)]
        struct Hooks {
            pre: Mutex<u16>,
            confirm: Mutex<u16>,
            events: Mutex<Vec<Value>>,
        }
        let hooks = Arc::new(Hooks::default());
        *hooks.pre.lock().unwrap() = 500;
        *hooks.confirm.lock().unwrap() = 403;
        let h = hooks.clone();
        let (h2, h3) = (hooks.clone(), hooks.clone());
        let address = serve(
            Router::new()
                .route(
                    "/pre",
                    post(move || {
                        let h = h.clone();
                        async move {
                            StatusCode::from_u16(*h.pre.lock().unwrap()).unwrap_or(StatusCode::OK)
                        }
                    }),
                )
                .route(
                    "/confirm",
                    post(move || {
                        let h = h2.clone();
                        async move {
                            StatusCode::from_u16(*h.confirm.lock().unwrap())
                                .unwrap_or(StatusCode::OK)
                        }
                    }),
                )
                .route(
                    "/events",
                    post(move |axum::Json(body): axum::Json<Value>| {
                        let h = h3.clone();
                        async move {
                            h.events.lock().unwrap().push(body);
                            StatusCode::OK
                        }
                    }),
                ),
        )
        .await;
        let server = Server::start(&[]).await;
        let u = &server.url;
        let name = unique("hooks");
        let port = shop(u, &name, "").await;
        let load = Load::start(port);
        let webhooks = format!(
            "webhooks:\n  - {{type: pre-rollout, url: \"http://{address}/pre\", retries: 0}}\n  - {{type: confirm-promotion, url: \"http://{address}/confirm\", retries: 0}}\n  - {{type: event, url: \"http://{address}/events\"}}\n"
        );
        start_rollout(
            u,
            &with(&name, "    - {metric: success-rate, min: 99%}\n", &webhooks),
        )
        .await;
        // The pre-rollout 500 holds it before the first shift.
        let r = phase(u, &name, &["Paused"]).await;
        assert!(
            r["status"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("answered 500"),
            "{:#}",
            r["status"]
        );
        assert_eq!(
            weights(u, &name).await,
            ("100%".to_owned(), "0%".to_owned())
        );
        *hooks.pre.lock().unwrap() = 200;
        // Every step done, the confirm-promotion 403 holds it at 40/60 until it says yes.
        eventually("held by the confirm-promotion gate", || async {
            let r = rollout(u, &name).await;
            r["status"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("answered 403")
                .then_some(())
        })
        .await;
        assert_eq!(
            weights(u, &name).await,
            ("40%".to_owned(), "60%".to_owned())
        );
        *hooks.confirm.lock().unwrap() = 200;
        let r = phase(u, &name, &["Succeeded", "RolledBack", "Aborted"]).await;
        let (sent, failed) = load.stop().await;
        assert_eq!(r["status"]["phase"], "Succeeded", "{:#}", r["status"]);
        assert_eq!(failed, 0, "{failed} of {sent}");
        // The event webhook heard every phase change, in order, ending with Succeeded.
        let phases = || {
            hooks
                .events
                .lock()
                .unwrap()
                .iter()
                .map(|b| b["phase"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        eventually("the last phase change delivered", || {
            let last = phases().last().cloned();
            async move { (last.as_deref() == Some("Succeeded")).then_some(()) }
        })
        .await;
        let heard = phases();
        assert_eq!(
            heard,
            [
                "Progressing",
                "Paused",
                "Progressing",
                "Paused",
                "Progressing",
                "Succeeded"
            ],
            "started, held by pre-rollout, on, held by confirm-promotion, on, done"
        );
        let last = hooks
            .events
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default();
        assert!(
            last["text"].as_str().unwrap_or_default().contains(&name),
            "a text line for chat: {last}"
        );
        teardown(u, &name).await;
        server.stop().await;
    }
}

/// The canary recipe of `examples/workflows/canary.js` (issue 22), next to the built-in
/// rollouts: a JavaScript workflow shifts the weight through the `vamp` object run by run,
/// and puts every request back on the stable route when the canary fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_workflow_recipe_shifts_weight_and_rolls_back_on_errors() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let name = unique("recipe");
    let port = shop(u, &name, "VAMP_DEMO_ERROR_RATE: \"0.3\"").await;
    let load = Load::start(port);
    let gateway = format!("{name}/app/web");
    let route = |v: &str| format!("{name}/app/{name}-app:{v}/web");
    let script = serde_json::to_string(include_str!("../../workflows/canary.js")).unwrap();
    let workflow = format!(
        "name: {name}-canary\nbreed:\n  name: {name}-canary:1\n  deployable: {{type: application/javascript, definition: {script}}}\n  environment_variables:\n    VAMP_WORKFLOW_EXECUTION_PERIOD: \"1\"\n    CANARY_GATEWAY: {gateway}\n    CANARY_STABLE: {stable}\n    CANARY_CANARY: {canary}\n    CANARY_STEP: \"20\"\n    CANARY_MIN_REQUESTS: \"10\"\nschedule: daemon\n",
        stable = route("1.0.0"),
        canary = route("2.0.0"),
    );
    post(202, &format!("{u}/workflows"), &workflow).await;
    let rolled_back = format!("{u}/events?tag=canary:{gateway}&tag=canary:rolled-back");
    eventually_within(
        "the recipe rolled back",
        Duration::from_secs(45),
        || async {
            parse(&get(200, &rolled_back).await)
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    load.stop().await;
    assert_eq!(
        weights(u, &name).await,
        ("100%".to_owned(), "0%".to_owned())
    );
    let verdict = &parse(&get(200, &rolled_back).await)[0]["value"];
    assert!(verdict["failed"].as_u64().unwrap_or(0) > 0, "{verdict}");
    // Before the rollback it had shifted weight to the canary through the API.
    let shifts = parse(
        &get(
            200,
            &format!("{u}/events?tag=canary:{gateway}&tag=canary:shifting"),
        )
        .await,
    );
    assert!(
        shifts
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["value"]["weight"].as_u64() > Some(0))),
        "{shifts}"
    );
    put(
        202,
        &format!("{u}/workflows/{name}-canary/status"),
        "suspending",
    )
    .await;
    delete(202, &format!("{u}/workflows/{name}-canary"), None).await;
    teardown(u, &name).await;
    server.stop().await;
}

const WAIT: Duration = Duration::from_secs(30);

/// The newest value of a health lookup, if any.
async fn health_of(u: &str, path: &str) -> Option<f64> {
    let (status, _, body) = send(Method::GET, &format!("{u}/health/{path}?window=30"), None).await;
    (status == 200).then(|| parse(&body).as_f64()).flatten()
}

/// The stock workflows (issue 22): installed at start and not deletable; `health` turns a
/// route to 0 after a burst of 5xx through the embedded router and back to 1 once the burst
/// has left its window, and the levels above follow; `metrics` publishes what the router
/// counted; `allocation` sums the deployment's scale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_workflows_judge_health_and_measure_from_the_router_counters() {
    let server = Server::start(&[("workflows.stock", "true")]).await;
    let u = &server.url;
    let listed = parse(&get(200, &format!("{u}/workflows")).await);
    let mut names: Vec<&str> = listed
        .as_array()
        .map(|a| a.iter().filter_map(|w| w["name"].as_str()).collect())
        .unwrap_or_default();
    names.sort_unstable();
    assert_eq!(names, ["allocation", "health", "metrics"], "{listed}");
    let refused = delete(409, &format!("{u}/workflows/health"), None).await;
    assert!(refused.contains("stock workflow"), "{refused}");
    put(409, &format!("{u}/workflows/metrics/status"), "stopping").await;

    // The canary answers every request with a 5xx; it has no traffic yet.
    let name = unique("stock");
    let port = shop(u, &name, "VAMP_DEMO_ERROR_RATE: \"1\"").await;
    common::tune_stock_workflow(
        u,
        "health",
        &[
            ("VAMP_WORKFLOW_EXECUTION_PERIOD", "1"),
            ("HEALTH_TIME_WINDOW", "3"),
        ],
    )
    .await;
    common::tune_stock_workflow(
        u,
        "metrics",
        &[
            ("VAMP_WORKFLOW_EXECUTION_PERIOD", "1"),
            ("METRICS_TIME_WINDOW", "600"),
        ],
    )
    .await;
    common::tune_stock_workflow(u, "allocation", &[("VAMP_WORKFLOW_EXECUTION_PERIOD", "1")]).await;
    let gateway = format!("{name}/app/web");
    let encoded = |s: &str| s.replace('/', "%2F");
    let canary = format!("{name}/app/{name}-app:2.0.0/web");
    let canary_path = format!("gateways/{}/routes/{}", encoded(&gateway), encoded(&canary));
    let gateway_path = format!("gateways/{}", encoded(&gateway));
    let deployment_path = format!("deployments/{name}");
    let cluster_path = format!("deployments/{name}/clusters/app");
    let health = |path: String, want: f64| async move {
        eventually_within(&format!("health {want} at {path}"), WAIT, || async {
            (health_of(u, &path).await == Some(want)).then_some(())
        })
        .await;
    };
    health(canary_path.clone(), 1.0).await;
    health(gateway_path.clone(), 1.0).await;
    health(deployment_path.clone(), 1.0).await;

    // A burst through the router: half of 40 requests go to the failing canary.
    let weights = |stable: u32| {
        format!(
            "name: {gateway}\nroutes:\n  {name}/app/{name}-app:1.0.0/web: {{weight: {stable}%}}\n  {canary}: {{weight: {}%}}\n",
            100 - stable
        )
    };
    put(202, &format!("{u}/gateways/{gateway}"), &weights(50)).await;
    let client = reqwest::Client::new();
    let mut failed = 0;
    for _ in 0..40 {
        let answer = client
            .get(format!("http://127.0.0.1:{port}/"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if answer.map_or(true, |r| r.status().is_server_error()) {
            failed += 1;
        }
    }
    put(202, &format!("{u}/gateways/{gateway}"), &weights(100)).await;
    assert!(failed > 0, "the canary answered no request");
    health(canary_path.clone(), 0.0).await;
    health(gateway_path.clone(), 0.0).await;
    health(format!("{cluster_path}/services/{name}-app:2.0.0"), 0.0).await;
    health(cluster_path.clone(), 0.0).await;
    health(deployment_path.clone(), 0.0).await;
    // The stable route served its half without a failure.
    let stable = format!("{name}/app/{name}-app:1.0.0/web");
    assert_eq!(
        health_of(
            u,
            &format!("gateways/{}/routes/{}", encoded(&gateway), encoded(&stable))
        )
        .await,
        Some(1.0)
    );
    // Once the burst is older than the 3 s window, healthy again.
    health(canary_path, 1.0).await;
    health(deployment_path, 1.0).await;

    // metrics: a run after the traffic stopped reports the router's counts of the gateway
    // since counting began (the window is longer than the test) and publishes their rate.
    let counters = get(200, &format!("{}/metrics", u.trim_end_matches("/api/v1"))).await;
    let counted: u64 = counters
        .lines()
        .filter(|l| {
            l.starts_with("vamp_route_requests_total{")
                && l.contains(&format!("gateway=\"{gateway}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(counted >= 40, "{counters}");
    let read_at = chrono::Utc::now();
    let line = format!("{gateway}: {counted} requests");
    let run = eventually_within("a metrics run after the traffic", WAIT, || async {
        let e = parse(&get(200, &format!("{u}/workflows/metrics/executions")).await);
        e["last"].as_array()?.iter().find_map(|run| {
            let started: chrono::DateTime<chrono::Utc> = run["started"].as_str()?.parse().ok()?;
            let text = run["log"]
                .as_array()?
                .iter()
                .find_map(|l| l["text"].as_str().filter(|t| t.starts_with(&line)))?;
            (started > read_at && run["status"] == "succeeded")
                .then(|| (run.clone(), text.to_owned()))
        })
    })
    .await;
    let seconds: f64 = run
        .1
        .rsplit(" in ")
        .next()
        .and_then(|s| s.trim_end_matches(" s").parse().ok())
        .expect("the seconds the run covered");
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
    };
    let (from, to) = (time(&run.0["started"]), time(&run.0["finished"]));
    let rates = parse(
        &get(
            200,
            &format!("{u}/events?tag=gateways:{gateway}&tag=metrics:rate&per_page=200"),
        )
        .await,
    );
    let published = rates
        .as_array()
        .and_then(|a| {
            a.iter().find(|e| {
                let at = time(&e["timestamp"]);
                let own = e["tags"].as_array().is_some_and(|t| {
                    !t.iter()
                        .any(|t| t.as_str().is_some_and(|t| t.starts_with("routes:")))
                });
                own && at >= from && at <= to
            })
        })
        .unwrap_or_else(|| panic!("no rate published by the run {from:?}…{to:?}: {rates}"));
    // The run logs its seconds rounded to 3 decimals and divides by the exact ones: the
    // published rate is the rate of some duration within half a millisecond of the logged one,
    // rounded to 2 decimals.
    #[allow(clippy::cast_precision_loss)]
    let rate_over = |s: f64| (counted as f64 / s * 100.0).round() / 100.0;
    let (lowest, highest) = (rate_over(seconds + 0.0005), rate_over(seconds - 0.0005));
    let value = published["value"].as_f64().expect("a numeric rate");
    assert!(
        (lowest..=highest).contains(&value),
        "{published}: not within {lowest}..={highest} ({counted} requests in {seconds} s)"
    );

    // allocation: one instance of each of the two services, at the default scale.
    let allocation = eventually_within("an allocation event", WAIT, || async {
        let events = parse(
            &get(
                200,
                &format!("{u}/events?tag=allocation&tag=deployments:{name}"),
            )
            .await,
        );
        events.as_array()?.first().map(|e| e["value"].clone())
    })
    .await;
    assert_eq!(allocation["instances"], 2, "{allocation}");
    teardown(u, &name).await;
    server.stop().await;
}
