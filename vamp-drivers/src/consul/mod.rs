//! [`ConsulStore`]: the Consul [`KeyValueStore`] over Consul's HTTP API (`/v1/kv`, `/v1/txn`,
//! blocking queries). Each value is stored at its own Consul key (ARCHITECTURE, "KV layout"):
//! key `/vamp/default/gateways` is Consul key `vamp/default/gateways` (under
//! [`ConsulConfig::root`]).
//!
//! Consul keeps no history and a blocking query on a prefix reports only the latest state, so,
//! as for ZooKeeper, every change is one transaction that also appends an entry to a change
//! log next to the keys; watches read that log and resume exactly where they stopped.
//!
//! # Layout (under the root)
//!
//! | key | what |
//! |---|---|
//! | `<key path>` | the value; the path encoding of keys is the ZooKeeper store's (`%` for an empty segment, `%%` for keys without a leading `/`) |
//! | `%log/e-<sequence>` | one change: kind, key, value |
//! | `%seq` | the last sequence; every change moves it with check-and-set |
//! | `%mark` | the revision of the newest change pruned from the log |
//!
//! - Revisions are Consul's raft indexes: a key's revision is its `ModifyIndex`; a change's
//!   revision is the index of its transaction.
//! - Writes of one store handle (and its clones) queue in-process; writers in other processes
//!   race on `%seq` and retry.
//! - A value travels twice in a transaction (the key and its log entry), base64-encoded:
//!   Consul's `limits.txn_max_req_len` (default 512 KiB) must exceed 2.7 × the largest value,
//!   and `kv_max_value_size` the value. Values above [`ConsulConfig::max_value`] are refused
//!   before sending; a 413 from Consul is `Error::Invalid` naming the settings.
//! - Plain HTTP: put a local Consul agent (or a TLS-terminating proxy) at the address.
//!
//! **No Consul server runs here:** the store is built to Consul's public API documentation and
//! tested against [`fakes::consul`](crate::fakes::consul) (feature `fakes`), a local fake of
//! that wire protocol — not against a real Consul.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use vamp_core::traits::kv::check_key;
use vamp_core::traits::{KeyValueStore, KvEntry, KvEventKind, KvList, WatchStream};
use vamp_core::{Error, Result};

use crate::changelog;
use crate::keypath;

mod wire;
use wire::*;
mod kv;
mod txn;
use kv::Log;

const BACKEND: &str = "consul";
const LOG: &str = "%log/";
const SEQ: &str = "%seq";
const MARK: &str = "%mark";
/// Attempts of a write that loses the race on `%seq` to other processes.
const WRITE_ATTEMPTS: usize = 64;
/// Consul's limit of operations per transaction.
const TXN_OPS: usize = 64;

/// How to reach Consul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulConfig {
    /// The agent's HTTP address (Vamp's `consul.url`), e.g. `http://127.0.0.1:8500`.
    pub address: String,
    /// The Consul key prefix the keys live under (e.g. `vamp-kv/`; empty: the top).
    pub root: String,
    /// The ACL token, sent as `X-Consul-Token`.
    pub token: Option<String>,
    /// The datacenter to ask (`?dc=`); the agent's own when unset.
    pub datacenter: Option<String>,
    /// The limit of one call.
    pub timeout: Duration,
    /// How long a watch's blocking query waits before asking again.
    pub wait: Duration,
    /// How many changes the change log keeps for watches that fall behind.
    pub history: usize,
    /// The largest value accepted.
    pub max_value: usize,
}

impl ConsulConfig {
    /// The agent at `address`, keys at the top, no token, 5 s per call, 30 s blocking
    /// queries, 1 000 changes of history, values up to 1 MiB.
    ///
    /// ```
    /// let config = vamp_drivers::consul::ConsulConfig::new("http://127.0.0.1:8500");
    /// assert_eq!(config.root, "");
    /// ```
    pub fn new(address: impl Into<String>) -> Self {
        ConsulConfig {
            address: address.into(),
            root: String::new(),
            token: None,
            datacenter: None,
            timeout: Duration::from_secs(5),
            wait: Duration::from_secs(30),
            history: 1000,
            max_value: 1024 * 1024,
        }
    }
}

/// A Consul KV client. Clones share the connection pool and the write queue.
#[derive(Clone)]
pub struct ConsulStore {
    config: Arc<ConsulConfig>,
    http: reqwest::Client,
    /// The root with a trailing `/` (or empty).
    root: Arc<str>,
    writes: Arc<Mutex<()>>,
}

impl std::fmt::Debug for ConsulStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulStore")
            .field("address", &self.config.address)
            .field("root", &self.config.root)
            .finish_non_exhaustive()
    }
}

impl ConsulStore {
    /// Makes a client and checks that the agent answers (bounded by `timeout`).
    ///
    /// # Errors
    /// `Error::Invalid` for an address that is not `http://…`, `Error::Unavailable` /
    /// `Error::Timeout` when the agent does not answer, `Error::Backend` when it refuses the
    /// token.
    pub async fn connect(config: ConsulConfig) -> Result<Self> {
        if !config.address.starts_with("http://") {
            return Err(Error::Invalid {
                what: "consul address",
                message: format!(
                    "'{}' must be an http:// URL, e.g. http://127.0.0.1:8500 (https is not supported yet: use a local agent)",
                    config.address
                ),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| Error::Backend {
                backend: BACKEND,
                message: format!("HTTP client: {e}"),
                cause: Some(Box::new(e)),
            })?;
        let mut root = config.root.trim_matches('/').to_owned();
        if !root.is_empty() {
            root.push('/');
        }
        let store = ConsulStore {
            root: Arc::from(root),
            config: Arc::new(config),
            http,
            writes: Arc::new(Mutex::new(())),
        };
        // The sequence must exist for listings to read it; creating it checks the agent too.
        let seq = store.own(SEQ);
        store
            .send(
                "connect",
                store
                    .request(reqwest::Method::PUT, &format!("/v1/kv/{}", url_key(&seq)))
                    .query(&[("cas", "0")])
                    .body("0"),
            )
            .await?;
        Ok(store)
    }

    fn own(&self, name: &str) -> String {
        format!("{}{name}", self.root)
    }

    fn key_of(&self, key: &str) -> String {
        format!("{}{}", self.root, keypath::path(key, None))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(
                method,
                format!("{}{path}", self.config.address.trim_end_matches('/')),
            )
            .timeout(self.config.timeout);
        if let Some(token) = &self.config.token {
            request = request.header("X-Consul-Token", token);
        }
        if let Some(dc) = &self.config.datacenter {
            request = request.query(&[("dc", dc)]);
        }
        request
    }

    fn unavailable(&self, operation: &'static str, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            return Error::Timeout {
                backend: BACKEND,
                address: self.config.address.clone(),
                operation,
                timeout: self.config.timeout,
            };
        }
        Error::Unavailable {
            backend: BACKEND,
            address: self.config.address.clone(),
            message: format!("{operation}: {e}"),
            cause: Some(Box::new(e)),
        }
    }
}
