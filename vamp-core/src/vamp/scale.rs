//! A service's scale and a cluster's SLA, changed in place (spec §2.2 `…/scale`, `…/sla`):
//! planned by [`crate::engine`], stored, converged by the reconciler.

use super::*;

impl Vamp {
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
        let _writes = self.write_lock().await?;
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
        let _writes = self.write_lock().await?;
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
