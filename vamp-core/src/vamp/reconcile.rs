//! One reconciliation pass (spec §3.2): compare the deployments with what the driver runs,
//! move every service one step towards its intention, then route the gateways.

use std::collections::BTreeMap;

use chrono::Utc;
use futures::StreamExt;

use super::{Vamp, events, lock};
use crate::Result;
use crate::engine::{self, ConvergeInput, DriverCall};
use crate::model::*;
use crate::traits::{GatewayEndpoint, ServiceKey, ServiceState};

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Driver deploy calls made.
    pub deployed: usize,
    /// Driver undeploy calls made.
    pub undeployed: usize,
    /// Deployments written.
    pub changed: usize,
    /// True when every service has reached its intention (Done or Failed).
    pub converged: bool,
}

impl Vamp {
    /// Runs one reconciliation pass and reports what it did. [`run`](Self::run) calls this in
    /// a loop; tests may call it directly.
    pub async fn reconcile(&self) -> Result<Report> {
        let driver = &*self.inner.driver;
        let actual: BTreeMap<ServiceKey, ServiceState> = driver
            .services()
            .await?
            .into_iter()
            .filter_map(|s| s.key.clone().map(|k| (k, s)))
            .collect();
        let mut report = Report {
            converged: true,
            ..Report::default()
        };
        let mut actions = Vec::new();
        let mut sync_events = Vec::new();
        let mut finishing: Vec<(String, Vec<Held>)> = Vec::new();
        {
            let _writes = self.write_lock().await?;
            let now = Utc::now();
            let config = &self.inner.config;
            let endpoints = lock(&self.inner.endpoints).clone();
            let mut known: Vec<ServiceKey> = Vec::new();
            for stored in self
                .db()
                .list(Kind::Deployment, crate::traits::Page::ALL)
                .await?
                .items
            {
                let Artifact::Deployment(before) = self.decode(Kind::Deployment, &stored)? else {
                    continue;
                };
                let mut d = before.clone();
                for (c, cluster) in &d.clusters {
                    for s in &cluster.services {
                        known.push(ServiceKey {
                            deployment: d.name.clone(),
                            cluster: c.clone(),
                            service: s.breed.name.clone(),
                        });
                    }
                }
                let step = engine::converge(
                    &mut d,
                    &ConvergeInput {
                        actual: &actual,
                        now,
                        endpoints: &endpoints,
                        env: &|name| config.environment.get(name).cloned(),
                        driver: driver.backend(),
                        default_scale: &config.engine.default_scale,
                        ready_for_deployment: config.ready_for_deployment,
                        ready_for_undeployment: config.ready_for_undeployment,
                    },
                );
                report.converged &= step.converged;
                actions.extend(step.calls);
                sync_events.extend(step.events);
                if d.clusters.is_empty() {
                    self.db()
                        .delete(
                            Kind::Deployment,
                            &d.name,
                            crate::traits::Precondition::Revision(stored.revision),
                        )
                        .await?;
                    self.forget(Kind::Deployment, &d.name);
                    self.index_deployment(&d.name, None).await;
                    self.emit(events::archive(
                        Kind::Deployment,
                        &d.name,
                        "delete",
                        serde_json::Value::Null,
                    ))
                    .await;
                    report.changed += 1;
                    continue;
                }
                if d != before {
                    // A service that reaches Done is stored as such only once the router has
                    // its instances (below): whoever sees Done can send it traffic.
                    let (staged, held) = held_back(&before, &d);
                    self.save(&staged, Some(stored.revision), "").await?;
                    if !held.is_empty() {
                        finishing.push((d.name.clone(), held));
                    }
                    report.changed += 1;
                }
            }
            // Services the driver runs that no deployment wants (a crash between deleting a
            // deployment and undeploying it): remove them.
            for key in actual.keys().filter(|k| !known.contains(k)) {
                tracing::info!(service = %key, "undeploying a service no deployment wants");
                actions.push(DriverCall::Undeploy(key.clone()));
            }
        }
        if report.changed > 0 {
            // Instances came or went: the routing loop routes them now, before the driver
            // calls below (which may take long) are done.
            self.inner.reroute.notify_one();
        }
        let limit = self.inner.config.driver_concurrency.max(1);
        let results: Vec<(String, Result<()>)> = futures::stream::iter(actions)
            .map(|action| async move {
                match action {
                    DriverCall::Deploy(spec) => {
                        (format!("deploy {}", spec.key), driver.deploy(&spec).await)
                    }
                    DriverCall::Undeploy(key) => {
                        (format!("undeploy {key}"), driver.undeploy(&key).await)
                    }
                }
            })
            .buffer_unordered(limit)
            .collect()
            .await;
        for (what, result) in results {
            if what.starts_with("deploy") {
                report.deployed += 1;
            } else {
                report.undeployed += 1;
            }
            if let Err(e) = result {
                // Transient (the scheduler is unreachable): retried on the next pass.
                tracing::warn!(error = %e, "{what} failed");
            }
        }
        self.route_now().await?;
        if !finishing.is_empty() {
            let _writes = self.write_lock().await?;
            for (name, held) in finishing {
                if let Err(e) = self.finish(&name, &held).await {
                    // Changed meanwhile (a merge through the API): the next pass gets there.
                    tracing::debug!(deployment = %name, error = %e, "done on the next pass");
                }
            }
        }
        // Announced once stored and routed: an event saying a service is deployed finds it
        // Done, and reachable.
        for event in sync_events {
            self.emit(event).await;
        }
        Ok(report)
    }

