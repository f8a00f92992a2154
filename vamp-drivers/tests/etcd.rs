//! The etcd store against real etcd 3.4: the shared conformance kit on the instance
//! scripts/test.sh starts, and an outage test on a private instance of its own.
#![cfg(feature = "etcd")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use vamp_core::Error;
use vamp_core::testkit::services::PrivateEtcd;
use vamp_core::traits::{KeyValueStore, KvEventKind};
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

    // Wait until the member answers (it elects itself leader after start).
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.list("/outage/").await.is_err() {
        assert!(Instant::now() < deadline, "private etcd never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut watch = store.watch("/outage/", None).await.expect("watch");

    let mut written = Vec::new();
    for i in 0..20 {
        store
            .put(&format!("/outage/k{i:03}"), format!("v{i}").as_bytes())
            .await
            .expect("put before the outage");
        written.push(i);
    }

    etcd.stop().await;
    // During the outage every call fails, each within its limit (1 s) plus slack.
    for i in 20..25 {
        let t = Instant::now();
        let err = store
            .put(&format!("/outage/k{i:03}"), b"lost")
            .await
            .expect_err("etcd is down");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "a call took {:?} during the outage",
            t.elapsed()
        );
        assert!(
            matches!(err, Error::Unavailable { .. } | Error::Timeout { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("etcd"), "{err}");
    }
    let t = Instant::now();
    assert!(store.get("/outage/k000").await.is_err());
    assert!(t.elapsed() < Duration::from_secs(4));

    etcd.resume().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 25;
    while written.len() < 40 {
        match store
            .put(&format!("/outage/k{i:03}"), format!("v{i}").as_bytes())
            .await
        {
            Ok(_) => {
                written.push(i);
                i += 1;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "etcd did not come back: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // The watch delivers every change etcd applied once, in revision order. A write whose
    // answer was lost while etcd came back may have been applied and then retried: etcd then
    // holds it twice (two revisions), and the watch shows both, never one revision twice.
    let last_key = format!("/outage/k{:03}", written.last().copied().unwrap_or(0));
    let mut seen: Vec<usize> = Vec::new();
    let mut revisions = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .unwrap_or_else(|_| panic!("watch stalled after {seen:?}"))
            .expect("the watch goes on")
            .expect("no watch error");
        assert_eq!(ev.kind, KvEventKind::Put);
        assert!(
            revisions.last().is_none_or(|r| ev.revision > *r),
            "revisions increase: {revisions:?} then {}",
            ev.revision
        );
        revisions.push(ev.revision);
        let n: usize = ev
            .key
            .trim_start_matches("/outage/k")
            .parse()
            .expect("key number");
        assert_eq!(ev.value.as_deref(), Some(format!("v{n}").as_bytes()));
        seen.push(n);
        if ev.key == last_key {
            break;
        }
    }
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct, written, "every change, in order");
    assert!(
        seen.len() <= written.len() + 5,
        "at most one extra per retried write: {seen:?}"
    );
    // Only a repeat of the last write (its retried twin) may follow.
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(300), watch.next()).await {
        let ev = next.expect("the watch goes on").expect("no watch error");
        assert_eq!(
            ev.key, last_key,
            "nothing but the last write's twin after it"
        );
    }
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
