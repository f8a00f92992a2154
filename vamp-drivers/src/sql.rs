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

/// A row of `revision, live`: an artifact's latest revision and whether it is live.
pub(crate) fn revision_live<R>(backend: &'static str, row: &R) -> Result<(u64, bool)>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
{
    let revision: i64 = get(backend, row, "revision")?;
    Ok((
        u64::try_from(revision).map_err(|_| corrupt(backend, "negative revision"))?,
        get(backend, row, "live")?,
    ))
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

/// Events one retention statement deletes at most (short transactions on a large log).
pub(crate) const RETENTION_BATCH: u64 = 10_000;

/// The statements that apply one retention rule to a group of events, with placeholders made
/// by `placeholder(n)` (1-based: `?` for SQLite, `$n` for PostgreSQL). Bind, in order: the
/// group's types, then the cutoff time (`age`), the rule's `max_count` (`boundary`) or the
/// boundary id (`count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetentionSql {
    /// Deletes a batch of the group's events older than the cutoff.
    pub(crate) age: String,
    /// The id of the newest event beyond `max_count`, if any.
    pub(crate) boundary: String,
    /// Deletes a batch of the group's events at or below the boundary id.
    pub(crate) count: String,
}

/// [`RetentionSql`] for one type (`single`) or for every type but `types` listed ones.
///
/// ```ignore
/// let sql = retention_sql(true, 1, |_| "?".to_owned());
/// assert!(sql.age.starts_with("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE type = ?"));
/// ```
pub(crate) fn retention_sql(
    single: bool,
    types: usize,
    placeholder: impl Fn(usize) -> String,
) -> RetentionSql {
    let group = if single {
        format!("type = {}", placeholder(1))
    } else if types == 0 {
        "TRUE".to_owned()
    } else {
        let list: Vec<String> = (1..=types).map(&placeholder).collect();
        format!("type NOT IN ({})", list.join(", "))
    };
    let next = placeholder(if single { 2 } else { types + 1 });
    RetentionSql {
        age: format!(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {group} AND at < {next} ORDER BY id LIMIT {RETENTION_BATCH})"
        ),
        boundary: format!(
            "SELECT id FROM events WHERE {group} ORDER BY id DESC LIMIT 1 OFFSET {next}"
        ),
        count: format!(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {group} AND id <= {next} ORDER BY id LIMIT {RETENTION_BATCH})"
        ),
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;

    #[test]
    fn groups_and_placeholders() {
        let one = retention_sql(true, 1, |_| "?".to_owned());
        assert_eq!(
            one.age,
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE type = ? AND at < ? ORDER BY id LIMIT 10000)"
        );
        let rest = retention_sql(false, 2, |n| format!("${n}"));
        assert_eq!(
            rest.boundary,
            "SELECT id FROM events WHERE type NOT IN ($1, $2) ORDER BY id DESC LIMIT 1 OFFSET $3"
        );
        let all = retention_sql(false, 0, |n| format!("${n}"));
        assert!(
            all.count.contains("WHERE TRUE AND id <= $1"),
            "{}",
            all.count
        );
    }
}