    /// Routes the gateways as they are stored now: the deployments' and the standalone ones
    /// (what [`run`](Self::run) does at once after every change that affects routing).
    ///
    /// # Errors
    /// When the store cannot be read, or the router fails.
    ///
    /// Publishes the gateways to the driver (a driver that cannot publish now is logged and
    /// tried again next pass: routing does not wait for it) and hands their resolved form to
    /// the router when it changed, or when the router could not serve some of them last time;
    /// emits `deployed` / `undeployed` gateway events. One pass at a time, each
    /// reading the store after the one before it ended, so a pass never hands the router an
    /// older state than the last one did.
    pub async fn route_now(&self) -> Result<()> {
        let _routing = self.inner.routing.lock().await;
        let deployments = self.deployments().await?;
        let deployments = deployments.as_slice();
        let config = &self.inner.config.engine;
        let mut gateways: Vec<Gateway> = deployments
            .iter()
            .flat_map(|d| engine::gateways(d, config))
            .collect();
        // A stored gateway that no longer reads (written by something else sharing the
        // store) is logged and left out: it must not stop every other gateway's routing.
        for a in self.readable(Kind::Gateway).await? {
            if let Artifact::Gateway(g) = a {
                gateways.push(g);
            }
        }
        let wanted: Vec<GatewayEndpoint> = gateways
            .iter()
            .filter_map(|g| {
                g.port.filter(|p| p.number != 0).map(|p| GatewayEndpoint {
                    name: g.name.clone(),
                    host: config.gateway_host.clone(),
                    port: p.number,
                })
            })
            .collect();
        // Publishing is for services that reach gateways through the scheduler (Kubernetes
        // Services); routing does not depend on it. A scheduler that cannot be reached keeps
        // its last endpoints, and weights still move: it is tried again at the next pass.
        match self.inner.driver.publish_gateways(&wanted).await {
            Ok(published) => {
                *lock(&self.inner.endpoints) =
                    published.into_iter().map(|e| (e.name.clone(), e)).collect();
            }
            Err(e) => tracing::warn!(
                error = %e,
                "the driver cannot publish the gateways now; routing goes on, publishing is tried again at the next pass"
            ),
        }
        let resolved = engine::resolve_gateways(&gateways, deployments, &config.gateway_host);
        let previous = lock(&self.inner.applied).clone();
        if previous.as_ref() == Some(&resolved) {
            return Ok(());
        }
        let report = self.inner.router.apply(&resolved).await?;
        let unserved: BTreeMap<String, String> = report.failed.into_iter().collect();
        // What the router serves now. A gateway it could not serve (its port held by another
        // program, say) is left out, so the next pass hands it over again rather than seeing
        // nothing changed; it is announced `deployed` once it is served.
        let served: Vec<_> = resolved
            .into_iter()
            .filter(|g| !unserved.contains_key(&g.name))
            .collect();
        {
            let mut last = lock(&self.inner.unserved);
            for (name, reason) in &unserved {
                if last.get(name) != Some(reason) {
                    tracing::warn!(gateway = %name, %reason, "the router cannot serve a gateway; trying again at every routing pass");
                }
            }
            for name in last.keys().filter(|n| !unserved.contains_key(*n)) {
                if served.iter().any(|g| &g.name == name) {
                    tracing::info!(gateway = %name, "the router serves the gateway now");
                }
            }
            *last = unserved;
        }
        let before: Vec<String> = previous
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.name)
            .collect();
        for g in &served {
            if !before.contains(&g.name) {
                self.emit(events::gateway(&g.name, "deployed")).await;
            }
        }
        for name in before
            .iter()
            .filter(|n| !served.iter().any(|g| &g.name == *n))
        {
            self.emit(events::gateway(name, "undeployed")).await;
        }
        *lock(&self.inner.applied) = Some(served);
        Ok(())
    }
}

/// A service whose Done was held back until the router had its instances: (cluster,
/// service, the phase it was stored with, its Done status).
type Held = (String, String, Phase, ServiceStatus);

/// `after` with the services that reached Done in this step (from another phase in `before`)
/// still in their phase of `before`, and those services.
fn held_back(before: &Deployment, after: &Deployment) -> (Deployment, Vec<Held>) {
    let mut staged = after.clone();
    let mut held = Vec::new();
    for (name, cluster) in &mut staged.clusters {
        let Some(old) = before.clusters.get(name) else {
            continue;
        };
        for s in &mut cluster.services {
            let Some(was) = old.services.iter().find(|o| o.breed.name == s.breed.name) else {
                continue;
            };
            if s.status.phase.name == PhaseName::Done
                && was.status.phase.name != PhaseName::Done
                && s.status.intention == was.status.intention
            {
                held.push((
                    name.clone(),
                    s.breed.name.clone(),
                    was.status.phase.clone(),
                    s.status.clone(),
                ));
                s.status.phase = was.status.phase.clone();
            }
        }
    }
    (staged, held)
}

impl Vamp {
    /// Stores the held-back Done of these services, on the deployment as it is stored now
    /// (routing may have written it since), where each still has the phase it was held in.
    async fn finish(&self, name: &str, held: &[Held]) -> Result<()> {
        let Some(stored) = self.db().get(Kind::Deployment, name).await? else {
            return Ok(());
        };
        let Artifact::Deployment(mut d) = self.decode(Kind::Deployment, &stored)? else {
            return Ok(());
        };
        let mut changed = false;
        for (cluster, service, phase, done) in held {
            if let Some(s) = d
                .clusters
                .get_mut(cluster)
                .and_then(|c| c.services.iter_mut().find(|s| s.breed.name == *service))
                && s.status.phase == *phase
            {
                s.status = done.clone();
                changed = true;
            }
        }
        if changed {
            self.save(&d, Some(stored.revision), "").await?;
        }
        Ok(())
    }
}
