//! The persistence trait: artifacts with revision history, and events (spec §2.3, §3.8).
//!
//! Over ~400 lines because it is mostly documentation: the trait's contract, which every
//! backend and the conformance kit follow.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use crate::Result;
use crate::model::{Event, Kind};

/// The current version of a stored artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredArtifact {
    /// The kind.
    pub kind: Kind,
    /// The name.
    pub name: String,
    /// Its revision: 1 on first create, +1 on every change (deletes included).
    pub revision: u64,
    /// The artifact in normalized JSON form.
    pub value: serde_json::Value,
    /// When this revision was written.
    pub updated: DateTime<Utc>,
}

impl StoredArtifact {
    /// What a put of `value` stored, from the `(revision, time)` a backend's write returned
    /// (`None`, a write that stored nothing, is the backend's fault).
    ///
    /// # Errors
    /// `Error::Corrupt` naming `backend` when the write returned nothing.
    ///
    /// ```
    /// use vamp_core::model::Kind;
    /// use vamp_core::traits::StoredArtifact;
    /// let at = chrono::Utc::now();
    /// let v = serde_json::json!({"name": "b"});
    /// let stored = StoredArtifact::written("test", Kind::Breed, "b", &v, Some((3, at))).unwrap();
    /// assert_eq!((stored.revision, stored.updated), (3, at));
    /// assert!(StoredArtifact::written("test", Kind::Breed, "b", &v, None).is_err());
    /// ```
    pub fn written(
        backend: &'static str,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        written: Option<(u64, DateTime<Utc>)>,
    ) -> Result<Self> {
        let (revision, updated) = written.ok_or_else(|| crate::Error::Corrupt {
            backend,
            message: format!("a put of {kind}/{name} wrote no revision"),
        })?;
        Ok(StoredArtifact {
            kind,
            name: name.to_owned(),
            revision,
            value: value.clone(),
            updated,
        })
    }
}

/// One entry of an artifact's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// The revision number.
    pub revision: u64,
    /// The value, `None` when this revision deleted the artifact.
    pub value: Option<serde_json::Value>,
    /// When it was written.
    pub at: DateTime<Utc>,
}

/// A condition on the current state for a write (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Write whatever is there.
    #[default]
    Any,
    /// Only if the artifact does not exist (create).
    Absent,
    /// Only if the artifact exists at exactly this revision.
    Revision(u64),
}

impl Precondition {
    /// Checks the precondition against the live revision of an artifact (`None` = it does not
    /// exist); [`Error::Conflict`](crate::Error::Conflict) naming `what` when it fails.
    pub fn check(self, what: impl FnOnce() -> String, live_revision: Option<u64>) -> Result<()> {
        let ok = match self {
            Precondition::Any => true,
            Precondition::Absent => live_revision.is_none(),
            Precondition::Revision(r) => live_revision == Some(r),
        };
        if ok {
            return Ok(());
        }
        let show = |r: Option<u64>| r.map_or("no artifact".to_owned(), |r| format!("revision {r}"));
        Err(crate::Error::Conflict {
            what: what(),
            expected: match self {
                Precondition::Any => "anything".into(),
                Precondition::Absent => "no artifact".into(),
                Precondition::Revision(r) => format!("revision {r}"),
            },
            actual: show(live_revision),
        })
    }
}

/// A page of a listing: 1-based `page` of `per_page` items (spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u64,
    /// Items per page (at least 1).
    pub per_page: u64,
}

impl Page {
    /// Everything in one page.
    pub const ALL: Page = Page {
        page: 1,
        per_page: u64::MAX,
    };

    /// A page; numbers below 1 become 1.
    pub fn new(page: u64, per_page: u64) -> Self {
        Page {
            page: page.max(1),
            per_page: per_page.max(1),
        }
    }

    /// Items to skip.
    pub fn offset(self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

impl Default for Page {
    /// Vamp's default page: 1 of 30.
    fn default() -> Self {
        Page::new(1, 30)
    }
}

/// One page of items and the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items across all pages.
    pub total: u64,
}

impl<T> Paged<T> {
    /// The page `page` of all `items` (already in order), with their total.
    ///
    /// ```
    /// use vamp_core::traits::{Page, Paged};
    /// let p = Paged::of((1..=7).collect::<Vec<u32>>(), Page::new(2, 3));
    /// assert_eq!((p.items, p.total), (vec![4, 5, 6], 7));
    /// ```
    pub fn of(items: impl IntoIterator<Item = T, IntoIter: ExactSizeIterator>, page: Page) -> Self {
        let items = items.into_iter();
        let total = u64::try_from(items.len()).unwrap_or(u64::MAX);
        Paged {
            items: items
                .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
                .take(usize::try_from(page.per_page).unwrap_or(usize::MAX))
                .collect(),
            total,
        }
    }
}

/// Refuses an empty artifact name (every backend's first check of a write).
///
/// # Errors
/// [`Error::Invalid`](crate::Error::Invalid) for `""`.
pub fn check_artifact_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(crate::Error::Invalid {
            what: "artifact name",
            message: "names must not be empty".into(),
        });
    }
    Ok(())
}

