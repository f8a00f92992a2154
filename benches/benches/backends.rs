//! Backends: put / get / watch latency of each key-value store, and write / query time of
//! each persistence (the tag query runs over 1 000 events, before the append bench grows the
//! table). Memory, SQLite, KV-over-memory and the local fakes of Consul and Elasticsearch
//! always run (the fakes' figures measure this client plus a loopback HTTP server, not a real
//! Consul or Elasticsearch); etcd, ZooKeeper and PostgreSQL when `VAMP_BENCH_ETCD` (a URL),
//! `VAMP_BENCH_ZOOKEEPER` (`host:port`) and `VAMP_BENCH_POSTGRES` (a URL) name a server.
//!
//! Run with (services from scripts/services.sh):
//! `VAMP_BENCH_ETCD=http://127.0.0.1:23790 VAMP_BENCH_ZOOKEEPER=127.0.0.1:21810 VAMP_BENCH_POSTGRES=postgres://postgres@127.0.0.1:20432/postgres cargo bench -p vamp-benches --bench backends`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::StreamExt;
use serde_json::json;
use vamp_core::memory::{MemoryPersistence, MemoryStore};
use vamp_core::model::{Event, Kind};
use vamp_core::traits::{EventFilter, KeyValueStore, Page, Persistence, Precondition};
use vamp_drivers::consul::{ConsulConfig, ConsulStore};
use vamp_drivers::elasticsearch::{ElasticsearchConfig, ElasticsearchPersistence};
use vamp_drivers::etcd::{EtcdConfig, EtcdStore};
use vamp_drivers::fakes::consul::{FakeConsul, FakeConsulConfig};
use vamp_drivers::fakes::elasticsearch::FakeElasticsearch;
use vamp_drivers::kv::KvPersistence;
use vamp_drivers::postgres::PostgresPersistence;
use vamp_drivers::sqlite::SqlitePersistence;
use vamp_drivers::zookeeper::{ZookeeperConfig, ZookeeperStore};

fn kv_benches(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: &dyn KeyValueStore,
) {
    let prefix = format!("/vamp-bench/{}/", std::process::id());
    let mut group = c.benchmark_group(format!("kv_{name}"));
    let key = format!("{prefix}k");
    group.bench_function("put", |b| {
        b.iter(|| {
            rt.block_on(store.put(&key, b"0123456789abcdef0123456789abcdef"))
                .expect("put")
        });
    });
    group.bench_function("get", |b| {
        b.iter(|| rt.block_on(store.get(&key)).expect("get"));
    });
    group.bench_function("watch_latency", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut watch = store.watch(&prefix, None).await.expect("watch");
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let t = Instant::now();
                    store
                        .put(&key, i.to_string().as_bytes())
                        .await
                        .expect("put");
                    watch.next().await.expect("event").expect("no error");
                    total += t.elapsed();
                }
                total
            })
        });
    });
    group.finish();
}

fn persistence_benches(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    db: &dyn Persistence,
) {
    let tag = format!("bench:{}-{name}", std::process::id());
    // 1 000 events to query, 10 of them with the tag looked for.
    rt.block_on(async {
        for i in 0..1_000 {
            let tags = if i % 100 == 0 {
                vec![tag.clone()]
            } else {
                vec!["bench:other".to_owned()]
            };
            db.append_event(&Event::new(tags, json!(i)))
                .await
                .expect("event");
        }
    });
    let mut group = c.benchmark_group(format!("persistence_{name}"));
    let value = json!({"name": "web:1.0", "deployable": "img", "ports": {"web": "8080/http"}});
    let mut n = 0u64;
    group.bench_function("put_artifact", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(db.put(
                Kind::Breed,
                &format!("bench-{}", n % 100),
                &value,
                Precondition::Any,
            ))
            .expect("put")
        });
    });
    let filter = EventFilter::tags([tag]);
    group.bench_function("query_events_by_tag", |b| {
        b.iter(|| {
            rt.block_on(db.query_events(&filter, Page::default()))
                .expect("query")
        });
    });
    // Last: it grows the event table.
    group.bench_function("append_event", |b| {
        b.iter(|| {
            rt.block_on(db.append_event(&Event::new(["bench:append"], json!(1))))
                .expect("append")
        });
    });
    group.finish();
}

