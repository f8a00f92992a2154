//! Deployments: deploy (merge), slice, undeploy, scale and cluster SLAs — each planned by
//! the pure planners of [`crate::engine`], stored, and converged by the reconciler.

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
    ) -> Result<()> {
        let mut json = Artifact::Deployment(d.clone()).to_json();
        if let serde_json::Value::Object(m) = &mut json {
            m.shift_remove("kind");
        }
        let precondition = revision.map_or(Precondition::Absent, Precondition::Revision);
        self.db()
            .put(Kind::Deployment, &d.name, &json, precondition)
            .await?;
        self.index_deployment(&d.name, Some(d)).await;
        if !what.is_empty() {
            // A write through the API (the reconciler's own saves pass no `what` and route
            // at the end of their pass).
            self.changed(Kind::Deployment);
            self.emit(events::archive(Kind::Deployment, &d.name, what, json))
                .await;
        }
        Ok(())
    }

    /// Deploys `blueprint` as deployment `name`, merging into it if it exists (spec §3.3): new
    /// services join full gateways at 0%, changed services redeploy. References are resolved
    /// against the store; the result is validated before anything is stored. The reconciler
    /// starts at once.
    pub async fn deploy(&self, name: &str, blueprint: &Blueprint) -> Result<Deployment> {
        let _writes = self.inner.writes.lock().await;
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
        let _writes = self.inner.writes.lock().await;
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
        let _writes = self.inner.writes.lock().await;
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
        let _writes = self.inner.writes.lock().await;
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

    /// Sets the scale of one service (spec §2.2 `…/scale`); it redeploys.
    ///
    /// # Errors
    /// `ArtifactNotFound` for a missing deployment or service; `LimitExceededError` for a
    /// scale over the limits.
    pub async fn scale(
        &self,
        deployment: &str,
        cluster: &str,
        service: &str,
        scale: Scale,
    ) -> Result<Deployment> {
        let _writes = self.inner.writes.lock().await;
        let (d, revision) = self.scaled(deployment, cluster, service, scale).await?;
        self.save(&d, Some(revision), "update").await?;
        Ok(d)
    }

    /// What [`scale`](Self::scale) would make of the deployment, with every check it makes,
    /// storing nothing (`validate_only`).
    ///
    /// # Errors
    /// The errors `scale` would return.
    pub async fn scale_preview(
        &self,
        deployment: &str,
        cluster: &str,
        service: &str,
        scale: Scale,
    ) -> Result<Deployment> {
        Ok(self.scaled(deployment, cluster, service, scale).await?.0)
    }

    pub(crate) async fn scaled(
        &self,
        deployment: &str,
        cluster: &str,
        service: &str,
        scale: Scale,
    ) -> Result<(Deployment, u64)> {
        let engine = &self.inner.config.engine;
        engine.limits.check_scale(&scale, "scale")?;
        let (mut d, revision) = self.existing(deployment).await?;
        let s = d
            .clusters
            .get_mut(cluster)
            .and_then(|c| c.services.iter_mut().find(|s| s.breed.name == service))
            .ok_or_else(|| {
                dsl_error(
                    ErrorKind::ArtifactNotFound,
                    &format!("clusters.{cluster}"),
                    format!("deployment '{deployment}' has no service '{service}' in cluster '{cluster}'"),
                    "check the cluster and breed names",
                )
            })?;
        s.scale = Some(Scale {
            name: String::new(),
            metadata: Metadata::default(),
            ..scale
        });
        s.status = ServiceStatus {
            since: Utc::now(),
            ..ServiceStatus::default()
        };
        engine.limits.check_deployment(&d, &engine.default_scale)?;
        Ok((d, revision))
    }

    /// Sets (`Some`) or removes (`None`) the SLA of one cluster of a deployment (spec §2.2
    /// `…/clusters/{c}/sla`). A reference must name a stored SLA; it is stored inline and
    /// anonymous, as deployments hold everything they run. Returns the updated deployment.
    ///
    /// # Errors
    /// `ArtifactNotFound` for a missing deployment, cluster or referenced SLA; the SLA's own
    /// validation errors.
    pub async fn set_cluster_sla(
        &self,
        deployment: &str,
        cluster: &str,
        sla: Option<Ref<Sla>>,
    ) -> Result<Deployment> {
        self.cluster_sla(deployment, cluster, sla, true).await
    }

    /// What [`set_cluster_sla`](Self::set_cluster_sla) would make of the deployment, with
    /// every check it makes, storing nothing (`validate_only`).
    ///
    /// # Errors
    /// The errors `set_cluster_sla` would return.
    pub async fn cluster_sla_preview(
        &self,
        deployment: &str,
        cluster: &str,
        sla: Option<Ref<Sla>>,
    ) -> Result<Deployment> {
        self.cluster_sla(deployment, cluster, sla, false).await
    }

    pub(crate) async fn cluster_sla(
        &self,
        deployment: &str,
        cluster: &str,
        sla: Option<Ref<Sla>>,
        store: bool,
    ) -> Result<Deployment> {
        let sla = match sla {
            Some(Ref::Reference(name)) => match self.get(Kind::Sla, &name).await? {
                Some(Artifact::Sla(s)) => Some(s),
                _ => {
                    return Err(dsl_error(
                        ErrorKind::ArtifactNotFound,
                        "sla",
                        format!("SLA '{name}' does not exist"),
                        "store it first (POST /api/v1/slas) or send the SLA inline",
                    ));
                }
            },
            Some(Ref::Inline(s)) => Some(s),
            None => None,
        };
        let sla = match sla {
            Some(s) => {
                let snapshot = self.snapshot().await?;
                let expanded = dsl::expand(&Artifact::Sla(s), &snapshot)?;
                if let Some(first) = dsl::validate::artifact(&expanded).into_iter().next() {
                    return Err(first.into());
                }
                match expanded {
                    Artifact::Sla(s) => Some(s),
                    _ => None,
                }
            }
            None => None,
        };
        let _writes = self.inner.writes.lock().await;
        let (mut d, revision) = self.existing(deployment).await?;
        let c = d.clusters.get_mut(cluster).ok_or_else(|| {
            dsl_error(
                ErrorKind::ArtifactNotFound,
                "clusters",
                format!("deployment '{deployment}' has no cluster '{cluster}'"),
                "check the cluster name (GET /api/v1/deployments/<name>)",
            )
        })?;
        // Inline definitions are anonymous (spec §1.1).
        let sla = sla.map(|s| {
            Ref::Inline(Sla {
                name: String::new(),
                metadata: Metadata::default(),
                ..s
            })
        });
        if c.sla != sla {
            c.sla = sla;
            if store {
                self.save(&d, Some(revision), "update").await?;
            }
        }
        Ok(d)
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
