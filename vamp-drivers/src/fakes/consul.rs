//! [`FakeConsul`]: the part of Consul's HTTP API the Consul store uses, served on loopback
//! with Consul's semantics, for tests and benches (no Consul server can run here).
//!
//! Built from the public API documentation (developer.hashicorp.com/consul/api-docs/kv and
//! /txn, "Blocking queries"):
//!
//! - `GET /v1/kv/<key>`: `[{"LockIndex","Key","Flags","Value" (base64, null when empty),
//!   "CreateIndex","ModifyIndex"}]`, 404 when nothing matches; `?recurse` (every key with the
//!   prefix), `?keys` (their names only), `?raw` (the bare value). Every answer carries
//!   `X-Consul-Index`: the highest modify index of what matched, deletions (tombstones)
//!   included, or the store's index when nothing ever matched.
//! - Blocking queries: `?index=N&wait=D` holds the answer until that index exceeds `N` or `D`
//!   passes (default 5 min, at most 10 min; a sixteenth of `D` of jitter is left out here).
//! - `PUT /v1/kv/<key>` (body = value; `?cas=N`, 0 = only if absent) and `DELETE /v1/kv/<key>`
//!   (`?cas=N`, `?recurse`) answer `true` or `false`.
//! - `PUT /v1/txn`: up to 64 operations `{"KV": {"Verb", "Key", "Value", "Index"}}` with verbs
//!   `set`, `cas`, `get`, `get-tree`, `check-index`, `check-not-exists`, `delete`,
//!   `delete-cas`, `delete-tree`, applied atomically at one index: 200 with `{"Results":
//!   [{"KV": …}], "Errors": null}` (values of writes are not echoed), or 409 with `{"Results":
//!   null, "Errors": [{"OpIndex", "What"}]}` and nothing applied.
//! - Limits: a KV body over `kv_max_value_size` (default 512 KiB) and a transaction body over
//!   the larger of that and `txn_max_req_len` (default 512 KiB) get 413 with Consul's text.
//! - ACLs: with a token configured, a request without it (`X-Consul-Token` header or `?token=`)
//!   gets 403 `Permission denied`.
//!
//! [`Endpoint::stop`](super::Endpoint::stop) and [`Endpoint::resume`](super::Endpoint::resume)
//! close and reopen the listener on the same port with the data kept, as a restarted Consul agent
//! would.
//!
//! One file: a faithful fake of one wire protocol, kept in one place so it reads against
//! Consul's public API documentation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Consul's defaults for the limits it enforces.
const DEFAULT_LIMIT: usize = 512 * 1024;
const MAX_TXN_OPS: usize = 64;
/// The raft index a fresh agent reports before any KV write.
const BOOTSTRAP_INDEX: u64 = 12;

/// Limits and ACL token of a [`FakeConsul`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeConsulConfig {
    /// Consul's `limits.kv_max_value_size` (default 512 KiB).
    pub kv_max_value_size: usize,
    /// Consul's `limits.txn_max_req_len` (default 512 KiB).
    pub txn_max_req_len: usize,
    /// The token every request must carry, when set.
    pub token: Option<String>,
}

impl Default for FakeConsulConfig {
    fn default() -> Self {
        FakeConsulConfig {
            kv_max_value_size: DEFAULT_LIMIT,
            txn_max_req_len: DEFAULT_LIMIT,
            token: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Debug, Default)]
struct Data {
    /// The raft index: one per applied write.
    index: u64,
    entries: BTreeMap<String, Entry>,
    /// Deleted keys and the index of their deletion, so blocking queries wake on deletes.
    tombstones: BTreeMap<String, u64>,
}

impl Data {
    /// The index a query on `key` (a prefix with `tree`) reports.
    fn query_index(&self, key: &str, tree: bool) -> u64 {
        let matches = |k: &String| if tree { k.starts_with(key) } else { k == key };
        let live = self
            .entries
            .range(key.to_owned()..)
            .take_while(|(k, _)| matches(k))
            .map(|(_, e)| e.modify_index);
        let dead = self
            .tombstones
            .range(key.to_owned()..)
            .take_while(|(k, _)| matches(k))
            .map(|(_, i)| *i);
        live.chain(dead).max().unwrap_or(self.index).max(1)
    }

