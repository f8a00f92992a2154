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
//! | `<key path>` | the value. A key is split at `/`; each segment is percent-encoded as by [`encode_segment`], an empty segment is `%`, `.`/`..` are `%2E`/`%2E%2E`, and keys without a leading `/` live under `%%` |
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
use vamp_core::traits::kv::{decode_segment, encode_segment};
use vamp_core::traits::{KeyValueStore, KvEntry, KvEvent, KvEventKind, KvList, WatchStream};
use vamp_core::{Error, Result};
use zookeeper_client as zk;

const BACKEND: &str = "zookeeper";
const LOG: &str = "%log";
const REV: &str = "%rev";
const RELATIVE: &str = "%%";
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

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::Invalid {
            what: "key",
            message: "keys must not be empty".into(),
        });
    }
    Ok(())
}

/// One key segment as a znode name (see the module docs).
fn encode(segment: &str, at_zk_root: bool) -> String {
    match segment {
        "" => "%".to_owned(),
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        // `/zookeeper` is the server's own subtree.
        "zookeeper" if at_zk_root => "%7Aookeeper".to_owned(),
        s => encode_segment(s),
    }
}

/// A znode name back to a key segment; `None` for the store's own nodes and foreign names.
fn decode(name: &str) -> Option<String> {
    if name == "%" {
        Some(String::new())
    } else {
        decode_segment(name)
    }
}

/// A log entry: `P`/`D`, the key's length (u32, big-endian), the key, the value.
fn log_entry(kind: KvEventKind, key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + key.len() + value.len());
    out.push(if kind == KvEventKind::Put { b'P' } else { b'D' });
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    out
}

fn parse_log_entry(data: &[u8], revision: u64) -> Option<KvEvent> {
    let (&kind, rest) = data.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let key = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_owned();
    let value = rest.get(4 + len..)?.to_vec();
    let kind = match kind {
        b'P' => KvEventKind::Put,
        b'D' => KvEventKind::Delete,
        _ => return None,
    };
    Some(KvEvent {
        kind,
        key,
        value: (kind == KvEventKind::Put).then_some(value),
        revision,
    })
}

