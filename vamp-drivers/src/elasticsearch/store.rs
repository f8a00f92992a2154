//! Artifacts as documents: ids, read-back, and the optimistic write with its history entry.

use super::*;

impl ElasticsearchPersistence {
    pub(super) fn artifact_id(kind: Kind, name: &str) -> String {
        format!("{}/{name}", kind.plural())
    }

    pub(super) fn stored(kind: Kind, doc: ArtifactDoc) -> Result<Option<StoredArtifact>> {
        if !doc.live {
            return Ok(None);
        }
        let text = doc.value.unwrap_or_default();
        let value = serde_json::from_str(&text).map_err(|e| corrupt(&doc.name, e))?;
        Ok(Some(StoredArtifact {
            kind,
            name: doc.name,
            revision: doc.revision,
            value,
            updated: doc.updated,
        }))
    }

    /// Writes a new revision (`None`: a deletion) under `precondition`; `Ok(None)` when
    /// deleting what is not there.
    pub(super) async fn write(
        &self,
        kind: Kind,
        name: &str,
        value: Option<&Value>,
        precondition: Precondition,
    ) -> Result<Option<(u64, DateTime<Utc>)>> {
        check_artifact_name(name)?;
        let id = Self::artifact_id(kind, name);
        if id.len() > 500 {
            return Err(Error::Invalid {
                what: "artifact name",
                message: format!(
                    "'{name}' is too long for Elasticsearch document ids ({} bytes, at most 500 with its kind)",
                    id.len()
                ),
            });
        }
        let text = value
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::backend(BACKEND, e))?;
        let artifacts = self.index("artifacts");
        for _ in 0..WRITE_ATTEMPTS {
            let current: Option<(ArtifactDoc, u64, u64)> =
                self.get_doc("put", &artifacts, &id).await?;
            let live = current
                .as_ref()
                .filter(|(d, _, _)| d.live)
                .map(|(d, _, _)| d.revision);
            precondition.check(|| format!("{kind}/{name}"), live)?;
            if value.is_none() && live.is_none() {
                return Ok(None);
            }
            let revision = current.as_ref().map_or(0, |(d, _, _)| d.revision) + 1;
            let now = Utc::now();
            let doc = ArtifactDoc {
                kind: kind.plural().to_owned(),
                name: name.to_owned(),
                revision,
                live: value.is_some(),
                value: text.clone(),
                updated: now,
            };
            let expect = current.as_ref().map(|(_, seq, term)| (*seq, *term));
            let written = self
                .put_doc("put", &artifacts, &id, &doc, expect.is_none(), expect)
                .await?;
            if let Written::Conflict = written {
                if precondition == Precondition::Any {
                    continue;
                }
                // Someone else wrote meanwhile: report against what is there now.
                let now_live = self
                    .get_doc::<ArtifactDoc>("put", &artifacts, &id)
                    .await?
                    .filter(|(d, _, _)| d.live)
                    .map(|(d, _, _)| d.revision);
                precondition.check(|| format!("{kind}/{name}"), now_live)?;
                continue;
            }
            let history = HistoryDoc {
                kind: kind.plural().to_owned(),
                name: name.to_owned(),
                revision,
                value: text,
                at: now,
            };
            self.put_doc(
                "put",
                &self.index("artifact-history"),
                &format!("{id}/{revision}"),
                &history,
                false,
                None,
            )
            .await?;
            return Ok(Some((revision, now)));
        }
        Err(Error::Conflict {
            what: format!("{kind}/{name}"),
            expected: "a quiet moment to write".into(),
            actual: format!("{WRITE_ATTEMPTS} concurrent writes in a row"),
        })
    }
}
