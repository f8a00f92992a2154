//! The [`Persistence`] conformance kit.
//!
//! One file: a conformance kit is a list of independent checks of one trait's contract;
//! split, the contract would be scattered.

use std::ops::Bound;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde_json::json;

use super::{unique, within};
use crate::Error;
use crate::model::{Event, Kind};
use crate::traits::{EventFilter, Page, Persistence, Precondition};

/// Runs every check.
pub async fn run_all(db: &dyn Persistence) {
    artifact_lifecycle(db).await;
    names_and_values(db).await;
    listing_and_paging(db).await;
    kinds_are_separate(db).await;
    events_by_tags_type_and_time(db).await;
    event_paging(db).await;
    subscribers_see_appends_in_order(db).await;
    batches_are_stored_in_order(db).await;
    concurrent_writers(db).await;
    retention_keeps_what_the_policy_says(db).await;
    the_newest_event_is_the_first_of_a_page(db).await;
}

/// Create, read, update with preconditions, delete, recreate; history keeps every revision.
pub async fn artifact_lifecycle(db: &dyn Persistence) {
    let name = unique("lifecycle");
    let k = Kind::Breed;
    assert_eq!(
        db.get(k, &name).await.unwrap(),
        None,
        "never created = None"
    );
    assert_eq!(
        db.history(k, &name).await.unwrap(),
        vec![],
        "no history yet"
    );
    let v1 = json!({"name": name, "deployable": "a"});
    let s1 = db.put(k, &name, &v1, Precondition::Absent).await.unwrap();
    assert_eq!(
        (s1.revision, &s1.value, s1.kind, &s1.name),
        (1, &v1, k, &name)
    );
    assert_eq!(db.get(k, &name).await.unwrap().unwrap().value, v1);
    #[expect(
        clippy::needless_pass_by_value,
        reason = "reads like an assertion on a result"
    )]
    fn conflict<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
        assert!(
            matches!(r, Err(Error::Conflict { .. })),
            "{what} must be a conflict, got {r:?}"
        );
    }
    conflict(
        db.put(k, &name, &v1, Precondition::Absent).await,
        "creating an existing artifact",
    );
    let v2 = json!({"name": name, "deployable": "b"});
    assert_eq!(
        db.put(k, &name, &v2, Precondition::Any)
            .await
            .unwrap()
            .revision,
        2
    );
    conflict(
        db.put(k, &name, &v1, Precondition::Revision(1)).await,
        "a stale revision",
    );
    assert_eq!(
        db.get(k, &name).await.unwrap().unwrap().value,
        v2,
        "a conflict changes nothing"
    );
    let v3 = json!({"name": name, "deployable": "c"});
    assert_eq!(
        db.put(k, &name, &v3, Precondition::Revision(2))
            .await
            .unwrap()
            .revision,
        3
    );
    conflict(
        db.delete(k, &name, Precondition::Revision(2)).await,
        "a stale delete",
    );
    assert_eq!(
        db.delete(k, &name, Precondition::Any).await.unwrap(),
        Some(4)
    );
    assert_eq!(db.get(k, &name).await.unwrap(), None, "deleted = None");
    assert_eq!(
        db.delete(k, &name, Precondition::Any).await.unwrap(),
        None,
        "delete is idempotent"
    );
    conflict(
        db.put(k, &name, &v1, Precondition::Revision(4)).await,
        "a revision of a deleted artifact",
    );
    let again = db.put(k, &name, &v1, Precondition::Absent).await.unwrap();
    assert_eq!(
        again.revision, 5,
        "a re-created artifact continues its numbering"
    );
    let history = db.history(k, &name).await.unwrap();
    let revs: Vec<(u64, bool)> = history
        .iter()
        .map(|r| (r.revision, r.value.is_some()))
        .collect();
    assert_eq!(
        revs,
        vec![(1, true), (2, true), (3, true), (4, false), (5, true)]
    );
    assert_eq!(history[2].value.as_ref(), Some(&v3));
    assert!(
        history.windows(2).all(|w| w[0].at <= w[1].at),
        "history times are ordered"
    );
}

