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

/// A KV entry as Consul returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvJson {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    modify_index: u64,
}

impl KvJson {
    fn bytes(&self) -> Result<Vec<u8>> {
        match &self.value {
            None => Ok(Vec::new()),
            Some(v) => BASE64.decode(v).map_err(|e| Error::Corrupt {
                backend: BACKEND,
                message: format!("the value of '{}' is not base64: {e}", self.key),
            }),
        }
    }
}

#[derive(Debug, Serialize)]
struct TxnOp<'a> {
    #[serde(rename = "KV")]
    kv: OpJson<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct OpJson<'a> {
    verb: &'static str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
}

fn op<'a>(verb: &'static str, key: &'a str, value: Option<&[u8]>, index: Option<u64>) -> TxnOp<'a> {
    TxnOp {
        kv: OpJson {
            verb,
            key,
            value: value.map(|v| BASE64.encode(v)),
            index,
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResponse {
    #[serde(default)]
    results: Option<Vec<TxnResult>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Debug, Deserialize)]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<KvJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    op_index: usize,
    what: String,
}

/// A transaction's outcome: the results, or the failed operations' indexes and reasons.
enum Txn {
    Applied(Vec<KvJson>),
    Rejected(Vec<(usize, String)>),
}

/// A Consul key in a URL path: `%` is the only character of encoded paths URLs need escaped.
fn url_key(key: &str) -> String {
    key.replace('%', "%25")
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

    /// Sends a request; 2xx, 404 and 409 are answers, other statuses errors.
    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|e| self.unavailable(operation, e))?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 404 || status.as_u16() == 409 {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            413 => Error::Invalid {
                what: "value",
                message: format!(
                    "Consul refused the request as too large ({}); raise Consul's limits.kv_max_value_size and limits.txn_max_req_len, or store smaller values",
                    text.trim()
                ),
            },
            403 => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{operation}: permission denied ({}); set a token with key read/write on the root",
                    text.trim()
                ),
                cause: None,
            },
            500..=599 => Error::Unavailable {
                backend: BACKEND,
                address: self.config.address.clone(),
                message: format!("{operation}: {status}: {}", text.trim()),
                cause: None,
            },
            _ => Error::Backend {
                backend: BACKEND,
                message: format!("{operation}: {status}: {}", text.trim()),
                cause: None,
            },
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        response: reqwest::Response,
    ) -> Result<T> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(operation, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            backend: BACKEND,
            message: format!("{operation}: unexpected answer: {e}"),
        })
    }

    /// One Consul key: its bytes and modify index, or `None`.
    async fn read(&self, operation: &'static str, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        let response = self
            .send(
                operation,
                self.request(reqwest::Method::GET, &format!("/v1/kv/{}", url_key(key))),
            )
            .await?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        let entries: Vec<KvJson> = self.json(operation, response).await?;
        match entries.into_iter().next() {
            Some(e) => Ok(Some((e.bytes()?, e.modify_index))),
            None => Ok(None),
        }
    }

    async fn txn(&self, operation: &'static str, ops: &[TxnOp<'_>]) -> Result<Txn> {
        let response = self
            .send(
                operation,
                self.request(reqwest::Method::PUT, "/v1/txn").json(ops),
            )
            .await?;
        let conflict = response.status().as_u16() == 409;
        let answer: TxnResponse = self.json(operation, response).await?;
        if conflict {
            let errors = answer.errors.unwrap_or_default();
            return Ok(Txn::Rejected(
                errors.into_iter().map(|e| (e.op_index, e.what)).collect(),
            ));
        }
        Ok(Txn::Applied(
            answer
                .results
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.kv)
                .collect(),
        ))
    }

    /// Applies the key's own operation (`verb` on the key, with `index` for checks) with its
    /// log entry, moving `%seq`; returns the transaction's index, or why the key's operation
    /// failed (`Ok(Err(what))`).
    async fn commit(
        &self,
        key: &str,
        kind: KvEventKind,
        value: &[u8],
        verb: &'static str,
        index: Option<u64>,
    ) -> Result<std::result::Result<u64, String>> {
        let consul_key = self.key_of(key);
        let stored = (kind == KvEventKind::Put).then_some(value);
        let _queue = self.writes.lock().await;
        let seq_key = self.own(SEQ);
        let entry = changelog::entry(kind, key, value);
        for _ in 0..WRITE_ATTEMPTS {
            let (seq, seq_index) = match self.read("put", &seq_key).await? {
                Some((bytes, index)) => (changelog::mark(&bytes), index),
                None => (0, 0),
            };
            let next = seq + 1;
            let log_key = format!("{}{}", self.own(LOG), changelog::name(next));
            let ops = [
                op(
                    "cas",
                    &seq_key,
                    Some(next.to_string().as_bytes()),
                    Some(seq_index),
                ),
                op(verb, &consul_key, stored, index),
                op("set", &log_key, Some(&entry), None),
            ];
            match self.txn("put", &ops).await? {
                Txn::Applied(results) => {
                    let index = results.iter().map(|r| r.modify_index).max().unwrap_or(0);
                    if next % 64 == 0 {
                        self.prune(next).await;
                    }
                    return Ok(Ok(index));
                }
                Txn::Rejected(errors) => {
                    if let Some((_, what)) = errors.iter().find(|(i, _)| *i == 1) {
                        return Ok(Err(what.clone()));
                    }
                    // Another process moved `%seq` first: try again.
                }
            }
        }
        Err(Error::Conflict {
            what: key.to_owned(),
            expected: "a quiet moment to write".into(),
            actual: format!("{WRITE_ATTEMPTS} writes from other processes in a row"),
        })
    }

    /// Drops the log entries more than `history` sequences before `newest`. The mark is
    /// raised first, with check-and-set so that it never goes back.
    async fn prune(&self, newest: u64) {
        let history = u64::try_from(self.config.history).unwrap_or(u64::MAX);
        let Some(last) = newest.checked_sub(history) else {
            return;
        };
        let log = self.own(LOG);
        let Ok(Some((_, revision))) = self
            .read("prune", &format!("{log}{}", changelog::name(last)))
            .await
        else {
            return;
        };
        let mark_key = self.own(MARK);
        let (marked, mark_index) = match self.read("prune", &mark_key).await {
            Ok(Some((bytes, index))) => (changelog::mark(&bytes), index),
            Ok(None) => (0, 0),
            Err(_) => return,
        };
        if revision > marked {
            let raise = [op(
                "cas",
                &mark_key,
                Some(revision.to_string().as_bytes()),
                Some(mark_index),
            )];
            if !matches!(self.txn("prune", &raise).await, Ok(Txn::Applied(_))) {
                return; // another process is pruning
            }
        }
        let mut log_view = Log {
            store: self.clone(),
            index: 0,
        };
        let Ok(names) = changelog::ChangeLog::names(&mut log_view).await else {
            return;
        };
        let doomed: Vec<String> = names
            .iter()
            .filter(|n| changelog::sequence(n).is_some_and(|s| s <= last))
            .map(|n| format!("{log}{n}"))
            .collect();
        for chunk in doomed.chunks(TXN_OPS) {
            let ops: Vec<TxnOp<'_>> = chunk.iter().map(|k| op("delete", k, None, None)).collect();
            if let Err(e) = self.txn("prune", &ops).await {
                tracing::debug!(error = %e, "consul log prune skipped");
                return;
            }
        }
    }

    async fn write(&self, key: &str, value: &[u8], expected: Option<Option<u64>>) -> Result<u64> {
        check_key(key)?;
        if value.len() > self.config.max_value {
            return Err(Error::Invalid {
                what: "value",
                message: format!(
                    "{} bytes at '{key}' exceed the Consul store's limit of {} bytes (max_value; raise it together with Consul's limits)",
                    value.len(),
                    self.config.max_value
                ),
            });
        }
        let (verb, index) = match expected {
            None => ("set", None),
            Some(expected) => ("cas", Some(expected.unwrap_or(0))),
        };
        match self
            .commit(key, KvEventKind::Put, value, verb, index)
            .await?
        {
            Ok(revision) => Ok(revision),
            Err(_) => {
                let actual = self.get(key).await?.map(|e| e.revision);
                let show =
                    |r: Option<u64>| r.map_or("absent".to_owned(), |r| format!("revision {r}"));
                Err(Error::Conflict {
                    what: key.to_owned(),
                    expected: show(expected.flatten()),
                    actual: show(actual),
                })
            }
        }
    }
}

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
struct Log {
    store: ConsulStore,
    /// The `X-Consul-Index` of the last listing.
    index: u64,
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
