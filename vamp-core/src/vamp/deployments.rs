//! Deployments: deploy (merge), slice and undeploy — each planned by
//! the pure planners of [`crate::engine`], stored, and converged by the reconciler.
//! Scales and cluster SLAs are in `scale.rs`.

use std::collections::BTreeSet;

use chrono::Utc;

use super::*;

/// What a deploy stores: the merged deployment, the revision it replaces, the inline breeds of
/// its blueprint and the port allocator's new position.
pub(crate) struct DeployPlan {
    deployment: Deployment,
    revision: Option<u64>,
    breeds: Vec<Breed>,
    last_port: Option<u16>,
}

impl Vamp {
    /// A deployment by name.
    pub async fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        Ok(match self.get(Kind::Deployment, name).await? {
            Some(Artifact::Deployment(d)) => Some(d),
            _ => None,
        })
    }

    /// Every deployment.
    pub async fn deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self
            .list(Kind::Deployment, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter_map(|a| match a {
                Artifact::Deployment(d) => Some(d),
                _ => None,
            })
            .collect())
    }

    pub(crate) async fn load(&self, name: &str) -> Result<Option<(Deployment, u64)>> {
        match self.db().get(Kind::Deployment, name).await? {
            Some(stored) => match self.decode(Kind::Deployment, &stored)? {
                Artifact::Deployment(d) => Ok(Some((d, stored.revision))),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// A deployment that must exist, with its revision; `ArtifactNotFound` otherwise.
    pub(crate) async fn existing(&self, name: &str) -> Result<(Deployment, u64)> {
        self.load(name).await?.ok_or_else(|| {
            dsl_error(
                ErrorKind::ArtifactNotFound,
                "name",
                format!("deployment '{name}' does not exist"),
                "deploy it first",
            )
        })
    }

    pub(crate) async fn save(
        &self,
        d: &Deployment,
        revision: Option<u64>,
        what: &str,
    ) -> Result<u64> {
        let mut json = Artifact::Deployment(d.clone()).to_json();
        if let serde_json::Value::Object(m) = &mut json {
            m.shift_remove("kind");
        }
        let precondition = revision.map_or(Precondition::Absent, Precondition::Revision);
        let stored = self
            .put_stored(Kind::Deployment, &d.name, &json, precondition)
            .await?;
        self.index_deployment(&d.name, Some(d)).await;
        if !what.is_empty() {
            // A write through the API (the reconciler's own saves pass no `what` and route
            // at the end of their pass).
            self.changed(Kind::Deployment);
            self.emit(events::archive(Kind::Deployment, &d.name, what, json))
                .await;
        }
        Ok(stored.revision)
    }

    /// Deploys `blueprint` as deployment `name`, merging into it if it exists (spec §3.3): new
    /// services join full gateways at 0%, changed services redeploy. References are resolved
    /// against the store; the result is validated before anything is stored. The reconciler
    /// starts at once.
    pub async fn deploy(&self, name: &str, blueprint: &Blueprint) -> Result<Deployment> {
        let _writes = self.write_lock().await?;
        let plan = self.plan_deployment(name, blueprint, &[]).await?;
        *lock(&self.inner.last_port) = plan.last_port;
        for breed in plan.breeds {
            if self.get(Kind::Breed, &breed.name).await?.as_ref()
                != Some(&Artifact::Breed(breed.clone()))
            {
                self.store(Artifact::Breed(breed)).await?;
            }
        }
        let what = if plan.revision.is_some() {
            "update"
        } else {
            "create"
        };
        self.save(&plan.deployment, plan.revision, what).await?;
        Ok(plan.deployment)
    }

    /// What [`deploy`](Self::deploy) would store, with every check it makes, storing nothing
    /// (spec §2.1 `validate_only=true`). References resolve against the store as it would be
    /// with `alongside` stored too (the other documents of one request). The gateway ports
    /// shown are the ones a deploy made now would get.
    ///
    /// # Errors
    /// The errors [`deploy`](Self::deploy) would return.
    pub async fn preview(
        &self,
        name: &str,
        blueprint: &Blueprint,
        alongside: &[Artifact],
    ) -> Result<Deployment> {
        let _writes = self.write_lock().await?;
        Ok(self
            .plan_deployment(name, blueprint, alongside)
            .await?
            .deployment)
    }

    /// Everything a deploy decides before it stores anything.
    pub(crate) async fn plan_deployment(
        &self,
        name: &str,
        blueprint: &Blueprint,
        alongside: &[Artifact],
    ) -> Result<DeployPlan> {
        let snapshot = self.snapshot_with(alongside).await?;
        if snapshot
            .iter()
            .any(|a| a.kind() == Kind::Workflow && a.name() == name)
        {
            return Err(dsl_error(
                ErrorKind::DeploymentWorkflowNameCollision,
                "name",
                format!("'{name}' is a workflow"),
                "deployments and workflows share one name space: pick another name",
            ));
        }
        let Artifact::Blueprint(expanded) =
            dsl::expand(&Artifact::Blueprint(blueprint.clone()), &snapshot)?
        else {
            return Err(Error::Invalid {
                what: "blueprint",
                message: "expansion changed its kind".into(),
            });
        };
        // A dependency may be provided by the deployment merged into (spec §1.5: relaxed when
        // merging); merge checks dependencies against the result.
        let problem = dsl::validate::artifact(&Artifact::Blueprint(expanded.clone()))
            .into_iter()
            .find(|e| e.kind != ErrorKind::UnresolvedBreedDependencyError);
        if let Some(first) = problem {
            return Err(first.into());
        }
        let current = self.load(name).await?;
        let config = &self.inner.config.engine;
        let mut d = engine::merge(
            current.as_ref().map(|(d, _)| d),
            name,
            &expanded,
            config,
            Utc::now(),
        )?;
        self.unservable(&d)?;
        // Ports used by the gateways of every other deployment.
        let others: Vec<Deployment> = snapshot
            .into_iter()
            .filter_map(|a| match a {
                Artifact::Deployment(o) if o.name != name => Some(o),
                _ => None,
            })
            .collect();
        let other_gateways: Vec<Artifact> = others
            .iter()
            .flat_map(|o| engine::gateways(o, config))
            .map(Artifact::Gateway)
            .chain(self.list(Kind::Gateway, Page::ALL).await?.items)
            .collect();
        for g in engine::gateways(&d, config) {
            let is_external = names::segments(&g.name) == Some(2);
            if let Some(e) = is_external
                .then(|| dsl::validate::against(&Artifact::Gateway(g.clone()), &other_gateways))
                .and_then(|v| v.into_iter().next())
            {
                return Err(e.into());
            }
        }
        let taken: BTreeSet<u16> = other_gateways
            .iter()
            .filter_map(|a| match a {
                Artifact::Gateway(g) => g.port.map(|p| p.number),
                _ => None,
            })
            .chain(
                d.gateways
                    .keys()
                    .filter_map(|k| GatewayPort::parse(k).ok().map(|p| p.number)),
            )
            .collect();
        let last = *lock(&self.inner.last_port);
        // Ports another program holds are skipped (the router probes them); a bounded number
        // of tries, so a router that says no to everything cannot stall a deploy.
        let before = d.clone();
        let mut taken = taken;
        let mut last_port = engine::allocate_ports(&mut d, &taken, config, last)?;
        for _ in 0..64 {
            let busy: Vec<u16> = d
                .ports
                .iter()
                .filter(|(k, v)| before.ports.get(*k) != Some(v))
                .filter_map(|(_, v)| v.parse::<u16>().ok())
                .filter(|p| !self.inner.router.can_listen(*p))
                .collect();
            if busy.is_empty() {
                break;
            }
            tracing::debug!(
                ?busy,
                "gateway ports taken by another program; choosing others"
            );
            taken.extend(busy);
            d = before.clone();
            last_port = engine::allocate_ports(&mut d, &taken, config, last)?;
        }
        Ok(DeployPlan {
            deployment: d,
            revision: current.map(|(_, r)| r),
            breeds: inline_breeds(&expanded),
            last_port,
        })
    }

    /// What [`slice`](Self::slice) would make of deployment `name`, with every check it
    /// makes, storing nothing (spec §2.1 `validate_only=true`); `None` when the deployment
    /// does not exist.
    ///
    /// # Errors
    /// The errors `slice` would return.
    pub async fn slice_preview(
        &self,
        name: &str,
        blueprint: &Blueprint,
    ) -> Result<Option<Deployment>> {
        let Some((current, _)) = self.load(name).await? else {
            return Ok(None);
        };
        Ok(Some(engine::slice(&current, blueprint, Utc::now())?))
    }

    /// Removes the services `blueprint` names (spec §3.4); they are undeployed by the
    /// reconciler. `InvalidRouteWeight` while the remaining services would not carry all the
    /// traffic. `None` when the deployment does not exist.
    pub async fn slice(&self, name: &str, blueprint: &Blueprint) -> Result<Option<Deployment>> {
        let _writes = self.write_lock().await?;
        let Some((current, revision)) = self.load(name).await? else {
            return Ok(None);
        };
        let d = engine::slice(&current, blueprint, Utc::now())?;
        if d != current {
            self.save(&d, Some(revision), "update").await?;
        }
        Ok(Some(d))
    }

    /// Undeploys a whole deployment (every service); `None` when it does not exist. Nothing
    /// needs to carry the traffic afterwards, so no weights need moving first.
    pub async fn undeploy(&self, name: &str) -> Result<Option<Deployment>> {
        let _writes = self.write_lock().await?;
        let Some((current, revision)) = self.load(name).await? else {
            return Ok(None);
        };
        let everything = Blueprint {
            name: name.to_owned(),
            clusters: current
                .clusters
                .iter()
                .map(|(c, cluster)| {
                    let services = cluster
                        .services
                        .iter()
                        .map(|s| Service {
                            breed: Ref::Reference(s.breed.name.clone()),
                            ..Service::default()
                        })
                        .collect();
                    (
                        c.clone(),
                        Cluster {
                            services,
                            ..Cluster::default()
                        },
                    )
                })
                .collect(),
            ..Blueprint::default()
        };
        let d = engine::slice(&current, &everything, Utc::now())?;
        self.save(&d, Some(revision), "update").await?;
        Ok(Some(d))
    }
}

/// The inline breeds of a blueprint's services.
pub(crate) fn inline_breeds(bp: &Blueprint) -> Vec<Breed> {
    bp.clusters
        .values()
        .flat_map(|c| c.services.iter())
        .filter_map(|s| s.breed.inline().cloned())
        .collect()
}