/// The queries of a long-running server's event log on SQLite: 100 gateways' `metrics`
/// events every 10 s for 1 000 passes (200 000 events, about 2.8 hours): the latest response
/// time of one gateway within 120 s (what `GET /metrics/gateways/…` asks), and the newest page
/// of one gateway's events with no time bound.
fn metrics_log_bench(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    db: &dyn Persistence,
) {
    // Tags of their own, so a shared database's earlier runs do not count.
    let run = std::process::id();
    let start = chrono::Utc::now() - chrono::Duration::seconds(10_000);
    rt.block_on(async {
        for pass in 0..1_000i64 {
            let at = start + chrono::Duration::seconds(pass * 10);
            let batch: Vec<Event> = (0..100)
                .flat_map(|g| {
                    ["responseTime", "rate"].map(|m| {
                        let mut e = Event::new(
                            [
                                format!("gateways:r{run}-d{g}/c/web"),
                                "gateway".into(),
                                format!("metrics:{m}"),
                            ],
                            json!(1.0),
                        );
                        e.kind = "metrics".into();
                        e.timestamp = at;
                        e
                    })
                })
                .collect();
            db.append_events(&batch).await.expect("batch");
        }
    });
    let mut group = c.benchmark_group(format!("event_log_{name}_200k"));
    let gateway = format!("gateways:r{run}-d42/c/web");
    let mut latest = EventFilter::tags([gateway.as_str(), "metrics:responseTime"]);
    latest.from = std::ops::Bound::Included(chrono::Utc::now() - chrono::Duration::seconds(120));
    group.bench_function("latest_metric_in_120s", |b| {
        b.iter(|| {
            rt.block_on(db.query_events(&latest, Page::new(1, 1)))
                .expect("query")
        });
    });
    let page = EventFilter::tags([gateway.as_str(), "metrics:responseTime"]);
    group.bench_function("newest_page_of_a_gateway", |b| {
        b.iter(|| {
            rt.block_on(db.query_events(&page, Page::new(1, 30)))
                .expect("query")
        });
    });
    group.finish();
}

fn main() {
    let rt = vamp_benches::runtime();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));

    kv_benches(&mut c, &rt, "memory", &MemoryStore::default());
    if let Ok(url) = std::env::var("VAMP_BENCH_ETCD") {
        let etcd = rt
            .block_on(EtcdStore::connect(EtcdConfig::new(url)))
            .expect("etcd");
        kv_benches(&mut c, &rt, "etcd", &etcd);
    }
    if let Ok(servers) = std::env::var("VAMP_BENCH_ZOOKEEPER") {
        let mut config = ZookeeperConfig::new(servers);
        config.root = format!("/vamp-bench-{}", std::process::id());
        let zookeeper = rt
            .block_on(ZookeeperStore::connect(config))
            .expect("zookeeper");
        kv_benches(&mut c, &rt, "zookeeper", &zookeeper);
    }
    let fake_consul = rt
        .block_on(FakeConsul::start_with(FakeConsulConfig::default()))
        .expect("fake consul");
    let consul = rt
        .block_on(ConsulStore::connect(ConsulConfig::new(fake_consul.url())))
        .expect("consul");
    kv_benches(&mut c, &rt, "consul_fake", &consul);

    persistence_benches(&mut c, &rt, "memory", &MemoryPersistence::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = rt
        .block_on(SqlitePersistence::open(dir.path().join("bench.db")))
        .expect("sqlite");
    persistence_benches(&mut c, &rt, "sqlite", &sqlite);
    let log_dir = tempfile::tempdir().expect("tempdir");
    let log = rt
        .block_on(SqlitePersistence::open(log_dir.path().join("log.db")))
        .expect("sqlite");
    metrics_log_bench(&mut c, &rt, "sqlite", &log);
    let kv = KvPersistence::new(Arc::new(MemoryStore::default()), "/bench");
    persistence_benches(&mut c, &rt, "kv_memory", &kv);
    if let Ok(url) = std::env::var("VAMP_BENCH_POSTGRES") {
        let pg = rt
            .block_on(PostgresPersistence::connect(&url))
            .expect("postgres");
        persistence_benches(&mut c, &rt, "postgres", &pg);
        metrics_log_bench(&mut c, &rt, "postgres", &pg);
    }
    let fake_es = rt
        .block_on(FakeElasticsearch::start())
        .expect("fake elasticsearch");
    let es = rt
        .block_on(ElasticsearchPersistence::connect(ElasticsearchConfig::new(
            fake_es.url(),
        )))
        .expect("elasticsearch");
    persistence_benches(&mut c, &rt, "elasticsearch_fake", &es);
    c.final_summary();
}