/// An event as stored, with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Store-wide id, increasing in append order.
    pub id: u64,
    /// The event.
    pub event: Event,
}

impl StoredEvent {
    /// The event as the API writes it (spec §1.14): its fields and its `id` as a string.
    ///
    /// ```
    /// use vamp_core::model::Event;
    /// use vamp_core::traits::StoredEvent;
    /// let e = StoredEvent { id: 7, event: Event::new(["a"], serde_json::json!(1)) };
    /// assert_eq!(e.to_json()["id"], "7");
    /// assert_eq!(e.to_json()["tags"][0], "a");
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.event).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.insert("id".into(), serde_json::Value::String(self.id.to_string()));
        }
        value
    }

    /// The order event queries answer in: newest first, by time, then by id.
    pub fn newest_first(a: &StoredEvent, b: &StoredEvent) -> std::cmp::Ordering {
        b.event
            .timestamp
            .cmp(&a.event.timestamp)
            .then(b.id.cmp(&a.id))
    }
}

/// Which events to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Every tag must match (AND); `group:name` tags also match `group` (spec §1.14).
    pub tags: Vec<String>,
    /// The type, if any.
    pub kind: Option<String>,
    /// Lower bound on the timestamp.
    pub from: Bound<DateTime<Utc>>,
    /// Upper bound on the timestamp.
    pub until: Bound<DateTime<Utc>>,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            tags: Vec::new(),
            kind: None,
            from: Bound::Unbounded,
            until: Bound::Unbounded,
        }
    }
}

impl EventFilter {
    /// Events carrying all of `tags`.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(tags: I) -> Self {
        EventFilter {
            tags: tags.into_iter().map(Into::into).collect(),
            ..EventFilter::default()
        }
    }

    /// Does `event` pass the filter?
    pub fn matches(&self, event: &Event) -> bool {
        let tags = event.expanded_tags();
        self.tags.iter().all(|t| tags.binary_search(t).is_ok())
            && self.kind.as_ref().is_none_or(|k| *k == event.kind)
            && (self.from, self.until).contains(&event.timestamp)
    }
}

/// Appended events, in id order.
pub type EventStream = BoxStream<'static, Result<StoredEvent>>;

/// How many events of a group are kept, and for how long (issue 17: without it the event log
/// grows without end). `None` is no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionRule {
    /// Events whose timestamp is older than this go.
    pub max_age: Option<std::time::Duration>,
    /// Only this many of the newest (by id, i.e. append order) stay.
    pub max_count: Option<u64>,
}

/// Which events a store keeps: a rule for each listed event type, and one for all other
/// events together.
///
/// ```
/// use vamp_core::traits::Retention;
/// let r = Retention::default();
/// assert!(r.rule_for("metrics").max_count < r.default.max_count);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// The events of every type without a rule of its own, together.
    pub default: RetentionRule,
    /// Rules by event type.
    pub by_type: std::collections::BTreeMap<String, RetentionRule>,
}

impl Default for Retention {
    /// Every event at most 30 days and 1 000 000 events; `metrics` and `health` (published
    /// every few seconds per gateway) at most 2 days and 200 000 each.
    fn default() -> Self {
        let day = std::time::Duration::from_secs(86_400);
        let frequent = RetentionRule {
            max_age: Some(2 * day),
            max_count: Some(200_000),
        };
        Retention {
            default: RetentionRule {
                max_age: Some(30 * day),
                max_count: Some(1_000_000),
            },
            by_type: [("metrics", frequent), ("health", frequent)]
                .into_iter()
                .map(|(t, r)| (t.to_owned(), r))
                .collect(),
        }
    }
}

impl RetentionRule {
    /// The time before which events are too old at `now`, if the rule bounds age.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.max_age
            .and_then(|age| chrono::Duration::from_std(age).ok())
            .and_then(|age| now.checked_sub_signed(age))
    }
}

impl Retention {
    /// The rule that applies to events of type `kind`.
    pub fn rule_for(&self, kind: &str) -> RetentionRule {
        self.by_type.get(kind).copied().unwrap_or(self.default)
    }

