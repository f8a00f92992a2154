//! Validation of writes against the store: an artifact's own rules, its references, the
//! gateway ports, and what the router and the driver can serve (spec §2.1 `validate_only`).

use std::collections::BTreeSet;

use super::artifacts::as_stored;
use super::*;

impl Vamp {
    /// Every check [`put`](Self::put) makes, storing nothing (spec §2.1 `validate_only=true`):
    /// the artifact's own rules, its references against the store, and the guards of its
    /// kind (a workflow must be absent or suspended to be replaced, spec §2.6). Returns the
    /// artifact as `put` would store it (a gateway with its weights filled in).
    ///
    /// # Errors
    /// The first problem found, as [`put`](Self::put) would return it.
    pub async fn validate(&self, artifact: &Artifact) -> Result<Artifact> {
        let mut checked = self.validate_all(std::slice::from_ref(artifact)).await?;
        checked.pop().ok_or_else(|| Error::Invalid {
            what: "validation",
            message: "nothing was checked".into(),
        })
    }

    /// [`validate`](Self::validate) for several artifacts meant to be stored together: each
    /// may refer to the others (a blueprint to a breed sent with it). Returns them as `put`
    /// would store them.
    ///
    /// # Errors
    /// The first problem found.
    pub async fn validate_all(&self, artifacts: &[Artifact]) -> Result<Vec<Artifact>> {
        let mut stored = artifacts
            .iter()
            .cloned()
            .map(as_stored)
            .collect::<Result<Vec<_>>>()?;
        self.gateway_rules(&mut stored).await?;
        for artifact in &stored {
            if let Artifact::Rollout(r) = artifact {
                self.rollout_rules(r).await?;
            }
        }
        let artifacts = stored.as_slice();
        for artifact in artifacts {
            let kind = artifact.kind();
            if matches!(kind, Kind::Deployment | Kind::Event | Kind::EventQuery) {
                return Err(Error::Invalid {
                    what: "artifact kind",
                    message: format!("{kind} are not stored this way; use deploy or publish"),
                });
            }
            if let Artifact::Workflow(w) = artifact {
                self.check_workflow_update(&w.name).await?;
            }
            // Only what the artifact refers to (and what the rules across artifacts of its
            // kind need) is read from the store.
            let problem = self
                .checked(artifacts, |known| {
                    let expanded = match dsl::expand_available(artifact, known) {
                        Ok(expanded) => expanded,
                        Err(e) => return Some(e),
                    };
                    let mut problems = dsl::validate::artifact(&expanded);
                    problems.extend(dsl::validate::against(artifact, known));
                    if let Artifact::Gateway(g) = &expanded {
                        problems.extend(self.unroutable(g, ""));
                    }
                    problems.into_iter().next()
                })
                .await?;
            if let Some(first) = problem {
                return Err(first.into());
            }
        }
        Ok(stored)
    }

    /// The rules of standalone gateways that depend on the server: the limits on their
    /// number, routes and names, the ports they may use; a gateway without a port (or port
    /// 0) gets a free one from the gateway range here (spec §2.5), so what is stored is
    /// served.
    pub(crate) async fn gateway_rules(&self, artifacts: &mut [Artifact]) -> Result<()> {
        let config = &self.inner.config.engine;
        let limits = &config.limits;
        let mut claimed: BTreeSet<u16> = artifacts
            .iter()
            .filter_map(|a| match a {
                Artifact::Gateway(g) => g.port.map(|p| p.number).filter(|p| *p != 0),
                _ => None,
            })
            .collect();
        let mut new_ones = 0;
        for artifact in artifacts.iter_mut() {
            let Artifact::Gateway(g) = artifact else {
                continue;
            };
            limits.check_gateway(g)?;
            // Virtual hosts written and no port, on a router with a shared listener: served
            // there only, with no port of its own (issue 21) — before the generated host
            // below, which every gateway gets.
            let shared_only = g.port.is_none()
                && !g.virtual_hosts.is_empty()
                && self.inner.router.shared_listener().is_some();
            // Spec §2.5: a gateway gets the generated virtual host `<name>.vamp` appended.
            if config.virtual_hosts {
                let generated = engine::virtual_host(&g.name);
                if !g.virtual_hosts.contains(&generated) {
                    g.virtual_hosts.push(generated);
                }
            }
            let exists = self.with_ports(|index| index.has_gateway(&g.name)).await?;
            if !exists {
                new_ones += 1;
            }
            match g.port.as_mut() {
                Some(p) if p.number != 0 => {
                    if !config.allowed_ports.contains(&p.number) {
                        return Err(dsl_error(
                            ErrorKind::UnavailableGatewayPortError,
                            "port",
                            format!(
                                "port {} is outside the ports gateways may use ({}-{})",
                                p.number,
                                config.allowed_ports.start(),
                                config.allowed_ports.end()
                            ),
                            "choose a port in that range, or leave the port out to get a free one",
                        ));
                    }
                }
                None if shared_only => {}
                _ => {
                    let kind = g.port.map(|p| p.kind).unwrap_or_default();
                    let number = self.free_gateway_port(&claimed).await?;
                    claimed.insert(number);
                    g.port = Some(GatewayPort { number, kind });
                }
            }
        }
        if new_ones > 0 {
            let count = self.with_ports(ports::PortIndex::standalone).await?;
            if count + new_ones > limits.gateways {
                return Err(dsl_error(
                    ErrorKind::LimitExceededError,
                    "name",
                    format!(
                        "{count} gateways are stored and {} may be: this would make {}",
                        limits.gateways,
                        count + new_ones
                    ),
                    "remove unused gateways, or raise limits.gateways in the server's configuration",
                ));
            }
        }
        Ok(())
    }

