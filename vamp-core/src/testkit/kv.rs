//! The [`KeyValueStore`] conformance kit.
//!
//! One file: a conformance kit is a list of independent checks of one trait's contract;
//! split, the contract would be scattered.

use futures::StreamExt;

use super::{unique, within};
use crate::Error;
use crate::traits::{KeyValueStore, KvEvent, KvEventKind, WatchStream};

/// Runs every check.
pub async fn run_all(store: &dyn KeyValueStore) {
    put_get_delete(store).await;
    empty_key_is_invalid(store).await;
    list_by_prefix(store).await;
    unicode_keys(store).await;
    values_round_trip(store).await;
    revisions_increase(store).await;
    watch_in_order(store).await;
    watch_filters_by_prefix(store).await;
    watch_resumes(store).await;
    compare_and_set(store).await;
    concurrent_writers(store).await;
}

fn prefix(store: &dyn KeyValueStore, check: &str) -> String {
    format!(
        "/vamp-testkit/{}/",
        unique(&format!("{}-{check}", store.backend()))
    )
}

async fn next(watch: &mut WatchStream, what: &str) -> KvEvent {
    within(what, watch.next())
        .await
        .unwrap_or_else(|| panic!("watch ended while waiting for {what}"))
        .unwrap_or_else(|e| panic!("watch failed while waiting for {what}: {e}"))
}

/// get of a missing key is `None`; put, get, overwrite, delete; delete of a missing key is false.
pub async fn put_get_delete(store: &dyn KeyValueStore) {
    let key = format!("{}k", prefix(store, "crud"));
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "missing key must be None"
    );
    let r1 = store.put(&key, b"one").await.unwrap();
    let entry = store.get(&key).await.unwrap().expect("value after put");
    assert_eq!((entry.value.as_slice(), entry.revision), (&b"one"[..], r1));
    assert_eq!(entry.key, key);
    let r2 = store.put(&key, b"two").await.unwrap();
    assert!(r2 > r1, "overwrite must raise the revision ({r1} -> {r2})");
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, b"two");
    assert!(
        store.delete(&key).await.unwrap(),
        "delete of an existing key is true"
    );
    assert!(
        !store.delete(&key).await.unwrap(),
        "delete of a missing key is false"
    );
    assert_eq!(store.get(&key).await.unwrap(), None);
}

/// Empty keys are rejected.
pub async fn empty_key_is_invalid(store: &dyn KeyValueStore) {
    assert!(
        matches!(store.put("", b"x").await, Err(Error::Invalid { .. })),
        "an empty key must be Error::Invalid"
    );
}

