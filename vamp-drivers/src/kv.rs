//! [`KvPersistence`]: artifacts and events kept in any [`KeyValueStore`] that has
//! compare-and-set (memory, etcd, …), as Vamp 1.x could keep them in its key-value store.
//!
//! Layout under a root (e.g. `/vamp/default/persistence`), names percent-encoded so that a
//! name never adds a level:
//!
//! | key | value |
//! |---|---|
//! | `artifacts/<kind>/<name>` | the latest revision: `{"revision", "live", "value", "at"}` |
//! | `history/<kind>/<name>/<revision, 20 digits>` | every revision: `{"value", "at"}` (`value` null for a deletion) |
//! | `events/<id, 20 digits>` | one event: `{"tags", "type", "value", "timestamp"}` |
//! | `events-sequence` | the last event id |
//!
//! Preconditions are checked against the artifact key and written with the store's
//! compare-and-set on that key, so they hold across processes; a lost race on an unconditional
//! write is retried. Event ids come from compare-and-set on `events-sequence`. Event queries
//! read every event and filter in memory: meant for the event volumes of a small installation;
//! use SQLite or PostgreSQL for more.
//!
//! One file: artifacts, history and events share one key layout over the store, which reads
//! best in one place.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use vamp_core::events::EventBus;
use vamp_core::model::{Event, Kind};
use vamp_core::traits::kv::{decode_segment as decode, encode_segment as encode};
use vamp_core::traits::{
    EventFilter, EventStream, KeyValueStore, Page, Paged, Persistence, Precondition, Retention,
    Revision, StoredArtifact, StoredEvent, check_artifact_name,
};
use vamp_core::{Error, Result};

const BACKEND: &str = "kv";

/// How often an unconditional write retries after losing a compare-and-set race.
const RETRIES: usize = 16;

/// Persistence over a key-value store.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use vamp_core::memory::MemoryStore;
/// use vamp_core::model::Kind;
/// use vamp_core::traits::{Persistence, Precondition};
/// use vamp_drivers::kv::KvPersistence;
///
/// let db = KvPersistence::new(Arc::new(MemoryStore::default()), "/vamp/default/persistence");
/// let stored = db.put(Kind::Breed, "web:1.0", &serde_json::json!({"name": "web:1.0"}), Precondition::Absent).await.unwrap();
/// assert_eq!(stored.revision, 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct KvPersistence {
    kv: Arc<dyn KeyValueStore>,
    root: String,
    /// Orders appends of this handle, so its subscribers see ids in order.
    appends: Arc<Mutex<()>>,
    bus: EventBus,
}

#[derive(Debug, Serialize, Deserialize)]
struct Latest {
    revision: u64,
    live: bool,
    value: Option<serde_json::Value>,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Past {
    value: Option<serde_json::Value>,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredJsonEvent {
    tags: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    value: serde_json::Value,
    timestamp: DateTime<Utc>,
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        backend: BACKEND,
        message: format!("{key}: {e}"),
    }
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::backend(BACKEND, e))
}

impl KvPersistence {
    /// Persistence under `root` in `kv`.
    pub fn new(kv: Arc<dyn KeyValueStore>, root: impl Into<String>) -> Self {
        KvPersistence {
            kv,
            root: root.into().trim_end_matches('/').to_owned(),
            appends: Arc::default(),
            bus: EventBus::default(),
        }
    }

    fn artifact_key(&self, kind: Kind, name: &str) -> String {
        format!("{}/artifacts/{}/{}", self.root, kind.plural(), encode(name))
    }

    fn history_prefix(&self, kind: Kind, name: &str) -> String {
        format!("{}/history/{}/{}/", self.root, kind.plural(), encode(name))
    }

    fn events_prefix(&self) -> String {
        format!("{}/events/", self.root)
    }

