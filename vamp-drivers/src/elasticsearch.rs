//! [`ElasticsearchPersistence`]: artifacts and events in Elasticsearch (7.10+, 8.x) or
//! OpenSearch, over the REST API (`_doc`, `_create`, `_search`, `_refresh`).
//!
//! # Indices
//!
//! | index | document id | document |
//! |---|---|---|
//! | `<prefix>-artifacts` | `<kind>/<name>` | `{kind, name, revision, live, value (JSON text), updated}` |
//! | `<prefix>-artifact-history` | `<kind>/<name>/<revision>` | `{kind, name, revision, value (JSON text or null), at}` |
//! | `<prefix>-sequence` | `events` | `{}`: its `_version` numbers the events |
//! | `<events>-<type>-<YYYY-MM-dd>` | the event id | `{id, tags, all_tags, type, value (JSON text), timestamp}` (spec §3.8) |
//!
//! Events go to one index per type and day as Vamp's pulse wrote them (spec §3.8: base name
//! `vamp-pulse-<namespace>`, [`ElasticsearchConfig::events`]); queries search `<events>-*`.
//! `all_tags` holds the tags with their `group:name` groups expanded, for tag queries. Vamp's
//! extra `<type>: <raw value>` field is left out: one type's values of different JSON shapes
//! would break Elasticsearch's dynamic mapping. An index template maps the fields on start.
//!
//! # Guarantees
//!
//! - Preconditions and revisions: the artifact document is written with optimistic concurrency
//!   (`op_type=create` when absent, `if_seq_no`/`if_primary_term` otherwise), so two writers
//!   never both win; an unconditional write that loses a race retries. The history document
//!   follows; if the process dies in between, [`history`](Persistence::history) still reports
//!   the current revision from the artifact document.
//! - Event ids come from re-indexing the sequence document (its `_version` grows by one per
//!   write), so they are unique and increasing across processes.
//! - Search is near-real-time in Elasticsearch; a handle refreshes the indices it wrote to
//!   before its next listing or query, so it reads its own writes. Writes of other processes
//!   become visible within Elasticsearch's refresh interval (1 s by default).
//! - Listings and event queries page with `from`/`size`: Elasticsearch refuses pages past
//!   `index.max_result_window` (10 000 documents) — an `Error::Invalid` saying so.
//! - Every call is bounded by [`ElasticsearchConfig::timeout`]; an unreachable node is
//!   `Error::Unavailable`/`Error::Timeout` naming `elasticsearch`.
//!
//! **No Elasticsearch runs here:** the backend is built to Elasticsearch's public REST API
//! documentation and tested against [`fakes::elasticsearch`](crate::fakes::elasticsearch)
//! (feature `fakes`), a local fake of that API with its near-real-time search — not against a
//! real Elasticsearch.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use vamp_core::events::EventBus;
use vamp_core::model::{Event, Kind};
use vamp_core::traits::{
    EventFilter, EventStream, Page, Paged, Persistence, Precondition, Retention, Revision,
    StoredArtifact, StoredEvent, check_artifact_name,
};
use vamp_core::{Error, Result};

const BACKEND: &str = "elasticsearch";
/// Attempts of an unconditional write that loses races.
const WRITE_ATTEMPTS: usize = 16;

/// How to reach Elasticsearch and where to keep things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticsearchConfig {
    /// The node's URL (Vamp's `pulse.elasticsearch.url`), e.g. `http://127.0.0.1:9200`.
    pub url: String,
    /// The prefix of the artifact indices (`<prefix>-artifacts`, …).
    pub prefix: String,
    /// The base name of the event indices (Vamp's `pulse.elasticsearch.index.name`).
    pub events: String,
    /// HTTP basic auth `(user, password)`.
    pub credentials: Option<(String, String)>,
    /// The limit of one call.
    pub timeout: Duration,
    /// The indices' `index.max_result_window` (Elasticsearch's default: 10 000).
    pub max_result_window: u64,
}

