//! Events appended by every process sharing the database reach every handle's subscribers
//! (issue 24): an append announces its ids with `NOTIFY vamp_events` in its transaction (so
//! the announcement goes out when it commits), and each handle listens on a connection of its
//! own (`LISTEN`), reads the announced events of *other* handles in id order and publishes
//! them to its subscribers. Its own it published when it appended them.
//!
//! A notification missed while the listening connection was down is not replayed: the
//! listener reconnects and goes on (what a subscriber does with events is a wake-up, and the
//! stores' periodic passes cover a gap).

use std::sync::Arc;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use vamp_core::events::EventBus;

use crate::sql::event_row;

/// The channel of the announcements.
pub(super) const CHANNEL: &str = "vamp_events";

/// `<origin> <first id> <last id>`: what an append announces.
pub(super) fn payload(origin: &str, first: i64, last: i64) -> String {
    format!("{origin} {first} {last}")
}

fn parse(payload: &str) -> Option<(&str, i64, i64)> {
    let mut parts = payload.split(' ');
    let origin = parts.next()?;
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    Some((origin, first, last))
}

/// A connection listening on the channel.
pub(super) async fn listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Reads announcements until the pool closes; publishes other handles' events to `bus`.
pub(super) async fn run(mut listener: PgListener, pool: PgPool, origin: Arc<str>, bus: EventBus) {
    loop {
        let notification = match listener.recv().await {
            Ok(n) => n,
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::debug!(error = %e, "postgres: event listener reconnects");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some((from, first, last)) = parse(notification.payload()) else {
            continue;
        };
        if from == &*origin {
            continue;
        }
        let rows = sqlx::query(
            "SELECT id, timestamp, type, value, tags FROM events WHERE id BETWEEN $1 AND $2 ORDER BY id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&pool)
        .await;
        match rows {
            Ok(rows) => {
                for row in &rows {
                    match event_row(super::BACKEND, row) {
                        Ok(stored) => bus.publish(stored),
                        Err(e) => {
                            tracing::warn!(error = %e, "postgres: an event that does not read")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "postgres: cannot read other servers' events"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_and_junk_is_ignored() {
        let p = payload("abc", 7, 9);
        assert_eq!(parse(&p), Some(("abc", 7, 9)));
        assert_eq!(parse("abc 7"), None);
        assert_eq!(parse("abc x 9"), None);
    }
}