/// The sequence number of a log entry's name (`e-0000000042` → 42).
fn sequence(name: &str) -> Option<i64> {
    name.strip_prefix("e-")?.parse().ok()
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

    /// The znode of `key` (see the module docs).
    fn path(&self, key: &str) -> String {
        let (absolute, rest) = match key.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, key),
        };
        let mut path = self.base.to_string();
        if !absolute {
            path.push('/');
            path.push_str(RELATIVE);
        }
        for (i, segment) in rest.split('/').enumerate() {
            path.push('/');
            path.push_str(&encode(segment, absolute && i == 0 && self.base.is_empty()));
        }
        path
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
        let entry = log_entry(kind, key, value);
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
        let marked: u64 = std::str::from_utf8(&mark)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let Ok(mut names) = self.call("prune", client.list_children(&log)).await else {
            return;
        };
        if names.len() <= self.config.history {
            return;
        }
        names.sort_by_key(|n| sequence(n).unwrap_or(i64::MAX));
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

    /// Every key under `prefix`, by walking the tree with batched multi-reads.
    async fn walk(&self, client: &zk::Client, prefix: &str) -> Result<Vec<KvEntry>> {
        // Start nodes: (znode path, key so far, partial segment to match among its children).
        let mut starts: Vec<(String, String, String)> = Vec::new();
        let absolute = prefix.strip_prefix('/');
        let (key_base, rest, relative_marker) = match absolute {
            Some(rest) => ("/".to_owned(), rest, false),
            None => (String::new(), prefix, true),
        };
        let mut path = self.base.to_string();
        if relative_marker {
            path.push('/');
            path.push_str(RELATIVE);
        }
        let mut key = key_base;
        let mut segments: Vec<&str> = rest.split('/').collect();
        let partial = segments.pop().unwrap_or_default().to_owned();
        for (i, segment) in segments.iter().enumerate() {
            path.push('/');
            path.push_str(&encode(
                segment,
                !relative_marker && i == 0 && self.base.is_empty(),
            ));
            key.push_str(segment);
            key.push('/');
        }
        starts.push((path, key, partial));
        if prefix.is_empty() {
            // "" also covers every absolute key.
            starts.push((self.base.to_string(), "/".to_owned(), String::new()));
        }

        let mut entries = Vec::new();
        let mut frontier: Vec<(String, String)> = Vec::new();
        for (dir, key, partial) in starts {
            let dir_path = if dir.is_empty() { "/".to_owned() } else { dir };
            let names = match self.call("list", client.list_children(&dir_path)).await {
                Ok(names) => names,
                Err(Zk(zk::Error::NoNode)) => continue,
                Err(e) => return Err(self.error("list", e)),
            };
            let at_root = dir_path == "/" || *dir_path == *self.base;
            for name in names {
                if at_root && (name == LOG || name == REV || name == RELATIVE) {
                    continue;
                }
                if at_root && self.base.is_empty() && name == "zookeeper" {
                    continue;
                }
                let Some(segment) = decode(&name) else {
                    continue;
                };
                if segment.starts_with(&partial) {
                    let child = format!("{}/{name}", dir_path.trim_end_matches('/'));
                    frontier.push((child, format!("{key}{segment}")));
                }
            }
        }
        while !frontier.is_empty() {
            let batch: Vec<(String, String)> =
                frontier.drain(..frontier.len().min(BATCH)).collect();
            let mut reader = client.new_multi_reader();
            for (path, _) in &batch {
                reader
                    .add_get_data(path)
                    .map_err(|e| convert_zk(self, "list", e))?;
                reader
                    .add_get_children(path)
                    .map_err(|e| convert_zk(self, "list", e))?;
            }
            let results = self
                .call("list", reader.commit())
                .await
                .map_err(|e| self.error("list", e))?;
            let mut results = results.into_iter();
            for (path, key) in batch {
                let data = results.next();
                let children = results.next();
                if let Some(zk::MultiReadResult::Data { data, stat }) = data
                    && is_key(&stat)
                {
                    entries.push(KvEntry {
                        key: key.clone(),
                        value: data,
                        revision: rev(stat.mzxid),
                    });
                }
                if let Some(zk::MultiReadResult::Children { children }) = children {
                    for name in children {
                        if let Some(segment) = decode(&name) {
                            frontier.push((format!("{path}/{name}"), format!("{key}/{segment}")));
                        }
                    }
                }
            }
        }
        entries.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        Ok(entries)
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

fn convert_zk(store: &ZookeeperStore, operation: &'static str, e: zk::Error) -> Error {
    convert(&store.config.servers, operation, e)
}

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
            source: Some(Box::new(e)),
        },
        E::NoAuth | E::AuthFailed => Error::Backend {
            backend: BACKEND,
            message: format!(
                "{operation}: {e} (set the store's digest user:password to one the ACLs allow)"
            ),
            source: Some(Box::new(e)),
        },
        e => Error::Backend {
            backend: BACKEND,
            message: format!("{operation}: {e}"),
            source: Some(Box::new(e)),
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
        let store = self.clone();
        let prefix = prefix.to_owned();
        tokio::spawn(async move { store.follow(prefix, start, tx).await });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// Where a watch stands in the log.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The zxid of the last change seen (delivered or skipped by prefix).
    zxid: u64,
    /// The sequence of that change's log entry, once known.
    sequence: Option<i64>,
}

/// Why a round of reading the log stopped.
enum Stop {
    /// The receiver is gone, or the history was compacted (already reported).
    Done,
    /// The server did not answer; try again after a pause.
    Retry(Error),
}