impl ElasticsearchConfig {
    /// The node at `url`, indices `vamp-*` and `vamp-pulse-default-*`, 10 s per call.
    ///
    /// ```
    /// let config = vamp_drivers::elasticsearch::ElasticsearchConfig::new("http://127.0.0.1:9200");
    /// assert_eq!(config.events, "vamp-pulse-default");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        ElasticsearchConfig {
            url: url.into(),
            prefix: "vamp".into(),
            events: "vamp-pulse-default".into(),
            credentials: None,
            timeout: Duration::from_secs(10),
            max_result_window: 10_000,
        }
    }
}

/// Persistence in Elasticsearch. Clones share the connection pool and the event bus.
#[derive(Debug, Clone)]
pub struct ElasticsearchPersistence {
    config: Arc<ElasticsearchConfig>,
    http: reqwest::Client,
    /// Whether this handle wrote since its last refresh.
    dirty: Arc<AtomicBool>,
    /// Orders this handle's appends, so its subscribers see ids in order.
    appends: Arc<Mutex<()>>,
    bus: EventBus,
}

/// A document as `GET _doc` returns it.
#[derive(Debug, Deserialize)]
struct Got<T> {
    #[serde(default)]
    found: bool,
    #[serde(rename = "_seq_no", default)]
    seq_no: u64,
    #[serde(rename = "_primary_term", default)]
    primary_term: u64,
    #[serde(rename = "_source")]
    source: Option<T>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct ArtifactDoc {
    kind: String,
    name: String,
    revision: u64,
    live: bool,
    value: Option<String>,
    updated: DateTime<Utc>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct HistoryDoc {
    kind: String,
    name: String,
    revision: u64,
    value: Option<String>,
    at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
struct EventDoc {
    id: u64,
    tags: Vec<String>,
    all_tags: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    value: String,
    timestamp: String,
}

#[derive(Debug, Deserialize)]
struct SearchResponse<T> {
    hits: Hits<T>,
}

#[derive(Debug, Deserialize)]
struct Hits<T> {
    total: Total,
    hits: Vec<Hit<T>>,
}

#[derive(Debug, Deserialize)]
struct Total {
    value: u64,
}

#[derive(Debug, Deserialize)]
struct Hit<T> {
    #[serde(rename = "_source")]
    source: T,
}

/// Percent-encodes a document id or index name for a URL path.
fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An event type as part of an index name: lowercase, other characters `_`.
fn index_part(kind: &str) -> String {
    kind.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        backend: BACKEND,
        message: format!("{what}: {e}"),
    }
}

/// What a write answered.
enum Written {
    Ok(Value),
    Conflict,
}

impl ElasticsearchPersistence {
    /// Checks the node answers and creates the indices and the event template if missing.
    ///
    /// # Errors
    /// `Error::Invalid` for a URL that is not `http://…` or index names Elasticsearch refuses,
    /// `Error::Unavailable`/`Error::Timeout` when the node does not answer.
    pub async fn connect(config: ElasticsearchConfig) -> Result<Self> {
        if !config.url.starts_with("http://") {
            return Err(Error::Invalid {
                what: "elasticsearch url",
                message: format!(
                    "'{}' must be an http:// URL, e.g. http://127.0.0.1:9200 (https is not supported yet)",
                    config.url
                ),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        let db = ElasticsearchPersistence {
            config: Arc::new(config),
            http,
            dirty: Arc::new(AtomicBool::new(false)),
            appends: Arc::default(),
            bus: EventBus::default(),
        };
        let keyword = json!({"type": "keyword"});
        let text = json!({"type": "keyword", "index": false, "doc_values": false});
        let artifacts = json!({"mappings": {"properties": {
            "kind": keyword, "name": keyword, "revision": {"type": "long"},
            "live": {"type": "boolean"}, "value": text, "updated": {"type": "date_nanos"},
        }}});
        let history = json!({"mappings": {"properties": {
            "kind": keyword, "name": keyword, "revision": {"type": "long"},
            "value": text, "at": {"type": "date_nanos"},
        }}});
        for (index, body) in [
            (db.index("artifacts"), artifacts),
            (db.index("artifact-history"), history),
            (db.index("sequence"), json!({})),
        ] {
            db.create_index(&index, &body).await?;
        }
        let template = json!({
            "index_patterns": [format!("{}-*", db.config.events)],
            "template": {"mappings": {"properties": {
                "id": {"type": "long"}, "tags": keyword, "all_tags": keyword, "type": keyword,
                "value": text, "timestamp": {"type": "date_nanos"},
            }}},
        });
        let name = format!("{}-events", db.config.prefix);
        db.send(
            "connect",
            db.request(
                reqwest::Method::PUT,
                &format!("/_index_template/{}", url_part(&name)),
            )
            .json(&template),
        )
        .await?;
        Ok(db)
    }

    fn index(&self, what: &str) -> String {
        format!("{}-{what}", self.config.prefix)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(
                method,
                format!("{}{path}", self.config.url.trim_end_matches('/')),
            )
            .timeout(self.config.timeout);
        if let Some((user, password)) = &self.config.credentials {
            request = request.basic_auth(user, Some(password));
        }
        request
    }

    /// Sends a request; returns the status and the JSON body. Transport failures and 5xx are
    /// `Unavailable`, 401/403 name the credentials, other 4xx are returned for the caller.
    async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value)> {
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                Error::Timeout {
                    backend: BACKEND,
                    address: self.config.url.clone(),
                    operation,
                    timeout: self.config.timeout,
                }
            } else {
                Error::Unavailable {
                    backend: BACKEND,
                    address: self.config.url.clone(),
                    message: format!("{operation}: {e}"),
                    cause: Some(Box::new(e)),
                }
            }
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| Error::Unavailable {
            backend: BACKEND,
            address: self.config.url.clone(),
            message: format!("{operation}: {e}"),
            cause: Some(Box::new(e)),
        })?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let reason = || {
            value["error"]["reason"].as_str().map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
                str::to_owned,
            )
        };
        match status {
            401 | 403 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{operation}: not authorized ({}); set the credentials of a user that may write the {}-* and {}-* indices",
                    reason(),
                    self.config.prefix,
                    self.config.events
                ),
                cause: None,
            }),
            500..=599 => Err(Error::Unavailable {
                backend: BACKEND,
                address: self.config.url.clone(),
                message: format!("{operation}: {status}: {}", reason()),
                cause: None,
            }),
            _ => Ok((status, value)),
        }
    }

    fn refused(&self, operation: &'static str, status: u16, body: &Value) -> Error {
        let kind = body["error"]["type"].as_str().unwrap_or("error");
        let reason = body["error"]["reason"]
            .as_str()
            .unwrap_or("no reason given");
        if kind == "illegal_argument_exception" && reason.contains("Result window is too large") {
            return Error::Invalid {
                what: "page",
                message: format!(
                    "Elasticsearch pages only through the first results ({reason}); set max_result_window to the indices' index.max_result_window ({}), ask for an earlier page or narrow the query",
                    self.config.max_result_window
                ),
            };
        }
        if kind.contains("index_name") {
            return Error::Invalid {
                what: "elasticsearch index",
                message: format!(
                    "{reason}: index names are lowercase without spaces or \\/*?\"<>|,#:"
                ),
            };
        }
        Error::Backend {
            backend: BACKEND,
            message: format!("{operation}: {status} {kind}: {reason}"),
            cause: None,
        }
    }

    async fn create_index(&self, index: &str, body: &Value) -> Result<()> {
        let (status, answer) = self
            .send(
                "connect",
                self.request(reqwest::Method::PUT, &format!("/{}", url_part(index)))
                    .json(body),
            )
            .await?;
        let exists = answer["error"]["type"].as_str() == Some("resource_already_exists_exception");
        if (200..300).contains(&status) || exists {
            Ok(())
        } else {
            Err(self.refused("connect", status, &answer))
        }
    }

    async fn get_doc<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        index: &str,
        id: &str,
    ) -> Result<Option<(T, u64, u64)>> {
        let path = format!("/{}/_doc/{}", url_part(index), url_part(id));
        let (status, body) = self
            .send(operation, self.request(reqwest::Method::GET, &path))
            .await?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(self.refused(operation, status, &body));
        }
        let got: Got<T> = serde_json::from_value(body).map_err(|e| corrupt(id, e))?;
        match (got.found, got.source) {
            (true, Some(source)) => Ok(Some((source, got.seq_no, got.primary_term))),
            _ => Ok(None),
        }
    }

    /// Indexes a document; `expect`: `None` = only create, `Some((seq_no, term))` = only over
    /// that version; `create = false` with no expectation overwrites.
    async fn put_doc(
        &self,
        operation: &'static str,
        index: &str,
        id: &str,
        doc: &impl serde::Serialize,
        create: bool,
        expect: Option<(u64, u64)>,
    ) -> Result<Written> {
        let path = format!("/{}/_doc/{}", url_part(index), url_part(id));
        let mut request = self.request(reqwest::Method::PUT, &path).json(doc);
        if create {
            request = request.query(&[("op_type", "create")]);
        }
        if let Some((seq_no, term)) = expect {
            request = request.query(&[("if_seq_no", seq_no), ("if_primary_term", term)]);
        }
        let (status, body) = self.send(operation, request).await?;
        self.dirty.store(true, Ordering::SeqCst);
        match status {
            200 | 201 => Ok(Written::Ok(body)),
            409 => Ok(Written::Conflict),
            _ => Err(self.refused(operation, status, &body)),
        }
    }

    /// Makes this handle's writes searchable before it searches.
    async fn refresh(&self, pattern: &str) -> Result<()> {
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let path = format!("/{pattern}/_refresh");
        let (status, body) = self
            .send("refresh", self.request(reqwest::Method::POST, &path))
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            self.dirty.store(true, Ordering::SeqCst);
            Err(self.refused("refresh", status, &body))
        }
    }

    async fn search<T: serde::de::DeserializeOwned>(
        &self,
        pattern: &str,
        body: &Value,
    ) -> Result<(u64, Vec<T>)> {
        self.refresh(&format!(
            "{}-*,{}-*",
            self.config.prefix, self.config.events
        ))
        .await?;
        let path = format!("/{pattern}/_search");
        let (status, answer) = self
            .send(
                "search",
                self.request(reqwest::Method::POST, &path).json(body),
            )
            .await?;
        if status != 200 {
            return Err(self.refused("search", status, &answer));
        }
        let found: SearchResponse<T> =
            serde_json::from_value(answer).map_err(|e| corrupt("search", e))?;
        Ok((
            found.hits.total.value,
            found.hits.hits.into_iter().map(|h| h.source).collect(),
        ))
    }

    /// One page of a search (`body` without paging). A page past the end is empty; a page
    /// the result window would cut short is refused rather than returned short.
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        pattern: &str,
        mut body: Value,
        page: Page,
    ) -> Result<(u64, Vec<T>)> {
        let window = self.config.max_result_window;
        let from = page.offset();
        let deep = from >= window;
        body["from"] = json!(if deep { 0 } else { from });
        body["size"] = json!(if deep {
            0
        } else {
            page.per_page.min(window - from)
        });
        body["track_total_hits"] = json!(true);
        let (total, items): (u64, Vec<T>) = self.search(pattern, &body).await?;
        let expected = page.per_page.min(total.saturating_sub(from));
        if u64::try_from(items.len()).unwrap_or(u64::MAX) < expected {
            return Err(Error::Invalid {
                what: "page",
                message: format!(
                    "Elasticsearch pages only through the first {window} results (index.max_result_window); page {} of {} needs results {from}.. of {total}: ask for smaller pages or narrow the query",
                    page.page, page.per_page
                ),
            });
        }
        Ok((total, items))
    }

    fn artifact_id(kind: Kind, name: &str) -> String {
        format!("{}/{name}", kind.plural())
    }

    fn stored(kind: Kind, doc: ArtifactDoc) -> Result<Option<StoredArtifact>> {
        if !doc.live {
            return Ok(None);
        }
        let text = doc.value.unwrap_or_default();
        let value = serde_json::from_str(&text).map_err(|e| corrupt(&doc.name, e))?;
        Ok(Some(StoredArtifact {
            kind,
            name: doc.name,
            revision: doc.revision,
            value,
            updated: doc.updated,
        }))
    }

    /// Writes a new revision (`None`: a deletion) under `precondition`; `Ok(None)` when
    /// deleting what is not there.
    async fn write(
        &self,
        kind: Kind,
        name: &str,
        value: Option<&Value>,
        precondition: Precondition,
    ) -> Result<Option<(u64, DateTime<Utc>)>> {
        check_artifact_name(name)?;
        let id = Self::artifact_id(kind, name);
        if id.len() > 500 {
            return Err(Error::Invalid {
                what: "artifact name",
                message: format!(
                    "'{name}' is too long for Elasticsearch document ids ({} bytes, at most 500 with its kind)",
                    id.len()
                ),
            });
        }
        let text = value
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::backend(BACKEND, e))?;
        let artifacts = self.index("artifacts");
        for _ in 0..WRITE_ATTEMPTS {
            let current: Option<(ArtifactDoc, u64, u64)> =
                self.get_doc("put", &artifacts, &id).await?;
            let live = current
                .as_ref()
                .filter(|(d, _, _)| d.live)
                .map(|(d, _, _)| d.revision);
            precondition.check(|| format!("{kind}/{name}"), live)?;
            if value.is_none() && live.is_none() {
                return Ok(None);
            }
            let revision = current.as_ref().map_or(0, |(d, _, _)| d.revision) + 1;
            let now = Utc::now();
            let doc = ArtifactDoc {
                kind: kind.plural().to_owned(),
                name: name.to_owned(),
                revision,
                live: value.is_some(),
                value: text.clone(),
                updated: now,
            };
            let expect = current.as_ref().map(|(_, seq, term)| (*seq, *term));
            let written = self
                .put_doc("put", &artifacts, &id, &doc, expect.is_none(), expect)
                .await?;
            if let Written::Conflict = written {
                if precondition == Precondition::Any {
                    continue;
                }
                // Someone else wrote meanwhile: report against what is there now.
                let now_live = self
                    .get_doc::<ArtifactDoc>("put", &artifacts, &id)
                    .await?
                    .filter(|(d, _, _)| d.live)
                    .map(|(d, _, _)| d.revision);
                precondition.check(|| format!("{kind}/{name}"), now_live)?;
                continue;
            }
            let history = HistoryDoc {
                kind: kind.plural().to_owned(),
                name: name.to_owned(),
                revision,
                value: text,
                at: now,
            };
            self.put_doc(
                "put",
                &self.index("artifact-history"),
                &format!("{id}/{revision}"),
                &history,
                false,
                None,
            )
            .await?;
            return Ok(Some((revision, now)));
        }
        Err(Error::Conflict {
            what: format!("{kind}/{name}"),
            expected: "a quiet moment to write".into(),
            actual: format!("{WRITE_ATTEMPTS} concurrent writes in a row"),
        })
    }
}

