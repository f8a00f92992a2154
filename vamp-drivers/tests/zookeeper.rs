//! The ZooKeeper store against real ZooKeeper 3.8: the shared conformance kit on the server
//! scripts/test.sh starts, an outage test on a private server of its own, a lost session, and
//! the change log's pruning.
#![cfg(feature = "zookeeper")]

use std::time::Duration;

use futures::StreamExt;
use vamp_core::Error;
use vamp_core::testkit::services::PrivateZookeeper;
use vamp_core::traits::KeyValueStore;
use vamp_drivers::zookeeper::{ZookeeperConfig, ZookeeperStore};

fn shared() -> Option<String> {
    vamp_core::testkit::services::service("zookeeper")
}

fn classpath() -> String {
    std::env::var("VAMP_TEST_ZOOKEEPER_CLASSPATH")
        .expect("VAMP_TEST_ZOOKEEPER_CLASSPATH is set with zookeeper")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_passes_the_key_value_store_kit() {
    let Some(servers) = shared() else { return };
    let store = ZookeeperStore::connect(ZookeeperConfig::new(servers))
        .await
        .expect("connect to the test ZooKeeper");
    vamp_core::testkit::kv::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_passes_the_election_kit() {
    let Some(servers) = shared() else { return };
    // A session per server, under a root of their own; the session is the lease.
    let root = format!("/{}", vamp_core::testkit::unique("election"));
    let ttl = Duration::from_secs(4);
    vamp_core::testkit::election::conforms(
        || async {
            let mut config = ZookeeperConfig::new(servers.clone());
            config.root = root.clone();
            config.session_timeout = ttl;
            let store = ZookeeperStore::connect(config).await.expect("connect");
            Box::new(store.election()) as Box<dyn vamp_core::traits::LeaderElection>
        },
        ttl,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_under_a_root_passes_the_key_value_store_kit() {
    let Some(servers) = shared() else { return };
    let mut config = ZookeeperConfig::new(servers);
    config.root = format!("/vamp-kit-root/{}", std::process::id());
    let store = ZookeeperStore::connect(config).await.expect("connect");
    vamp_core::testkit::kv::run_all(&store).await;
    // Keys live at their own paths under the root.
    store
        .put("/vamp/default/gateways", b"[]")
        .await
        .expect("put");
    let list = store.list("/vamp/").await.expect("list");
    assert_eq!(list.entries.len(), 1);
    assert_eq!(list.entries[0].key, "/vamp/default/gateways");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_nest_and_relative_keys_stay_apart_from_absolute_ones() {
    let Some(servers) = shared() else { return };
    let mut config = ZookeeperConfig::new(servers);
    config.root = format!("/vamp-kit-nest/{}", std::process::id());
    let store = ZookeeperStore::connect(config).await.expect("connect");
    // A key that is also the parent of keys (as `gateways` is in Vamp's layout).
    store.put("/g/a", b"a").await.expect("put");
    store.put("/g", b"list").await.expect("put");
    store.put("/g/b/c", b"").await.expect("put");
    store.put("g", b"relative").await.expect("put");
    store.put("/./..//x", b"dots").await.expect("put");
    let keys = |list: vamp_core::traits::KvList| {
        list.entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.list("/g").await.expect("list")),
        vec![
            ("/g".to_owned(), b"list".to_vec()),
            ("/g/a".to_owned(), b"a".to_vec()),
            ("/g/b/c".to_owned(), Vec::new()),
        ],
        "the directory /g/b is not a key"
    );
    assert_eq!(
        keys(store.list("g").await.expect("list")),
        vec![("g".to_owned(), b"relative".to_vec())]
    );
    assert_eq!(keys(store.list("").await.expect("list")).len(), 5);
    assert_eq!(
        store.get("/./..//x").await.expect("get").map(|e| e.value),
        Some(b"dots".to_vec())
    );
    // Deleting a key with keys below it keeps them.
    assert!(store.delete("/g").await.expect("delete"));
    assert_eq!(store.get("/g").await.expect("get"), None);
    assert_eq!(store.list("/g").await.expect("list").entries.len(), 2);
    assert!(!store.delete("/g").await.expect("delete"), "already gone");
    assert!(!store.delete("/g/b").await.expect("delete"), "a directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_values_are_refused_before_sending() {
    let Some(servers) = shared() else { return };
    let mut config = ZookeeperConfig::new(servers);
    config.max_value = 1000;
    let store = ZookeeperStore::connect(config).await.expect("connect");
    let err = store
        .put("/vamp-kit-oversize", &[0; 1001])
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("max_value"), "{err}");
    assert_eq!(store.get("/vamp-kit-oversize").await.expect("get"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_falls_behind_the_pruned_log_reports_compaction() {
    let Some(servers) = shared() else { return };
    let mut config = ZookeeperConfig::new(servers);
    config.root = format!("/vamp-kit-prune/{}", std::process::id());
    config.history = 10;
    let store = ZookeeperStore::connect(config).await.expect("connect");
    vamp_core::testkit::kv::reports_compaction(&store, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_calls_fast_and_the_watch_resumes_without_loss_or_duplicates() {
    let Some(_) = shared() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut zookeeper = PrivateZookeeper::start(classpath(), dir.path()).await;
    let mut config = ZookeeperConfig::new(zookeeper.address());
    config.timeout = Duration::from_secs(1);
    config.session_timeout = Duration::from_secs(4);
    let store = ZookeeperStore::connect(config).await.expect("connect");
    vamp_core::testkit::kv::survives_outage(&store, &mut zookeeper, Duration::from_secs(1)).await;
    zookeeper.stop().await;
}

/// A loopback TCP relay to `target` that can cut every connection and refuse new ones for a
/// while: the server keeps running, so it expires the sessions it stops hearing from.
struct Relay {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (is_open, cuts) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let target = target.clone();
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Relay { port, open, cut }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
        if !open {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_replaced_and_the_watch_resumes() {
    let Some(servers) = shared() else { return };
    let relay = Relay::start(servers.clone()).await;
    let mut config = ZookeeperConfig::new(relay.address());
    config.root = format!("/vamp-kit-expiry/{}", std::process::id());
    config.timeout = Duration::from_secs(1);
    config.session_timeout = Duration::from_secs(2);
    let store = ZookeeperStore::connect(config.clone())
        .await
        .expect("connect");
    let mut watch = store.watch("/s/", None).await.expect("watch");
    store.put("/s/before", b"1").await.expect("put");
    relay.set_open(false);
    // Meanwhile another client (straight to the server) writes: the watch must not miss it.
    let mut direct = config;
    direct.servers = servers;
    let other = ZookeeperStore::connect(direct).await.expect("connect");
    other.put("/s/while-cut", b"2").await.expect("put");
    // The server expires the silent session after its 2 s timeout.
    tokio::time::sleep(Duration::from_secs(5)).await;
    relay.set_open(true);
    vamp_core::testkit::eventually_within("a new session", Duration::from_secs(60), || {
        store.put("/s/after", b"3")
    })
    .await;
    let mut keys = Vec::new();
    while !keys.contains(&"/s/after".to_owned()) {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("the watch goes on")
            .expect("an item")
            .expect("an event");
        keys.push(event.key);
    }
    assert_eq!(keys, ["/s/before", "/s/while-cut", "/s/after"]);
}

#[cfg(feature = "kv")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_persistence_over_zookeeper_passes_the_persistence_kit() {
    let Some(servers) = shared() else { return };
    let mut config = ZookeeperConfig::new(servers);
    config.root = format!("/vamp-kit-persistence/{}", std::process::id());
    let store = ZookeeperStore::connect(config).await.expect("connect");
    let db = vamp_drivers::kv::KvPersistence::new(std::sync::Arc::new(store), "/vamp/persistence");
    vamp_core::testkit::persistence::run_all(&db).await;
}
