//! The agent on the other stores Vamp publishes gateways to — the real ZooKeeper that
//! scripts/test.sh starts, the local fake of Consul's HTTP API (no Consul runs here) — and on
//! a private etcd that serves TLS and requires a client certificate.

#![cfg_attr(
    not(all(feature = "zookeeper", feature = "consul", feature = "etcd-tls")),
    allow(dead_code, unused_imports)
)]

use std::sync::Arc;

use vamp_core::testkit::services::service;
use vamp_core::testkit::unique;
use vamp_core::traits::KeyValueStore;

mod common;

#[cfg(feature = "zookeeper")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_what_is_published_in_zookeeper() {
    use vamp_drivers::zookeeper::{ZookeeperConfig, ZookeeperStore};
    let (Some(servers), Some(haproxy)) = (service("zookeeper"), service("haproxy")) else {
        return;
    };
    let store: Arc<dyn KeyValueStore> = Arc::new(
        ZookeeperStore::connect(ZookeeperConfig::new(servers.clone()))
            .await
            .expect("zookeeper"),
    );
    let root = format!("/vamp/{}", unique("agent"));
    common::serves_what_is_published(store, &root, &["--zookeeper", &servers], &haproxy).await;
}

#[cfg(feature = "consul")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_what_is_published_in_consul_as_faked() {
    use vamp_drivers::consul::{ConsulConfig, ConsulStore};
    let Some(haproxy) = service("haproxy") else {
        return;
    };
    let mut consul = vamp_drivers::fakes::consul::FakeConsul::start()
        .await
        .expect("fake consul");
    let url = consul.url();
    let store: Arc<dyn KeyValueStore> = Arc::new(
        ConsulStore::connect(ConsulConfig::new(url.clone()))
            .await
            .expect("consul"),
    );
    common::serves_what_is_published(store, "/vamp/default", &["--consul", &url], &haproxy).await;
    consul.stop().await;
}

#[cfg(feature = "etcd-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reads_etcd_over_tls_with_a_client_certificate() {
    use vamp_core::testkit::services::PrivateEtcd;
    use vamp_drivers::etcd::{EtcdConfig, EtcdStore, EtcdTls};
    let (Some(_), Some(haproxy)) = (service("etcd"), service("haproxy")) else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("gt")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let (mut etcd, client) = PrivateEtcd::start_tls(dir.path()).await;
    let (ca, client_cert, client_key) = (client.ca, client.cert, client.key);
    let mut config = EtcdConfig::new(etcd.url());
    config.tls =
        Some(EtcdTls::from_files(Some(&ca), Some((&client_cert, &client_key))).expect("files"));
    let store: Arc<dyn KeyValueStore> =
        Arc::new(EtcdStore::connect(config).await.expect("connect"));
    vamp_core::testkit::eventually_within(
        "the private etcd to answer over TLS",
        std::time::Duration::from_secs(20),
        || store.put("/vamp/tls-ready", b"1"),
    )
    .await;
    let (ca, client_cert, client_key) = (
        ca.display().to_string(),
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let url = etcd.url();
    common::serves_what_is_published(
        store,
        "/vamp/default",
        &[
            "--etcd",
            &url,
            "--etcd-ca",
            &ca,
            "--etcd-cert",
            &client_cert,
            "--etcd-key",
            &client_key,
        ],
        &haproxy,
    )
    .await;
    etcd.stop().await;
}
