//! [`SqlitePersistence`]: artifacts and events in one SQLite file.
//!
//! Layout: `artifacts` holds the latest revision of every (kind, name) — live or deleted —
//! and `artifact_revisions` every revision; `events` and `event_tags` (expanded tags, spec
//! §1.14) hold events. Writes are serialized in-process, so preconditions are checked and
//! applied atomically; the file is in WAL mode, so reads never wait for writes. The schema is
//! created and migrated on open (embedded migrations in `schema.rs`).
//!
//! Every statement binds its values; user strings never become SQL text.

mod schema;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqlitePool};
use tokio::sync::Mutex;
use vamp_core::events::EventBus;
use vamp_core::model::{Event, Kind};
use vamp_core::traits::{
    EventFilter, EventStream, Page, Paged, Persistence, Precondition, Retention, Revision,
    StoredArtifact, StoredEvent, check_artifact_name,
};
use vamp_core::{Error, Result};

use crate::sql::{
    RETENTION_BATCH, WINDOW_WALK, artifact_row, event_row, from_nanos, limit, nanos, parse_json,
    retention_sql,
};

mod persistence;

const BACKEND: &str = "sqlite";

/// How long a statement waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Artifacts and events in a SQLite file: the embedded default persistence.
///
/// ```no_run
/// # async fn demo() -> vamp_core::Result<()> {
/// use vamp_drivers::sqlite::SqlitePersistence;
/// let db = SqlitePersistence::open("/var/lib/vamp/vamp.db").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlitePersistence {
    pool: SqlitePool,
    path: PathBuf,
    /// Serializes writes: check-then-write of preconditions must not interleave.
    writes: std::sync::Arc<Mutex<()>>,
    bus: EventBus,
}

fn unavailable(path: &Path, e: impl Into<vamp_core::BoxError>) -> Error {
    let source = e.into();
    Error::Unavailable {
        backend: BACKEND,
        address: path.display().to_string(),
        message: source.to_string(),
        cause: Some(source),
    }
}

fn backend(e: sqlx::Error) -> Error {
    Error::backend(BACKEND, e)
}