    fn tree(&self, prefix: &str) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries
            .range(prefix.to_owned()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }
}

#[derive(Debug)]
struct Shared {
    config: FakeConsulConfig,
    data: Mutex<Data>,
    /// Bumped after every write, waking blocking queries.
    changed: watch::Sender<u64>,
}

/// A fake Consul agent on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeConsul {
    endpoint: super::Endpoint,
}

impl FakeConsul {
    /// Serves on a free loopback port with Consul's default limits.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeConsulConfig::default()).await
    }

    /// Serves on a free loopback port with `config`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start_with(config: FakeConsulConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            config,
            // A fresh Consul's raft log already holds its bootstrap entries.
            data: Mutex::new(Data {
                index: BOOTSTRAP_INDEX,
                ..Data::default()
            }),
            changed: watch::channel(0).0,
        });
        let state = shared.clone();
        let endpoint = super::Endpoint::start(Box::new(move || {
            // The fake enforces Consul's limits itself.
            let app = axum::Router::new()
                .fallback(handle)
                .layer(axum::extract::DefaultBodyLimit::disable())
                .with_state(state.clone());
            (app, Box::pin(std::future::pending()))
        }))
        .await?;
        Ok(FakeConsul { endpoint })
    }
}

super::serves_on_endpoint!(FakeConsul);

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KvJson {
    lock_index: u64,
    key: String,
    flags: u64,
    value: Option<String>,
    create_index: u64,
    modify_index: u64,
}

fn json_of(key: &str, entry: &Entry, with_value: bool) -> KvJson {
    KvJson {
        lock_index: 0,
        key: key.to_owned(),
        flags: 0,
        value: (with_value && !entry.value.is_empty()).then(|| BASE64.encode(&entry.value)),
        create_index: entry.create_index,
        modify_index: entry.modify_index,
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

fn with_index(mut response: Response, index: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&index.to_string()) {
        response.headers_mut().insert("X-Consul-Index", v);
    }
    response
}

/// Consul's Go duration syntax, as far as clients use it: `10s`, `500ms`, `5m`.
fn parse_wait(s: &str) -> Option<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return None,
    })
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = super::query(&uri);
    if let Some(token) = &shared.config.token {
        let given = headers
            .get("X-Consul-Token")
            .and_then(|v| v.to_str().ok())
            .or(query.get("token").map(String::as_str));
        if given != Some(token.as_str()) {
            return text(StatusCode::FORBIDDEN, "Permission denied");
        }
    }
    let path = uri.path();
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        let Some(key) = super::percent_decode(key) else {
            return text(StatusCode::BAD_REQUEST, "Invalid key escaping");
        };
        return kv(&shared, &method, &key, &query, body).await;
    }
    if path == "/v1/txn" && method == Method::PUT {
        return txn(&shared, &body);
    }
    text(StatusCode::NOT_FOUND, format!("{method} {path}: not found"))
}

fn too_large(size: usize, max: usize) -> Response {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Request body({size} bytes) too large, max size: {max} bytes. See https://developer.hashicorp.com/consul/docs/agent/config/config-files#kv_max_value_size."
        ),
    )
}

