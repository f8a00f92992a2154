//! [`FakeElasticsearch`]: the part of Elasticsearch's REST API the Elasticsearch persistence
//! uses, served on loopback with Elasticsearch's semantics, for tests and benches (no
//! Elasticsearch can run here).
//!
//! Built from the public REST API documentation (elastic.co/guide/en/elasticsearch/reference,
//! 7.x/8.x: "Index API", "Get API", "Search API", "Query DSL", "Optimistic concurrency
//! control", "Near real-time search", "Create index API", "Index templates", "Refresh API"):
//!
//! - `PUT /<index>` creates an index (`{"mappings": …}` accepted, not interpreted): 200
//!   `{"acknowledged": true, …}`, or 400 `resource_already_exists_exception`. Index names must
//!   be lowercase and free of `\ / * ? " < > | , #` and spaces (400 `invalid_index_name_exception`).
//!   `PUT /_index_template/<name>` is accepted (200).
//! - `PUT|POST /<index>/_doc/<id>` indexes a document (an index is created on first write),
//!   `PUT /<index>/_create/<id>` or `?op_type=create` only creates; `?if_seq_no=&if_primary_term=`
//!   checks the document's sequence number. Answers 201 (created) or 200 (updated) with
//!   `_version` (1, then +1 per write of that id), `_seq_no` (per index, +1 per write),
//!   `_primary_term` (1), `result`; a failed check is 409 `version_conflict_engine_exception`.
//! - `GET /<index>/_doc/<id>` is real-time: `{"found": true, "_source", "_version", "_seq_no",
//!   "_primary_term"}` or 404 `{"found": false}`.
//! - Search is near-real-time: documents become searchable on a refresh — `POST
//!   /<index>/_refresh`, `?refresh=true|wait_for` on a write, or the periodic refresh
//!   ([`FakeElasticsearchConfig::refresh_interval`], 1 s by default).
//! - `POST /<index pattern>/_search` (comma lists and `*` wildcards; a wildcard that matches
//!   nothing is no hit): `query` with `match_all`, `term`, `terms`, `range` (`gt`, `gte`, `lt`,
//!   `lte`; numbers, RFC 3339 dates or strings) and `bool` (`filter`, `must`, `must_not`);
//!   `sort` (`[{"field": {"order": "asc"|"desc"}}]`, `_id`), `from`, `size` (`from + size`
//!   over `index.max_result_window`, 10 000, is 400 `illegal_argument_exception`),
//!   `track_total_hits`; `size` defaults to 10. Answers `{"hits": {"total": {"value", "relation": "eq"}, "hits":
//!   [{"_index", "_id", "_source", "sort"}]}}`. Fields are matched on the `_source` (arrays
//!   match when an element does).
//! - `POST /<index pattern>/_delete_by_query` with a `query` (the clauses above) deletes the
//!   matching searchable documents: `{"deleted", "total", "failures": []}`; `?refresh=true`
//!   refreshes after.
//! - With credentials configured, requests without matching HTTP basic auth get 401
//!   `security_exception`.
//!
//! [`Endpoint::stop`](super::Endpoint::stop) and [`Endpoint::resume`](super::Endpoint::resume)
//! close and reopen the listener on the same port, data kept.
//!
//! One file: a faithful fake of one wire protocol, kept in one place so it reads against
//! Elasticsearch's public API documentation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// Settings of a [`FakeElasticsearch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeElasticsearchConfig {
    /// How often documents become searchable without an explicit refresh.
    pub refresh_interval: Duration,
    /// `(user, password)` every request must carry as HTTP basic auth, when set.
    pub credentials: Option<(String, String)>,
    /// `index.max_result_window` of every index (Elasticsearch's default: 10 000).
    pub max_result_window: u64,
}

