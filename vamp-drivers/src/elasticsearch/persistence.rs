//! The [`Persistence`] trait over the documents.

use super::*;

#[async_trait]
impl Persistence for ElasticsearchPersistence {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<StoredArtifact>> {
        let id = Self::artifact_id(kind, name);
        match self
            .get_doc::<ArtifactDoc>("get", &self.index("artifacts"), &id)
            .await?
        {
            Some((doc, _, _)) => Self::stored(kind, doc),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: &Value,
        precondition: Precondition,
    ) -> Result<StoredArtifact> {
        let written = self.write(kind, name, Some(value), precondition).await?;
        StoredArtifact::written(BACKEND, kind, name, value, written)
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        precondition: Precondition,
    ) -> Result<Option<u64>> {
        Ok(self
            .write(kind, name, None, precondition)
            .await?
            .map(|(revision, _)| revision))
    }

    async fn list(&self, kind: Kind, page: Page) -> Result<Paged<StoredArtifact>> {
        let body = json!({
            "query": {"bool": {"filter": [
                {"term": {"kind": kind.plural()}},
                {"term": {"live": true}},
            ]}},
            "sort": [{"name": {"order": "asc"}}],
        });
        let (total, docs) = self
            .paged::<ArtifactDoc>(&self.index("artifacts"), body, page)
            .await?;
        let mut items = Vec::with_capacity(docs.len());
        for doc in docs {
            items.extend(Self::stored(kind, doc)?);
        }
        Ok(Paged { items, total })
    }

