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

mod election;
mod kv;
mod txn;

pub use election::ZookeeperElection;

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