impl ZookeeperStore {
    /// Delivers every change after `zxid`, re-arming the log's child watch before each read,
    /// until the receiver is dropped or the history is compacted.
    async fn follow(self, prefix: String, zxid: u64, tx: mpsc::Sender<Result<KvEvent>>) {
        let mut cursor = Cursor {
            zxid,
            sequence: None,
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.round(&prefix, &mut cursor, &tx).await {
                Ok(watcher) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        () = tx.closed() => return,
                        _ = watcher.changed() => {}
                    }
                }
                Err(Stop::Done) => return,
                Err(Stop::Retry(e)) => {
                    tracing::debug!(error = %e, %prefix, "zookeeper watch interrupted; resuming");
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Arms a watch on the log's children, then delivers the entries after the cursor.
    async fn round(
        &self,
        prefix: &str,
        cursor: &mut Cursor,
        tx: &mpsc::Sender<Result<KvEvent>>,
    ) -> std::result::Result<zk::OneshotWatcher, Stop> {
        let retry = |e: CallError| Stop::Retry(self.error("watch", e));
        let client = self.client().await.map_err(Stop::Retry)?;
        let log = self.node(LOG);
        let (names, _, watcher) = self
            .call("watch", client.get_and_watch_children(&log))
            .await
            .map_err(retry)?;
        let mut entries: Vec<(i64, String)> = names
            .into_iter()
            .filter_map(|n| Some((sequence(&n)?, n)))
            .collect();
        entries.sort_unstable();
        if cursor.sequence.is_none() {
            // First round: find the first entry after the cursor's zxid (sequences grow with
            // zxids, so a binary search over the entries' creation zxids).
            let (mut lo, mut hi) = (0, entries.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let path = format!("{log}/{}", entries[mid].1);
                match self.call("watch", client.check_stat(&path)).await {
                    Ok(Some(stat)) if rev(stat.czxid) <= cursor.zxid => lo = mid + 1,
                    Ok(Some(_)) => hi = mid,
                    // Pruned meanwhile: the compaction check below decides.
                    Ok(None) => lo = mid + 1,
                    Err(e) => return Err(retry(e)),
                }
            }
            cursor.sequence = Some(lo.checked_sub(1).map_or(-1, |i| entries[i].0));
        }
        let after = cursor.sequence.unwrap_or(-1);
        let pending: Vec<&(i64, String)> = entries.iter().filter(|(s, _)| *s > after).collect();
        self.check_compaction(&client, cursor.zxid, tx).await?;
        for (seq, name) in pending {
            let path = format!("{log}/{name}");
            let (data, stat) = match self.call("watch", client.get_data(&path)).await {
                Ok(found) => found,
                Err(Zk(zk::Error::NoNode)) => {
                    self.check_compaction(&client, cursor.zxid, tx).await?;
                    return Err(Stop::Retry(Error::Backend {
                        backend: BACKEND,
                        message: format!("log entry {name} vanished"),
                        source: None,
                    }));
                }
                Err(e) => return Err(retry(e)),
            };
            let revision = rev(stat.czxid);
            let Some(event) = parse_log_entry(&data, revision) else {
                let _ = tx
                    .send(Err(Error::Corrupt {
                        backend: BACKEND,
                        message: format!("unreadable change log entry {path}"),
                    }))
                    .await;
                return Err(Stop::Done);
            };
            *cursor = Cursor {
                zxid: revision,
                sequence: Some(*seq),
            };
            if event.key.starts_with(prefix) && tx.send(Ok(event)).await.is_err() {
                return Err(Stop::Done);
            }
        }
        Ok(watcher)
    }

    /// Ends the watch with `Error::Compacted` when entries after `zxid` were pruned.
    async fn check_compaction(
        &self,
        client: &zk::Client,
        zxid: u64,
        tx: &mpsc::Sender<Result<KvEvent>>,
    ) -> std::result::Result<(), Stop> {
        let (mark, _) = self
            .call("watch", client.get_data(&self.node(LOG)))
            .await
            .map_err(|e| Stop::Retry(self.error("watch", e)))?;
        let pruned: u64 = std::str::from_utf8(&mark)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if zxid < pruned {
            let _ = tx
                .send(Err(Error::Compacted {
                    requested: zxid,
                    oldest: pruned + 1,
                }))
                .await;
            return Err(Stop::Done);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_round_trip() {
        let entry = log_entry(KvEventKind::Put, "/a/ключ", b"\0\xffvalue");
        let event = parse_log_entry(&entry, 7).expect("parses");
        assert_eq!(event.key, "/a/ключ");
        assert_eq!(event.value.as_deref(), Some(&b"\0\xffvalue"[..]));
        assert_eq!((event.kind, event.revision), (KvEventKind::Put, 7));
        let delete = parse_log_entry(&log_entry(KvEventKind::Delete, "k", &[]), 8).expect("parses");
        assert_eq!((delete.kind, delete.value), (KvEventKind::Delete, None));
        assert!(parse_log_entry(b"P\0\0\0\x09ab", 1).is_none(), "short key");
        assert!(parse_log_entry(b"X\0\0\0\0", 1).is_none(), "unknown kind");
        assert!(parse_log_entry(b"", 1).is_none());
    }

    #[test]
    fn segments_round_trip_and_never_name_the_store_nodes() {
        for segment in [
            "",
            ".",
            "..",
            "a b",
            "zookeeper",
            "%log",
            "%%",
            "ünï",
            "1.7",
        ] {
            let name = encode(segment, true);
            assert_eq!(decode(&name).as_deref(), Some(segment), "{name}");
            assert!(![LOG, REV, RELATIVE, "zookeeper", ".", ".."].contains(&name.as_str()));
        }
        assert_eq!(encode("zookeeper", false), "zookeeper");
        assert_eq!(decode(LOG), None);
        assert_eq!(decode(REV), None);
        assert_eq!(decode(RELATIVE), None);
    }

    #[test]
    fn sequences_parse() {
        assert_eq!(sequence("e-0000000042"), Some(42));
        assert_eq!(sequence("x-1"), None);
    }
}