    /// The groups the rules make: each listed type on its own (`Some(type)`), then every
    /// other type together (`None`, with the listed types to leave out).
    pub fn groups(&self) -> impl Iterator<Item = (Option<&str>, RetentionRule)> {
        self.by_type
            .iter()
            .map(|(t, r)| (Some(t.as_str()), *r))
            .chain(std::iter::once((None, self.default)))
    }

    /// The ids of `events` (id, type, timestamp — any order) the policy no longer keeps at
    /// `now`: what a backend that cannot delete by query removes. Pure.
    ///
    /// ```
    /// use vamp_core::traits::{Retention, RetentionRule};
    /// let now = chrono::Utc::now();
    /// let r = Retention { default: RetentionRule { max_age: None, max_count: Some(2) }, by_type: Default::default() };
    /// let events = [(1, "e", now), (2, "e", now), (3, "e", now)];
    /// assert_eq!(r.victims(events.iter().map(|(i, t, at)| (*i, *t, *at)), now), vec![1]);
    /// ```
    pub fn victims<'a>(
        &self,
        events: impl IntoIterator<Item = (u64, &'a str, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Vec<u64> {
        let mut groups: std::collections::BTreeMap<Option<&str>, Vec<(u64, DateTime<Utc>)>> =
            std::collections::BTreeMap::new();
        for (id, kind, at) in events {
            let group = self.by_type.get_key_value(kind).map(|(k, _)| k.as_str());
            groups.entry(group).or_default().push((id, at));
        }
        let mut out = Vec::new();
        for (group, mut events) in groups {
            let rule = group.map_or(self.default, |t| self.rule_for(t));
            events.sort_by_key(|e| std::cmp::Reverse(e.0));
            let cutoff = rule.cutoff(now);
            for (i, (id, at)) in events.iter().enumerate() {
                let too_many = rule.max_count.is_some_and(|max| i as u64 >= max);
                let too_old = cutoff.is_some_and(|c| *at < c);
                if too_many || too_old {
                    out.push(*id);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// A lock every process sharing a persistence honours, held until dropped
/// ([`Persistence::lock_shared`]).
pub struct SharedLock(#[allow(dead_code)] Box<dyn Send>);

impl SharedLock {
    /// Wraps whatever holds the lock; dropping it releases the lock.
    ///
    /// ```
    /// use vamp_core::traits::SharedLock;
    /// let guard = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    /// let held = SharedLock::new(guard.clone().try_lock_owned().expect("free"));
    /// assert!(guard.try_lock().is_err());
    /// drop(held);
    /// assert!(guard.try_lock().is_ok());
    /// ```
    pub fn new(holder: impl Send + 'static) -> SharedLock {
        SharedLock(Box::new(holder))
    }
}

impl std::fmt::Debug for SharedLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedLock")
    }
}

/// One node's record under a topic ([`Persistence::published`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The node that published it.
    pub node: String,
    /// What it published last.
    pub value: serde_json::Value,
    /// How long ago, by the store's clock.
    pub age: std::time::Duration,
}

/// Where artifacts and events live.
///
/// Contract:
/// - Artifacts are keyed by (kind, name) and stored as normalized JSON; [`get`](Self::get)
///   returns what the last successful [`put`](Self::put) wrote, byte-for-byte equal JSON.
/// - Revisions are per artifact, start at 1 and grow by 1 on every put and delete; a
///   re-created artifact continues its numbering. [`history`](Self::history) keeps all.
/// - Preconditions are checked atomically with the write; a failed one is
///   [`Error::Conflict`](crate::Error::Conflict) and changes nothing.
/// - Listings are ordered by name; event queries newest first (then by id, descending).
/// - [`subscribe`](Self::subscribe) yields every event appended through this handle after the
///   call, in id order; a subscriber that falls far behind gets
///   [`Error::Lagged`](crate::Error::Lagged) and continues with newer events.
#[async_trait]
pub trait Persistence: Send + Sync + Debug {
    /// The backend's name, e.g. `memory`, `sqlite`.
    fn backend(&self) -> &'static str;

    /// The current version of an artifact, or `None` (never created, or deleted).
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredArtifact>>;

    /// Creates or replaces an artifact if `precondition` holds.
    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: Precondition,
    ) -> Result<StoredArtifact>;

    /// Deletes an artifact if `precondition` holds; returns the revision of the deletion, or
    /// `None` if there was nothing to delete (idempotent).
    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        precondition: Precondition,
    ) -> Result<Option<u64>>;

    /// [`put`](Self::put) made as the leader: refused with
    /// [`Error::Fenced`](crate::Error::Fenced), writing nothing, unless `fence` still lets its
    /// node write ([`FenceCheck`](crate::traits::FenceCheck): it holds the lease, or no larger
    /// term has written) — checked in the write's own transaction, so a leader that lost its
    /// lease (paused, cut off) cannot write. Stores that cannot check keep the default, the
    /// plain `put` (one server: they are refused for several).
    ///
    /// # Errors
    /// As `put`, and `Fenced`.
    async fn put_fenced(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: Precondition,
        fence: &crate::traits::Fence,
    ) -> Result<StoredArtifact> {
        let _ = fence;
        self.put(kind, name, value, precondition).await
    }

    /// Records that `fence.term` leads its scope, so that from now on a fenced write of a
    /// smaller term is refused ([`FenceCheck::Token`](crate::traits::FenceCheck::Token)): a
    /// new leader raises its term before it acts. Nothing for a
    /// [`FenceCheck::Lease`](crate::traits::FenceCheck::Lease) fence (the lease is the record)
    /// or a store that cannot fence (the default).
    ///
    /// # Errors
    /// `Fenced` when a larger term is recorded already (the election store lost its data and
    /// counts from the start again), or the store cannot be reached.
    async fn raise_fence(&self, fence: &crate::traits::Fence) -> Result<()> {
        let _ = fence;
        Ok(())
    }

    /// Takes the lock `name` that every process sharing this store honours, waiting for it;
    /// held until the returned guard is dropped, or the process dies. Servers of a cluster
    /// take it around writes that read before they write (a gateway's port, a deployment's
    /// merge), so two servers never both claim what each saw free (issue 24). `None` (the
    /// default): a store only one process uses, whose own lock suffices.
    ///
    /// # Errors
    /// When the store cannot be reached.
    async fn lock_shared(&self, name: &str) -> Result<Option<SharedLock>> {
        let _ = name;
        Ok(None)
    }

    /// Replaces `node`'s record under `topic` (servers of a cluster publish their routers'
    /// counters about once a second, so that rollouts judge every server's traffic — issue
    /// 24). Records older than an hour go. The default keeps nothing: a store only one
    /// process uses has nobody to tell.
    ///
    /// # Errors
    /// When the store cannot be reached.
    async fn publish(&self, topic: &str, node: &str, value: &serde_json::Value) -> Result<()> {
        let _ = (topic, node, value);
        Ok(())
    }

    /// Every node's record under `topic` published within `max_age`, by node.
    ///
    /// # Errors
    /// When the store cannot be reached.
    async fn published(&self, topic: &str, max_age: std::time::Duration) -> Result<Vec<Published>> {
        let _ = (topic, max_age);
        Ok(Vec::new())
    }

    /// A page of the current artifacts of a kind, by name.
    async fn list(&self, kind: Kind, page: Page) -> Result<Paged<StoredArtifact>>;

    /// Every revision of an artifact, oldest first (empty if it never existed).
    async fn history(&self, kind: Kind, name: &str) -> Result<Vec<Revision>>;

    /// Stores an event; returns it with its id.
    async fn append_event(&self, event: &Event) -> Result<StoredEvent>;

    /// Stores several events in order; returns them with their ids. Backends that can write
    /// them at once (one transaction) override this; the default appends one by one, and on
    /// an error the events before it stay stored.
    async fn append_events(&self, events: &[Event]) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(self.append_event(e).await?);
        }
        Ok(out)
    }

    /// A page of the events that pass `filter`, newest first.
    async fn query_events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>>;

    /// The newest event that passes `filter`, if any: what a health or metrics lookup needs,
    /// without the total a page carries. The default asks [`query_events`](Self::query_events)
    /// for a page of one; the SQL backends skip the count.
    async fn newest_event(&self, filter: &EventFilter) -> Result<Option<StoredEvent>> {
        Ok(self
            .query_events(filter, Page::new(1, 1))
            .await?
            .items
            .pop())
    }

    /// The events appended from now on.
    async fn subscribe(&self) -> Result<EventStream>;

    /// Deletes the events `retention` no longer keeps at `now`; returns how many went. The
    /// store is then within the policy (until the next appends). Backends delete in bounded
    /// batches, so a first run on a large log does not hold the store for long. The default
    /// is [`Error::Unsupported`](crate::Error::Unsupported); every backend of this project
    /// implements it.
    async fn retain_events(&self, retention: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let _ = (retention, now);
        Err(crate::Error::Unsupported {
            backend: self.backend(),
            operation: "event retention",
        })
    }
}
