//! The [`KeyValueStore`] trait over the transactions, and the change log its watches follow.

use super::*;

#[async_trait]
impl KeyValueStore for ConsulStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<KvEntry>> {
        check_key(key)?;
        Ok(self
            .read("get", &self.key_of(key))
            .await?
            .map(|(value, revision)| KvEntry {
                key: key.to_owned(),
                value,
                revision,
            }))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<u64> {
        self.write(key, value, None).await
    }

    async fn put_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64> {
        self.write(key, value, Some(expected)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let consul_key = self.key_of(key);
        for _ in 0..WRITE_ATTEMPTS {
            let Some((_, index)) = self.read("delete", &consul_key).await? else {
                return Ok(false);
            };
            let deleted = self
                .commit(key, KvEventKind::Delete, &[], "delete-cas", Some(index))
                .await?;
            if deleted.is_ok() {
                return Ok(true);
            } // else changed meanwhile: read again
        }
        Err(Error::Conflict {
            what: key.to_owned(),
            expected: "a quiet moment to delete".into(),
            actual: format!("{WRITE_ATTEMPTS} concurrent writes in a row"),
        })
    }

    async fn list(&self, prefix: &str) -> Result<KvList> {
        let directory = keypath::directory(prefix, None).map_or_else(
            || self.root.to_string(),
            |d| {
                if d.is_empty() {
                    self.root.to_string()
                } else {
                    format!("{}{d}/", self.root)
                }
            },
        );
        // One transaction: the tree and the sequence, read at one index.
        let seq_key = self.own(SEQ);
        let ops = [
            op("get-tree", &directory, None, None),
            op("get", &seq_key, None, None),
        ];
        let results = match self.txn("list", &ops).await? {
            Txn::Applied(results) => results,
            Txn::Rejected(errors) => {
                return Err(Error::Corrupt {
                    backend: BACKEND,
                    message: format!("list: {errors:?} (is {seq_key} missing?)"),
                });
            }
        };
        let mut revision = 0;
        let mut entries = Vec::new();
        for kv in results {
            if kv.key == seq_key {
                revision = kv.modify_index;
                continue;
            }
            let Some(relative) = kv.key.strip_prefix(&*self.root) else {
                continue;
            };
            let Some(key) = keypath::key(relative) else {
                continue; // the store's own keys, or foreign ones
            };
            if key.starts_with(prefix) {
                entries.push(KvEntry {
                    value: kv.bytes()?,
                    revision: kv.modify_index,
                    key,
                });
            }
        }
        entries.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        Ok(KvList { entries, revision })
    }

    async fn watch(&self, prefix: &str, after: Option<u64>) -> Result<WatchStream> {
        let start = match after {
            Some(r) => r,
            None => self
                .read("watch", &self.own(SEQ))
                .await?
                .map_or(0, |(_, i)| i),
        };
        let (tx, rx) = mpsc::channel(256);
        let log = Log {
            store: self.clone(),
            index: 0,
        };
        tokio::spawn(changelog::follow(log, prefix.to_owned(), start, tx));
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// The change log as the follower reads it: names by `?keys`, changes by blocking queries.
pub(super) struct Log {
    pub(super) store: ConsulStore,
    /// The `X-Consul-Index` of the last listing.
    pub(super) index: u64,
}

#[async_trait]
impl changelog::ChangeLog for Log {
    async fn names(&mut self) -> Result<Vec<String>> {
        let prefix = self.store.own(LOG);
        let response = self
            .store
            .send(
                "watch",
                self.store
                    .request(
                        reqwest::Method::GET,
                        &format!("/v1/kv/{}", url_key(&prefix)),
                    )
                    .query(&[("keys", "")]),
            )
            .await?;
        self.index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if response.status().as_u16() == 404 {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = self.store.json("watch", response).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    async fn changed(&mut self) {
        // A blocking query returns when the log's index passes ours, or after `wait`.
        let prefix = self.store.own(LOG);
        let wait = self.store.config.wait;
        let request = self
            .store
            .request(
                reqwest::Method::GET,
                &format!("/v1/kv/{}", url_key(&prefix)),
            )
            .query(&[
                ("keys", String::new()),
                ("index", self.index.to_string()),
                ("wait", format!("{}s", wait.as_secs().max(1))),
            ])
            .timeout(wait + wait / 16 + self.store.config.timeout);
        if let Err(e) = self.store.send("watch", request).await {
            tracing::debug!(error = %e, "consul blocking query failed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn revision(&self, name: &str) -> Result<Option<u64>> {
        let key = format!("{}{name}", self.store.own(LOG));
        Ok(self.store.read("watch", &key).await?.map(|(_, i)| i))
    }

    async fn read(&self, name: &str) -> Result<Option<(Vec<u8>, u64)>> {
        let key = format!("{}{name}", self.store.own(LOG));
        self.store.read("watch", &key).await
    }

    async fn pruned(&self) -> Result<u64> {
        let mark = self.store.read("watch", &self.store.own(MARK)).await?;
        Ok(mark.map_or(0, |(bytes, _)| changelog::mark(&bytes)))
    }
}
