//! The etcd store against real etcd 3.4: the shared conformance kit on the instance
//! scripts/test.sh starts, and an outage test on a private instance of its own.
#![cfg(feature = "etcd")]

use std::path::PathBuf;
use std::time::Duration;

use vamp_core::testkit::services::PrivateEtcd;
use vamp_drivers::etcd::{EtcdConfig, EtcdStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_key_value_store_kit() {
    let Some(url) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let store = EtcdStore::connect(EtcdConfig::new(url))
        .await
        .expect("connect to the test etcd");
    vamp_core::testkit::kv::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_calls_fast_and_the_watch_resumes_without_loss_or_duplicates() {
    let Some(_) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let binary = PathBuf::from(
        std::env::var("VAMP_TEST_ETCD_BIN").expect("VAMP_TEST_ETCD_BIN is set with etcd"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut etcd = PrivateEtcd::start(binary, dir.path()).await;
    let mut config = EtcdConfig::new(etcd.url());
    config.timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(1);
    let store = EtcdStore::connect(config).await.expect("connect");
    vamp_core::testkit::kv::survives_outage(&store, &mut etcd, Duration::from_secs(1)).await;
    etcd.stop().await;
}

#[cfg(feature = "kv")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_persistence_over_etcd_passes_the_persistence_kit() {
    let Some(url) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let store = EtcdStore::connect(EtcdConfig::new(url))
        .await
        .expect("connect to the test etcd");
    let root = format!("/vamp-kit-persistence/{}", std::process::id());
    let db = vamp_drivers::kv::KvPersistence::new(std::sync::Arc::new(store), root);
    vamp_core::testkit::persistence::run_all(&db).await;
}
