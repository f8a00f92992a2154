//! The Elasticsearch persistence against [`FakeElasticsearch`], a local fake of Elasticsearch's
//! REST API built from its public documentation (no Elasticsearch can run here): the shared
//! `Persistence` kit, Vamp's event indices, near-real-time search across handles, paging limits,
//! credentials, an outage — and the fake's own wire behaviour.
#![cfg(all(feature = "elasticsearch", feature = "fakes"))]

use std::time::Duration;

use serde_json::json;
use vamp_core::Error;
use vamp_core::model::{Event, Kind};
use vamp_core::traits::{EventFilter, Page, Persistence, Precondition};
use vamp_drivers::elasticsearch::{ElasticsearchConfig, ElasticsearchPersistence};
use vamp_drivers::fakes::elasticsearch::{FakeElasticsearch, FakeElasticsearchConfig};

async fn connect(es: &FakeElasticsearch) -> ElasticsearchPersistence {
    ElasticsearchPersistence::connect(ElasticsearchConfig::new(es.url()))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_passes_the_persistence_kit() {
    let es = FakeElasticsearch::start().await.expect("fake");
    let db = connect(&es).await;
    vamp_core::testkit::persistence::run_all(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_in_vamps_pulse_indices_by_type_and_day() {
    let es = FakeElasticsearch::start().await.expect("fake");
    let db = connect(&es).await;
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let mut event = Event::new(["deployments:shop", "health"], json!(0.97));
    event.kind = "Health".into();
    event.timestamp = at;
    let stored = db.append_event(&event).await.expect("append");
    let url = format!(
        "{}/vamp-pulse-default-health-2026-11-23/_doc/{}",
        es.url(),
        stored.id
    );
    let doc: serde_json::Value = reqwest::get(url)
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["found"], true, "{doc}");
    assert_eq!(doc["_source"]["type"], "Health");
    assert_eq!(doc["_source"]["value"], "0.97", "the value as JSON text");
    assert_eq!(
        doc["_source"]["tags"],
        json!(["deployments:shop", "health"])
    );
    let found = db
        .query_events(&EventFilter::tags(["deployments"]), Page::default())
        .await
        .expect("query");
    assert_eq!(found.total, 1, "group tags match");
    assert_eq!(found.items[0].event, event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_handles_writes_become_searchable_within_the_refresh_interval() {
    let es = FakeElasticsearch::start_with(FakeElasticsearchConfig {
        refresh_interval: Duration::from_millis(300),
        ..FakeElasticsearchConfig::default()
    })
    .await
    .expect("fake");
    let writer = connect(&es).await;
    let reader = connect(&es).await;
    writer
        .put(
            Kind::Breed,
            "web",
            &json!({"name": "web"}),
            Precondition::Absent,
        )
        .await
        .expect("put");
    // Real-time by id, at once.
    assert!(reader.get(Kind::Breed, "web").await.expect("get").is_some());
    // Searchable after a refresh: poll, bounded.
    vamp_core::testkit::eventually_within(
        "the breed to be searchable",
        Duration::from_secs(5),
        || async {
            reader
                .list(Kind::Breed, Page::ALL)
                .await
                .expect("list")
                .total
                > 0
        },
    )
    .await;
}

#[tokio::test]
async fn pages_past_the_result_window_are_empty_past_the_end_and_refused_before_it() {
    let es = FakeElasticsearch::start_with(FakeElasticsearchConfig {
        max_result_window: 5,
        ..FakeElasticsearchConfig::default()
    })
    .await
    .expect("fake");
    let mut config = ElasticsearchConfig::new(es.url());
    config.max_result_window = 5;
    let db = ElasticsearchPersistence::connect(config)
        .await
        .expect("connect");
    for i in 0..8 {
        db.put(Kind::Breed, &format!("b{i}"), &json!({}), Precondition::Any)
            .await
            .expect("put");
    }
    let second = db.list(Kind::Breed, Page::new(2, 2)).await.expect("list");
    assert_eq!(
        (second.items.len(), second.total),
        (2, 8),
        "within the window"
    );
    let beyond = db.list(Kind::Breed, Page::new(4, 3)).await.expect("list");
    assert_eq!(
        (beyond.items.len(), beyond.total),
        (0, 8),
        "past the end: empty"
    );
    for (page, why) in [
        (Page::new(2, 3), "cut short by the window"),
        (Page::new(4, 2), "starts past the window, before the end"),
        (Page::ALL, "more results than the window"),
    ] {
        let err = db.list(Kind::Breed, page).await.expect_err(why);
        assert!(matches!(err, Error::Invalid { .. }), "{why}: {err:?}");
        assert!(err.to_string().contains("max_result_window"), "{err}");
    }
}

#[tokio::test]
async fn credentials_are_sent_and_missing_ones_are_a_clear_error() {
    let es = FakeElasticsearch::start_with(FakeElasticsearchConfig {
        credentials: Some(("vamp".into(), "s3cret".into())),
        ..FakeElasticsearchConfig::default()
    })
    .await
    .expect("fake");
    let err = ElasticsearchPersistence::connect(ElasticsearchConfig::new(es.url()))
        .await
        .expect_err("no credentials");
    assert!(err.to_string().contains("not authorized"), "{err}");
    let mut config = ElasticsearchConfig::new(es.url());
    config.credentials = Some(("vamp".into(), "s3cret".into()));
    let db = ElasticsearchPersistence::connect(config)
        .await
        .expect("connect");
    db.put(Kind::Breed, "b", &json!({}), Precondition::Any)
        .await
        .expect("put");
}

#[tokio::test]
async fn bad_settings_are_invalid_and_an_outage_fails_fast_and_passes() {
    let err = ElasticsearchPersistence::connect(ElasticsearchConfig::new("https://es:9200"))
        .await
        .expect_err("https");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    let mut es = FakeElasticsearch::start().await.expect("fake");
    let mut config = ElasticsearchConfig::new(es.url());
    config.prefix = "Vamp Upper".into();
    let err = ElasticsearchPersistence::connect(config)
        .await
        .expect_err("bad index name");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");

    let mut config = ElasticsearchConfig::new(es.url());
    config.timeout = Duration::from_secs(1);
    let db = ElasticsearchPersistence::connect(config)
        .await
        .expect("connect");
    db.put(Kind::Breed, "kept", &json!({"v": 1}), Precondition::Any)
        .await
        .expect("put");
    es.stop().await;
    let err = vamp_core::testkit::within_limit(
        "a put during the outage to fail",
        Duration::from_secs(4),
        db.put(Kind::Breed, "lost", &json!({}), Precondition::Any),
    )
    .await
    .expect_err("down");
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("elasticsearch"), "{err}");
    es.resume().await.expect("same port");
    let back = db
        .get(Kind::Breed, "kept")
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(back.value, json!({"v": 1}));
    assert!(db.get(Kind::Breed, "lost").await.expect("get").is_none());
}

/// The fake's wire behaviour the backend relies on, as Elasticsearch documents it.
#[tokio::test]
async fn the_fake_versions_documents_checks_sequence_numbers_and_searches_after_refresh() {
    let es = FakeElasticsearch::start_with(FakeElasticsearchConfig {
        refresh_interval: Duration::from_secs(3600),
        ..FakeElasticsearchConfig::default()
    })
    .await
    .expect("fake");
    let http = reqwest::Client::new();
    let url = es.url();
    let put = |body: serde_json::Value, query: &'static str| {
        let http = http.clone();
        let url = format!("{url}/i/_doc/a{query}");
        async move {
            let r = http.put(url).json(&body).send().await.expect("put");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.expect("json"))
        }
    };
    let (status, first) = put(json!({"n": 1}), "?op_type=create").await;
    assert_eq!((status, first["_version"].as_u64()), (201, Some(1)));
    let (status, _) = put(json!({"n": 2}), "?op_type=create").await;
    assert_eq!(status, 409, "create of an existing id");
    let (status, second) = put(json!({"n": 2}), "").await;
    assert_eq!((status, second["_version"].as_u64()), (200, Some(2)));
    let stale = format!("?if_seq_no={}&if_primary_term=1", first["_seq_no"]);
    let stale: &'static str = Box::leak(stale.into_boxed_str());
    let (status, conflict) = put(json!({"n": 3}), stale).await;
    assert_eq!(status, 409);
    assert_eq!(
        conflict["error"]["type"],
        "version_conflict_engine_exception"
    );
    // Not searchable until refreshed; GET is real-time.
    let search = || {
        let http = http.clone();
        let url = format!("{}/i*/_search", es.url());
        async move {
            http.post(url)
                .json(&json!({"query": {"term": {"n": 2}}, "track_total_hits": true}))
                .send()
                .await
                .expect("search")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    assert_eq!(search().await["hits"]["total"]["value"], 0);
    http.post(format!("{}/i/_refresh", es.url()))
        .send()
        .await
        .expect("refresh");
    assert_eq!(search().await["hits"]["total"]["value"], 1);
    let window = http
        .post(format!("{}/i/_search", es.url()))
        .json(&json!({"from": 9995, "size": 10}))
        .send()
        .await
        .expect("search");
    assert_eq!(window.status(), 400, "past max_result_window");
}