fn bound_clause(op_in: &str, op_ex: &str, bound: Bound<&DateTime<Utc>>) -> Option<(String, Value)> {
    match bound {
        Bound::Included(t) => Some((op_in.to_owned(), json!(timestamp(t)))),
        Bound::Excluded(t) => Some((op_ex.to_owned(), json!(timestamp(t)))),
        Bound::Unbounded => None,
    }
}

#[async_trait]
impl Persistence for ElasticsearchPersistence {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredArtifact>> {
        let id = Self::artifact_id(kind, name);
        match self
            .get_doc::<ArtifactDoc>("get", &self.index("artifacts"), &id)
            .await?
        {
            Some((doc, _, _)) => Self::stored(kind, doc),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: &Value,
        precondition: Precondition,
    ) -> Result<StoredArtifact> {
        let written = self.write(kind, name, Some(value), precondition).await?;
        StoredArtifact::written(BACKEND, kind, name, value, written)
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        precondition: Precondition,
    ) -> Result<Option<u64>> {
        Ok(self
            .write(kind, name, None, precondition)
            .await?
            .map(|(revision, _)| revision))
    }

    async fn list(&self, kind: Kind, page: Page) -> Result<Paged<StoredArtifact>> {
        let body = json!({
            "query": {"bool": {"filter": [
                {"term": {"kind": kind.plural()}},
                {"term": {"live": true}},
            ]}},
            "sort": [{"name": {"order": "asc"}}],
        });
        let (total, docs) = self
            .paged::<ArtifactDoc>(&self.index("artifacts"), body, page)
            .await?;
        let mut items = Vec::with_capacity(docs.len());
        for doc in docs {
            items.extend(Self::stored(kind, doc)?);
        }
        Ok(Paged { items, total })
    }

