//! The SQLite schema and its migrations, embedded and applied in order on open.

use sqlx::SqlitePool;

/// Migrations by version (1-based); never edit one that has shipped, add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: artifacts with history, events with expanded tags.
    "CREATE TABLE artifact_revisions (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        value TEXT,
        at INTEGER NOT NULL,
        PRIMARY KEY (kind, name, revision)
    );
    CREATE TABLE artifacts (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        live INTEGER NOT NULL,
        value TEXT,
        at INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        tags TEXT NOT NULL
    );
    CREATE INDEX events_by_time ON events (at DESC, id DESC);
    CREATE TABLE event_tags (
        event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (tag, event_id)
    );",
    // 2: retention (issue 17) deletes events by type and age or id, and their tags with them
    // (the cascade looks tags up by event).
    "CREATE INDEX event_tags_by_event ON event_tags (event_id);
    CREATE INDEX events_by_type ON events (type, id);
    CREATE INDEX events_by_type_time ON events (type, at);",
];

/// Brings the schema to the newest version, one transaction per migration.
pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS vamp_schema (version INTEGER NOT NULL)")
        .execute(pool)
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM vamp_schema")
        .fetch_one(pool)
        .await?;
    let current = usize::try_from(current.unwrap_or(0)).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO vamp_schema (version) VALUES (?)")
            .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = i + 1, "applied sqlite schema migration");
    }
    Ok(())
}
