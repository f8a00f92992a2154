//! The [`Persistence`] trait over the tables.

use super::*;

#[async_trait]
impl Persistence for PostgresPersistence {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredArtifact>> {
        let row = sqlx::query(
            "SELECT name, revision, value, at FROM artifacts WHERE kind = $1 AND name = $2 AND live",
        )
        .bind(kind_name(kind))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        row.map(|r| artifact_row(BACKEND, kind, &r)).transpose()
    }

    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: Precondition,
    ) -> Result<StoredArtifact> {
        let written = self
            .write(kind, name, Some(value), precondition, None)
            .await?;
        StoredArtifact::written(BACKEND, kind, name, value, written)
    }

    /// The lease row is checked, and locked against a takeover, in the write's transaction.
    async fn put_fenced(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: Precondition,
        fence: &vamp_core::traits::Fence,
    ) -> Result<StoredArtifact> {
        let written = self
            .write(kind, name, Some(value), precondition, Some(fence))
            .await?;
        StoredArtifact::written(BACKEND, kind, name, value, written)
    }

    /// An upsert by the database's clock; records older than an hour go in the same trip.
    async fn publish(&self, topic: &str, node: &str, value: &serde_json::Value) -> Result<()> {
        sqlx::query(
            "WITH old AS (DELETE FROM vamp_published WHERE topic = $1 \
                 AND at < clock_timestamp() - interval '1 hour') \
             INSERT INTO vamp_published (topic, node, value, at) \
             VALUES ($1, $2, $3, clock_timestamp()) \
             ON CONFLICT (topic, node) DO UPDATE SET value = EXCLUDED.value, at = EXCLUDED.at",
        )
        .bind(topic)
        .bind(node)
        .bind(value.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        Ok(())
    }

    async fn published(
        &self,
        topic: &str,
        max_age: Duration,
    ) -> Result<Vec<vamp_core::traits::Published>> {
        let millis = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT node, value, \
                 (EXTRACT(EPOCH FROM clock_timestamp() - at) * 1000)::BIGINT AS age_ms \
             FROM vamp_published WHERE topic = $1 \
                 AND at >= clock_timestamp() - $2 * interval '1 millisecond' ORDER BY node",
        )
        .bind(topic)
        .bind(millis)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        rows.iter()
            .map(|r| {
                let fail = |e| classify(&self.address, self.timeout, e);
                let value: String = r.try_get("value").map_err(fail)?;
                let age: i64 = r.try_get("age_ms").map_err(fail)?;
                Ok(vamp_core::traits::Published {
                    node: r.try_get("node").map_err(fail)?,
                    value: parse_json(BACKEND, &value)?,
                    age: Duration::from_millis(u64::try_from(age).unwrap_or(0)),
                })
            })
            .collect()
    }

    /// A transaction-scoped advisory lock in a transaction held open until the guard drops
    /// (then rolled back: the lock goes with it, and with the session if the process dies).
    async fn lock_shared(&self, name: &str) -> Result<Option<vamp_core::traits::SharedLock>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
            .bind(format!("vamp-lock/{name}"))
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))?;
        Ok(Some(vamp_core::traits::SharedLock::new(HeldLock(Some(tx)))))
    }

    /// A token is recorded in its own transaction; a lease needs nothing (its row is the
    /// record).
    async fn raise_fence(&self, fence: &vamp_core::traits::Fence) -> Result<()> {
        if fence.check == vamp_core::traits::FenceCheck::Lease {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))?;
        self.check_fence(&mut tx, fence, || format!("the fence of {}", fence.scope))
            .await?;
        tx.commit()
            .await
            .map_err(|e| classify(&self.address, self.timeout, e))
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        precondition: Precondition,
    ) -> Result<Option<u64>> {
        Ok(self
            .write(kind, name, None, precondition, None)
            .await?
            .map(|(r, _)| r))
    }

    async fn list(&self, kind: Kind, page: Page) -> Result<Paged<StoredArtifact>> {
        let (limit, offset) = limit(page);
        let rows = sqlx::query(
            "SELECT name, revision, value, at FROM artifacts WHERE kind = $1 AND live \
             ORDER BY name COLLATE \"C\" LIMIT $2 OFFSET $3",
        )
        .bind(kind_name(kind))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM artifacts WHERE kind = $1 AND live")
                .bind(kind_name(kind))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| classify(&self.address, self.timeout, e))?;
        Ok(Paged {
            items: rows
                .iter()
                .map(|r| artifact_row(BACKEND, kind, r))
                .collect::<Result<_>>()?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn history(&self, kind: Kind, name: &str) -> Result<Vec<Revision>> {
        let rows = sqlx::query(
            "SELECT revision, value, at FROM artifact_revisions WHERE kind = $1 AND name = $2 \
             ORDER BY revision",
        )
        .bind(kind_name(kind))
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify(&self.address, self.timeout, e))?;
        rows.iter()
            .map(|r| {
                let revision: i64 = r
                    .try_get("revision")
                    .map_err(|e| classify(&self.address, self.timeout, e))?;
                let value: Option<String> = r
                    .try_get("value")
                    .map_err(|e| classify(&self.address, self.timeout, e))?;
                let at: i64 = r
                    .try_get("at")
                    .map_err(|e| classify(&self.address, self.timeout, e))?;
                Ok(Revision {
                    revision: u64::try_from(revision).map_err(|_| corrupt("negative revision"))?,
                    value: value
                        .as_deref()
                        .map(|v| parse_json(BACKEND, v))
                        .transpose()?,
                    at: from_nanos(at),
                })
            })
            .collect()
    }

    async fn append_event(&self, event: &Event) -> Result<StoredEvent> {
        let mut stored = self.append_events(std::slice::from_ref(event)).await?;
        stored.pop().ok_or_else(|| corrupt("no event stored"))
    }

    /// One transaction and two statements for all of them (the events, then their tags, as
    /// arrays): all are stored, or none.
    async fn append_events(&self, events: &[Event]) -> Result<Vec<StoredEvent>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let fail = |e| classify(&self.address, self.timeout, e);
        let _guard = self.appends.lock().await;
        let (mut ats, mut stamps, mut kinds, mut values, mut tag_lists) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for event in events {
            ats.push(nanos(event.timestamp));
            stamps.push(
                event
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            );
            kinds.push(event.kind.clone());
            values.push(event.value.to_string());
            tag_lists
                .push(serde_json::to_string(&event.tags).map_err(|e| Error::backend(BACKEND, e))?);
        }
        let mut tx = self.pool.begin().await.map_err(fail)?;
        // Rows are inserted in the arrays' order and take ids from the sequence in that
        // order, so the ids, sorted, are the events' in order.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO events (at, timestamp, type, value, tags) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[]) \
             RETURNING id",
        )
        .bind(&ats)
        .bind(&stamps)
        .bind(&kinds)
        .bind(&values)
        .bind(&tag_lists)
        .fetch_all(&mut *tx)
        .await
        .map_err(fail)?;
        ids.sort_unstable();
        if ids.len() != events.len() {
            return Err(corrupt("a batch of events was stored short"));
        }
        let (mut tag_ids, mut tags) = (Vec::new(), Vec::new());
        for (id, event) in ids.iter().zip(events) {
            for tag in event.expanded_tags() {
                tag_ids.push(*id);
                tags.push(tag);
            }
        }
        sqlx::query(
            "INSERT INTO event_tags (event_id, tag) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[]) ON CONFLICT DO NOTHING",
        )
        .bind(&tag_ids)
        .bind(&tags)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        // Announced to the other handles on the database when the transaction commits.
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::notify::CHANNEL)
                .bind(super::notify::payload(&self.origin, *first, *last))
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        let out = ids
            .into_iter()
            .zip(events)
            .map(|(id, event)| {
                Ok(StoredEvent {
                    id: u64::try_from(id).map_err(|_| corrupt("negative event id"))?,
                    event: event.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Published while the write lock is held, so subscribers see ids in order.
        for stored in &out {
            self.bus.publish(stored.clone());
        }
        Ok(out)
    }

    async fn query_events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        let (items, total) = self.events_page(filter, page, true).await?;
        Ok(Paged { items, total })
    }

    /// The newest event only: no total counted.
    async fn newest_event(&self, filter: &EventFilter) -> Result<Option<StoredEvent>> {
        Ok(self
            .events_page(filter, Page::new(1, 1), false)
            .await?
            .0
            .pop())
    }

    /// This handle's events and, from a listener started by the first subscription, those
    /// every other handle on the database appends.
    async fn subscribe(&self) -> Result<EventStream> {
        let stream = self.bus.subscribe();
        if !self
            .listening
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            // Listening before this returns: what others append from now on arrives.
            match super::notify::listener(&self.pool).await {
                Ok(listener) => {
                    tokio::spawn(super::notify::run(
                        listener,
                        self.pool.clone(),
                        self.origin.clone(),
                        self.bus.clone(),
                    ));
                }
                Err(e) => {
                    self.listening
                        .store(false, std::sync::atomic::Ordering::Release);
                    tracing::warn!(error = %e, "postgres: other servers' events will not arrive here");
                }
            }
        }
        Ok(stream)
    }

    /// Per group, batches of at most `RETENTION_BATCH` (10 000) events in a statement each; tags go
    /// with their events (cascade, through the `event_tags (event_id)` index).
    async fn retain_events(&self, retention: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let listed: Vec<&str> = retention.by_type.keys().map(String::as_str).collect();
        let mut deleted = 0;
        for (group, rule) in retention.groups() {
            let types: Vec<&str> = group.map_or_else(|| listed.clone(), |t| vec![t]);
            let sql = retention_sql(group.is_some(), types.len(), |n| format!("${n}"));
            let run = |statement: &str, last: i64| {
                let mut q = sqlx::query(AssertSqlSafe(statement.to_owned()));
                for t in &types {
                    q = q.bind((*t).to_owned());
                }
                q.bind(last)
            };
            if let Some(cutoff) = rule.cutoff(now) {
                loop {
                    let n = run(&sql.age, nanos(cutoff))
                        .execute(&self.pool)
                        .await
                        .map_err(|e| classify(&self.address, self.timeout, e))?
                        .rows_affected();
                    deleted += n;
                    if n < RETENTION_BATCH {
                        break;
                    }
                }
            }
            if let Some(max) = rule.max_count {
                let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.boundary.clone()));
                for t in &types {
                    q = q.bind((*t).to_owned());
                }
                let boundary = q
                    .bind(i64::try_from(max).unwrap_or(i64::MAX))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| classify(&self.address, self.timeout, e))?;
                if let Some(boundary) = boundary {
                    loop {
                        let n = run(&sql.count, boundary)
                            .execute(&self.pool)
                            .await
                            .map_err(|e| classify(&self.address, self.timeout, e))?
                            .rows_affected();
                        deleted += n;
                        if n < RETENTION_BATCH {
                            break;
                        }
                    }
                }
            }
        }
        if deleted > 0 {
            // Reclaim the deleted rows now: index scans over many dead ones slow every tag
            // query until autovacuum comes by (a 1 000 000-event log, 900 000 deleted: 33 ms
            // per query before, docs/performance.md). Plain VACUUM blocks no reads or writes.
            sqlx::query("VACUUM (ANALYZE) events, event_tags")
                .execute(&self.pool)
                .await
                .map_err(|e| classify(&self.address, self.timeout, e))?;
        }
        Ok(deleted)
    }
}

/// An advisory lock's transaction: ended when dropped.
struct HeldLock(Option<sqlx::Transaction<'static, sqlx::Postgres>>);

impl Drop for HeldLock {
    fn drop(&mut self) {
        // Ending it at once frees the lock for the other servers; without a runtime, sqlx
        // rolls the dropped transaction back when the connection is next used.
        if let (Some(tx), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                if let Err(e) = tx.rollback().await {
                    tracing::debug!(error = %e, "ending a shared lock's transaction");
                }
            });
        }
    }
}