    async fn history(&self, kind: Kind, name: &str) -> Result<Vec<Revision>> {
        let body = json!({
            "query": {"bool": {"filter": [
                {"term": {"kind": kind.plural()}},
                {"term": {"name": name}},
            ]}},
            "sort": [{"revision": {"order": "asc"}}],
        });
        let (_, docs) = self
            .paged::<HistoryDoc>(&self.index("artifact-history"), body, Page::ALL)
            .await?;
        let mut out = Vec::with_capacity(docs.len() + 1);
        for doc in docs {
            let value = doc
                .value
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| corrupt(name, e))?;
            out.push(Revision {
                revision: doc.revision,
                value,
                at: doc.at,
            });
        }
        // The artifact document is written first: a history entry lost to a crash in
        // between is still its current revision.
        let id = Self::artifact_id(kind, name);
        if let Some((doc, _, _)) = self
            .get_doc::<ArtifactDoc>("history", &self.index("artifacts"), &id)
            .await?
            && out.last().is_none_or(|r| r.revision < doc.revision)
        {
            let value = doc
                .value
                .filter(|_| doc.live)
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| corrupt(name, e))?;
            out.push(Revision {
                revision: doc.revision,
                value,
                at: doc.updated,
            });
        }
        Ok(out)
    }

    async fn append_event(&self, event: &Event) -> Result<StoredEvent> {
        let _order = self.appends.lock().await;
        let sequence = self.index("sequence");
        let numbered = self
            .put_doc("append_event", &sequence, "events", &json!({}), false, None)
            .await?;
        let Written::Ok(answer) = numbered else {
            return Err(corrupt(
                "events sequence",
                "an unconditional write conflicted",
            ));
        };
        let id = answer["_version"]
            .as_u64()
            .ok_or_else(|| corrupt("events sequence", "no _version in the answer"))?;
        let value = serde_json::to_string(&event.value).map_err(|e| Error::backend(BACKEND, e))?;
        let doc = EventDoc {
            id,
            tags: event.tags.clone(),
            all_tags: event.expanded_tags(),
            kind: event.kind.clone(),
            value,
            timestamp: timestamp(&event.timestamp),
        };
        let index = format!(
            "{}-{}-{}",
            self.config.events,
            index_part(&event.kind),
            event.timestamp.format("%Y-%m-%d")
        );
        match self
            .put_doc("append_event", &index, &id.to_string(), &doc, true, None)
            .await?
        {
            Written::Ok(_) => {}
            Written::Conflict => {
                return Err(corrupt(&index, format!("event id {id} is already taken")));
            }
        }
        let stored = StoredEvent {
            id,
            event: event.clone(),
        };
        self.bus.publish(stored.clone());
        Ok(stored)
    }

    async fn query_events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        let mut clauses: Vec<Value> = filter
            .tags
            .iter()
            .map(|t| json!({"term": {"all_tags": t}}))
            .collect();
        if let Some(kind) = &filter.kind {
            clauses.push(json!({"term": {"type": kind}}));
        }
        let mut range = serde_json::Map::new();
        for (op, value) in [
            bound_clause("gte", "gt", filter.from.as_ref()),
            bound_clause("lte", "lt", filter.until.as_ref()),
        ]
        .into_iter()
        .flatten()
        {
            range.insert(op, value);
        }
        if !range.is_empty() {
            clauses.push(json!({"range": {"timestamp": range}}));
        }
        let body = json!({
            "query": {"bool": {"filter": clauses}},
            "sort": [{"timestamp": {"order": "desc"}}, {"id": {"order": "desc"}}],
        });
        let (total, docs) = self
            .paged::<EventDoc>(&format!("{}-*", self.config.events), body, page)
            .await?;
        let mut items = Vec::with_capacity(docs.len());
        for doc in docs {
            let value = serde_json::from_str(&doc.value).map_err(|e| corrupt("event", e))?;
            let timestamp = DateTime::parse_from_rfc3339(&doc.timestamp)
                .map_err(|e| corrupt("event timestamp", e))?
                .with_timezone(&Utc);
            items.push(StoredEvent {
                id: doc.id,
                event: Event {
                    tags: doc.tags,
                    value,
                    kind: doc.kind,
                    timestamp,
                },
            });
        }
        Ok(Paged { items, total })
    }

    async fn subscribe(&self) -> Result<EventStream> {
        Ok(self.bus.subscribe())
    }

    /// Per group: `_delete_by_query` of what is too old; then, while more than `max_count`
    /// remain, the oldest (by id) in pages of the result window, each deleted by id range —
    /// no page deeper than `index.max_result_window`.
    async fn retain_events(&self, retention: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let pattern = format!("{}-*", self.config.events);
        let listed: Vec<&String> = retention.by_type.keys().collect();
        let mut deleted = 0;
        for (group, rule) in retention.groups() {
            let (filter, must_not) = match group {
                Some(t) => (vec![json!({"term": {"type": t}})], Vec::new()),
                None if listed.is_empty() => (Vec::new(), Vec::new()),
                None => (Vec::new(), vec![json!({"terms": {"type": listed}})]),
            };
            if let Some(cutoff) = rule.cutoff(now) {
                let mut f = filter.clone();
                f.push(json!({"range": {"timestamp": {"lt": timestamp(&cutoff)}}}));
                deleted += self.delete_events(&pattern, &f, &must_not).await?;
            }
            let Some(max) = rule.max_count else { continue };
            loop {
                let body = json!({
                    "query": {"bool": {"filter": filter, "must_not": must_not}},
                    "sort": [{"id": {"order": "asc"}}],
                    "size": 0,
                    "track_total_hits": true,
                });
                let (total, _): (u64, Vec<EventDoc>) = self.search(&pattern, &body).await?;
                let over = total.saturating_sub(max);
                if over == 0 {
                    break;
                }
                let mut page = body;
                page["size"] = json!(over.min(self.config.max_result_window));
                let (_, oldest): (u64, Vec<EventDoc>) = self.search(&pattern, &page).await?;
                let Some(last) = oldest.last().map(|d| d.id) else {
                    break;
                };
                let mut f = filter.clone();
                f.push(json!({"range": {"id": {"lte": last}}}));
                let n = self.delete_events(&pattern, &f, &must_not).await?;
                deleted += n;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

impl ElasticsearchPersistence {
    /// `_delete_by_query` of the events matching `filter` and none of `must_not`; the index
    /// is refreshed after, so searches no longer find them.
    async fn delete_events(
        &self,
        pattern: &str,
        filter: &[Value],
        must_not: &[Value],
    ) -> Result<u64> {
        self.refresh(pattern).await?;
        let body = json!({"query": {"bool": {"filter": filter, "must_not": must_not}}});
        let path = format!("/{pattern}/_delete_by_query?refresh=true&conflicts=proceed");
        let (status, answer) = self
            .send(
                "delete_by_query",
                self.request(reqwest::Method::POST, &path).json(&body),
            )
            .await?;
        if status != 200 {
            return Err(self.refused("delete_by_query", status, &answer));
        }
        Ok(answer["deleted"].as_u64().unwrap_or(0))
    }
}
