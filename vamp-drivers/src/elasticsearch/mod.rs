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

mod wire;
use wire::*;
mod http;
mod persistence;
mod store;

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
}
