//! What the agent's end-to-end tests share.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use vamp_core::traits::ResolvedGateway;
use vamp_gateway::testkit::{Client, gateway, route};

/// Gateway `e2e/web` on `port`: all traffic to backend `name` on `backend_port`.
pub(crate) fn one(port: u16, name: &str, backend_port: u16) -> ResolvedGateway {
    gateway(
        "e2e/web",
        port,
        vec![route(
            "e2e/web",
            &format!("e2e/{name}"),
            100,
            &[(name, backend_port)],
        )],
    )
}

pub(crate) use vamp_gateway::testkit::published;

/// Polls the status endpoint (at most 20 s) until it answers 200 with a revision ≥ `revision`.
pub(crate) async fn applied(status_port: u16, revision: u64) {
    let what = format!("revision {revision} to be applied");
    vamp_core::testkit::eventually_within(&what, Duration::from_secs(20), || async {
        let r = Client::new(status_port).get("/health", &[]).await?;
        let rev = r
            .body
            .split("\"applied_revision\":")
            .nth(1)
            .and_then(|s| s.split([',', '}']).next())
            .and_then(|s| s.parse::<u64>().ok());
        if r.status == 200 && rev.is_some_and(|v| v >= revision) {
            Ok(())
        } else {
            Err(r.body)
        }
    })
    .await;
}

/// A running agent. Dropped while it runs (a test failed), it gets SIGTERM, so it stops its
/// HAProxy too — which by design outlives an agent that is killed outright.
pub(crate) struct RunningAgent(Option<tokio::process::Child>);

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // kill_on_drop: SIGKILL if it is still there.
    }
}

/// Starts the agent binary on `store_flags` (how to reach its store), with its HAProxy's
/// files in `dir` and no instance health checks; returns it and its status port.
pub(crate) fn start_agent(
    store_flags: &[&str],
    root: &str,
    haproxy: &str,
    dir: &std::path::Path,
) -> (RunningAgent, u16) {
    let status_port = vamp_gateway::testkit::free_port();
    let agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_vamp-gateway-agent"))
        .args(store_flags)
        .args(["--root", root, "--haproxy", haproxy])
        .arg("--dir")
        .arg(dir)
        .args([
            "--status",
            &format!("127.0.0.1:{status_port}"),
            "--no-health-checks",
            "--max-backoff-ms",
            "200",
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the agent");
    (RunningAgent(Some(agent)), status_port)
}

/// Runs the agent with `store_flags` (how to reach its store) against gateways a
/// `haproxy-kv` router publishes in `store` under `root`: the first version reaches traffic,
/// then a change does; SIGTERM stops the agent and its HAProxy.
pub(crate) async fn serves_what_is_published(
    store: std::sync::Arc<dyn vamp_core::traits::KeyValueStore>,
    root: &str,
    store_flags: &[&str],
    haproxy: &str,
) {
    use vamp_core::traits::Router;
    use vamp_gateway::testkit::{backend, free_port, split};
    let router = vamp_gateway::haproxy::kv::KvRouter::new(
        store.clone(),
        root,
        vamp_gateway::haproxy::render::RenderOptions::default(),
    );
    let dir = tempfile::Builder::new()
        .prefix("ga")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let (agent, status_port) = start_agent(store_flags, root, haproxy, dir.path());
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    for (name, target) in [("a", a), ("b", b)] {
        let report = router
            .apply(&[one(port, name, target)])
            .await
            .expect("publish");
        assert!(report.failed.is_empty(), "{report:?}");
        applied(status_port, published(store.as_ref(), root).await).await;
        assert_eq!(
            split(&mut Client::new(port), 50, &[]).await.get(name),
            Some(&50),
            "all traffic to {name}"
        );
    }
    stop_agent(agent).await;
}

/// SIGTERM to the agent; it must exit cleanly within 15 s (its HAProxy with it).
pub(crate) async fn stop_agent(mut running: RunningAgent) {
    let mut agent = running.0.take().expect("the agent is running");
    let pid = agent.id().expect("agent pid");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(15), agent.wait())
        .await
        .expect("agent exits")
        .expect("wait");
    assert!(status.success(), "{status}");
}
