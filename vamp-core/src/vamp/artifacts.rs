//! Artifacts: store, read, list, delete, restore — each write validated first
//! ([`validate`](super::validate)) and announced to the reconciler and the router.

use super::deployments::inline_breeds;
use super::*;

/// Kinds read into the snapshot that references resolve against.
pub(crate) const STATIC_KINDS: [Kind; 10] = [
    Kind::Breed,
    Kind::Blueprint,
    Kind::Scale,
    Kind::Sla,
    Kind::Escalation,
    Kind::Condition,
    Kind::Rewrite,
    Kind::Route,
    Kind::Template,
    Kind::Workflow,
];

/// An artifact as it is stored: a standalone gateway with its route weights and condition
/// strengths filled in (spec §2.5); others as they are.
pub(crate) fn as_stored(artifact: Artifact) -> Result<Artifact> {
    Ok(match artifact {
        Artifact::Gateway(mut g) => {
            engine::default_weights(&mut g.routes, ErrorKind::GatewayRouteWeightError, "routes")?;
            Artifact::Gateway(g)
        }
        other => other,
    })
}

impl Vamp {
    /// Everything references may point at, as stored now.
    pub(crate) async fn snapshot(&self) -> Result<Vec<Artifact>> {
        let mut out = Vec::new();
        for kind in STATIC_KINDS
            .into_iter()
            .chain([Kind::Gateway, Kind::Deployment])
        {
            out.extend(self.readable(kind).await?);
        }
        Ok(out)
    }

    /// Validates and stores an artifact (create or replace); returns what was stored. A
    /// blueprint's inline breeds are stored as breeds too (spec §2.1); a gateway's route
    /// weights and condition strengths are filled in (spec §2.5). Deployments are made
    /// with [`deploy`](Self::deploy), events with [`publish`](Self::publish).
    pub async fn put(&self, artifact: Artifact) -> Result<Vec<StoredArtifact>> {
        // A gateway given no port gets one here: allocation and store happen under the write
        // lock, so two such creates never get the same port. In a cluster every gateway
        // takes it: another server may be claiming the same port (issue 24).
        let _allocating = match &artifact {
            Artifact::Gateway(g)
                if g.port.is_none_or(|p| p.number == 0) || !self.inner.election.is_alone() =>
            {
                Some(self.write_lock().await?)
            }
            _ => None,
        };
        let artifact = self.validate(&artifact).await?;
        let mut stored = Vec::new();
        if let Artifact::Blueprint(bp) = &artifact {
            for breed in inline_breeds(bp) {
                stored.push(self.store(Artifact::Breed(breed)).await?);
            }
        }
        if let Artifact::Rollout(r) = &artifact
            && let Some(status) = self.rollout_status(&r.name).await?
            && status.phase.is_final()
            && self.rollout(&r.name).await?.as_ref() != Some(r)
        {
            // A new spec for a rollout that ended begins a new rollout.
            self.forget_rollout_status(&r.name).await?;
        }
        stored.push(self.store(artifact).await?);
        Ok(stored)
    }

    pub(crate) async fn store(&self, artifact: Artifact) -> Result<StoredArtifact> {
        let (kind, name) = (artifact.kind(), artifact.name().to_owned());
        let mut json = artifact.to_json();
        if let serde_json::Value::Object(m) = &mut json {
            m.shift_remove("kind");
        }
        let existed = self.db().get(kind, &name).await?.is_some();
        let stored = self
            .put_stored(kind, &name, &json, Precondition::Any)
            .await?;
        if let Artifact::Gateway(g) = &artifact {
            self.index_gateway(&name, Some(g)).await;
        }
        self.changed(kind);
        let what = if existed { "update" } else { "create" };
        self.emit(events::archive(kind, &name, what, json)).await;
        Ok(stored)
    }

    /// Something of `kind` was stored or removed: when it can change what the router routes,
    /// a routing pass starts now (the periodic resync is only a safety net, ARCHITECTURE).
    pub(crate) fn changed(&self, kind: Kind) {
        if matches!(
            kind,
            Kind::Gateway | Kind::Deployment | Kind::Condition | Kind::Rewrite | Kind::Route
        ) {
            self.inner.reroute.notify_one();
        }
        if kind == Kind::Deployment {
            self.inner.wake.notify_one();
        }
    }

    /// Puts back an artifact read earlier from this `Vamp`, as it was: no validation and no
    /// guards (they held when it was first stored). For undoing part of a multi-document write
    /// that failed later on. A deployment is saved as is and reconciled again.
    ///
    /// # Errors
    /// When the persistence fails; events and queries cannot be restored.
    pub async fn restore(&self, artifact: Artifact) -> Result<()> {
        match artifact {
            Artifact::Deployment(d) => {
                let _writes = self.write_lock().await?;
                let revision = self.load(&d.name).await?.map(|(_, r)| r);
                self.save(&d, revision, "update").await?;
                Ok(())
            }
            Artifact::Event(_) | Artifact::EventQuery(_) => Err(Error::Invalid {
                what: "artifact kind",
                message: "events are not restored".into(),
            }),
            other => self.store(other).await.map(|_| ()),
        }
    }

    /// A workflow may be created or replaced only while it is absent or suspended (spec §2.6).
    pub(crate) async fn check_workflow_update(&self, name: &str) -> Result<()> {
        match self.workflow(name).await? {
            Some(w) if w.status != WorkflowStatus::Suspended => Err(dsl_error(
                ErrorKind::WorkflowUpdateError,
                "status",
                format!(
                    "workflow '{name}' is {}: only a suspended workflow can be replaced",
                    w.status.as_str()
                ),
                "set its status to suspended first (PUT /api/v1/workflows/<name>/status with body suspended)",
            )),
            _ => Ok(()),
        }
    }

