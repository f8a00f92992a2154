//! [`PostgresPersistence`]: artifacts and events in PostgreSQL (11 or later), with the layout of
//! the SQLite backend.
//!
//! Layout: `artifacts` holds the latest revision of every (kind, name) — live or deleted —
//! and `artifact_revisions` every revision; `events` and `event_tags` (expanded tags, spec
//! §1.14) hold events. A write takes a transaction-scoped advisory lock on its (kind, name),
//! so preconditions are checked and applied atomically even with several Vamp processes on
//! one database. The schema is created and migrated on connect (embedded migrations in
//! `schema.rs`, under an advisory lock). Every statement is bounded by `statement_timeout`
//! and the pool's acquire timeout: an unreachable server is `Error::Unavailable`, never a hang.
//!
//! Every statement binds its values; user strings never become SQL text.
//!
//! Events appended through any handle on the database — other servers' too — reach every
//! handle's subscribers (`notify.rs`: `NOTIFY`/`LISTEN`), so servers sharing it see one
//! event stream.

mod schema;

use std::ops::Bound;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Row};
use tokio::sync::Mutex;
use vamp_core::events::EventBus;
use vamp_core::model::{Event, Kind};
use vamp_core::traits::{
    EventFilter, EventStream, Page, Paged, Persistence, Precondition, Retention, Revision,
    StoredArtifact, StoredEvent, check_artifact_name,
};
use vamp_core::{Error, Result};

use crate::sql::{
    RETENTION_BATCH, artifact_row, event_row, from_nanos, limit, nanos, parse_json, retention_sql,
};

mod election;
mod notify;
mod persistence;

pub use election::PostgresElection;

const BACKEND: &str = "postgres";

/// The default limit of one statement and of getting a connection.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Artifacts and events in PostgreSQL.
///
/// ```no_run
/// # async fn demo() -> vamp_core::Result<()> {
/// use vamp_drivers::postgres::PostgresPersistence;
/// let db = PostgresPersistence::connect("postgres://vamp@127.0.0.1:5432/vamp").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresPersistence {
    pool: PgPool,
    address: String,
    timeout: Duration,
    /// Orders appends of this handle, so its subscribers see ids in order.
    appends: std::sync::Arc<Mutex<()>>,
    bus: EventBus,
    /// This handle's name in its event announcements (`notify`).
    origin: std::sync::Arc<str>,
    /// Whether the listener for other handles' events runs.
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn unavailable(address: &str, e: impl Into<vamp_core::BoxError>) -> Error {
    let source = e.into();
    Error::Unavailable {
        backend: BACKEND,
        address: address.to_owned(),
        message: source.to_string(),
        cause: Some(source),
    }
}

/// Connection trouble is `Unavailable` (naming the server); anything else a backend error.
fn classify(address: &str, timeout: Duration, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => unavailable(address, e),
        sqlx::Error::Database(ref db) if db.code().as_deref() == Some("57014") => Error::Timeout {
            backend: BACKEND,
            address: address.to_owned(),
            operation: "statement",
            timeout,
        },
        e => Error::backend(BACKEND, e),
    }
}

/// A name for this handle no other process picks: the process id and the time it connected.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
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