async fn kv(
    shared: &Shared,
    method: &Method,
    key: &str,
    query: &BTreeMap<String, String>,
    body: Bytes,
) -> Response {
    let cas = match query.get("cas").map(|c| c.parse::<u64>()) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "Invalid CAS index"),
    };
    match *method {
        Method::GET => {
            let recurse = query.contains_key("recurse") || query.contains_key("keys");
            if let Some(index) = query.get("index") {
                let Ok(index) = index.parse::<u64>() else {
                    return text(StatusCode::BAD_REQUEST, "Invalid index");
                };
                let wait = query
                    .get("wait")
                    .map_or(Some(Duration::from_secs(300)), |w| parse_wait(w));
                let Some(wait) = wait else {
                    return text(StatusCode::BAD_REQUEST, "Invalid wait time");
                };
                let wait = wait.min(Duration::from_secs(600));
                let mut changed = shared.changed.subscribe();
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    let now = shared
                        .data
                        .lock()
                        .map_or(0, |d| d.query_index(key, recurse));
                    if now > index {
                        break;
                    }
                    tokio::select! {
                        r = changed.changed() => if r.is_err() { break },
                        () = tokio::time::sleep_until(deadline) => break,
                    }
                }
            }
            let Ok(data) = shared.data.lock() else {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
            };
            let index = data.query_index(key, recurse);
            let response = if query.contains_key("keys") {
                let keys: Vec<&String> = data.tree(key).map(|(k, _)| k).collect();
                if keys.is_empty() {
                    text(StatusCode::NOT_FOUND, "")
                } else {
                    axum::Json(keys).into_response()
                }
            } else if recurse {
                let all: Vec<KvJson> = data.tree(key).map(|(k, e)| json_of(k, e, true)).collect();
                if all.is_empty() {
                    text(StatusCode::NOT_FOUND, "")
                } else {
                    axum::Json(all).into_response()
                }
            } else {
                match data.entries.get(key) {
                    None => text(StatusCode::NOT_FOUND, ""),
                    Some(e) if query.contains_key("raw") => {
                        (StatusCode::OK, e.value.clone()).into_response()
                    }
                    Some(e) => axum::Json([json_of(key, e, true)]).into_response(),
                }
            };
            with_index(response, index)
        }
        Method::PUT => {
            if body.len() > shared.config.kv_max_value_size {
                return too_large(body.len(), shared.config.kv_max_value_size);
            }
            let op = Op {
                verb: if cas.is_some() { "cas" } else { "set" }.to_owned(),
                key: key.to_owned(),
                value: None,
                index: cas,
            };
            apply_one(shared, &op, &body)
        }
        Method::DELETE => {
            let verb = if query.contains_key("recurse") {
                "delete-tree"
            } else if cas.is_some() {
                "delete-cas"
            } else {
                "delete"
            };
            let op = Op {
                verb: verb.to_owned(),
                key: key.to_owned(),
                value: None,
                index: cas,
            };
            apply_one(shared, &op, &[])
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// One KV request as a one-operation transaction: `true`, or `false` when a check failed.
fn apply_one(shared: &Shared, op: &Op, value: &[u8]) -> Response {
    let Ok(mut data) = shared.data.lock() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
    };
    let mut staged = Staged::new(&data);
    let ok = staged.apply(op, Some(value)).is_ok();
    if ok && staged.wrote {
        let (index, changes) = staged.into_changes();
        commit(&mut data, index, changes);
        drop(data);
        shared.changed.send_replace(index);
    }
    axum::Json(ok).into_response()
}

#[derive(Debug, Deserialize)]
struct TxnOp {
    #[serde(rename = "KV")]
    kv: Option<Op>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Op {
    verb: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    index: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    op_index: usize,
    what: String,
}

/// Changes staged over the data, applied together at one new index.
struct Staged<'a> {
    data: &'a Data,
    index: u64,
    /// `None`: deleted.
    changes: BTreeMap<String, Option<Entry>>,
    wrote: bool,
    results: Vec<KvJson>,
}

impl<'a> Staged<'a> {
    fn new(data: &'a Data) -> Self {
        Staged {
            data,
            index: data.index + 1,
            changes: BTreeMap::new(),
            wrote: false,
            results: Vec::new(),
        }
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        match self.changes.get(key) {
            Some(change) => change.as_ref(),
            None => self.data.entries.get(key),
        }
    }