    /// A workflow by name.
    pub async fn workflow(&self, name: &str) -> Result<Option<Workflow>> {
        Ok(match self.get(Kind::Workflow, name).await? {
            Some(Artifact::Workflow(w)) => Some(w),
            _ => None,
        })
    }

    /// Sets the status of a stored workflow (spec §2.6 `PUT /workflows/{name}/status`), e.g.
    /// `suspended` before replacing it, or `restarting`; `None` when there is no such
    /// workflow. The change is archived like any update. `stopping` a stock workflow is
    /// refused ([`Error::Refused`]).
    pub async fn set_workflow_status(
        &self,
        name: &str,
        status: WorkflowStatus,
    ) -> Result<Option<Workflow>> {
        if status == WorkflowStatus::Stopping {
            self.check_not_protected(Kind::Workflow, name)?;
        }
        self.change_workflow_status(name, None, status).await
    }

    /// Sets a workflow's status — only if it still is `expected`, when given: the workflow
    /// runtime's steps were planned on what a pass read, and a status set through the API
    /// since wins over them (the next pass plans from it).
    pub(crate) async fn change_workflow_status(
        &self,
        name: &str,
        expected: Option<WorkflowStatus>,
        status: WorkflowStatus,
    ) -> Result<Option<Workflow>> {
        let _writes = self.write_lock().await?;
        let Some(mut w) = self.workflow(name).await? else {
            return Ok(None);
        };
        if expected.is_some_and(|e| e != w.status) {
            return Ok(Some(w));
        }
        if w.status != status {
            w.status = status;
            self.store(Artifact::Workflow(w.clone())).await?;
        }
        Ok(Some(w))
    }

    /// `artifacts` with their references to stored artifacts inlined (spec §2.1
    /// `expand_references`); references to missing ones stay as they are.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn expand(&self, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>> {
        let snapshot = self.snapshot().await?;
        artifacts
            .iter()
            .map(|a| dsl::expand_available(a, &snapshot).map_err(Error::from))
            .collect()
    }

    /// Reads artifacts from `text` as the API takes them: `import:` (spec §1.11) resolves
    /// against the templates and artifacts of the text and then against the stored ones. `kind`
    /// is the expected kind, as [`dsl::read`] takes it.
    ///
    /// # Errors
    /// The first [`DslError`] (as [`Error::Dsl`]), with its line and column; or the store's.
    pub async fn read(&self, text: &str, kind: Option<Kind>) -> Result<Vec<Artifact>> {
        let read = self
            .checked(&[], |stored| dsl::read_documents(text, kind, Some(stored)))
            .await?;
        Ok(read?.into_iter().map(|d| d.artifact).collect())
    }

    /// [`dsl::read_deployable`] with `import:` resolving against stored artifacts too.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn read_deployable(&self, text: &str) -> Result<Vec<(Kind, Artifact)>> {
        let read = self
            .checked(&[], |stored| {
                dsl::read_deployable_importing(text, Some(stored))
            })
            .await?;
        Ok(read?)
    }

    /// An artifact by kind and name.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<Artifact>> {
        match self.db().get(kind, name).await? {
            Some(stored) => self.decode(kind, &stored).map(Some),
            None => Ok(None),
        }
    }

    /// An artifact's stored revisions, oldest first: each with its value (`None` for the
    /// revision that deleted it) and when it was written. Empty when nothing was ever stored
    /// under that name.
    ///
    /// ```
    /// # async fn demo(vamp: vamp_core::Vamp) -> vamp_core::Result<()> {
    /// use vamp_core::model::Kind;
    /// for r in vamp.history(Kind::Breed, "sava:1.0.0").await? {
    ///     println!("revision {} at {}: {}", r.revision, r.at, if r.value.is_some() { "stored" } else { "deleted" });
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// When the persistence cannot be read.
    pub async fn history(&self, kind: Kind, name: &str) -> Result<Vec<crate::traits::Revision>> {
        self.db().history(kind, name).await
    }

    /// A page of the artifacts of a kind, by name.
    pub async fn list(&self, kind: Kind, page: Page) -> Result<Paged<Artifact>> {
        let stored = self.db().list(kind, page).await?;
        Ok(Paged {
            items: stored
                .items
                .iter()
                .map(|s| self.decode(kind, s))
                .collect::<Result<_>>()?,
            total: stored.total,
        })
    }

    /// Deletes an artifact; false if there was none. Deployments go with
    /// [`undeploy`](Self::undeploy); a stock workflow
    /// ([`install_stock_workflows`](Self::install_stock_workflows)) is refused
    /// ([`Error::Refused`]).
    pub async fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        if kind == Kind::Deployment {
            return Err(Error::Invalid {
                what: "artifact kind",
                message: "deployments are removed with undeploy".into(),
            });
        }
        self.check_not_protected(kind, name)?;
        let deleted = self
            .db()
            .delete(kind, name, Precondition::Any)
            .await?
            .is_some();
        self.forget(kind, name);
        if kind == Kind::Gateway {
            self.index_gateway(name, None).await;
        }
        if kind == Kind::Rollout {
            self.forget_rollout_status(name).await?;
        }
        if kind == Kind::Workflow {
            self.db()
                .delete(Kind::WorkflowState, name, Precondition::Any)
                .await?;
        }
        if deleted {
            self.changed(kind);
            self.emit(events::archive(
                kind,
                name,
                "delete",
                serde_json::Value::Null,
            ))
            .await;
        }
        Ok(deleted)
    }
}