impl Default for FakeElasticsearchConfig {
    fn default() -> Self {
        FakeElasticsearchConfig {
            refresh_interval: Duration::from_secs(1),
            credentials: None,
            max_result_window: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Doc {
    source: Value,
    version: u64,
    seq_no: u64,
}

#[derive(Debug, Default)]
struct Index {
    /// Real-time: what GET sees.
    docs: BTreeMap<String, Doc>,
    /// What search sees: the documents as of the last refresh.
    searchable: BTreeMap<String, Doc>,
    /// The next sequence number.
    seq_no: u64,
}

impl Index {
    fn refresh(&mut self) {
        self.searchable.clone_from(&self.docs);
    }
}

#[derive(Debug)]
struct Shared {
    config: FakeElasticsearchConfig,
    indices: Mutex<BTreeMap<String, Index>>,
}

/// A fake Elasticsearch node on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeElasticsearch {
    endpoint: super::Endpoint,
}

impl FakeElasticsearch {
    /// Serves on a free loopback port with the default settings.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeElasticsearchConfig::default()).await
    }

    /// Serves on a free loopback port with `config`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start_with(config: FakeElasticsearchConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            config,
            indices: Mutex::new(BTreeMap::new()),
        });
        let state = shared.clone();
        let endpoint = super::Endpoint::start(Box::new(move || {
            let app = axum::Router::new()
                .fallback(handle)
                .layer(axum::extract::DefaultBodyLimit::max(100 * 1024 * 1024))
                .with_state(state.clone());
            let refreshing = state.clone();
            let refresher = async move {
                let interval = refreshing.config.refresh_interval;
                loop {
                    tokio::time::sleep(interval).await;
                    let Ok(mut indices) = refreshing.indices.lock() else {
                        return;
                    };
                    indices.values_mut().for_each(Index::refresh);
                }
            };
            (
                app,
                Box::pin(refresher) as futures::future::BoxFuture<'static, ()>,
            )
        }))
        .await?;
        Ok(FakeElasticsearch { endpoint })
    }
}

super::serves_on_endpoint!(FakeElasticsearch);

fn error(status: StatusCode, kind: &str, reason: impl Into<String>) -> Response {
    let reason = reason.into();
    (
        status,
        axum::Json(json!({
            "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn valid_index_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '_', '+'])
        && name != "."
        && name != ".."
        && !name.chars().any(|c| {
            c.is_uppercase()
                || matches!(
                    c,
                    '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ' ' | ':'
                )
        })
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some((user, password)) = &shared.config.credentials else {
        return true;
    };
    let expected = format!("Basic {}", BASE64.encode(format!("{user}:{password}")));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected)
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "security_exception",
            "missing authentication credentials for REST request",
        );
    }
    let query = super::query(&uri);
    let segments: Option<Vec<String>> = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(super::percent_decode)
        .collect();
    let Some(segments) = segments else {
        return error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "bad escaping",
        );
    };
    let Ok(mut indices) = shared.indices.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "exception", "poisoned");
    };
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (&method, parts.as_slice()) {
        (&Method::PUT, ["_index_template", _]) => {
            axum::Json(json!({"acknowledged": true})).into_response()
        }
        (&Method::PUT, [index]) => {
            if !valid_index_name(index) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_index_name_exception",
                    format!("Invalid index name [{index}]"),
                );
            }
            if indices.contains_key(*index) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "resource_already_exists_exception",
                    format!("index [{index}] already exists"),
                );
            }
            indices.insert((*index).to_owned(), Index::default());
            axum::Json(json!({"acknowledged": true, "shards_acknowledged": true, "index": index}))
                .into_response()
        }
        (&Method::POST, [pattern, "_refresh"]) | (&Method::GET, [pattern, "_refresh"]) => {
            for (name, index) in indices.iter_mut() {
                if matches_pattern(pattern, name) {
                    index.refresh();
                }
            }
            axum::Json(json!({"_shards": {"total": 1, "successful": 1, "failed": 0}}))
                .into_response()
        }
        (&Method::PUT | &Method::POST, [index, "_doc" | "_create", id]) => {
            let create =
                parts[1] == "_create" || query.get("op_type").is_some_and(|o| o == "create");
            index_doc(&mut indices, index, id, create, &query, &body)
        }
        (&Method::GET, [index, "_doc", id]) => {
            match indices.get(*index).and_then(|i| i.docs.get(*id)) {
                Some(doc) => axum::Json(json!({
                    "_index": index, "_id": id, "_version": doc.version, "_seq_no": doc.seq_no,
                    "_primary_term": 1, "found": true, "_source": doc.source,
                }))
                .into_response(),
                None if indices.contains_key(*index) => (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"_index": index, "_id": id, "found": false})),
                )
                    .into_response(),
                None => error(
                    StatusCode::NOT_FOUND,
                    "index_not_found_exception",
                    format!("no such index [{index}]"),
                ),
            }
        }
        (&Method::POST | &Method::GET, [pattern, "_search"]) => {
            search(&indices, pattern, &body, shared.config.max_result_window)
        }
        (&Method::POST, [pattern, "_delete_by_query"]) => {
            delete_by_query(&mut indices, pattern, &body, &query)
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!("no handler for [{method} {}]", uri.path()),
        ),
    }
}

