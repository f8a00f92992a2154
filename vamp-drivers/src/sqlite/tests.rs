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