/// list returns exactly the keys under a prefix, sorted bytewise, with a usable revision.
pub async fn list_by_prefix(store: &dyn KeyValueStore) {
    let p = prefix(store, "list");
    let mut last = 0;
    for k in ["a/2", "a/10", "a/1", "ab/1", "b"] {
        last = store.put(&format!("{p}{k}"), k.as_bytes()).await.unwrap();
    }
    let list = store.list(&format!("{p}a/")).await.unwrap();
    let keys: Vec<&str> = list.entries.iter().map(|e| e.key.as_str()).collect();
    let expected: Vec<String> = ["a/1", "a/10", "a/2"]
        .iter()
        .map(|k| format!("{p}{k}"))
        .collect();
    assert_eq!(
        keys, expected,
        "list must return the prefix's keys in byte order"
    );
    assert!(
        list.revision >= last,
        "list revision must cover the listed writes"
    );
    assert_eq!(store.list(&p).await.unwrap().entries.len(), 5);
    assert!(
        store
            .list(&format!("{p}zzz"))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
}

/// Keys with any Unicode round-trip and list.
pub async fn unicode_keys(store: &dyn KeyValueStore) {
    let p = prefix(store, "unicode");
    let keys = ["ключ", "キー/値", "emoji 🚀", "a b\tc", "ünïcödé:1.0"];
    for k in keys {
        store.put(&format!("{p}{k}"), k.as_bytes()).await.unwrap();
    }
    for k in keys {
        let e = store.get(&format!("{p}{k}")).await.unwrap().expect(k);
        assert_eq!(e.value, k.as_bytes(), "value of unicode key {k}");
    }
    assert_eq!(store.list(&p).await.unwrap().entries.len(), keys.len());
}

/// Empty, binary and large (1 MiB) values round-trip byte-exact.
pub async fn values_round_trip(store: &dyn KeyValueStore) {
    let p = prefix(store, "values");
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (name, value) in [
        ("empty", Vec::new()),
        ("bytes", all_bytes),
        ("large", large),
    ] {
        let key = format!("{p}{name}");
        store.put(&key, &value).await.unwrap();
        let back = store.get(&key).await.unwrap().expect(name).value;
        assert!(
            back == value,
            "{name} value must round-trip byte-exact ({} bytes)",
            value.len()
        );
    }
}

/// Revisions grow strictly with every change, across keys.
pub async fn revisions_increase(store: &dyn KeyValueStore) {
    let p = prefix(store, "revisions");
    let mut last = 0;
    for i in 0..10 {
        let r = store.put(&format!("{p}{}", i % 3), b"x").await.unwrap();
        assert!(r > last, "revision {r} after {last}");
        last = r;
    }
}

/// A watch delivers puts and deletes in order with values and increasing revisions.
pub async fn watch_in_order(store: &dyn KeyValueStore) {
    let p = prefix(store, "watch");
    let mut watch = store.watch(&p, None).await.unwrap();
    let (k1, k2) = (format!("{p}k1"), format!("{p}k2"));
    store.put(&k1, b"1").await.unwrap();
    store.put(&k2, b"2").await.unwrap();
    store.delete(&k1).await.unwrap();
    store.put(&k1, b"3").await.unwrap();
    let expected = [
        (KvEventKind::Put, &k1, Some(&b"1"[..])),
        (KvEventKind::Put, &k2, Some(&b"2"[..])),
        (KvEventKind::Delete, &k1, None),
        (KvEventKind::Put, &k1, Some(&b"3"[..])),
    ];
    let mut last = 0;
    for (i, (kind, key, value)) in expected.into_iter().enumerate() {
        let e = next(&mut watch, &format!("change {i}")).await;
        assert_eq!(
            (e.kind, &e.key, e.value.as_deref()),
            (kind, key, value),
            "change {i}"
        );
        assert!(e.revision > last, "watch revisions must increase");
        last = e.revision;
    }
}

/// A watch sees only its prefix.
pub async fn watch_filters_by_prefix(store: &dyn KeyValueStore) {
    let p = prefix(store, "filter");
    let mut watch = store.watch(&format!("{p}in/"), None).await.unwrap();
    store.put(&format!("{p}out/x"), b"no").await.unwrap();
    store.put(&format!("{p}in/x"), b"yes").await.unwrap();
    let e = next(&mut watch, "the change under the prefix").await;
    assert_eq!(
        e.key,
        format!("{p}in/x"),
        "a change outside the prefix was delivered"
    );
}

/// Watching from a listing's revision delivers exactly the later changes, once each.
pub async fn watch_resumes(store: &dyn KeyValueStore) {
    let p = prefix(store, "resume");
    store.put(&format!("{p}a"), b"a").await.unwrap();
    let listing = store.list(&p).await.unwrap();
    let r_b = store.put(&format!("{p}b"), b"b").await.unwrap();
    store.put(&format!("{p}c"), b"c").await.unwrap();
    store.delete(&format!("{p}b")).await.unwrap();
    // Resume after the listing: the three later changes.
    let mut watch = store.watch(&p, Some(listing.revision)).await.unwrap();
    let mut seen = Vec::new();
    for i in 0..3 {
        let e = next(&mut watch, &format!("missed change {i}")).await;
        seen.push((e.kind, e.key.trim_start_matches(&p).to_owned()));
    }
    assert_eq!(
        seen,
        vec![
            (KvEventKind::Put, "b".to_owned()),
            (KvEventKind::Put, "c".to_owned()),
            (KvEventKind::Delete, "b".to_owned()),
        ]
    );
    // New changes follow without a gap or a repeat.
    store.put(&format!("{p}d"), b"d").await.unwrap();
    let e = next(&mut watch, "the change after resuming").await;
    assert_eq!(
        e.key,
        format!("{p}d"),
        "a resumed watch repeated or skipped a change"
    );
    // Resuming from the middle starts right after that revision.
    let mut watch = store.watch(&p, Some(r_b)).await.unwrap();
    let e = next(&mut watch, "the change after revision b").await;
    assert_eq!(e.key, format!("{p}c"));
}

/// put_if creates, updates at the right revision, and refuses stale writes.
pub async fn compare_and_set(store: &dyn KeyValueStore) {
    let key = format!("{}k", prefix(store, "cas"));
    let r1 = match store.put_if(&key, b"1", None).await {
        Err(e) if e.is_unsupported() => {
            eprintln!(
                "{}: compare-and-set unsupported (accepted): {e}",
                store.backend()
            );
            return;
        }
        other => other.unwrap(),
    };
    assert!(
        matches!(
            store.put_if(&key, b"x", None).await,
            Err(Error::Conflict { .. })
        ),
        "creating an existing key must conflict"
    );
    let r2 = store.put_if(&key, b"2", Some(r1)).await.unwrap();
    assert!(
        matches!(
            store.put_if(&key, b"x", Some(r1)).await,
            Err(Error::Conflict { .. })
        ),
        "a stale revision must conflict"
    );
    assert_eq!(store.get(&key).await.unwrap().unwrap().revision, r2);
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, b"2");
}

