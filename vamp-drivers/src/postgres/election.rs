//! [`PostgresElection`]: leader election on the database the servers already share (issue
//! 24) — a lease row per scope with the holder, a term and an expiry, all judged by the
//! database's clock (`clock_timestamp()`), so the servers' clocks do not matter. Not a session
//! advisory lock: a paused process keeps its session, and with it such a lock, for ever;
//! a lease row expires.
//!
//! A campaign is one `INSERT … ON CONFLICT DO UPDATE` that takes the row when its lease
//! expired (a new term) or renews it for its holder (the same term), then a read of the row.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use vamp_core::Result;
use vamp_core::traits::{Candidate, LeaderElection, Leadership};

use super::{PostgresPersistence, classify};

/// Leader election in the `vamp_leaders` table of a [`PostgresPersistence`]'s database.
///
/// ```no_run
/// # async fn demo() -> vamp_core::Result<()> {
/// use vamp_drivers::postgres::PostgresPersistence;
/// let db = PostgresPersistence::connect("postgres://vamp@127.0.0.1:5432/vamp").await?;
/// let election = db.election("default");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresElection {
    db: PostgresPersistence,
    scope: String,
}

impl PostgresPersistence {
    /// Leader election among the servers of `scope` (one cluster of servers; several may
    /// share a database under different scopes), on this connection pool.
    pub fn election(&self, scope: impl Into<String>) -> PostgresElection {
        PostgresElection {
            db: self.clone(),
            scope: scope.into(),
        }
    }
}

const CAMPAIGN: &str = "INSERT INTO vamp_leaders AS l (scope, node, url, term, expires_at)
    VALUES ($1, $2, $3, 1, clock_timestamp() + $4 * interval '1 millisecond')
    ON CONFLICT (scope) DO UPDATE SET
        node = EXCLUDED.node,
        url = EXCLUDED.url,
        term = CASE WHEN l.node = EXCLUDED.node AND l.expires_at > clock_timestamp()
            THEN l.term ELSE l.term + 1 END,
        expires_at = EXCLUDED.expires_at
    WHERE (l.node = EXCLUDED.node AND l.expires_at > clock_timestamp())
        OR l.expires_at <= clock_timestamp()";

const READ: &str = "SELECT node, url, term, expires_at > clock_timestamp() AS live
    FROM vamp_leaders WHERE scope = $1";

const RESIGN: &str =
    "UPDATE vamp_leaders SET node = NULL, url = NULL, expires_at = clock_timestamp()
    WHERE scope = $1 AND node = $2";

impl PostgresElection {
    fn fail(&self, e: sqlx::Error) -> vamp_core::Error {
        classify(&self.db.address, self.db.timeout, e)
    }
}

#[async_trait]
impl LeaderElection for PostgresElection {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn campaign(&self, candidate: &Candidate, ttl: Duration) -> Result<Leadership> {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(CAMPAIGN)
            .bind(&self.scope)
            .bind(&candidate.node)
            .bind(&candidate.url)
            .bind(millis)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.fail(e))?;
        let row = sqlx::query(READ)
            .bind(&self.scope)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.fail(e))?;
        let node: Option<String> = row.try_get("node").map_err(|e| self.fail(e))?;
        let url: Option<String> = row.try_get("url").map_err(|e| self.fail(e))?;
        let term: i64 = row.try_get("term").map_err(|e| self.fail(e))?;
        let live: bool = row.try_get("live").map_err(|e| self.fail(e))?;
        let holder = match (live, node) {
            (true, Some(node)) => Some(Candidate {
                node,
                url: url.unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(Leadership {
            leader: holder.as_ref().is_some_and(|h| h.node == candidate.node),
            term: u64::try_from(term).unwrap_or(0),
            holder,
        })
    }

    /// Writes of this database's persistence check the lease row (`put_fenced`).
    fn fence(&self, node: &str, term: u64) -> Option<vamp_core::traits::Fence> {
        Some(vamp_core::traits::Fence::lease(
            self.scope.as_str(),
            node,
            term,
        ))
    }

    async fn resign(&self, candidate: &Candidate) -> Result<()> {
        sqlx::query(RESIGN)
            .bind(&self.scope)
            .bind(&candidate.node)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }
}
