//! Documents as Elasticsearch stores and answers them, and the names they go by.

use super::*;

/// A document as `GET _doc` returns it.
#[derive(Debug, Deserialize)]
pub(super) struct Got<T> {
    #[serde(default)]
    pub(super) found: bool,
    #[serde(rename = "_seq_no", default)]
    pub(super) seq_no: u64,
    #[serde(rename = "_primary_term", default)]
    pub(super) primary_term: u64,
    #[serde(rename = "_source")]
    pub(super) source: Option<T>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub(super) struct ArtifactDoc {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) revision: u64,
    pub(super) live: bool,
    pub(super) value: Option<String>,
    pub(super) updated: DateTime<Utc>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
pub(super) struct HistoryDoc {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) revision: u64,
    pub(super) value: Option<String>,
    pub(super) at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
pub(super) struct EventDoc {
    pub(super) id: u64,
    pub(super) tags: Vec<String>,
    pub(super) all_tags: Vec<String>,
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) value: String,
    pub(super) timestamp: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct SearchResponse<T> {
    pub(super) hits: Hits<T>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Hits<T> {
    pub(super) total: Total,
    pub(super) hits: Vec<Hit<T>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Total {
    pub(super) value: u64,
}

#[derive(Debug, Deserialize)]
pub(super) struct Hit<T> {
    #[serde(rename = "_source")]
    pub(super) source: T,
}

/// Percent-encodes a document id or index name for a URL path.
pub(super) fn url_part(s: &str) -> String {
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
pub(super) fn index_part(kind: &str) -> String {
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

pub(super) fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        backend: BACKEND,
        message: format!("{what}: {e}"),
    }
}

/// What a write answered.
pub(super) enum Written {
    Ok(Value),
    Conflict,
}

pub(super) fn bound_clause(
    op_in: &str,
    op_ex: &str,
    bound: Bound<&DateTime<Utc>>,
) -> Option<(String, Value)> {
    match bound {
        Bound::Included(t) => Some((op_in.to_owned(), json!(timestamp(t)))),
        Bound::Excluded(t) => Some((op_ex.to_owned(), json!(timestamp(t)))),
        Bound::Unbounded => None,
    }
}