    async fn history(&self, kind: Kind, name: &str) -> Result<Vec<Revision>> {
        let body = json!({
            "query": {"bool": {"filter": [
                {"term": {"kind": kind.plural()}},
                {"term": {"name": name}},
            ]}},
            "sort": [{"revision": {"order": "asc"}}],
        });
        let (_, docs) = self
            .paged::<HistoryDoc>(&self.index("artifact-history"), body, Page::ALL)
            .await?;
        let mut out = Vec::with_capacity(docs.len() + 1);
        for doc in docs {
            let value = doc
                .value
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| corrupt(name, e))?;
            out.push(Revision {
                revision: doc.revision,
                value,
                at: doc.at,
            });
        }
        // The artifact document is written first: a history entry lost to a crash in
        // between is still its current revision.
        let id = Self::artifact_id(kind, name);
        if let Some((doc, _, _)) = self
            .get_doc::<ArtifactDoc>("history", &self.index("artifacts"), &id)
            .await?
            && out.last().is_none_or(|r| r.revision < doc.revision)
        {
            let value = doc
                .value
                .filter(|_| doc.live)
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| corrupt(name, e))?;
            out.push(Revision {
                revision: doc.revision,
                value,
                at: doc.updated,
            });
        }
        Ok(out)
    }

    async fn append_event(&self, event: &Event) -> Result<StoredEvent> {
        let _order = self.appends.lock().await;
        let sequence = self.index("sequence");
        let numbered = self
            .put_doc("append_event", &sequence, "events", &json!({}), false, None)
            .await?;
        let Written::Ok(answer) = numbered else {
            return Err(corrupt(
                "events sequence",
                "an unconditional write conflicted",
            ));
        };
        let id = answer["_version"]
            .as_u64()
            .ok_or_else(|| corrupt("events sequence", "no _version in the answer"))?;
        let value = serde_json::to_string(&event.value).map_err(|e| Error::backend(BACKEND, e))?;
        let doc = EventDoc {
            id,
            tags: event.tags.clone(),
            all_tags: event.expanded_tags(),
            kind: event.kind.clone(),
            value,
            timestamp: timestamp(&event.timestamp),
        };
        let index = format!(
            "{}-{}-{}",
            self.config.events,
            index_part(&event.kind),
            event.timestamp.format("%Y-%m-%d")
        );
        match self
            .put_doc("append_event", &index, &id.to_string(), &doc, true, None)
            .await?
        {
            Written::Ok(_) => {}
            Written::Conflict => {
                return Err(corrupt(&index, format!("event id {id} is already taken")));
            }
        }
        let stored = StoredEvent {
            id,
            event: event.clone(),
        };
        self.bus.publish(stored.clone());
        Ok(stored)
    }

    async fn query_events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        let mut clauses: Vec<Value> = filter
            .tags
            .iter()
            .map(|t| json!({"term": {"all_tags": t}}))
            .collect();
        if let Some(kind) = &filter.kind {
            clauses.push(json!({"term": {"type": kind}}));
        }
        let mut range = serde_json::Map::new();
        for (op, value) in [
            bound_clause("gte", "gt", filter.from.as_ref()),
            bound_clause("lte", "lt", filter.until.as_ref()),
        ]
        .into_iter()
        .flatten()
        {
            range.insert(op, value);
        }
        if !range.is_empty() {
            clauses.push(json!({"range": {"timestamp": range}}));
        }
        let body = json!({
            "query": {"bool": {"filter": clauses}},
            "sort": [{"timestamp": {"order": "desc"}}, {"id": {"order": "desc"}}],
        });
        let (total, docs) = self
            .paged::<EventDoc>(&format!("{}-*", self.config.events), body, page)
            .await?;
        let mut items = Vec::with_capacity(docs.len());
        for doc in docs {
            let value = serde_json::from_str(&doc.value).map_err(|e| corrupt("event", e))?;
            let timestamp = DateTime::parse_from_rfc3339(&doc.timestamp)
                .map_err(|e| corrupt("event timestamp", e))?
                .with_timezone(&Utc);
            items.push(StoredEvent {
                id: doc.id,
                event: Event {
                    tags: doc.tags,
                    value,
                    kind: doc.kind,
                    timestamp,
                },
            });
        }
        Ok(Paged { items, total })
    }

    async fn subscribe(&self) -> Result<EventStream> {
        Ok(self.bus.subscribe())
    }

    /// Per group: `_delete_by_query` of what is too old; then, while more than `max_count`
    /// remain, the oldest (by id) in pages of the result window, each deleted by id range —
    /// no page deeper than `index.max_result_window`.
    async fn retain_events(&self, retention: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let pattern = format!("{}-*", self.config.events);
        let listed: Vec<&String> = retention.by_type.keys().collect();
        let mut deleted = 0;
        for (group, rule) in retention.groups() {
            let (filter, must_not) = match group {
                Some(t) => (vec![json!({"term": {"type": t}})], Vec::new()),
                None if listed.is_empty() => (Vec::new(), Vec::new()),
                None => (Vec::new(), vec![json!({"terms": {"type": listed}})]),
            };
            if let Some(cutoff) = rule.cutoff(now) {
                let mut f = filter.clone();
                f.push(json!({"range": {"timestamp": {"lt": timestamp(&cutoff)}}}));
                deleted += self.delete_events(&pattern, &f, &must_not).await?;
            }
            let Some(max) = rule.max_count else { continue };
            loop {
                let body = json!({
                    "query": {"bool": {"filter": filter, "must_not": must_not}},
                    "sort": [{"id": {"order": "asc"}}],
                    "size": 0,
                    "track_total_hits": true,
                });
                let (total, _): (u64, Vec<EventDoc>) = self.search(&pattern, &body).await?;
                let over = total.saturating_sub(max);
                if over == 0 {
                    break;
                }
                let mut page = body;
                page["size"] = json!(over.min(self.config.max_result_window));
                let (_, oldest): (u64, Vec<EventDoc>) = self.search(&pattern, &page).await?;
                let Some(last) = oldest.last().map(|d| d.id) else {
                    break;
                };
                let mut f = filter.clone();
                f.push(json!({"range": {"id": {"lte": last}}}));
                let n = self.delete_events(&pattern, &f, &must_not).await?;
                deleted += n;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

impl ElasticsearchPersistence {
    /// `_delete_by_query` of the events matching `filter` and none of `must_not`; the index
    /// is refreshed after, so searches no longer find them.
    async fn delete_events(
        &self,
        pattern: &str,
        filter: &[Value],
        must_not: &[Value],
    ) -> Result<u64> {
        self.refresh(pattern).await?;
        let body = json!({"query": {"bool": {"filter": filter, "must_not": must_not}}});
        let path = format!("/{pattern}/_delete_by_query?refresh=true&conflicts=proceed");
        let (status, answer) = self
            .send(
                "delete_by_query",
                self.request(reqwest::Method::POST, &path).json(&body),
            )
            .await?;
        if status != 200 {
            return Err(self.refused("delete_by_query", status, &answer));
        }
        Ok(answer["deleted"].as_u64().unwrap_or(0))
    }
}