fn index_doc(
    indices: &mut BTreeMap<String, Index>,
    index: &str,
    id: &str,
    create: bool,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    if !valid_index_name(index) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_index_name_exception",
            format!("Invalid index name [{index}]"),
        );
    }
    if id.len() > 512 {
        return error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            format!(
                "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
                id.len()
            ),
        );
    }
    let source: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "mapper_parsing_exception",
                "failed to parse: the document must be a JSON object",
            );
        }
    };
    let entry = indices.entry(index.to_owned()).or_default();
    let existing = entry.docs.get(id).cloned();
    let conflict = |reason: String| {
        error(
            StatusCode::CONFLICT,
            "version_conflict_engine_exception",
            format!("[{id}]: {reason}"),
        )
    };
    if create && existing.is_some() {
        return conflict("version conflict, document already exists".into());
    }
    if let Some(expected) = query.get("if_seq_no") {
        let term_ok = query.get("if_primary_term").is_none_or(|t| t == "1");
        match &existing {
            Some(doc) if expected.parse::<u64>().ok() == Some(doc.seq_no) && term_ok => {}
            Some(doc) => {
                return conflict(format!(
                    "version conflict, required seqNo [{expected}], primary term [1]. current document has seqNo [{}] and primary term [1]",
                    doc.seq_no
                ));
            }
            None => {
                return conflict(format!(
                    "version conflict, required seqNo [{expected}], primary term [1] but no document was found"
                ));
            }
        }
    }
    let seq_no = entry.seq_no;
    entry.seq_no += 1;
    let version = existing.as_ref().map_or(1, |d| d.version + 1);
    entry.docs.insert(
        id.to_owned(),
        Doc {
            source,
            version,
            seq_no,
        },
    );
    if query
        .get("refresh")
        .is_some_and(|r| r.is_empty() || r == "true" || r == "wait_for")
    {
        entry.refresh();
    }
    let created = existing.is_none();
    (
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        axum::Json(json!({
            "_index": index, "_id": id, "_version": version,
            "result": if created { "created" } else { "updated" },
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": seq_no, "_primary_term": 1,
        })),
    )
        .into_response()
}

fn matches_pattern(pattern: &str, name: &str) -> bool {
    pattern.split(',').any(|p| {
        if p == "_all" || p == "*" {
            return true;
        }
        match p.split_once('*') {
            None => p == name,
            Some((head, tail)) => {
                name.len() >= head.len() + tail.len()
                    && name.starts_with(head)
                    && name.ends_with(tail)
            }
        }
    })
}

/// The values of `field` in a source (arrays flattened).
fn values<'a>(source: &'a Value, field: &str) -> Vec<&'a Value> {
    let field = field.strip_suffix(".keyword").unwrap_or(field);
    let mut current = vec![source];
    for part in field.split('.') {
        current = current
            .into_iter()
            .filter_map(|v| v.get(part))
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                v => vec![v],
            })
            .collect();
    }
    current
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
        return x.partial_cmp(&y);
    }
    let (x, y) = (a.as_str()?, b.as_str()?);
    if let (Ok(x), Ok(y)) = (
        chrono::DateTime::parse_from_rfc3339(x),
        chrono::DateTime::parse_from_rfc3339(y),
    ) {
        return Some(x.cmp(&y));
    }
    Some(x.cmp(y))
}

fn equal(a: &Value, b: &Value) -> bool {
    compare(a, b) == Some(std::cmp::Ordering::Equal) || a == b
}

/// Whether a document matches a query; `Err` names an unsupported clause.
fn matches(query: &Value, source: &Value) -> Result<bool, String> {
    let Some((clause, body)) = query.as_object().and_then(|o| o.iter().next()) else {
        return Err("a query must be an object with one clause".into());
    };
    let single = |body: &Value| -> Option<(String, Value)> {
        let (field, value) = body.as_object()?.iter().next()?;
        let value = value.get("value").cloned().unwrap_or_else(|| value.clone());
        Some((field.clone(), value))
    };
    Ok(match clause.as_str() {
        "match_all" => true,
        "term" => {
            let (field, value) = single(body).ok_or("malformed term")?;
            values(source, &field).into_iter().any(|v| equal(v, &value))
        }
        "terms" => {
            let (field, wanted) = body
                .as_object()
                .and_then(|o| o.iter().next())
                .ok_or("malformed terms")?;
            let wanted = wanted.as_array().ok_or("terms takes an array")?;
            values(source, field)
                .into_iter()
                .any(|v| wanted.iter().any(|w| equal(v, w)))
        }
        "range" => {
            let (field, bounds) = body
                .as_object()
                .and_then(|o| o.iter().next())
                .ok_or("malformed range")?;
            let bounds = bounds.as_object().ok_or("range bounds must be an object")?;
            values(source, field).into_iter().any(|v| {
                bounds.iter().all(|(op, bound)| {
                    let ord = compare(v, bound);
                    match op.as_str() {
                        "gt" => ord == Some(std::cmp::Ordering::Greater),
                        "gte" => matches!(
                            ord,
                            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
                        ),
                        "lt" => ord == Some(std::cmp::Ordering::Less),
                        "lte" => matches!(
                            ord,
                            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                        ),
                        _ => true, // format, time_zone, …
                    }
                })
            })
        }
        "bool" => {
            let list = |name: &str| -> Vec<Value> {
                match body.get(name) {
                    Some(Value::Array(items)) => items.clone(),
                    Some(v) => vec![v.clone()],
                    None => Vec::new(),
                }
            };
            for q in list("filter").iter().chain(list("must").iter()) {
                if !matches(q, source)? {
                    return Ok(false);
                }
            }
            for q in list("must_not") {
                if matches(&q, source)? {
                    return Ok(false);
                }
            }
            true
        }
        other => return Err(format!("unknown query [{other}]")),
    })
}