/// Unicode names and large, deeply nested values round-trip exactly.
pub async fn names_and_values(db: &dyn Persistence) {
    let big: Vec<serde_json::Value> = (0..20_000)
        .map(|i| json!({"i": i, "s": format!("value-{i}-ünïcödé-🚀")}))
        .collect();
    let value = json!({
        "big": big,
        "nested": {"a": {"b": {"c": [1, 2.5, null, true, "x"]}}},
        "empty": {}, "quote": "it's \"quoted\" \\ and 'single'", "sql": "'; DROP TABLE artifacts; --"
    });
    for name in [
        unique("ключ"),
        unique("sava:1.0.0"),
        unique("a b"),
        unique("'quote\""),
    ] {
        db.put(Kind::Blueprint, &name, &value, Precondition::Any)
            .await
            .unwrap();
        let back = db
            .get(Kind::Blueprint, &name)
            .await
            .unwrap()
            .expect("stored value");
        assert!(
            back.value == value,
            "a large value must round-trip exactly ({name})"
        );
        assert_eq!(back.name, name);
    }
    assert!(
        matches!(
            db.put(Kind::Blueprint, "", &value, Precondition::Any).await,
            Err(Error::Invalid { .. })
        ),
        "an empty name must be Error::Invalid"
    );
}

/// Listings are by name and page consistently.
pub async fn listing_and_paging(db: &dyn Persistence) {
    let kind = Kind::Template;
    let before = db.list(kind, Page::ALL).await.unwrap().total;
    let base = unique("page");
    for i in [3, 1, 6, 0, 5, 2, 4] {
        let name = format!("{base}-{i}");
        db.put(kind, &name, &json!({"i": i}), Precondition::Any)
            .await
            .unwrap();
    }
    db.delete(kind, &format!("{base}-6"), Precondition::Any)
        .await
        .unwrap();
    let all = db.list(kind, Page::ALL).await.unwrap();
    assert_eq!(all.total, before + 6, "deleted artifacts are not listed");
    let names: Vec<String> = all.items.iter().map(|a| a.name.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "listings are ordered by name");
    let mut paged = Vec::new();
    for page in 1.. {
        let p = db.list(kind, Page::new(page, 4)).await.unwrap();
        assert_eq!(p.total, all.total, "every page reports the total");
        if p.items.is_empty() {
            break;
        }
        assert!(p.items.len() <= 4);
        paged.extend(p.items.into_iter().map(|a| a.name));
    }
    assert_eq!(paged, names, "pages concatenate to the full listing");
    let beyond = db.list(kind, Page::new(1000, 30)).await.unwrap();
    assert!(beyond.items.is_empty(), "a page beyond the end is empty");
}

/// The same name under two kinds is two artifacts.
pub async fn kinds_are_separate(db: &dyn Persistence) {
    let name = unique("same-name");
    db.put(
        Kind::Scale,
        &name,
        &json!({"k": "scale"}),
        Precondition::Absent,
    )
    .await
    .unwrap();
    db.put(Kind::Sla, &name, &json!({"k": "sla"}), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        db.get(Kind::Scale, &name).await.unwrap().unwrap().value,
        json!({"k": "scale"})
    );
    db.delete(Kind::Sla, &name, Precondition::Any)
        .await
        .unwrap();
    assert!(
        db.get(Kind::Scale, &name).await.unwrap().is_some(),
        "deleting one kind keeps the other"
    );
}

fn at(base: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    base + Duration::seconds(seconds)
}

