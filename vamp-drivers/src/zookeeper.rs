//! [`ZookeeperStore`]: the ZooKeeper [`KeyValueStore`] (zookeeper-client, ZooKeeper 3.6 or
//! later). Each value is the data of its own znode, at the key's path (ARCHITECTURE, "KV
//! layout"): key `/vamp/default/gateways` is znode `/vamp/default/gateways`.
//!
//! ZooKeeper keeps no history and its watches carry neither values nor revisions, so the store
//! keeps a bounded change log next to the keys, written in the same `multi` transaction as
//! every change; that is what lets a watch deliver every change once, with its value, and
//! resume after an outage or a lost session exactly where it stopped.
//!
//! # Layout (under [`ZookeeperConfig::root`], `/` by default)
//!
//! | znode | what |
//! |---|---|
//! | `<key path>` | the value. A key is split at `/`; each segment is percent-encoded as by [`encode_segment`](vamp_core::traits::kv::encode_segment), an empty segment is `%`, `.`/`..` are `%2E`/`%2E%2E`, keys without a leading `/` live under `%%`, and `zookeeper` at the top of `/` is `%7Aookeeper` |
//! | `%log/e-<sequence>` | one change: kind, key, value |
//! | `%log` (data) | the zxid of the newest change pruned from the log |
//! | `%rev` | touched by every change: its `mzxid` is the revision of the latest change |
//!
//! - Revisions are ZooKeeper zxids: a key's revision is its znode's `mzxid`, a change's revision
//!   is the zxid of its transaction.
//! - Parents of a key are created as needed and stay when the key is deleted; a znode holds a
//!   key when its data version is **odd** (writes keep that invariant inside their transaction),
//!   so a parent that is only a directory, or a deleted key that still has children, is not
//!   a key. An external writer that `set`s a znode flips it; write through this store.
//! - The log keeps the last [`ZookeeperConfig::history`] changes; a watch that falls further
//!   behind ends with `Error::Compacted` (re-list and watch again).
//! - A value and its log copy travel in one request: the server's `jute.maxbuffer` must exceed
//!   twice the largest value (scripts/services.sh runs ZooKeeper with 8 MiB; ZooKeeper's default
//!   is 1 MiB). Values above [`ZookeeperConfig::max_value`] are refused before sending.
//! - Every call is bounded by [`ZookeeperConfig::timeout`]; an expired session is replaced by a
//!   new one on the next call.
//!
//! Verified against a real ZooKeeper 3.8 on loopback (the `KeyValueStore` conformance kit and an
//! outage test that stops and restarts a private server during a watch and a write stream).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{Mutex, mpsc};
use vamp_core::traits::kv::check_key;
use vamp_core::traits::{KeyValueStore, KvEntry, KvEventKind, KvList, WatchStream};
use vamp_core::{Error, Result};
use zookeeper_client as zk;

use crate::changelog::{self, sequence};
use crate::keypath::{self, RELATIVE};

const BACKEND: &str = "zookeeper";
const LOG: &str = "%log";
const REV: &str = "%rev";
/// Nodes read per multi-read request while listing.
const BATCH: usize = 32;
/// Attempts at a listing no change interleaves with, before settling for the first revision.
const LIST_ATTEMPTS: usize = 4;
/// Attempts of an unconditional write that loses races on a version check.
const WRITE_ATTEMPTS: usize = 16;

/// How to reach ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZookeeperConfig {
    /// Servers, `host:port` separated by commas (Vamp's `zookeeper.servers`).
    pub servers: String,
    /// The znode the keys live under (`/`: keys are znode paths as they are).
    pub root: String,
    /// The session timeout asked of the server (Vamp's `zookeeper.session-timeout`).
    pub session_timeout: Duration,
    /// The limit of one call, and of establishing a session (`zookeeper.connect-timeout`).
    pub timeout: Duration,
    /// How many changes the change log keeps for watches that fall behind.
    pub history: usize,
    /// The largest value accepted (see the module docs on `jute.maxbuffer`).
    pub max_value: usize,
    /// `digest` authentication, `user:password`, when the tree has ACLs.
    pub digest: Option<String>,
}

