//! Writes as ZooKeeper transactions (the change, its log entry, the revision touch), the pruning
//! of the log, and reading trees of keys.

use super::*;

impl ZookeeperStore {
    /// Commits a change to `path` plus its log entry and the revision touch; returns the
    /// transaction's zxid. `ops` adds the change itself.
    pub(super) async fn commit(
        &self,
        operation: &'static str,
        key: &str,
        kind: KvEventKind,
        value: &[u8],
        ops: impl Fn(&mut zk::MultiWriter<'_>) -> std::result::Result<(), zk::Error>,
    ) -> std::result::Result<u64, CallError> {
        let client = self.client().await.map_err(CallError::Session)?;
        let entry = changelog::entry(kind, key, value);
        let log = format!("{}/e-", self.node(LOG));
        let sequential = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        let mut multi = client.new_multi_writer();
        ops(&mut multi).map_err(Zk)?;
        multi.add_create(&log, &entry, &sequential).map_err(Zk)?;
        multi.add_set_data(&self.node(REV), &[], None).map_err(Zk)?;
        let results = self
            .call(operation, async {
                multi.commit().await.map_err(zk::Error::from)
            })
            .await?;
        let mut revision = 0;
        let mut created = None;
        for result in results {
            match result {
                zk::MultiWriteResult::SetData { stat } => revision = rev(stat.mzxid),
                zk::MultiWriteResult::Create { path, .. } if path.starts_with(&log) => {
                    created = sequence(path.rsplit('/').next().unwrap_or_default());
                }
                _ => {}
            }
        }
        if let Some(seq) = created
            && seq % 64 == 0
        {
            self.prune(&client).await;
        }
        Ok(revision)
    }

    /// Drops the oldest log entries beyond `history`. The log's mark (the newest dropped
    /// zxid) is raised first, under a version check so that it never goes back, and the
    /// entries deleted after: a watch never misses an entry without learning of it.
    pub(super) async fn prune(&self, client: &zk::Client) {
        let log = self.node(LOG);
        let Ok((mark, log_stat)) = self.call("prune", client.get_data(&log)).await else {
            return;
        };
        let marked = changelog::mark(&mark);
        let Ok(mut names) = self.call("prune", client.list_children(&log)).await else {
            return;
        };
        if names.len() <= self.config.history {
            return;
        }
        names.sort_by_key(|n| sequence(n).unwrap_or(u64::MAX));
        let drop = &names[..names.len() - self.config.history];
        let Some(newest) = drop.last() else { return };
        let Ok(Some(stat)) = self
            .call("prune", client.check_stat(&format!("{log}/{newest}")))
            .await
        else {
            return;
        };
        let newest_zxid = rev(stat.czxid);
        if newest_zxid > marked {
            let raised = self
                .call(
                    "prune",
                    client.set_data(
                        &log,
                        newest_zxid.to_string().as_bytes(),
                        Some(log_stat.version),
                    ),
                )
                .await;
            if let Err(e) = raised {
                // Another writer is pruning (or the server is away): leave it to them.
                tracing::debug!(error = ?e, "zookeeper log prune skipped");
                return;
            }
        }
        for chunk in drop.chunks(256) {
            let mut multi = client.new_multi_writer();
            for name in chunk {
                if multi.add_delete(&format!("{log}/{name}"), None).is_err() {
                    return;
                }
            }
            // A concurrent pruner's deletes make this chunk fail, harmlessly.
            if let Err(e) = self
                .call("prune", async {
                    multi.commit().await.map_err(zk::Error::from)
                })
                .await
            {
                tracing::debug!(error = ?e, "zookeeper log prune chunk skipped");
            }
        }
    }

    /// Creates the missing parents of `path` (directories: even version, no key).
    pub(super) async fn create_parents(&self, path: &str) -> Result<()> {
        let mut parents: Vec<&str> = Vec::new();
        let mut rest = path;
        while let Some(i) = rest.rfind('/') {
            rest = &rest[..i];
            if rest.len() <= self.base.len() {
                break;
            }
            parents.push(rest);
        }
        for parent in parents.into_iter().rev() {
            self.create_if_missing(parent).await?;
        }
        Ok(())
    }

    /// Writes `value` at `key` if `expected` holds (`Expect::Any` for unconditional writes).
    pub(super) async fn write(&self, key: &str, value: &[u8], expected: Expect) -> Result<u64> {
        check_key(key)?;
        if value.len() > self.config.max_value {
            return Err(Error::Invalid {
                what: "value",
                message: format!(
                    "{} bytes at '{key}' exceed the ZooKeeper store's limit of {} bytes (max_value; raise it with the server's jute.maxbuffer)",
                    value.len(),
                    self.config.max_value
                ),
            });
        }
        let path = self.path(key);
        for _ in 0..WRITE_ATTEMPTS {
            let client = self.client().await?;
            let stat = self
                .call("put", client.check_stat(&path))
                .await
                .map_err(|e| self.error("put", e))?;
            let current = stat.filter(is_key).map(|s| rev(s.mzxid));
            if let Expect::Revision(expected) = expected
                && current != expected
            {
                return Err(conflict(key, expected, current));
            }
            let result = match stat {
                None => {
                    self.commit("put", key, KvEventKind::Put, value, |m| {
                        m.add_create(&path, &[], &acls())?;
                        m.add_set_data(&path, value, Some(0))
                    })
                    .await
                }
                Some(stat) if is_key(&stat) => {
                    let v = stat.version;
                    self.commit("put", key, KvEventKind::Put, value, |m| {
                        m.add_set_data(&path, &[], Some(v))?;
                        m.add_set_data(&path, value, Some(v + 1))
                    })
                    .await
                }
                Some(stat) => {
                    let v = stat.version;
                    self.commit("put", key, KvEventKind::Put, value, |m| {
                        m.add_set_data(&path, value, Some(v))
                    })
                    .await
                }
            };
            match result {
                Ok(revision) => return Ok(revision),
                Err(Zk(zk::Error::NoNode)) if stat.is_none() => self.create_parents(&path).await?,
                // Someone changed the key between our read and our write.
                Err(Zk(zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode)) => {
                    if let Expect::Revision(expected) = expected {
                        let now = self.get(key).await?.map(|e| e.revision);
                        return Err(conflict(key, expected, now));
                    }
                }
                Err(e) => return Err(self.error("put", e)),
            }
        }
        Err(Error::Conflict {
            what: key.to_owned(),
            expected: "a quiet moment to write".into(),
            actual: format!("{WRITE_ATTEMPTS} concurrent writes in a row"),
        })
    }

    /// The revision of the latest change (`mzxid` of `%rev`).
    pub(super) async fn head(&self, client: &zk::Client) -> Result<u64> {
        match self.call("list", client.check_stat(&self.node(REV))).await {
            Ok(Some(stat)) => Ok(rev(stat.mzxid)),
            Ok(None) => Err(Error::Corrupt {
                backend: BACKEND,
                message: format!("{} is missing", self.node(REV)),
            }),
            Err(e) => Err(self.error("list", e)),
        }
    }

    /// Every key under `prefix`, by walking the tree with batched multi-reads from the
    /// prefix's directory, into the nodes whose keys can still lead to the prefix.
    pub(super) async fn walk(&self, client: &zk::Client, prefix: &str) -> Result<Vec<KvEntry>> {
        let root = if self.base.is_empty() {
            "/"
        } else {
            &self.base
        };
        let start = keypath::directory(prefix, self.reserved()).unwrap_or_default();
        let mut frontier: Vec<String> = vec![start];
        let mut entries = Vec::new();
        while !frontier.is_empty() {
            let batch: Vec<String> = frontier.drain(..frontier.len().min(BATCH)).collect();
            let mut reader = client.new_multi_reader();
            for relative in &batch {
                let path = self.znode(relative);
                reader
                    .add_get_data(&path)
                    .map_err(|e| self.convert("list", e))?;
                reader
                    .add_get_children(&path)
                    .map_err(|e| self.convert("list", e))?;
            }
            let results = self
                .call("list", reader.commit())
                .await
                .map_err(|e| self.error("list", e))?;
            let mut results = results.into_iter();
            for relative in batch {
                let (data, children) = (results.next(), results.next());
                if let Some(key) = keypath::key(&relative)
                    && key.starts_with(prefix)
                    && let Some(zk::MultiReadResult::Data { data, stat }) = data
                    && is_key(&stat)
                {
                    entries.push(KvEntry {
                        key,
                        value: data,
                        revision: rev(stat.mzxid),
                    });
                }
                let Some(zk::MultiReadResult::Children { children }) = children else {
                    continue; // gone meanwhile
                };
                for name in children {
                    let child = if relative.is_empty() {
                        // The store's own nodes and the server's subtree are not keys.
                        if name == LOG || name == REV || (root == "/" && name == "zookeeper") {
                            continue;
                        }
                        name
                    } else {
                        format!("{relative}/{name}")
                    };
                    let leads_to_prefix = match keypath::key(&child) {
                        Some(key) => key.starts_with(prefix) || prefix.starts_with(&key),
                        None => child == RELATIVE,
                    };
                    if leads_to_prefix {
                        frontier.push(child);
                    }
                }
            }
        }
        entries.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        Ok(entries)
    }

    /// The znode of a path relative to the root.
    pub(super) fn znode(&self, relative: &str) -> String {
        match (self.base.is_empty(), relative.is_empty()) {
            (true, true) => "/".to_owned(),
            (false, true) => self.base.to_string(),
            _ => format!("{}/{relative}", self.base),
        }
    }

    pub(super) fn convert(&self, operation: &'static str, e: zk::Error) -> Error {
        convert(&self.config.servers, operation, e)
    }
}