/// `_delete_by_query`: deletes the searchable documents (as of the last refresh, as
/// Elasticsearch's snapshot does) that match the query; `?refresh=true` refreshes after.
/// Answers `{"deleted": n, "total": n, "failures": []}`.
fn delete_by_query(
    indices: &mut BTreeMap<String, Index>,
    pattern: &str,
    body: &[u8],
    params: &BTreeMap<String, String>,
) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "parsing_exception", e.to_string()),
    };
    let Some(query) = request.get("query") else {
        return error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: query is missing;",
        );
    };
    let mut deleted = 0u64;
    for (name, index) in indices.iter_mut() {
        if !matches_pattern(pattern, name) {
            continue;
        }
        let mut gone = Vec::new();
        for (id, doc) in &index.searchable {
            match matches(query, &doc.source) {
                Ok(true) => gone.push(id.clone()),
                Ok(false) => {}
                Err(reason) => {
                    return error(StatusCode::BAD_REQUEST, "parsing_exception", reason);
                }
            }
        }
        for id in gone {
            index.docs.remove(&id);
            index.seq_no += 1;
            deleted += 1;
        }
        if params
            .get("refresh")
            .is_some_and(|r| r.is_empty() || r == "true")
        {
            index.refresh();
        }
    }
    axum::Json(json!({"deleted": deleted, "total": deleted, "failures": []})).into_response()
}

fn search(indices: &BTreeMap<String, Index>, pattern: &str, body: &[u8], window: u64) -> Response {
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, "parsing_exception", e.to_string()),
        }
    };
    for p in pattern.split(',') {
        if !p.contains('*') && !indices.contains_key(p) && p != "_all" {
            return error(
                StatusCode::NOT_FOUND,
                "index_not_found_exception",
                format!("no such index [{p}]"),
            );
        }
    }
    let from = request.get("from").and_then(Value::as_u64).unwrap_or(0);
    let size = request.get("size").and_then(Value::as_u64).unwrap_or(10);
    if from + size > window {
        return error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            format!(
                "Result window is too large, from + size must be less than or equal to: [{window}] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.",
                from + size
            ),
        );
    }
    let query = request
        .get("query")
        .cloned()
        .unwrap_or(json!({"match_all": {}}));
    let mut hits: Vec<(&String, &String, &Doc)> = Vec::new();
    for (name, index) in indices {
        if !matches_pattern(pattern, name) {
            continue;
        }
        for (id, doc) in &index.searchable {
            match matches(&query, &doc.source) {
                Ok(true) => hits.push((name, id, doc)),
                Ok(false) => {}
                Err(e) => return error(StatusCode::BAD_REQUEST, "parsing_exception", e),
            }
        }
    }
    let sort: Vec<(String, bool)> = request
        .get("sort")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| match item {
                    Value::String(field) => Some((field.clone(), false)),
                    Value::Object(o) => {
                        let (field, order) = o.iter().next()?;
                        let order = order.get("order").unwrap_or(order);
                        Some((field.clone(), order.as_str() == Some("desc")))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let key = |hit: &(&String, &String, &Doc), field: &str| -> Value {
        if field == "_id" {
            return Value::String(hit.1.clone());
        }
        values(&hit.2.source, field)
            .first()
            .map_or(Value::Null, |v| (*v).clone())
    };
    hits.sort_by(|a, b| {
        for (field, descending) in &sort {
            let ord = compare(&key(a, field), &key(b, field)).unwrap_or(std::cmp::Ordering::Equal);
            let ord = if *descending { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    let total = hits.len();
    let page: Vec<Value> = hits
        .iter()
        .skip(usize::try_from(from).unwrap_or(usize::MAX))
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .map(|hit| {
            let sort_values: Vec<Value> = sort.iter().map(|(f, _)| key(hit, f)).collect();
            json!({"_index": hit.0, "_id": hit.1, "_score": null, "_source": hit.2.source, "sort": sort_values})
        })
        .collect();
    axum::Json(json!({
        "took": 1,
        "timed_out": false,
        "hits": {"total": {"value": total, "relation": "eq"}, "max_score": null, "hits": page},
    }))
    .into_response()
}