    /// A gateway port from the gateway range that no gateway claims, none of `also`, and that
    /// the router can listen on; counts on from the last one handed out.
    pub(crate) async fn free_gateway_port(&self, also: &BTreeSet<u16>) -> Result<u16> {
        let config = &self.inner.config.engine;
        let last = *lock(&self.inner.last_port);
        let mut skip = also.clone();
        // Bounded tries, so a router that can listen nowhere cannot stall a create.
        for _ in 0..64 {
            let candidate = self
                .with_ports(|index| {
                    let range = config.ports.range();
                    let taken = |p: u16| index.is_taken(p) || skip.contains(&p);
                    let from = match last {
                        Some(l) if (*range.start()..*range.end()).contains(&l) => l + 1,
                        _ => *range.start(),
                    };
                    (from..=*range.end())
                        .chain(*range.start()..from)
                        .find(|p| !taken(*p))
                })
                .await?;
            let Some(port) = candidate else { break };
            if self.inner.router.can_listen(port) {
                *lock(&self.inner.last_port) = Some(port);
                return Ok(port);
            }
            skip.insert(port);
        }
        let range = config.ports.range();
        Err(dsl_error(
            ErrorKind::NoAvailablePortError,
            "port",
            format!(
                "no free gateway port left in {}-{}",
                range.start(),
                range.end()
            ),
            "widen the gateway port range, or remove unused gateways",
        ))
    }

    /// What about gateway `g` the router cannot route: conditions it cannot evaluate.
    /// `path` is where the gateway is written.
    pub(crate) fn unroutable(&self, g: &Gateway, path: &str) -> Option<DslError> {
        for (route_path, route) in &g.routes {
            let Some(route) = route.inline() else {
                continue;
            };
            if route.mirror.is_some() && !self.inner.router.mirrors() {
                let at = if path.is_empty() {
                    format!("routes.{route_path}.mirror")
                } else {
                    format!("{path}.routes.{route_path}.mirror")
                };
                return Some(DslError::new(
                    ErrorKind::UnexpectedElement,
                    at,
                    Mark::default(),
                    format!(
                        "the {} router cannot mirror traffic (HAProxy 2.6 has no built-in mirroring)",
                        self.inner.router.backend()
                    ),
                    "remove 'mirror', or serve this gateway with the embedded router (router.kind = \"embedded\")",
                ));
            }
            let Some(condition) = route.condition.as_ref().and_then(Ref::inline) else {
                continue;
            };
            if let Err(reason) = self.inner.router.check_condition(&condition.definition) {
                let at = if path.is_empty() {
                    format!("routes.{route_path}.condition")
                } else {
                    format!("{path}.routes.{route_path}.condition")
                };
                return Some(DslError::new(
                    ErrorKind::UnsupportedConditionError,
                    at,
                    Mark::default(),
                    format!(
                        "the {} router cannot evaluate '{}': {reason}",
                        self.inner.router.backend(),
                        condition.definition
                    ),
                    "write the condition in Vamp's grammar (host, user-agent, cookie, header), or serve this gateway through HAProxy",
                ));
            }
        }
        None
    }

    /// What about deployment `d` cannot be served here: a breed the driver cannot run, a
    /// condition the router cannot evaluate, a value over the limits.
    pub(crate) fn unservable(&self, d: &Deployment) -> Result<()> {
        let config = &self.inner.config.engine;
        config.limits.check_deployment(d, &config.default_scale)?;
        for (c, cluster) in &d.clusters {
            for s in &cluster.services {
                if let Err(reason) = self.inner.driver.check_deployable(&s.breed.deployable) {
                    return Err(dsl_error(
                        ErrorKind::UnsupportedDeployableError,
                        &format!("clusters.{c}.services.{}.breed.deployable", s.breed.name),
                        format!("breed '{}': {reason}", s.breed.name),
                        "deploy it where a driver runs this kind of deployable (driver.kind in the server's configuration)",
                    ));
                }
            }
        }
        for g in engine::gateways(d, config) {
            if let Some(e) = self.unroutable(&g, &format!("gateways.{}", g.name)) {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The store as it would be with `alongside` stored too (they replace stored artifacts
    /// of the same kind and name).
    pub(crate) async fn snapshot_with(&self, alongside: &[Artifact]) -> Result<Vec<Artifact>> {
        let mut known = self.snapshot().await?;
        for a in alongside {
            known.retain(|k| (k.kind(), k.name()) != (a.kind(), a.name()));
            known.push(a.clone());
        }
        Ok(known)
    }
}
