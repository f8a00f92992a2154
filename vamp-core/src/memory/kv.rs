//! [`MemoryStore`]: a [`KeyValueStore`] in a `BTreeMap`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::traits::kv::check_key;
use crate::traits::{KeyValueStore, KvEntry, KvEvent, KvEventKind, KvList, WatchStream};
use crate::{Error, Result};

/// How many changes are kept for watches that resume from an older revision.
const HISTORY: usize = 100_000;

/// An in-memory key-value store with store-wide revisions and resumable watches.
///
/// Clones share the same data, so a test can hand one clone to a writer and one to an agent.
/// Dropping every clone drops the data.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use vamp_core::memory::MemoryStore;
/// use vamp_core::traits::KeyValueStore;
/// let kv = MemoryStore::default();
/// kv.put("/vamp/default/gateways", b"[]").await.unwrap();
/// assert_eq!(kv.get("/vamp/default/gateways").await.unwrap().unwrap().value, b"[]");
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    data: BTreeMap<String, (Vec<u8>, u64)>,
    revision: u64,
    history: VecDeque<KvEvent>,
    watchers: Vec<(String, mpsc::UnboundedSender<Result<KvEvent>>)>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (each change is one
        // insert or remove), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn record(&mut self, kind: KvEventKind, key: &str, value: Option<Vec<u8>>) -> u64 {
        self.revision += 1;
        let event = KvEvent {
            kind,
            key: key.to_owned(),
            value,
            revision: self.revision,
        };
        self.watchers.retain(|(prefix, tx)| {
            !key.starts_with(prefix.as_str()) || tx.send(Ok(event.clone())).is_ok()
        });
        self.history.push_back(event);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.revision
    }

    fn write(&mut self, key: &str, value: &[u8]) -> u64 {
        let revision = self.record(KvEventKind::Put, key, Some(value.to_vec()));
        self.data.insert(key.to_owned(), (value.to_vec(), revision));
        revision
    }
}

#[async_trait]
impl KeyValueStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<KvEntry>> {
        check_key(key)?;
        Ok(self.lock().data.get(key).map(|(value, revision)| KvEntry {
            key: key.to_owned(),
            value: value.clone(),
            revision: *revision,
        }))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<u64> {
        check_key(key)?;
        Ok(self.lock().write(key, value))
    }

    async fn put_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64> {
        check_key(key)?;
        let mut inner = self.lock();
        let actual = inner.data.get(key).map(|(_, r)| *r);
        if actual != expected {
            let show = |r: Option<u64>| r.map_or("absent".to_owned(), |r| format!("revision {r}"));
            return Err(Error::Conflict {
                what: key.to_owned(),
                expected: show(expected),
                actual: show(actual),
            });
        }
        Ok(inner.write(key, value))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let mut inner = self.lock();
        if inner.data.remove(key).is_none() {
            return Ok(false);
        }
        inner.record(KvEventKind::Delete, key, None);
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> Result<KvList> {
        let inner = self.lock();
        let entries = inner
            .data
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, r))| KvEntry {
                key: k.clone(),
                value: v.clone(),
                revision: *r,
            })
            .collect();
        Ok(KvList {
            entries,
            revision: inner.revision,
        })
    }

    async fn watch(&self, prefix: &str, after: Option<u64>) -> Result<WatchStream> {
        let mut inner = self.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(after) = after {
            let oldest = inner
                .history
                .front()
                .map_or(inner.revision + 1, |e| e.revision);
            if after + 1 < oldest {
                return Err(Error::Compacted {
                    requested: after,
                    oldest,
                });
            }
            // Backlog and registration happen under one lock: no change is missed or repeated.
            for event in inner
                .history
                .iter()
                .filter(|e| e.revision > after && e.key.starts_with(prefix))
            {
                let _ = tx.send(Ok(event.clone()));
            }
        }
        inner.watchers.push((prefix.to_owned(), tx));
        Ok(UnboundedReceiverStream::new(rx).boxed())
    }
}
