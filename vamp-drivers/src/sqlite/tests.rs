use serde_json::json;
use vamp_core::model::{Event, Kind};
use vamp_core::testkit;
use vamp_core::traits::{EventFilter, Page, Persistence, Precondition};

use super::SqlitePersistence;

#[tokio::test]
async fn conforms_to_the_persistence_kit() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlitePersistence::open(dir.path().join("vamp.db"))
        .await
        .unwrap();
    testkit::persistence::run_all(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_on_a_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlitePersistence::open(dir.path().join("nested/dir/vamp.db"))
        .await
        .unwrap();
    testkit::persistence::run_all(&db).await;
}

#[tokio::test]
async fn survives_a_reopen_with_every_artifact_revision_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vamp.db");
    let db = SqlitePersistence::open(&path).await.unwrap();
    for i in 0..3 {
        db.put(
            Kind::Breed,
            "sava:1.0.0",
            &json!({"v": i}),
            Precondition::Any,
        )
        .await
        .unwrap();
    }
    db.put(Kind::Blueprint, "gone", &json!({}), Precondition::Any)
        .await
        .unwrap();
    db.delete(Kind::Blueprint, "gone", Precondition::Any)
        .await
        .unwrap();
    let events: Vec<_> = (0..5)
        .map(|i| Event::new(["deployments:shop", "archive"], json!(i)))
        .collect();
    for e in &events {
        db.append_event(e).await.unwrap();
    }
    let history_before = db.history(Kind::Breed, "sava:1.0.0").await.unwrap();
    db.close().await;
    drop(db);

    let db = SqlitePersistence::open(&path).await.unwrap();
    let breed = db.get(Kind::Breed, "sava:1.0.0").await.unwrap().unwrap();
    assert_eq!((breed.revision, breed.value), (3, json!({"v": 2})));
    assert_eq!(
        db.history(Kind::Breed, "sava:1.0.0").await.unwrap(),
        history_before
    );
    assert_eq!(db.get(Kind::Blueprint, "gone").await.unwrap(), None);
    assert_eq!(db.history(Kind::Blueprint, "gone").await.unwrap().len(), 2);
    let stored = db
        .query_events(&EventFilter::tags(["deployments"]), Page::ALL)
        .await
        .unwrap();
    let mut values: Vec<_> = stored.items.iter().map(|e| e.event.clone()).collect();
    values.reverse();
    assert_eq!(
        values, events,
        "events keep tags, value, type and exact timestamps"
    );
    // Writing continues the numbering.
    let next = db
        .put(
            Kind::Breed,
            "sava:1.0.0",
            &json!({}),
            Precondition::Revision(3),
        )
        .await
        .unwrap();
    assert_eq!(next.revision, 4);
    let id = db
        .append_event(&Event::new(["x"], json!(null)))
        .await
        .unwrap()
        .id;
    assert_eq!(id, 6, "event ids continue after a reopen");
}

#[tokio::test]
async fn an_unusable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = SqlitePersistence::open(file.join("vamp.db"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sqlite") && text.contains("file/vamp.db"),
        "{text}"
    );
}

#[tokio::test]
async fn hostile_strings_are_data_not_sql() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlitePersistence::open(dir.path().join("vamp.db"))
        .await
        .unwrap();
    let name = "x'); DROP TABLE artifacts; --";
    db.put(Kind::Breed, name, &json!(name), Precondition::Any)
        .await
        .unwrap();
    db.append_event(&Event::new([name], json!(1)))
        .await
        .unwrap();
    assert_eq!(
        db.get(Kind::Breed, name).await.unwrap().unwrap().value,
        json!(name)
    );
    let found = db
        .query_events(&EventFilter::tags([name]), Page::ALL)
        .await
        .unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(db.list(Kind::Breed, Page::ALL).await.unwrap().total, 1);
}

/// Both ways a tag query runs — walking a small window by time, or starting from the rarest
/// tag when the window is large or open — give the same answers.
#[tokio::test]
async fn tag_queries_agree_whatever_path_they_take() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqlitePersistence::open(dir.path().join("vamp.db"))
        .await
        .unwrap();
    let start = chrono::Utc::now() - chrono::Duration::seconds(20_000);
    // More events than a window walk takes (5 000), one in 100 of gateway g7, every one a
    // `metrics:responseTime`.
    let events: Vec<Event> = (0..6_000i64)
        .map(|i| {
            let mut e = Event::new(
                [
                    format!("gateways:g{}", i % 100),
                    "metrics:responseTime".into(),
                ],
                json!(i),
            );
            e.timestamp = start + chrono::Duration::seconds(i * 3);
            e
        })
        .collect();
    db.append_events(&events).await.unwrap();
    let query = |from: std::ops::Bound<chrono::DateTime<chrono::Utc>>| {
        let mut f = EventFilter::tags(["metrics:responseTime", "gateways:g7"]);
        f.from = from;
        f
    };
    let values = |page: vamp_core::traits::Paged<vamp_core::traits::StoredEvent>| {
        (
            page.total,
            page.items
                .iter()
                .map(|e| e.event.value.as_i64().unwrap())
                .collect::<Vec<_>>(),
        )
    };
    // Open: from the rarest tag.
    let (total, newest) = values(
        db.query_events(&query(std::ops::Bound::Unbounded), Page::new(1, 3))
            .await
            .unwrap(),
    );
    assert_eq!((total, newest), (60, vec![5_907, 5_807, 5_707]));
    // A window of 6 000 events (too many to walk) and one of the last 300 s (100 events).
    let wide = start - chrono::Duration::seconds(1);
    let (total, newest) = values(
        db.query_events(&query(std::ops::Bound::Included(wide)), Page::new(1, 3))
            .await
            .unwrap(),
    );
    assert_eq!((total, newest), (60, vec![5_907, 5_807, 5_707]));
    let recent = start + chrono::Duration::seconds(5_899 * 3);
    let (total, newest) = values(
        db.query_events(&query(std::ops::Bound::Excluded(recent)), Page::ALL)
            .await
            .unwrap(),
    );
    assert_eq!((total, newest), (1, vec![5_907]));
}