/// Concurrent writers lose nothing and get distinct revisions.
pub async fn concurrent_writers(store: &dyn KeyValueStore) {
    let p = prefix(store, "concurrent");
    let writes = (0..8).flat_map(|task| (0..20).map(move |i| (task, i)));
    let revisions: Vec<u64> = futures::future::join_all(writes.map(|(task, i)| {
        let key = format!("{p}{task}/{i}");
        async move { store.put(&key, key.as_bytes()).await.unwrap() }
    }))
    .await;
    let mut distinct = revisions.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        revisions.len(),
        "concurrent writes must get distinct revisions"
    );
    assert_eq!(
        store.list(&p).await.unwrap().entries.len(),
        160,
        "a concurrent write was lost"
    );
}

/// A server an outage test can stop and start again (same address, same data).
#[async_trait::async_trait]
pub trait Restartable: Send {
    /// Stops it.
    async fn stop(&mut self);
    /// Starts it again.
    async fn resume(&mut self);
}

/// Stops `server` during a watch and a write stream, then starts it again: every call during
/// the outage fails within `limit` (plus slack) with `Unavailable` or `Timeout` naming the
/// backend; after the restart the store reconnects and the watch delivers every change once,
/// in revision order. `store` must talk to `server` with calls bounded by `limit`.
pub async fn survives_outage(
    store: &dyn KeyValueStore,
    server: &mut dyn Restartable,
    limit: std::time::Duration,
) {
    use std::time::Duration;
    let backend = store.backend();
    let p = prefix(store, "outage");
    let key = |i: usize| format!("{p}k{i:03}");
    // The server answers a while after it listens (e.g. etcd elects itself leader).
    super::eventually_within(
        &format!("{backend} to answer"),
        Duration::from_secs(30),
        || async { store.list(&p).await },
    )
    .await;
    let mut watch = store.watch(&p, None).await.expect("watch");
    let mut written = Vec::new();
    for i in 0..20 {
        store
            .put(&key(i), format!("v{i}").as_bytes())
            .await
            .expect("put before the outage");
        written.push(i);
    }

    server.stop().await;
    let slack = limit * 2 + Duration::from_secs(2);
    for i in 20..25 {
        let err = super::within_limit(
            &format!("a {backend} put during the outage to fail"),
            slack,
            store.put(&key(i), b"lost"),
        )
        .await
        .expect_err("the server is down");
        assert!(
            matches!(err, Error::Unavailable { .. } | Error::Timeout { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(backend), "{err}");
    }
    let got =
        super::within_limit("a get during the outage to fail", slack, store.get(&key(0))).await;
    assert!(got.is_err(), "get during the outage");

    server.resume().await;
    for i in 25..40 {
        let (k, v) = (key(i), format!("v{i}"));
        super::eventually_within(
            &format!("{backend} to take write {i} after the outage"),
            Duration::from_secs(60),
            || store.put(&k, v.as_bytes()),
        )
        .await;
        written.push(i);
    }

    // Every change the server applied, once, in revision order. A write whose answer was lost
    // while the server came back may have been applied and retried: then it is there twice
    // (two revisions), and the watch shows both — never one revision twice.
    let last_key = key(written.last().copied().unwrap_or(0));
    let mut seen: Vec<usize> = Vec::new();
    let mut revisions: Vec<u64> = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .unwrap_or_else(|_| panic!("the {backend} watch stalled after {seen:?}"))
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
            .trim_start_matches(&format!("{p}k"))
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
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(300), watch.next()).await {
        let ev = next.expect("the watch goes on").expect("no watch error");
        assert_eq!(
            ev.key, last_key,
            "nothing but the last write's twin after it"
        );
    }
}

/// For stores that keep a bounded history of `history` changes: a watch from before it yields
/// `Error::Compacted` naming the revision asked for, and a watch from the present still works.
pub async fn reports_compaction(store: &dyn KeyValueStore, history: usize) {
    let key = format!("{}k", prefix(store, "compaction"));
    let first = store.put(&key, b"0").await.expect("put");
    for i in 0..history * 2 + 100 {
        store
            .put(&key, i.to_string().as_bytes())
            .await
            .expect("put");
    }
    let mut watch = store.watch(&key, Some(first)).await.expect("watch");
    let next = within("the compaction error", watch.next())
        .await
        .expect("an item");
    assert!(
        matches!(next, Err(Error::Compacted { requested, .. }) if requested == first),
        "a watch from before the history must be Compacted, got {next:?}"
    );
    let head = store.list(&key).await.expect("list").revision;
    let mut watch = store.watch(&key, Some(head)).await.expect("watch");
    store.put(&key, b"new").await.expect("put");
    let event = next_event(&mut watch).await;
    assert_eq!(event.value.as_deref(), Some(&b"new"[..]));
}

async fn next_event(watch: &mut WatchStream) -> KvEvent {
    next(watch, "the change after the head").await
}
