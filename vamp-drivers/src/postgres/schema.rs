//! The PostgreSQL schema and its migrations, embedded and applied in order on connect, under an
//! advisory lock so that processes starting together migrate once.

use sqlx::PgPool;

/// Migrations by version (1-based); never edit one that has shipped, add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: artifacts with history, events with expanded tags (the SQLite layout).
    "CREATE TABLE artifact_revisions (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        revision BIGINT NOT NULL,
        value TEXT,
        at BIGINT NOT NULL,
        PRIMARY KEY (kind, name, revision)
    );
    CREATE TABLE artifacts (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        revision BIGINT NOT NULL,
        live BOOLEAN NOT NULL,
        value TEXT,
        at BIGINT NOT NULL,
        PRIMARY KEY (kind, name)
    );
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        timestamp TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        tags TEXT NOT NULL
    );
    CREATE INDEX events_by_time ON events (at DESC, id DESC);
    CREATE TABLE event_tags (
        event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (tag, event_id)
    );",
    // 2: retention (issue 17) deletes events by type and age or id, and their tags with them
    // (the cascade looks tags up by event).
    "CREATE INDEX event_tags_by_event ON event_tags (event_id);
    CREATE INDEX events_by_type ON events (type, id);
    CREATE INDEX events_by_type_time ON events (type, at);",
    // 3: leader election (issue 24): one lease per scope (a cluster of servers), its term and
    // expiry kept by the database's clock.
    "CREATE TABLE vamp_leaders (
        scope TEXT PRIMARY KEY,
        node TEXT,
        url TEXT,
        term BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );",
    // 4: fencing tokens of elections on another store (etcd, ZooKeeper): the largest term
    // that wrote, per scope; a fenced write of a smaller one is refused.
    "CREATE TABLE vamp_fences (
        scope TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        term BIGINT NOT NULL
    );",
    // 5: what each server of a cluster publishes (its router's counters), replaced in place.
    "CREATE TABLE vamp_published (
        topic TEXT NOT NULL,
        node TEXT NOT NULL,
        value TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (topic, node)
    );",
    // 6: a leader's write records its fence (scope, term) and the database's time of the
    // write, so that anyone can check that no stale term wrote (docs/ha.md). No default on
    // the existing rows: adding the column rewrites nothing.
    "ALTER TABLE artifact_revisions ADD COLUMN fence_scope TEXT, ADD COLUMN fence_term BIGINT,
        ADD COLUMN written_at TIMESTAMPTZ;
    ALTER TABLE artifact_revisions ALTER COLUMN written_at SET DEFAULT clock_timestamp();",
];

/// An arbitrary constant naming the migration lock.
const MIGRATION_LOCK: i64 = 0x7661_6d70_5f6d_6967; // "vamp_mig"

/// Brings the schema to the newest version, one transaction per migration.
pub(super) async fn migrate(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = async {
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS vamp_schema (version INTEGER NOT NULL)")
            .execute(&mut *conn)
            .await?;
        let current: Option<i32> = sqlx::query_scalar("SELECT MAX(version) FROM vamp_schema")
            .fetch_one(&mut *conn)
            .await?;
        let current = usize::try_from(current.unwrap_or(0)).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO vamp_schema (version) VALUES ($1)")
                .bind(i32::try_from(i + 1).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = i + 1, "applied postgres schema migration");
        }
        Ok(())
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result.and(unlocked.map(|_| ()))
}
