//! [`MemoryPersistence`]: artifacts and events in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::events::EventBus;
use crate::model::{Event, Kind};
use crate::traits::{
    EventFilter, EventStream, Page, Paged, Persistence, Precondition, Retention, Revision,
    StoredArtifact, StoredEvent, check_artifact_name,
};

/// Artifacts and events in memory. Clones share the same data.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use vamp_core::memory::MemoryPersistence;
/// use vamp_core::model::Kind;
/// use vamp_core::traits::{Persistence, Precondition};
/// let db = MemoryPersistence::default();
/// let stored = db.put(Kind::Breed, "sava:1.0.0", &serde_json::json!({"name": "sava:1.0.0"}),
///     Precondition::Absent).await.unwrap();
/// assert_eq!(stored.revision, 1);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryPersistence {
    inner: Arc<Mutex<Inner>>,
    bus: EventBus,
    /// The shared locks, by name: clones (servers in one process) share them.
    locks: Arc<Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Published records by topic and node, with when.
    published: Arc<Mutex<Published>>,
}

type Published = BTreeMap<String, BTreeMap<String, (serde_json::Value, std::time::Instant)>>;

#[derive(Debug, Default)]
struct Inner {
    artifacts: BTreeMap<(Kind, String), Vec<Revision>>,
    events: Vec<StoredEvent>,
    /// The last event id given (events may be deleted by retention; ids are never reused).
    last_event: u64,
}

impl MemoryPersistence {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is a single push; a poisoned lock still holds consistent data.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The current revision number and value of an artifact's history.
pub(crate) fn current(history: Option<&Vec<Revision>>) -> (Option<u64>, Option<&Revision>) {
    let last = history.and_then(|h| h.last());
    (last.map(|r| r.revision), last.filter(|r| r.value.is_some()))
}

fn stored(kind: Kind, name: &str, r: &Revision) -> StoredArtifact {
    StoredArtifact {
        kind,
        name: name.to_owned(),
        revision: r.revision,
        value: r.value.clone().unwrap_or_default(),
        updated: r.at,
    }
}

#[async_trait]
impl Persistence for MemoryPersistence {
    fn backend(&self) -> &'static str {
        "memory"
    }

    /// Clones share the records (several servers in one process, as tests run them).
    async fn publish(&self, topic: &str, node: &str, value: &serde_json::Value) -> Result<()> {
        let mut published = crate::vamp::lock(&self.published);
        let topic = published.entry(topic.to_owned()).or_default();
        topic.insert(node.to_owned(), (value.clone(), std::time::Instant::now()));
        topic.retain(|_, (_, at)| at.elapsed() < std::time::Duration::from_secs(3600));
        Ok(())
    }

    async fn published(
        &self,
        topic: &str,
        max_age: std::time::Duration,
    ) -> Result<Vec<crate::traits::Published>> {
        let published = crate::vamp::lock(&self.published);
        Ok(published
            .get(topic)
            .into_iter()
            .flatten()
            .filter(|(_, (_, at))| at.elapsed() <= max_age)
            .map(|(node, (value, at))| crate::traits::Published {
                node: node.clone(),
                value: value.clone(),
                age: at.elapsed(),
            })
            .collect())
    }

    /// Clones share the lock (several servers in one process, as tests run them).
    async fn lock_shared(&self, name: &str) -> Result<Option<crate::traits::SharedLock>> {
        let lock = {
            let mut locks = crate::vamp::lock(&self.locks);
            locks.entry(name.to_owned()).or_default().clone()
        };
        Ok(Some(crate::traits::SharedLock::new(
            lock.lock_owned().await,
        )))
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredArtifact>> {
        let inner = self.lock();
        let (_, live) = current(inner.artifacts.get(&(kind, name.to_owned())));
        Ok(live.map(|r| stored(kind, name, r)))
    }

    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: Precondition,
    ) -> Result<StoredArtifact> {
        check_artifact_name(name)?;
        let mut inner = self.lock();
        let history = inner.artifacts.entry((kind, name.to_owned())).or_default();
        let (last, live) = current(Some(history));
        precondition.check(|| format!("{kind}/{name}"), live.map(|r| r.revision))?;
        let revision = Revision {
            revision: last.unwrap_or(0) + 1,
            value: Some(value.clone()),
            at: Utc::now(),
        };
        let out = stored(kind, name, &revision);
        history.push(revision);
        Ok(out)
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        precondition: Precondition,
    ) -> Result<Option<u64>> {
        let mut inner = self.lock();
        let Some(history) = inner.artifacts.get_mut(&(kind, name.to_owned())) else {
            precondition.check(|| format!("{kind}/{name}"), None)?;
            return Ok(None);
        };
        let (last, live) = current(Some(history));
        precondition.check(|| format!("{kind}/{name}"), live.map(|r| r.revision))?;
        if live.is_none() {
            return Ok(None);
        }
        let revision = last.unwrap_or(0) + 1;
        history.push(Revision {
            revision,
            value: None,
            at: Utc::now(),
        });
        Ok(Some(revision))
    }

    async fn list(&self, kind: Kind, page: Page) -> Result<Paged<StoredArtifact>> {
        let inner = self.lock();
        // Count every live artifact, copy only the page's.
        let (mut total, mut items) = (0u64, Vec::new());
        for ((_, name), h) in inner
            .artifacts
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind)
        {
            if let Some(r) = current(Some(h)).1 {
                if total >= page.offset() && total - page.offset() < page.per_page {
                    items.push(stored(kind, name, r));
                }
                total += 1;
            }
        }
        Ok(Paged { items, total })
    }

    async fn history(&self, kind: Kind, name: &str) -> Result<Vec<Revision>> {
        Ok(self
            .lock()
            .artifacts
            .get(&(kind, name.to_owned()))
            .cloned()
            .unwrap_or_default())
    }

    async fn append_event(&self, event: &Event) -> Result<StoredEvent> {
        let stored = {
            let mut inner = self.lock();
            inner.last_event += 1;
            let stored = StoredEvent {
                id: inner.last_event,
                event: event.clone(),
            };
            inner.events.push(stored.clone());
            // Published under the lock so subscribers see ids in order.
            self.bus.publish(stored.clone());
            stored
        };
        Ok(stored)
    }

    async fn query_events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        let inner = self.lock();
        let mut found: Vec<&StoredEvent> = inner
            .events
            .iter()
            .filter(|e| filter.matches(&e.event))
            .collect();
        found.sort_by(|a, b| StoredEvent::newest_first(a, b));
        Ok(Paged::of(found.into_iter().cloned(), page))
    }

    async fn subscribe(&self) -> Result<EventStream> {
        Ok(self.bus.subscribe())
    }

    async fn retain_events(&self, retention: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let mut inner = self.lock();
        let victims = retention.victims(
            inner
                .events
                .iter()
                .map(|e| (e.id, e.event.kind.as_str(), e.event.timestamp)),
            now,
        );
        let before = inner.events.len();
        inner
            .events
            .retain(|e| victims.binary_search(&e.id).is_err());
        Ok((before - inner.events.len()) as u64)
    }
}
