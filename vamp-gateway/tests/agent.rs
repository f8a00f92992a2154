//! `haproxy-kv` + the gateway agent against a real HAProxy (each test starts its own), with
//! the in-memory store (etcd joins with the backends issue): the Router kit through the store,
//! outages of the store, and invalid states in it.
#![cfg(feature = "agent")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::kit;
use tokio::sync::{oneshot, watch};
use vamp_core::memory::MemoryStore;
use vamp_core::traits::{ApplyReport, KeyValueStore, ResolvedGateway, Router};
use vamp_gateway::agent::{Agent, AgentConfig, AgentStatus};
use vamp_gateway::haproxy::config::Defaults;
use vamp_gateway::haproxy::kv::KvRouter;
use vamp_gateway::haproxy::render::RenderOptions;
use vamp_gateway::testkit::outage::OutageStore;
use vamp_gateway::wire;

const ROOT: &str = "/vamp/test";

/// The store, a publishing router, and an agent reading the store through an outage switch.
#[derive(Debug)]
struct Setup {
    store: Arc<MemoryStore>,
    outage: OutageStore,
    router: KvRouter,
    agent: Arc<Agent>,
    status: watch::Receiver<AgentStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let binary = vamp_core::testkit::services::service("haproxy").map(PathBuf::from)?;
    let dir = tempfile::Builder::new()
        .prefix("ag")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let store = Arc::new(MemoryStore::default());
    let outage = OutageStore::new(store.clone());
    let mut config = AgentConfig::new(ROOT, binary, dir.path());
    config.render.defaults = Defaults::short();
    config.max_backoff = Duration::from_millis(200);
    let agent = Arc::new(Agent::new(Arc::new(outage.clone()), config));
    let status = agent.status();
    let (stop, stopped) = oneshot::channel();
    let running = agent.clone();
    let task = tokio::spawn(async move {
        running
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    Some(Setup {
        router: KvRouter::new(store.clone(), ROOT, RenderOptions::default()),
        store,
        outage,
        agent,
        status,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    })
}

impl Setup {
    /// The revision of the router's last write under `<root>/gateways` (the list is written
    /// last). Not the store's revision: the agent's counters under `<root>/stats/` move that
    /// too, and the agent does not watch them.
    async fn revision(&self) -> u64 {
        vamp_gateway::testkit::published(self.store.as_ref(), ROOT).await
    }

    /// Waits (at most 10 s) until the agent's status satisfies `f`.
    async fn until(&self, what: &str, f: impl Fn(&AgentStatus) -> bool) -> AgentStatus {
        let mut rx = self.status.clone();
        match tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| f(s))).await {
            Ok(Ok(s)) => s.clone(),
            _ => panic!(
                "agent: {what} not reached in 10 s; status {:?}",
                *self.status.borrow()
            ),
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("agent task");
        }
    }
}