fn corrupt(message: impl Into<String>) -> Error {
    Error::Corrupt {
        backend: BACKEND,
        message: message.into(),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    kind.plural()
}

impl SqlitePersistence {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| unavailable(&path, e))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| unavailable(&path, e))?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| unavailable(&path, e))?;
        schema::migrate(&pool)
            .await
            .map_err(|e| unavailable(&path, e))?;
        tracing::debug!(path = %path.display(), "opened sqlite persistence");
        Ok(SqlitePersistence {
            pool,
            path,
            writes: std::sync::Arc::default(),
            bus: EventBus::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the connections (waits for running statements).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The latest (revision, live) of an artifact.
    async fn latest(
        &self,
        tx: &mut sqlx::SqliteConnection,
        kind: Kind,
        name: &str,
    ) -> Result<Option<(u64, bool)>> {
        let row = sqlx::query("SELECT revision, live FROM artifacts WHERE kind = ? AND name = ?")
            .bind(kind_name(kind))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        row.map(|r| crate::sql::revision_live(BACKEND, &r))
            .transpose()
    }

    /// Writes a new revision (value `None` = deletion) in one transaction.
    async fn write(
        &self,
        kind: Kind,
        name: &str,
        value: Option<&serde_json::Value>,
        precondition: Precondition,
    ) -> Result<Option<(u64, DateTime<Utc>)>> {
        check_artifact_name(name)?;
        let _guard = self.writes.lock().await;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let latest = self.latest(&mut tx, kind, name).await?;
        let live = latest.filter(|(_, live)| *live).map(|(r, _)| r);
        precondition.check(|| format!("{kind}/{name}"), live)?;
        if value.is_none() && live.is_none() {
            return Ok(None);
        }
        let revision = latest.map_or(0, |(r, _)| r) + 1;
        let now = Utc::now();
        let text = value.map(serde_json::Value::to_string);
        let rev = i64::try_from(revision).map_err(|_| corrupt("revision overflow"))?;
        sqlx::query(
            "INSERT INTO artifact_revisions (kind, name, revision, value, at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(kind_name(kind))
        .bind(name)
        .bind(rev)
        .bind(&text)
        .bind(nanos(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO artifacts (kind, name, revision, live, value, at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (kind, name) DO UPDATE SET revision = excluded.revision, \
             live = excluded.live, value = excluded.value, at = excluded.at",
        )
        .bind(kind_name(kind))
        .bind(name)
        .bind(rev)
        .bind(value.is_some())
        .bind(&text)
        .bind(nanos(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some((revision, now)))
    }
}

impl SqlitePersistence {
    /// A page of the events that pass `filter`, with their total when `with_total` (the page
    /// and the count run at once).
    async fn events_page(
        &self,
        filter: &EventFilter,
        page: Page,
        with_total: bool,
    ) -> Result<(Vec<StoredEvent>, u64)> {
        let mut tags = filter.tags.clone();
        tags.sort();
        tags.dedup();
        // The rarest tag first: it finds the candidates through the (tag, event_id) key; the
        // others are checked on each candidate. Counting is capped, so it costs little.
        if tags.len() > 1 {
            let mut counted = Vec::with_capacity(tags.len());
            for t in tags {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM event_tags WHERE tag = ? LIMIT ?)",
                )
                .bind(&t)
                .bind(WINDOW_WALK + 1)
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
                counted.push((n, t));
            }
            counted.sort();
            tags = counted.into_iter().map(|(_, t)| t).collect();
        }
        // A window with few events in it is walked newest first through the time index
        // instead, checking every tag on each event: a query for the latest metric of a
        // gateway then costs what the window holds, not what the log has gathered.
        let by_time = match filter.from {
            Bound::Unbounded => false,
            Bound::Included(t) | Bound::Excluded(t) => {
                let in_window: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE at >= ? LIMIT ?)",
                )
                .bind(nanos(t))
                .bind(WINDOW_WALK + 1)
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
                in_window <= WINDOW_WALK
            }
        };
        // Only placeholders are added to the SQL text; every value is bound.
        let mut clauses = crate::sql::tag_conditions(tags.len(), by_time, || "?".to_owned());
        if filter.kind.is_some() {
            clauses.push("e.type = ?".to_owned());
        }
        let bound = |b: &Bound<DateTime<Utc>>, incl: &str, excl: &str| match b {
            Bound::Included(t) => Some((format!("e.at {incl} ?"), nanos(*t))),
            Bound::Excluded(t) => Some((format!("e.at {excl} ?"), nanos(*t))),
            Bound::Unbounded => None,
        };
        let times: Vec<(String, i64)> = [
            bound(&filter.from, ">=", ">"),
            bound(&filter.until, "<=", "<"),
        ]
        .into_iter()
        .flatten()
        .collect();
        clauses.extend(times.iter().map(|(c, _)| c.clone()));
        let condition = if clauses.is_empty() {
            "1".to_owned()
        } else {
            clauses.join(" AND ")
        };
        let select = format!(
            "SELECT e.id, e.timestamp, e.type, e.value, e.tags FROM events e WHERE {condition} \
             ORDER BY e.at DESC, e.id DESC LIMIT ? OFFSET ?"
        );
        let count = format!("SELECT COUNT(*) FROM events e WHERE {condition}");

        let mut q = sqlx::query(AssertSqlSafe(select));
        let mut c = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count));
        for t in &tags {
            q = q.bind(t.clone());
            c = c.bind(t.clone());
        }
        if let Some(kind) = &filter.kind {
            q = q.bind(kind.clone());
            c = c.bind(kind.clone());
        }
        for (_, t) in &times {
            q = q.bind(*t);
            c = c.bind(*t);
        }
        let (limit, offset) = limit(page);
        let rows = q
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let total = if with_total {
            c.fetch_one(&self.pool).await.map_err(backend)?
        } else {
            0
        };
        let items = rows
            .iter()
            .map(|r| event_row(BACKEND, r))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, u64::try_from(total).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests;
