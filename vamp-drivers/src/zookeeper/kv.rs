//! The [`KeyValueStore`] trait over the transactions, and the change log its watches follow.

use super::*;

#[async_trait]
impl KeyValueStore for ZookeeperStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<KvEntry>> {
        check_key(key)?;
        let client = self.client().await?;
        match self.call("get", client.get_data(&self.path(key))).await {
            Ok((value, stat)) if is_key(&stat) => Ok(Some(KvEntry {
                key: key.to_owned(),
                value,
                revision: rev(stat.mzxid),
            })),
            Ok(_) | Err(Zk(zk::Error::NoNode)) => Ok(None),
            Err(e) => Err(self.error("get", e)),
        }
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<u64> {
        self.write(key, value, Expect::Any).await
    }

    async fn put_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64> {
        self.write(key, value, Expect::Revision(expected)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let path = self.path(key);
        for _ in 0..WRITE_ATTEMPTS {
            let client = self.client().await?;
            let stat = match self.call("delete", client.check_stat(&path)).await {
                Ok(Some(stat)) if is_key(&stat) => stat,
                Ok(_) => return Ok(false),
                Err(e) => return Err(self.error("delete", e)),
            };
            let v = stat.version;
            let result = self
                .commit("delete", key, KvEventKind::Delete, &[], |m| {
                    if stat.num_children == 0 {
                        m.add_delete(&path, Some(v))
                    } else {
                        // A key with keys below it becomes a directory (even version).
                        m.add_set_data(&path, &[], Some(v))
                    }
                })
                .await;
            match result {
                Ok(_) => return Ok(true),
                Err(Zk(zk::Error::BadVersion | zk::Error::NotEmpty | zk::Error::NoNode)) => {}
                Err(e) => return Err(self.error("delete", e)),
            }
        }
        Err(Error::Conflict {
            what: key.to_owned(),
            expected: "a quiet moment to delete".into(),
            actual: format!("{WRITE_ATTEMPTS} concurrent writes in a row"),
        })
    }

    async fn list(&self, prefix: &str) -> Result<KvList> {
        let client = self.client().await?;
        let mut first = None;
        for _ in 0..LIST_ATTEMPTS {
            let before = self.head(&client).await?;
            let entries = self.walk(&client, prefix).await?;
            let after = self.head(&client).await?;
            if before == after {
                return Ok(KvList {
                    entries,
                    revision: before,
                });
            }
            first.get_or_insert((entries, before));
        }
        // Writes kept landing during the walk: the listing may already show changes a watch
        // from this revision delivers again.
        let (entries, revision) = first.unwrap_or_default();
        Ok(KvList { entries, revision })
    }

    async fn watch(&self, prefix: &str, after: Option<u64>) -> Result<WatchStream> {
        let start = match after {
            Some(r) => r,
            None => {
                let client = self.client().await?;
                self.head(&client).await?
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let log = Log {
            store: self.clone(),
            path: self.node(LOG),
            watcher: None,
        };
        tokio::spawn(changelog::follow(log, prefix.to_owned(), start, tx));
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// The store's change log as the follower reads it.
pub(super) struct Log {
    store: ZookeeperStore,
    path: String,
    watcher: Option<zk::OneshotWatcher>,
}

impl Log {
    fn error(&self, e: CallError) -> Error {
        self.store.error("watch", e)
    }
}

#[async_trait]
impl changelog::ChangeLog for Log {
    async fn names(&mut self) -> Result<Vec<String>> {
        let client = self.store.client().await?;
        let (names, _, watcher) = self
            .store
            .call("watch", client.get_and_watch_children(&self.path))
            .await
            .map_err(|e| self.error(e))?;
        self.watcher = Some(watcher);
        Ok(names)
    }

    async fn changed(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.changed().await;
        }
    }

    async fn revision(&self, name: &str) -> Result<Option<u64>> {
        let client = self.store.client().await?;
        let path = format!("{}/{name}", self.path);
        match self.store.call("watch", client.check_stat(&path)).await {
            Ok(stat) => Ok(stat.map(|s| rev(s.czxid))),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>> {
        let client = self.store.client().await?;
        let path = format!("{}/{name}", self.path);
        match self.store.call("watch", client.get_data(&path)).await {
            Ok((data, stat)) => Ok(Some((data, rev(stat.czxid)))),
            Err(Zk(zk::Error::NoNode)) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn pruned(&self) -> Result<u64> {
        let client = self.store.client().await?;
        match self.store.call("watch", client.get_data(&self.path)).await {
            Ok((data, _)) => Ok(changelog::mark(&data)),
            Err(e) => Err(self.error(e)),
        }
    }
}