#[async_trait]
impl Router for Setup {
    fn backend(&self) -> &'static str {
        "haproxy-kv+agent"
    }

    /// Publishes, then waits until the agent applied this revision; reports what the agent
    /// could not serve as failed.
    async fn apply(&self, gateways: &[ResolvedGateway]) -> vamp_core::Result<ApplyReport> {
        let mut report = self.router.apply(gateways).await?;
        let revision = self.revision().await;
        let status = self
            .until("the published revision", |s| {
                s.applied_revision.is_some_and(|r| r >= revision)
            })
            .await;
        report
            .applied
            .retain(|g| status.applied_gateways.contains(g));
        report.failed.extend(status.failed_gateways);
        Ok(report)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_weights_split_exactly() {
    let Some(s) = setup() else { return };
    kit::weights_split_exactly(&s).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_conditions_strength_sticky_rewrites() {
    let Some(s) = setup() else { return };
    kit::conditions_strength_sticky_rewrites(&s).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_apply_replaces_the_whole_set() {
    let Some(s) = setup() else { return };
    kit::apply_replaces_the_whole_set(&s).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_a_bad_gateway_fails_alone() {
    let Some(s) = setup() else { return };
    kit::a_bad_gateway_fails_alone(&s).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_tcp_gateway_relays_by_weight() {
    let Some(s) = setup() else { return };
    kit::tcp_gateway_relays_by_weight(&s).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_changes_under_load_drop_no_request_and_weights_never_reload() {
    let Some(s) = setup() else { return };
    let result = kit::changes_under_load(&s, 4, 100, 20).await;
    eprintln!("haproxy-kv + agent under load: {result:?}");
    let reloads = s
        .agent
        .haproxy_reloads()
        .await
        .expect("show proc")
        .expect("running");
    assert_eq!(
        reloads, 21,
        "20 structural changes + the final removal; none for weights"
    );
    assert!(result.requests > 1_000, "{result:?}");
    assert_eq!(result.failures, 0, "{result:?}");
    s.shutdown().await;
}

fn one_route(port: u16, name: &str, backend_port: u16) -> ResolvedGateway {
    common::gateway(
        "out/web",
        port,
        vec![common::route(
            "out/web",
            &format!("out/{name}"),
            100,
            &[(name, backend_port)],
        )],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_keeps_traffic_flowing_and_the_agent_catches_up() {
    let Some(s) = setup() else { return };
    let (a, b) = (common::backend("a").await, common::backend("b").await);
    let port = common::free_port();
    s.apply(&[one_route(port, "a", a)]).await.expect("apply");
    kit::ready(port).await;

    s.outage.set_down(true);
    s.until("the outage seen", |st| !st.kv_connected).await;
    let mut client = common::Client::new(port);
    assert_eq!(
        common::split(&mut client, 200, &[]).await.get("a"),
        Some(&200),
        "serving through the outage"
    );

    // Vamp keeps publishing while the agent cannot see the store.
    s.router
        .apply(&[one_route(port, "b", b)])
        .await
        .expect("publish");
    let revision = s.revision().await;
    assert_eq!(
        common::split(&mut client, 50, &[]).await.get("a"),
        Some(&50),
        "nothing applied while away"
    );

    s.outage.set_down(false);
    let st = s
        .until("caught up", |st| {
            st.kv_connected && st.applied_revision.is_some_and(|r| r >= revision)
        })
        .await;
    assert_eq!(st.last_error, None);
    assert_eq!(
        common::split(&mut common::Client::new(port), 50, &[])
            .await
            .get("b"),
        Some(&50)
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_states_in_the_store_keep_the_running_config() {
    let Some(s) = setup() else { return };
    let a = common::backend("a").await;
    let port = common::free_port();
    s.apply(&[one_route(port, "a", a)]).await.expect("apply");
    kit::ready(port).await;
    let applied = s.status.borrow().applied_revision;

    // An entry that is not a gateway.
    let bad_key = wire::gateway_key(ROOT, "broken");
    s.store.put(&bad_key, b"{not json").await.expect("put");
    s.store
        .put(&wire::list_key(ROOT), br#"["out/web","broken"]"#)
        .await
        .expect("put");
    let st = s
        .until("the bad entry reported", |st| {
            st.last_error
                .as_deref()
                .is_some_and(|e| e.contains(&bad_key))
        })
        .await;
    assert_eq!(st.applied_revision, applied, "nothing applied");
    assert_eq!(
        common::split(&mut common::Client::new(port), 20, &[])
            .await
            .get("a"),
        Some(&20)
    );

    // An entry whose name does not match its key is refused as a whole.
    let mut hostile = one_route(common::free_port(), "a", a);
    hostile.name = "hostile".into();
    hostile.routes[0] = common::with_condition(hostile.routes[0].clone(), "has header X\nY", 100);
    let hostile_json = wire::WireGateway::from(&hostile).to_json();
    s.store.put(&bad_key, &hostile_json).await.expect("put");
    s.until("the mismatch reported", |st| {
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("names 'hostile'"))
    })
    .await;

    // A gateway that cannot be rendered (a line break in its condition) fails alone.
    s.store.delete(&bad_key).await.expect("delete");
    s.store
        .put(&wire::gateway_key(ROOT, "hostile"), &hostile_json)
        .await
        .expect("put");
    s.store
        .put(&wire::list_key(ROOT), br#"["hostile","out/web"]"#)
        .await
        .expect("put");
    let st = s
        .until("the hostile gateway failed", |st| {
            st.failed_gateways.iter().any(|(g, _)| g == "hostile")
        })
        .await;
    assert_eq!(st.applied_gateways, vec!["out/web".to_owned()]);
    assert!(
        st.failed_gateways[0].1.contains("control character"),
        "{st:?}"
    );
    assert_eq!(
        common::split(&mut common::Client::new(port), 20, &[])
            .await
            .get("a"),
        Some(&20)
    );

    // No list at all: an empty store is never applied.
    s.store.delete(&wire::list_key(ROOT)).await.expect("delete");
    s.until("the missing list reported", |st| {
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no gateway list"))
    })
    .await;
    assert_eq!(
        common::split(&mut common::Client::new(port), 20, &[])
            .await
            .get("a"),
        Some(&20)
    );

    // A valid publication recovers.
    let report = s.apply(&[one_route(port, "a", a)]).await.expect("apply");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(s.status.borrow().last_error, None);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_haproxy_is_started_again_with_the_last_state() {
    let Some(s) = setup() else { return };
    let a = common::backend("a").await;
    let port = common::free_port();
    s.apply(&[one_route(port, "a", a)]).await.expect("apply");
    kit::ready(port).await;
    let pid = s.agent.haproxy_pid().await.expect("HAProxy runs");
    // SIGKILL to the master we started (its workers follow it).
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let st = s
        .until("HAProxy restarted", |st| st.haproxy_restarts >= 1)
        .await;
    assert!(st.haproxy_running, "{st:?}");
    kit::ready(port).await;
    assert_eq!(
        common::split(&mut common::Client::new(port), 20, &[])
            .await
            .get("a"),
        Some(&20)
    );
    assert_ne!(s.agent.haproxy_pid().await, Some(pid), "a new master");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_port_was_taken_is_served_once_the_port_is_free() {
    let Some(s) = setup() else { return };
    let a = common::backend("a").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    s.router
        .apply(&[one_route(port, "a", a)])
        .await
        .expect("publish");
    s.until("the taken port reported", |st| {
        st.failed_gateways.iter().any(|(g, _)| g == "out/web")
    })
    .await;
    drop(taken);
    let st = s
        .until("served once free", |st| {
            st.failed_gateways.is_empty() && st.applied_gateways == ["out/web"]
        })
        .await;
    assert_eq!(st.last_error, None);
    kit::ready(port).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_endpoint_reports_health_and_revision() {
    let Some(s) = setup() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(vamp_gateway::agent::serve_status(
        listener,
        s.agent.status(),
        async {
            let _ = stopped.await;
        },
    ));
    let r = common::Client::new(port)
        .get("/health", &[])
        .await
        .expect("get");
    assert_eq!(r.status, 503, "no HAProxy before the first state: {r:?}");
    let a = common::backend("a").await;
    s.apply(&[one_route(common::free_port(), "a", a)])
        .await
        .expect("apply");
    let revision = s.revision().await;
    let r = common::Client::new(port)
        .get("/health", &[])
        .await
        .expect("get");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains(&format!("\"applied_revision\":{revision}")),
        "{}",
        r.body
    );
    let _ = stop.send(());
    server.await.expect("server");
    s.shutdown().await;
}

/// The server's `haproxy-kv` router reads what the agents count (issue 18, point 8): each
/// agent publishes its HAProxy's per-route counters to `<root>/stats/<name>`, the router adds
/// them up, and they keep growing across a restart of HAProxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_counters_reach_the_server_and_survive_a_haproxy_restart() {
    let Some(s) = setup() else { return };
    let a = common::backend("a").await;
    let port = common::free_port();
    s.apply(&[one_route(port, "a", a)]).await.expect("apply");
    kit::ready(port).await;
    common::split(&mut common::Client::new(port), 10, &[]).await;
    let requests = || async {
        let stats = s.router.stats().await.ok()?;
        stats
            .iter()
            .find(|r| r.route == "out/a")
            .map(|r| r.requests)
    };
    // Published within the stats period (1 s): the probe + 10.
    vamp_core::testkit::eventually("the counters published", || async {
        requests().await.filter(|n| *n == 11)
    })
    .await;
    let keys = s.store.list(&wire::stats_prefix(ROOT)).await.expect("list");
    assert_eq!(keys.entries.len(), 1, "one key per agent");

    let pid = s.agent.haproxy_pid().await.expect("HAProxy runs");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    s.until("HAProxy restarted", |st| st.haproxy_restarts >= 1)
        .await;
    kit::ready(port).await;
    common::split(&mut common::Client::new(port), 5, &[]).await;
    let total = vamp_core::testkit::eventually("the counters after the restart", || async {
        requests().await.filter(|n| *n >= 11 + 1 + 5)
    })
    .await;
    assert!(total <= 11 + 10 + 5, "probes at most: {total}");
    s.shutdown().await;
}