    async fn latest(&self, key: &str) -> Result<Option<(Latest, u64)>> {
        match self.kv.get(key).await? {
            Some(e) => {
                let latest: Latest =
                    serde_json::from_slice(&e.value).map_err(|err| corrupt(key, err))?;
                Ok(Some((latest, e.revision)))
            }
            None => Ok(None),
        }
    }

    /// Writes a new revision (`None` = deletion): history first, then the artifact key by
    /// compare-and-set. Returns `None` when deleting what is not there.
    async fn write(
        &self,
        kind: Kind,
        name: &str,
        value: Option<&serde_json::Value>,
        precondition: Precondition,
    ) -> Result<Option<(u64, DateTime<Utc>)>> {
        check_artifact_name(name)?;
        let key = self.artifact_key(kind, name);
        for _ in 0..RETRIES {
            let current = self.latest(&key).await?;
            let live = current
                .as_ref()
                .filter(|(l, _)| l.live)
                .map(|(l, _)| l.revision);
            precondition.check(|| format!("{kind}/{name}"), live)?;
            if value.is_none() && live.is_none() {
                return Ok(None);
            }
            let revision = current.as_ref().map_or(0, |(l, _)| l.revision) + 1;
            let at = Utc::now();
            let past = Past {
                value: value.cloned(),
                at,
            };
            // A history entry of a write that then loses the race is overwritten by the winner.
            self.kv
                .put(
                    &format!("{}{revision:020}", self.history_prefix(kind, name)),
                    &json(&past)?,
                )
                .await?;
            let latest = Latest {
                revision,
                live: value.is_some(),
                value: value.cloned(),
                at,
            };
            match self
                .kv
                .put_if(&key, &json(&latest)?, current.map(|(_, r)| r))
                .await
            {
                Ok(_) => return Ok(Some((revision, at))),
                Err(Error::Conflict { .. }) => continue, // someone else wrote: look again
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            what: format!("{kind}/{name}"),
            expected: "a quiet moment to write".into(),
            actual: format!("{RETRIES} concurrent writes in a row"),
        })
    }

    async fn next_event_id(&self) -> Result<u64> {
        let key = format!("{}/events-sequence", self.root);
        for _ in 0..RETRIES * 4 {
            let current = self.kv.get(&key).await?;
            let last: u64 = match &current {
                Some(e) => std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| corrupt(&key, "not a number"))?,
                None => 0,
            };
            let next = last + 1;
            match self
                .kv
                .put_if(
                    &key,
                    next.to_string().as_bytes(),
                    current.map(|e| e.revision),
                )
                .await
            {
                Ok(_) => return Ok(next),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            what: key,
            expected: "a free event id".into(),
            actual: "too many concurrent appends".into(),
        })
    }
}