impl ZookeeperConfig {
    /// Servers `servers`, root `/`, 10 s sessions, 5 s per call, 1 000 changes of history,
    /// values up to 1 MiB.
    ///
    /// ```
    /// let config = vamp_drivers::zookeeper::ZookeeperConfig::new("127.0.0.1:2181");
    /// assert_eq!(config.root, "/");
    /// ```
    pub fn new(servers: impl Into<String>) -> Self {
        ZookeeperConfig {
            servers: servers.into(),
            root: "/".to_owned(),
            session_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            history: 1000,
            max_value: 1024 * 1024,
            digest: None,
        }
    }
}

/// A ZooKeeper session (renewed when it expires). Clones share it.
#[derive(Clone)]
pub struct ZookeeperStore {
    config: Arc<ZookeeperConfig>,
    /// `root` without its trailing `/` (empty for `/`).
    base: Arc<str>,
    session: Arc<Mutex<zk::Client>>,
}

impl std::fmt::Debug for ZookeeperStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZookeeperStore")
            .field("servers", &self.config.servers)
            .field("root", &self.config.root)
            .finish_non_exhaustive()
    }
}

fn acls() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn rev(zxid: i64) -> u64 {
    u64::try_from(zxid).unwrap_or(0)
}

fn is_key(stat: &zk::Stat) -> bool {
    stat.version % 2 == 1
}

impl ZookeeperStore {
    /// Opens a session (bounded by `timeout`) and makes sure the root and the change log exist.
    ///
    /// # Errors
    /// `Error::Unavailable`/`Error::Timeout` when no server answers, `Error::Invalid` for a bad
    /// root or server list.
    pub async fn connect(config: ZookeeperConfig) -> Result<Self> {
        let root = config.root.trim_end_matches('/');
        if !config.root.starts_with('/') || root.contains("//") {
            return Err(Error::Invalid {
                what: "zookeeper root",
                message: format!(
                    "'{}' is not an absolute znode path (e.g. / or /vamp-kv)",
                    config.root
                ),
            });
        }
        let base: Arc<str> = Arc::from(root);
        let client = Self::open(&config).await?;
        let store = ZookeeperStore {
            config: Arc::new(config),
            base,
            session: Arc::new(Mutex::new(client)),
        };
        store.prepare().await?;
        Ok(store)
    }