impl PostgresPersistence {
    /// Connects to `url` (`postgres://user[:password]@host:port/database`) and brings the
    /// schema up to date.
    ///
    /// # Errors
    /// `Error::Invalid` for a URL that does not parse; `Error::Unavailable` when the server
    /// cannot be reached within 10 s or the schema cannot be migrated.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DEFAULT_TIMEOUT).await
    }

    /// [`connect`](Self::connect) with another limit for each statement and for getting a
    /// connection (while the server is down, every call fails within it).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, timeout: Duration) -> Result<Self> {
        let statement_timeout = timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Invalid {
                what: "postgres URL",
                message: e.to_string(),
            })?
            // Custom plans always: a tag query's best plan depends on how rare its tags are,
            // which a generic plan for `tag = $1` cannot know (docs/performance.md).
            .options([
                ("statement_timeout", statement_timeout.as_str()),
                ("plan_cache_mode", "force_custom_plan"),
            ]);
        let address = format!("{}:{}", options.get_host(), options.get_port());
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| unavailable(&address, e))?;
        schema::migrate(&pool)
            .await
            .map_err(|e| unavailable(&address, e))?;
        tracing::debug!(%address, "connected postgres persistence");
        Ok(PostgresPersistence {
            pool,
            address,
            timeout,
            appends: std::sync::Arc::default(),
            bus: EventBus::default(),
            origin: uuid_like().into(),
            listening: std::sync::Arc::default(),
        })
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Closes the connections (waits for running statements).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The latest (revision, live) of an artifact.
    async fn latest(
        &self,
        tx: &mut sqlx::PgConnection,
        kind: Kind,
        name: &str,
    ) -> Result<Option<(u64, bool)>> {
        let row = sqlx::query("SELECT revision, live FROM artifacts WHERE kind = $1 AND name = $2")
            .bind(kind_name(kind))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))?;
        row.map(|r| crate::sql::revision_live(BACKEND, &r))
            .transpose()
    }

    /// Refuses with `Error::Fenced` (naming `what`) unless `fence` lets its node write, in
    /// transaction `tx`. A lease: the lease row is
    /// checked and share-locked until `tx` ends, so no takeover commits in between. A token:
    /// the scope's recorded term is raised to the fence's unless it is larger, and the row
    /// stays locked until `tx` ends (an older leader's write waits, then is refused).
    pub(crate) async fn check_fence(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        fence: &vamp_core::traits::Fence,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        let term = i64::try_from(fence.term).unwrap_or(i64::MAX);
        let held = match fence.check {
            vamp_core::traits::FenceCheck::Lease => sqlx::query(
                "SELECT 1 FROM vamp_leaders WHERE scope = $1 AND node = $2 AND term = $3 \
                 AND expires_at > clock_timestamp() FOR SHARE",
            ),
            vamp_core::traits::FenceCheck::Token => sqlx::query(
                "INSERT INTO vamp_fences AS f (scope, node, term) VALUES ($1, $2, $3) \
                 ON CONFLICT (scope) DO UPDATE SET node = EXCLUDED.node, term = EXCLUDED.term \
                 WHERE f.term < EXCLUDED.term OR (f.term = EXCLUDED.term AND f.node = EXCLUDED.node) \
                 RETURNING 1",
            ),
        }
        .bind(&fence.scope)
        .bind(&fence.node)
        .bind(term)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        match held {
            Some(_) => Ok(()),
            None => Err(Error::Fenced {
                what: what(),
                node: fence.node.clone(),
                term: fence.term,
            }),
        }
    }

    /// Writes a new revision (value `None` = deletion) in one transaction; with a `fence`,
    /// only while its node holds the lease of its scope in its term.
    async fn write(
        &self,
        kind: Kind,
        name: &str,
        value: Option<&serde_json::Value>,
        precondition: Precondition,
        fence: Option<&vamp_core::traits::Fence>,
    ) -> Result<Option<(u64, DateTime<Utc>)>> {
        check_artifact_name(name)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))?;
        // One writer per (kind, name) across every process on this database.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{}/{name}", kind_name(kind)))
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))?;
        if let Some(fence) = fence {
            self.check_fence(&mut tx, fence, || format!("{}/{name}", kind_name(kind)))
                .await?;
        }
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
            "INSERT INTO artifact_revisions (kind, name, revision, value, at, fence_scope, fence_term) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(kind_name(kind))
        .bind(name)
        .bind(rev)
        .bind(&text)
        .bind(nanos(now))
        .bind(fence.map(|f| f.scope.as_str()))
        .bind(fence.map(|f| i64::try_from(f.term).unwrap_or(i64::MAX)))
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        sqlx::query(
            "INSERT INTO artifacts (kind, name, revision, live, value, at) VALUES ($1, $2, $3, $4, $5, $6) \
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
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        tx.commit()
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))?;
        Ok(Some((revision, now)))
    }
}

impl PostgresPersistence {
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
        let fail = |e| classify(&self.address, self.timeout, e);
        // As on SQLite: the rarest tag first (counted up to a cap), or — for a time window
        // with few events — a walk of the window through the time index.
        if tags.len() > 1 {
            let counts = futures::future::try_join_all(tags.iter().map(|t| {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM event_tags WHERE tag = $1 LIMIT $2) c",
                )
                .bind(t.clone())
                .bind(crate::sql::WINDOW_WALK + 1)
                .fetch_one(&self.pool)
            }))
            .await
            .map_err(fail)?;
            let mut counted: Vec<(i64, String)> = counts.into_iter().zip(tags).collect();
            counted.sort();
            tags = counted.into_iter().map(|(_, t)| t).collect();
        }
        let by_time = match filter.from {
            Bound::Unbounded => false,
            Bound::Included(t) | Bound::Excluded(t) => {
                let in_window: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE at >= $1 LIMIT $2) c",
                )
                .bind(nanos(t))
                .bind(crate::sql::WINDOW_WALK + 1)
                .fetch_one(&self.pool)
                .await
                .map_err(fail)?;
                in_window <= crate::sql::WINDOW_WALK
            }
        };
        // Only numbered placeholders are added to the SQL text; every value is bound.
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let mut clauses = crate::sql::tag_conditions(tags.len(), by_time, &mut next);
        if filter.kind.is_some() {
            clauses.push(format!("e.type = {}", next()));
        }
        let mut times: Vec<i64> = Vec::new();
        for (b, incl, excl) in [(&filter.from, ">=", ">"), (&filter.until, "<=", "<")] {
            match b {
                Bound::Included(t) => {
                    clauses.push(format!("e.at {incl} {}", next()));
                    times.push(nanos(*t));
                }
                Bound::Excluded(t) => {
                    clauses.push(format!("e.at {excl} {}", next()));
                    times.push(nanos(*t));
                }
                Bound::Unbounded => {}
            }
        }
        let condition = if clauses.is_empty() {
            "TRUE".to_owned()
        } else {
            clauses.join(" AND ")
        };
        let (limit_p, offset_p) = (next(), next());
        let select = format!(
            "SELECT e.id, e.timestamp, e.type, e.value, e.tags FROM events e WHERE {condition} \
             ORDER BY e.at DESC, e.id DESC LIMIT {limit_p} OFFSET {offset_p}"
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
        for t in &times {
            q = q.bind(*t);
            c = c.bind(*t);
        }
        let (limit, offset) = limit(page);
        // The page and the total at once, on two connections: a tag query then costs the
        // slower of the two, not both (docs/performance.md).
        let select = q.bind(limit).bind(offset).fetch_all(&self.pool);
        let (rows, total) = if with_total {
            futures::future::try_join(select, c.fetch_one(&self.pool)).await
        } else {
            select.await.map(|rows| (rows, 0))
        }
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        let items = rows
            .iter()
            .map(|r| event_row(BACKEND, r))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, u64::try_from(total).unwrap_or(0)))
    }
}