/// Tag queries are AND over expanded tags; type and time bounds filter; newest first.
pub async fn events_by_tags_type_and_time(db: &dyn Persistence) {
    let tag = unique("tag");
    let group = unique("group");
    let base = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    for i in 0..10 {
        let mut tags = vec![tag.clone(), format!("{group}:member-{i}")];
        if i % 2 == 0 {
            tags.push("even".to_owned());
        }
        let event = Event {
            tags,
            value: json!({"i": i}),
            kind: if i < 3 {
                "metrics".into()
            } else {
                "event".into()
            },
            timestamp: at(base, i),
        };
        let stored = db.append_event(&event).await.unwrap();
        assert_eq!(stored.event, event, "append returns the event as stored");
    }
    let query = |filter: EventFilter| async move {
        let found = db.query_events(&filter, Page::ALL).await.unwrap();
        let values: Vec<i64> = found
            .items
            .iter()
            .map(|e| e.event.value["i"].as_i64().unwrap())
            .collect();
        assert_eq!(found.total, values.len() as u64);
        values
    };
    assert_eq!(
        query(EventFilter::tags([&tag])).await,
        vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        "newest first"
    );
    assert_eq!(
        query(EventFilter::tags([&tag, "even"])).await,
        vec![8, 6, 4, 2, 0],
        "tags are ANDed"
    );
    assert_eq!(
        query(EventFilter::tags([&tag, &group])).await.len(),
        10,
        "group:name matches group"
    );
    assert_eq!(
        query(EventFilter::tags([format!("{group}:member-4")])).await,
        vec![4]
    );
    let typed = EventFilter {
        kind: Some("metrics".into()),
        ..EventFilter::tags([&tag])
    };
    assert_eq!(query(typed).await, vec![2, 1, 0], "type filter");
    let ranged = EventFilter {
        from: Bound::Included(at(base, 3)),
        until: Bound::Excluded(at(base, 7)),
        ..EventFilter::tags([&tag])
    };
    assert_eq!(query(ranged).await, vec![6, 5, 4, 3], "time range [3, 7)");
    let open = EventFilter {
        from: Bound::Excluded(at(base, 7)),
        ..EventFilter::tags([&tag])
    };
    assert_eq!(query(open).await, vec![9, 8], "time range (7, ∞)");
    assert!(
        query(EventFilter::tags([unique("nothing")]))
            .await
            .is_empty()
    );
}

/// Event pages concatenate to the whole result.
pub async fn event_paging(db: &dyn Persistence) {
    let tag = unique("paging");
    for i in 0..7 {
        db.append_event(&Event::new([tag.clone()], json!(i)))
            .await
            .unwrap();
    }
    let filter = EventFilter::tags([&tag]);
    let mut ids = Vec::new();
    for page in 1..=4 {
        let p = db.query_events(&filter, Page::new(page, 3)).await.unwrap();
        assert_eq!(p.total, 7);
        ids.extend(p.items.iter().map(|e| e.id));
    }
    assert_eq!(ids.len(), 7, "pages concatenate to every event");
    let all: Vec<u64> = db
        .query_events(&filter, Page::ALL)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, all);
}

/// A subscriber sees events appended after it subscribed, in order, once each.
pub async fn subscribers_see_appends_in_order(db: &dyn Persistence) {
    let tag = unique("subscribe");
    db.append_event(&Event::new([tag.clone()], json!("before")))
        .await
        .unwrap();
    let mut stream = db.subscribe().await.unwrap();
    let mut appended = Vec::new();
    for i in 0..5 {
        appended.push(
            db.append_event(&Event::new([tag.clone()], json!(i)))
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = within("a subscribed event", stream.next())
            .await
            .expect("subscription ended")
            .expect("subscription failed");
        if e.event.tags.contains(&tag) {
            assert_ne!(
                e.event.value,
                json!("before"),
                "events before subscribing are not replayed"
            );
            seen.push(e.id);
        }
    }
    assert_eq!(seen, appended, "subscribers see appends in id order");
}

/// `append_events` stores a batch in order, with increasing ids, findable by tag and seen by
/// subscribers in that order.
pub async fn batches_are_stored_in_order(db: &dyn Persistence) {
    let tag = unique("batch");
    let mut stream = db.subscribe().await.unwrap();
    let batch: Vec<Event> = (0..4)
        .map(|i| Event::new([tag.clone(), format!("n:{i}")], json!(i)))
        .collect();
    let stored = db.append_events(&batch).await.unwrap();
    assert_eq!(stored.len(), 4);
    assert!(
        stored.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in batch order: {stored:?}"
    );
    assert_eq!(
        stored
            .iter()
            .map(|s| s.event.value.clone())
            .collect::<Vec<_>>(),
        [json!(0), json!(1), json!(2), json!(3)]
    );
    assert!(db.append_events(&[]).await.unwrap().is_empty());
    let found = db
        .query_events(
            &EventFilter {
                tags: vec![tag.clone(), "n:2".into()],
                ..EventFilter::default()
            },
            Page::ALL,
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id, stored[2].id);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let e = within("a batched event", stream.next())
            .await
            .expect("subscription ended")
            .expect("subscription failed");
        if e.event.tags.contains(&tag) {
            seen.push(e.id);
        }
    }
    assert_eq!(
        seen,
        stored.iter().map(|s| s.id).collect::<Vec<_>>(),
        "subscribers see a batch in order"
    );
}