#[async_trait]
impl Persistence for KvPersistence {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredArtifact>> {
        let key = self.artifact_key(kind, name);
        Ok(self.latest(&key).await?.and_then(|(l, _)| {
            let value = l.value.filter(|_| l.live)?;
            Some(StoredArtifact {
                kind,
                name: name.to_owned(),
                revision: l.revision,
                value,
                updated: l.at,
            })
        }))
    }

    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: Precondition,
    ) -> Result<StoredArtifact> {
        let written = self.write(kind, name, Some(value), precondition).await?;
        StoredArtifact::written(BACKEND, kind, name, value, written)
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        precondition: Precondition,
    ) -> Result<Option<u64>> {
        Ok(self
            .write(kind, name, None, precondition)
            .await?
            .map(|(r, _)| r))
    }

    async fn list(&self, kind: Kind, page: Page) -> Result<Paged<StoredArtifact>> {
        let prefix = format!("{}/artifacts/{}/", self.root, kind.plural());
        let mut items = Vec::new();
        for e in self.kv.list(&prefix).await?.entries {
            let Some(name) = e.key.strip_prefix(&prefix).and_then(decode) else {
                continue;
            };
            let l: Latest = serde_json::from_slice(&e.value).map_err(|err| corrupt(&e.key, err))?;
            if let (true, Some(value)) = (l.live, l.value) {
                items.push(StoredArtifact {
                    kind,
                    name,
                    revision: l.revision,
                    value,
                    updated: l.at,
                });
            }
        }
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Paged::of(items, page))
    }

    async fn history(&self, kind: Kind, name: &str) -> Result<Vec<Revision>> {
        let prefix = self.history_prefix(kind, name);
        let latest = self
            .latest(&self.artifact_key(kind, name))
            .await?
            .map_or(0, |(l, _)| l.revision);
        let mut out = Vec::new();
        for e in self.kv.list(&prefix).await?.entries {
            let Some(revision) = e
                .key
                .strip_prefix(&prefix)
                .and_then(|r| r.parse::<u64>().ok())
            else {
                continue;
            };
            if revision > latest {
                continue; // written by a write that lost its race and gave up
            }
            let p: Past = serde_json::from_slice(&e.value).map_err(|err| corrupt(&e.key, err))?;
            out.push(Revision {
                revision,
                value: p.value,
                at: p.at,
            });
        }
        Ok(out)
    }

    async fn append_event(&self, event: &Event) -> Result<StoredEvent> {
        let _guard = self.appends.lock().await;
        let id = self.next_event_id().await?;
        let stored_json = StoredJsonEvent {
            tags: event.tags.clone(),
            kind: event.kind.clone(),
            value: event.value.clone(),
            timestamp: event.timestamp,
        };
        self.kv
            .put(
                &format!("{}{id:020}", self.events_prefix()),
                &json(&stored_json)?,
            )
            .await?;
        let stored = StoredEvent {
            id,
            event: event.clone(),
        };
        self.bus.publish(stored.clone());
        Ok(stored)
    }

    async fn query_events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        let mut items: Vec<StoredEvent> = self
            .all_events()
            .await?
            .into_iter()
            .filter(|e| filter.matches(&e.event))
            .collect();
        items.sort_by(StoredEvent::newest_first);
        Ok(Paged::of(items, page))
    }

    async fn subscribe(&self) -> Result<EventStream> {
        Ok(self.bus.subscribe())
    }

    /// Reads every event (as queries do), chooses with [`Retention::victims`] and deletes
    /// their keys one by one.
    async fn retain_events(&self, retention: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let all = self.all_events().await?;
        let victims = retention.victims(
            all.iter()
                .map(|e| (e.id, e.event.kind.as_str(), e.event.timestamp)),
            now,
        );
        let prefix = self.events_prefix();
        let mut deleted = 0;
        for id in victims {
            if self.kv.delete(&format!("{prefix}{id:020}")).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

impl KvPersistence {
    /// Every stored event, in key (id) order.
    async fn all_events(&self) -> Result<Vec<StoredEvent>> {
        let prefix = self.events_prefix();
        let mut items = Vec::new();
        for e in self.kv.list(&prefix).await?.entries {
            let Some(id) = e
                .key
                .strip_prefix(&prefix)
                .and_then(|r| r.parse::<u64>().ok())
            else {
                continue;
            };
            let j: StoredJsonEvent =
                serde_json::from_slice(&e.value).map_err(|err| corrupt(&e.key, err))?;
            items.push(StoredEvent {
                id,
                event: Event {
                    tags: j.tags,
                    value: j.value,
                    kind: j.kind,
                    timestamp: j.timestamp,
                },
            });
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vamp_core::memory::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_persistence_kit_on_the_memory_store() {
        let db = KvPersistence::new(Arc::new(MemoryStore::default()), "/vamp/kit/persistence");
        vamp_core::testkit::persistence::run_all(&db).await;
    }

    #[test]
    fn names_round_trip_through_keys() {
        for name in ["web:1.0", "a/b c", "ключ", "%2F", ""] {
            assert_eq!(decode(&encode(name)).as_deref(), Some(name));
            assert!(!encode(name).contains('/'));
        }
    }
}
