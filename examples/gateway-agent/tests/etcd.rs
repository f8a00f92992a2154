//! The `vamp-gateway-agent` binary end to end: gateways published in a private etcd by the
//! `haproxy-kv` router reach traffic through the agent's HAProxy; an etcd outage does not stop
//! traffic, and after etcd returns the agent applies what is published next.

use std::sync::Arc;
use std::time::Duration;

use vamp_core::testkit::eventually_within;
use vamp_core::testkit::services::{PrivateEtcd, service};
use vamp_core::traits::{KeyValueStore, Router};
use vamp_drivers::etcd::{EtcdConfig, EtcdStore};
use vamp_gateway::haproxy::kv::KvRouter;
use vamp_gateway::haproxy::render::RenderOptions;
use vamp_gateway::testkit::{Client, backend, free_port, split};

mod common;
use common::{applied, one};

const ROOT: &str = "/vamp/agent-e2e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_through_an_etcd_outage_and_catches_up() {
    let (Some(_), Some(haproxy)) = (service("etcd"), service("haproxy")) else {
        return;
    };
    let etcd_bin = vamp_core::testkit::services::service_binary("etcd");
    let dir = tempfile::Builder::new()
        .prefix("ge")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etcd")).expect("dir");
    let mut etcd = PrivateEtcd::start(etcd_bin, &dir.path().join("etcd")).await;
    let mut config = EtcdConfig::new(etcd.url());
    config.timeout = Duration::from_secs(1);
    let store: Arc<dyn KeyValueStore> =
        Arc::new(EtcdStore::connect(config).await.expect("connect"));
    eventually_within(
        "the private etcd to answer",
        Duration::from_secs(20),
        || store.list(ROOT),
    )
    .await;
    let router = KvRouter::new(store.clone(), ROOT, RenderOptions::default());

    let (agent, status_port) = common::start_agent(
        &["--etcd", &etcd.url()],
        ROOT,
        &haproxy,
        &dir.path().join("hx"),
    );

    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    router.apply(&[one(port, "a", a)]).await.expect("publish a");
    applied(status_port, common::published(store.as_ref(), ROOT).await).await;
    assert_eq!(
        split(&mut Client::new(port), 50, &[]).await.get("a"),
        Some(&50)
    );

    etcd.stop().await;
    let mut client = Client::new(port);
    assert_eq!(
        split(&mut client, 200, &[]).await.get("a"),
        Some(&200),
        "traffic flows while etcd is down"
    );
    let r = Client::new(status_port)
        .get("/health", &[])
        .await
        .expect("status during the outage");
    assert_eq!(r.status, 200, "HAProxy still serves: {}", r.body);

    etcd.resume().await;
    let to_b = [one(port, "b", b)];
    let report = eventually_within("etcd to come back", Duration::from_secs(20), || {
        router.apply(&to_b)
    })
    .await;
    assert!(report.failed.is_empty(), "{report:?}");
    applied(status_port, common::published(store.as_ref(), ROOT).await).await;
    assert_eq!(
        split(&mut Client::new(port), 50, &[]).await.get("b"),
        Some(&50),
        "the agent caught up"
    );

    // SIGTERM stops the agent and its HAProxy.
    common::stop_agent(agent).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "HAProxy stopped with the agent"
    );
    etcd.stop().await;
}