/// Concurrent appends get distinct ids; concurrent compare-and-set has exactly one winner.
pub async fn concurrent_writers(db: &dyn Persistence) {
    let tag = unique("concurrent");
    let ids: Vec<u64> = futures::future::join_all((0..100).map(|i| {
        let e = Event::new([tag.clone()], json!(i));
        async move { db.append_event(&e).await.unwrap().id }
    }))
    .await;
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 100, "concurrent appends need distinct ids");
    let total = db
        .query_events(&EventFilter::tags([&tag]), Page::ALL)
        .await
        .unwrap()
        .total;
    assert_eq!(total, 100, "a concurrent append was lost");

    let name = unique("race");
    db.put(Kind::Gateway, &name, &json!(0), Precondition::Absent)
        .await
        .unwrap();
    let results = futures::future::join_all((0..10).map(|i| {
        let name = name.clone();
        async move {
            db.put(Kind::Gateway, &name, &json!(i), Precondition::Revision(1))
                .await
        }
    }))
    .await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        winners, 1,
        "exactly one compare-and-set on revision 1 may win"
    );
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::Conflict { .. }))),
        "the losers get Error::Conflict"
    );
    assert_eq!(
        db.get(Kind::Gateway, &name)
            .await
            .unwrap()
            .unwrap()
            .revision,
        2
    );
}

/// `retain_events` deletes the events of a type that are too old, then all but the newest
/// `max_count`; events of other types (the default group is unbounded here, as other checks
/// share the store) and tag queries follow. A backend that cannot is `Unsupported`, said loudly.
pub async fn retention_keeps_what_the_policy_says(db: &dyn Persistence) {
    use crate::traits::{Retention, RetentionRule};
    let kind = unique("retention");
    let other = unique("kept");
    let now = Utc::now();
    let event = |kind: &str, i: i64, age: Duration| {
        let mut e = Event::new([kind.to_owned()], json!(i));
        e.kind = kind.to_owned();
        e.timestamp = now - age;
        e
    };
    // Two old events, then four recent ones, then one of another type.
    let mut batch: Vec<Event> = (0..2)
        .map(|i| event(&kind, i, Duration::hours(2)))
        .collect();
    batch.extend((2..6).map(|i| event(&kind, i, Duration::seconds(5))));
    batch.push(event(&other, 99, Duration::days(400)));
    let stored = db.append_events(&batch).await.unwrap();
    let policy = Retention {
        default: RetentionRule::default(),
        by_type: [(
            kind.clone(),
            RetentionRule {
                max_age: Some(std::time::Duration::from_secs(3600)),
                max_count: Some(3),
            },
        )]
        .into_iter()
        .collect(),
    };
    let deleted = match db.retain_events(&policy, now).await {
        Err(Error::Unsupported { .. }) => {
            eprintln!("NOTE: {} does not support event retention", db.backend());
            return;
        }
        other => other.unwrap(),
    };
    assert_eq!(deleted, 3, "two too old, one too many");
    let left = |tag: String| async move {
        db.query_events(&EventFilter::tags([tag]), Page::ALL)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let mut kept = left(kind.clone()).await;
    kept.sort_unstable();
    let newest: Vec<u64> = stored[3..6].iter().map(|s| s.id).collect();
    assert_eq!(kept, newest, "the three newest of the type stay");
    assert_eq!(
        left(other).await,
        vec![stored[6].id],
        "other types are left alone"
    );
    assert_eq!(
        db.retain_events(&policy, now).await.unwrap(),
        0,
        "a second run finds nothing to do"
    );
}

/// `newest_event` finds what a page of one would hold, and nothing where a page is empty.
pub async fn the_newest_event_is_the_first_of_a_page(db: &dyn Persistence) {
    let tag = unique("newest");
    for i in 0..3 {
        db.append_event(&Event::new([tag.clone()], json!(i)))
            .await
            .unwrap();
    }
    let filter = EventFilter::tags([tag]);
    let page = db.query_events(&filter, Page::new(1, 1)).await.unwrap();
    let newest = db.newest_event(&filter).await.unwrap();
    assert_eq!(
        newest.as_ref(),
        page.items.first(),
        "the newest is the first of a page"
    );
    assert_eq!(newest.map(|e| e.event.value), Some(json!(2)));
    let none = EventFilter::tags([unique("nothing")]);
    assert_eq!(db.newest_event(&none).await.unwrap(), None);
}
