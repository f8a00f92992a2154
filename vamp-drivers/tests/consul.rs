//! The Consul store against [`FakeConsul`], a local fake of Consul's HTTP API built from its
//! public documentation (no Consul server can run here): the shared conformance kits, Consul's
//! limits and ACL tokens, an outage of the agent, the log's pruning — and the fake's own wire
//! behaviour.
#![cfg(all(feature = "consul", feature = "fakes"))]

use std::time::Duration;

use vamp_core::Error;
use vamp_core::testkit::kv::Restartable;
use vamp_core::traits::KeyValueStore;
use vamp_drivers::consul::{ConsulConfig, ConsulStore};
use vamp_drivers::fakes::consul::{FakeConsul, FakeConsulConfig};

/// Consul configured as docs/consul.md asks: limits raised for 1 MiB values.
fn raised() -> FakeConsulConfig {
    FakeConsulConfig {
        kv_max_value_size: 2 * 1024 * 1024,
        txn_max_req_len: 4 * 1024 * 1024,
        token: None,
    }
}

async fn fake() -> FakeConsul {
    FakeConsul::start_with(raised()).await.expect("fake consul")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_passes_the_key_value_store_kit() {
    let consul = fake().await;
    let store = ConsulStore::connect(ConsulConfig::new(consul.url()))
        .await
        .expect("connect");
    vamp_core::testkit::kv::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_under_a_root_passes_the_key_value_store_kit() {
    let consul = fake().await;
    let mut config = ConsulConfig::new(consul.url());
    config.root = "vamp-kv/".into();
    let store = ConsulStore::connect(config).await.expect("connect");
    vamp_core::testkit::kv::run_all(&store).await;
    // Keys are readable Consul keys under the root.
    store
        .put("/vamp/default/gateways", b"[]")
        .await
        .expect("put");
    let raw = reqwest::get(format!(
        "{}/v1/kv/vamp-kv/vamp/default/gateways?raw",
        consul.url()
    ))
    .await
    .expect("get")
    .text()
    .await
    .expect("text");
    assert_eq!(raw, "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_persistence_over_consul_passes_the_persistence_kit() {
    let consul = fake().await;
    let store = ConsulStore::connect(ConsulConfig::new(consul.url()))
        .await
        .expect("connect");
    let db = vamp_drivers::kv::KvPersistence::new(std::sync::Arc::new(store), "/vamp/persistence");
    vamp_core::testkit::persistence::run_all(&db).await;
}

#[tokio::test]
async fn consul_default_limits_refuse_a_mebibyte_with_the_settings_to_raise() {
    let consul = FakeConsul::start().await.expect("fake consul");
    let store = ConsulStore::connect(ConsulConfig::new(consul.url()))
        .await
        .expect("connect");
    let err = store
        .put("/big", &vec![7; 1024 * 1024])
        .await
        .expect_err("over Consul's default limit");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("txn_max_req_len"), "{err}");
    assert_eq!(
        store.get("/big").await.expect("get"),
        None,
        "nothing stored"
    );
    // Values within the limit are fine.
    store
        .put("/small", &vec![7; 100 * 1024])
        .await
        .expect("put");
}

#[tokio::test]
async fn values_over_max_value_are_refused_before_sending() {
    let consul = fake().await;
    let mut config = ConsulConfig::new(consul.url());
    config.max_value = 10;
    let store = ConsulStore::connect(config).await.expect("connect");
    let err = store.put("/k", &[0; 11]).await.expect_err("too large");
    assert!(err.to_string().contains("max_value"), "{err}");
}

#[tokio::test]
async fn acl_tokens_are_sent_and_a_missing_one_is_a_clear_error() {
    let consul = FakeConsul::start_with(FakeConsulConfig {
        token: Some("s3cret".into()),
        ..raised()
    })
    .await
    .expect("fake consul");
    let err = ConsulStore::connect(ConsulConfig::new(consul.url()))
        .await
        .expect_err("no token");
    assert!(err.to_string().contains("permission denied"), "{err}");
    let mut config = ConsulConfig::new(consul.url());
    config.token = Some("s3cret".into());
    let store = ConsulStore::connect(config).await.expect("connect");
    store.put("/k", b"v").await.expect("put with the token");
}

#[tokio::test]
async fn bad_addresses_are_invalid_and_unreachable_agents_unavailable() {
    let err = ConsulStore::connect(ConsulConfig::new("https://consul:8501"))
        .await
        .expect_err("https");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut config = ConsulConfig::new(format!("http://127.0.0.1:{port}"));
    config.timeout = Duration::from_secs(1);
    let err = ConsulStore::connect(config)
        .await
        .expect_err("nobody listens");
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("consul"), "{err}");
}

struct Agent(FakeConsul);

#[async_trait::async_trait]
impl Restartable for Agent {
    async fn stop(&mut self) {
        self.0.stop().await;
    }
    async fn resume(&mut self) {
        self.0.resume().await.expect("the same port");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_outage_fails_calls_fast_and_the_watch_resumes() {
    let consul = fake().await;
    let mut config = ConsulConfig::new(consul.url());
    config.timeout = Duration::from_secs(1);
    config.wait = Duration::from_secs(2);
    let store = ConsulStore::connect(config).await.expect("connect");
    let mut agent = Agent(consul);
    vamp_core::testkit::kv::survives_outage(&store, &mut agent, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_falls_behind_the_pruned_log_reports_compaction() {
    let consul = fake().await;
    let mut config = ConsulConfig::new(consul.url());
    config.history = 10;
    let store = ConsulStore::connect(config).await.expect("connect");
    vamp_core::testkit::kv::reports_compaction(&store, 10).await;
    // The log holds no more than the history plus one pruning period.
    let keys: Vec<String> = reqwest::get(format!("{}/v1/kv/%25log/?keys", consul.url()))
        .await
        .expect("get")
        .json()
        .await
        .expect("keys");
    assert!(keys.len() <= 10 + 64, "{} entries kept", keys.len());
}

/// The fake's wire behaviour that the store relies on, as Consul documents it.
#[tokio::test]
async fn the_fake_blocks_queries_reports_indexes_and_applies_transactions_atomically() {
    let consul = FakeConsul::start().await.expect("fake consul");
    let http = reqwest::Client::new();
    let url = consul.url();
    // 404 with an index; a write moves it.
    let missing = http
        .get(format!("{url}/v1/kv/a?recurse"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    let index: u64 = missing.headers()["X-Consul-Index"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let put = http
        .put(format!("{url}/v1/kv/a/1"))
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(put.text().await.expect("text"), "true");
    // A blocking query at the old index returns at once; at the new one it waits for a change.
    let blocked = http
        .get(format!("{url}/v1/kv/a?recurse&index={index}&wait=5s"))
        .send()
        .await
        .expect("get");
    let now: u64 = blocked.headers()["X-Consul-Index"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!(now > index);
    let waiting = tokio::spawn({
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http
                .get(format!("{url}/v1/kv/a?keys&index={now}&wait=10s"))
                .send()
                .await
                .expect("get");
            if response.status() == 404 {
                return Vec::new(); // woken by the delete: nothing under a/
            }
            response.json::<Vec<String>>().await.expect("keys")
        }
    });
    let deleted = http
        .delete(format!("{url}/v1/kv/a/1"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.text().await.expect("text"), "true");
    http.put(format!("{url}/v1/kv/a/2"))
        .body("y")
        .send()
        .await
        .expect("put");
    let keys = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the blocking query woke")
        .expect("task");
    assert!(keys == ["a/2"] || keys.is_empty(), "{keys:?}");
    // cas=0 only creates.
    let again = http
        .put(format!("{url}/v1/kv/a/2?cas=0"))
        .body("z")
        .send()
        .await
        .expect("put");
    assert_eq!(again.text().await.expect("text"), "false");
    // A failed check rolls the whole transaction back.
    let txn = serde_json::json!([
        {"KV": {"Verb": "set", "Key": "t/1", "Value": "MQ=="}},
        {"KV": {"Verb": "check-not-exists", "Key": "a/2"}},
    ]);
    let rejected = http
        .put(format!("{url}/v1/txn"))
        .json(&txn)
        .send()
        .await
        .expect("txn");
    assert_eq!(rejected.status(), 409);
    let body: serde_json::Value = rejected.json().await.expect("json");
    assert_eq!(body["Errors"][0]["OpIndex"], 1);
    let t = http
        .get(format!("{url}/v1/kv/t/1"))
        .send()
        .await
        .expect("get");
    assert_eq!(t.status(), 404, "nothing of a rejected transaction applies");
}