    async fn open(config: &ZookeeperConfig) -> Result<zk::Client> {
        let mut connector = zk::Client::connector()
            .with_session_timeout(config.session_timeout)
            .with_connection_timeout(config.timeout.min(config.session_timeout))
            .with_fail_eagerly();
        if let Some(digest) = &config.digest {
            connector = connector.with_auth("digest", digest.as_bytes());
        }
        match tokio::time::timeout(config.timeout, connector.connect(&config.servers)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e @ zk::Error::BadArguments(_))) => Err(Error::Invalid {
                what: "zookeeper servers",
                message: format!("'{}': {e}", config.servers),
            }),
            Ok(Err(e)) => Err(convert(&config.servers, "connect", e)),
            Err(_) => Err(Error::Timeout {
                backend: BACKEND,
                address: config.servers.clone(),
                operation: "connect",
                timeout: config.timeout,
            }),
        }
    }

    /// Creates the root's ancestors, the root, the log and the revision node if missing.
    async fn prepare(&self) -> Result<()> {
        let mut path = String::new();
        for segment in self.base.split('/').filter(|s| !s.is_empty()) {
            path.push('/');
            path.push_str(segment);
            self.create_if_missing(&path).await?;
        }
        self.create_if_missing(&self.node(LOG)).await?;
        self.create_if_missing(&self.node(REV)).await
    }

    async fn create_if_missing(&self, path: &str) -> Result<()> {
        let client = self.client().await?;
        match self.call("create", client.create(path, &[], &acls())).await {
            Ok(_) | Err(Zk(zk::Error::NodeExists)) => Ok(()),
            Err(e) => Err(self.error("create", e)),
        }
    }

    /// The current session, or a new one when it expired or closed.
    async fn client(&self) -> Result<zk::Client> {
        let mut session = self.session.lock().await;
        if matches!(
            session.state(),
            zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
        ) {
            tracing::info!(servers = %self.config.servers, "zookeeper session ended; opening a new one");
            *session = Self::open(&self.config).await?;
        }
        Ok(session.clone())
    }

    fn node(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// `zookeeper` at the top of `/` is the server's own subtree.
    fn reserved(&self) -> Option<&'static str> {
        self.base.is_empty().then_some("zookeeper")
    }

    /// The znode of `key` (see the module docs).
    fn path(&self, key: &str) -> String {
        format!("{}/{}", self.base, keypath::path(key, self.reserved()))
    }

    /// Runs one call under the configured limit.
    async fn call<T>(
        &self,
        operation: &'static str,
        f: impl Future<Output = std::result::Result<T, zk::Error>>,
    ) -> std::result::Result<T, CallError> {
        match tokio::time::timeout(self.config.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Zk(e)),
            Err(_) => Err(CallError::Timeout(operation)),
        }
    }

    fn error(&self, operation: &'static str, e: CallError) -> Error {
        match e {
            Zk(e) => convert(&self.config.servers, operation, e),
            CallError::Timeout(operation) => Error::Timeout {
                backend: BACKEND,
                address: self.config.servers.clone(),
                operation,
                timeout: self.config.timeout,
            },
            CallError::Session(e) => e,
        }
    }

    /// Commits a change to `path` plus its log entry and the revision touch; returns the
    /// transaction's zxid. `ops` adds the change itself.
    async fn commit(
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
    async fn prune(&self, client: &zk::Client) {
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
    async fn create_parents(&self, path: &str) -> Result<()> {
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
    async fn write(&self, key: &str, value: &[u8], expected: Expect) -> Result<u64> {
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
    async fn head(&self, client: &zk::Client) -> Result<u64> {
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
    async fn walk(&self, client: &zk::Client, prefix: &str) -> Result<Vec<KvEntry>> {
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
    fn znode(&self, relative: &str) -> String {
        match (self.base.is_empty(), relative.is_empty()) {
            (true, true) => "/".to_owned(),
            (false, true) => self.base.to_string(),
            _ => format!("{}/{relative}", self.base),
        }
    }

    fn convert(&self, operation: &'static str, e: zk::Error) -> Error {
        convert(&self.config.servers, operation, e)
    }
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    /// The key's current revision (`None`: absent).
    Revision(Option<u64>),
}

fn conflict(key: &str, expected: Option<u64>, actual: Option<u64>) -> Error {
    let show = |r: Option<u64>| r.map_or("absent".to_owned(), |r| format!("revision {r}"));
    Error::Conflict {
        what: key.to_owned(),
        expected: show(expected),
        actual: show(actual),
    }
}

/// A failed call: ZooKeeper's answer, or no answer in time.
#[derive(Debug)]
enum CallError {
    Zk(zk::Error),
    Timeout(&'static str),
    /// Opening a new session failed.
    Session(Error),
}
use CallError::Zk;

fn convert(address: &str, operation: &'static str, e: zk::Error) -> Error {
    use zk::Error as E;
    match e {
        E::ConnectionLoss
        | E::Timeout
        | E::NoHosts
        | E::SessionExpired
        | E::ClientClosed
        | E::SessionMoved
        | E::Throttled => Error::Unavailable {
            backend: BACKEND,
            address: address.to_owned(),
            message: format!("{operation}: {e}"),
            cause: Some(Box::new(e)),
        },
        E::NoAuth | E::AuthFailed => Error::Backend {
            backend: BACKEND,
            message: format!(
                "{operation}: {e} (set the store's digest user:password to one the ACLs allow)"
            ),
            cause: Some(Box::new(e)),
        },
        e => Error::Backend {
            backend: BACKEND,
            message: format!("{operation}: {e}"),
            cause: Some(Box::new(e)),
        },
    }
}

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
struct Log {
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