    /// The live keys under `prefix`, sorted.
    fn tree(&self, prefix: &str) -> Vec<String> {
        let staged = self.changes.range(prefix.to_owned()..).map(|(k, _)| k);
        let stored = self.data.tree(prefix).map(|(k, _)| k);
        let mut keys: Vec<String> = stored
            .chain(staged.take_while(|k| k.starts_with(prefix)))
            .filter(|k| self.entry(k).is_some())
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn set(&mut self, key: &str, value: Vec<u8>) {
        let create_index = self.entry(key).map_or(self.index, |e| e.create_index);
        let entry = Entry {
            value,
            create_index,
            modify_index: self.index,
        };
        self.results.push(json_of(key, &entry, false));
        self.changes.insert(key.to_owned(), Some(entry));
        self.wrote = true;
    }

    fn delete(&mut self, key: &str) {
        if self.entry(key).is_some() {
            self.changes.insert(key.to_owned(), None);
        }
        self.wrote = true;
    }

    fn modify_index(&self, key: &str) -> u64 {
        self.entry(key).map_or(0, |e| e.modify_index)
    }

    /// Applies one operation; `Err` with Consul's words when its check fails.
    fn apply(&mut self, op: &Op, raw: Option<&[u8]>) -> Result<(), String> {
        let value = || -> Result<Vec<u8>, String> {
            if let Some(raw) = raw {
                return Ok(raw.to_vec());
            }
            match &op.value {
                None => Ok(Vec::new()),
                Some(v) => BASE64
                    .decode(v)
                    .map_err(|e| format!("failed to decode value: {e}")),
            }
        };
        let key = op.key.as_str();
        if key.is_empty() && op.verb != "get-tree" && op.verb != "delete-tree" {
            return Err("Missing key".into());
        }
        match op.verb.as_str() {
            "set" => self.set(key, value()?),
            "cas" => {
                let index = op.index.ok_or("Missing index")?;
                if self.modify_index(key) != index {
                    return Err(format!("failed to set key {key:?}, index is stale"));
                }
                self.set(key, value()?);
            }
            "get" => {
                let entry = self
                    .entry(key)
                    .ok_or_else(|| format!("key {key:?} doesn't exist"))?;
                let found = json_of(key, entry, true);
                self.results.push(found);
            }
            "get-tree" => {
                for k in self.tree(key) {
                    if let Some(entry) = self.entry(&k) {
                        let found = json_of(&k, entry, true);
                        self.results.push(found);
                    }
                }
            }
            "check-index" => {
                let index = op.index.ok_or("Missing index")?;
                let entry = self
                    .entry(key)
                    .ok_or_else(|| format!("key {key:?} doesn't exist"))?;
                if entry.modify_index != index {
                    return Err(format!(
                        "current modify index {} != {index}",
                        entry.modify_index
                    ));
                }
                let found = json_of(key, entry, false);
                self.results.push(found);
            }
            "check-not-exists" => {
                if self.entry(key).is_some() {
                    return Err(format!("key {key:?} exists"));
                }
            }
            "delete" => self.delete(key),
            "delete-cas" => {
                let index = op.index.ok_or("Missing index")?;
                if self.modify_index(key) != index {
                    return Err(format!("failed to delete key {key:?}, index is stale"));
                }
                self.delete(key);
            }
            "delete-tree" => {
                for k in self.tree(key) {
                    self.delete(&k);
                }
                self.wrote = true;
            }
            verb => return Err(format!("unknown KV verb {verb:?}")),
        }
        Ok(())
    }

    /// What to apply: the new index and the changes.
    fn into_changes(self) -> (u64, BTreeMap<String, Option<Entry>>) {
        (self.index, self.changes)
    }
}

fn commit(data: &mut Data, index: u64, changes: BTreeMap<String, Option<Entry>>) {
    data.index = index;
    for (key, change) in changes {
        match change {
            Some(entry) => {
                data.tombstones.remove(&key);
                data.entries.insert(key, entry);
            }
            None => {
                data.entries.remove(&key);
                data.tombstones.insert(key, index);
            }
        }
    }
}

fn txn(shared: &Shared, body: &[u8]) -> Response {
    let limit = shared
        .config
        .txn_max_req_len
        .max(shared.config.kv_max_value_size);
    if body.len() > limit {
        return too_large(body.len(), limit);
    }
    let ops: Vec<TxnOp> = match serde_json::from_slice(body) {
        Ok(ops) => ops,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body: {e}"),
            );
        }
    };
    if ops.len() > MAX_TXN_OPS {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                ops.len()
            ),
        );
    }
    let Ok(mut data) = shared.data.lock() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
    };
    let mut staged = Staged::new(&data);
    let mut errors = Vec::new();
    for (op_index, op) in ops.iter().enumerate() {
        let result = match &op.kv {
            Some(op) => staged.apply(op, None),
            None => Err("only KV operations are supported".to_owned()),
        };
        if let Err(what) = result {
            errors.push(TxnError { op_index, what });
        }
    }
    if !errors.is_empty() {
        return (
            StatusCode::CONFLICT,
            axum::Json(serde_json::json!({"Results": null, "Errors": errors})),
        )
            .into_response();
    }
    let wrote = staged.wrote;
    let results: Vec<serde_json::Value> = std::mem::take(&mut staged.results)
        .into_iter()
        .map(|kv| serde_json::json!({ "KV": kv }))
        .collect();
    let index = if wrote {
        let (index, changes) = staged.into_changes();
        commit(&mut data, index, changes);
        index
    } else {
        data.index
    };
    drop(data);
    if wrote {
        shared.changed.send_replace(index);
    }
    with_index(
        axum::Json(serde_json::json!({"Results": results, "Errors": null})).into_response(),
        index,
    )
}
