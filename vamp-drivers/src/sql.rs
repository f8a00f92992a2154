//! What the SQL persistences (SQLite, PostgreSQL) share: time and paging conversions and the
//! decoding of artifact and event rows, over any `sqlx` database.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};
use vamp_core::model::{Event, Kind};
use vamp_core::traits::{Page, StoredArtifact, StoredEvent};
use vamp_core::{Error, Result};

/// A time as nanoseconds since the epoch (the `at` columns).
pub(crate) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub(crate) fn from_nanos(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

/// `(LIMIT, OFFSET)` of a page.
pub(crate) fn limit(page: Page) -> (i64, i64) {
    (
        i64::try_from(page.per_page).unwrap_or(i64::MAX),
        i64::try_from(page.offset()).unwrap_or(i64::MAX),
    )
}

pub(crate) fn corrupt(backend: &'static str, message: impl Into<String>) -> Error {
    Error::Corrupt {
        backend,
        message: message.into(),
    }
}

pub(crate) fn parse_json(backend: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| corrupt(backend, format!("stored JSON does not parse: {e}")))
}

fn get<'r, R, T>(backend: &'static str, row: &'r R, column: &'static str) -> Result<T>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    row.try_get(column).map_err(|e| Error::backend(backend, e))
}

/// A row of `name, revision, value, at`.
pub(crate) fn artifact_row<R>(backend: &'static str, kind: Kind, row: &R) -> Result<StoredArtifact>
where
    R: Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let revision: i64 = get(backend, row, "revision")?;
    let value: String = get(backend, row, "value")?;
    Ok(StoredArtifact {
        kind,
        name: get(backend, row, "name")?,
        revision: u64::try_from(revision).map_err(|_| corrupt(backend, "negative revision"))?,
        value: parse_json(backend, &value)?,
        updated: from_nanos(get(backend, row, "at")?),
    })
}

/// A row of `id, timestamp, type, value, tags`.
pub(crate) fn event_row<R>(backend: &'static str, row: &R) -> Result<StoredEvent>
where
    R: Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let id: i64 = get(backend, row, "id")?;
    let timestamp: String = get(backend, row, "timestamp")?;
    let value: String = get(backend, row, "value")?;
    let tags: String = get(backend, row, "tags")?;
    Ok(StoredEvent {
        id: u64::try_from(id).map_err(|_| corrupt(backend, "negative event id"))?,
        event: Event {
            tags: serde_json::from_str(&tags)
                .map_err(|e| corrupt(backend, format!("event tags: {e}")))?,
            value: parse_json(backend, &value)?,
            kind: get(backend, row, "type")?,
            timestamp: DateTime::parse_from_rfc3339(&timestamp)
                .map_err(|e| corrupt(backend, format!("event timestamp: {e}")))?
                .with_timezone(&Utc),
        },
    })
}

/// A time-bounded event query walks the window through the time index when it holds at most
/// this many events; beyond, it starts from its rarest tag (tags are counted up to this many).
pub(crate) const WINDOW_WALK: i64 = 5_000;

/// The conditions that select events carrying every one of `tags` tags (rarest first), each
/// with its placeholder from `placeholder`: the first one leads through the `(tag, event_id)`
/// key and the others are checked on each candidate — or, when the query walks a small time
/// window (`by_time`), every tag is checked on each event of the window.
pub(crate) fn tag_conditions(
    tags: usize,
    by_time: bool,
    mut placeholder: impl FnMut() -> String,
) -> Vec<String> {
    (0..tags)
        .map(|i| {
            let p = placeholder();
            if i == 0 && !by_time {
                format!("e.id IN (SELECT t.event_id FROM event_tags t WHERE t.tag = {p})")
            } else {
                format!(
                    "EXISTS (SELECT 1 FROM event_tags t WHERE t.event_id = e.id AND t.tag = {p})"
                )
            }
        })
        .collect()
}
