//! One reconciliation pass (spec §3.2): compare the deployments with what the driver runs,
//! move every service one step towards its intention, then route the gateways.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{Vamp, events, lock};
use crate::Result;
use crate::engine::{self, EnvironmentSources};
use crate::model::*;
use crate::traits::{GatewayEndpoint, ServiceKey, ServiceSpec, ServiceState};

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

enum Action {
    Deploy(Box<ServiceSpec>),
    Undeploy(ServiceKey),
}

/// The health checks a service runs (spec §1.5.6): its own if it has any (`[]` = none) plus
/// the cluster's on other paths; else the cluster's; else the breed's — only on ports the breed
/// has.
fn effective_checks(cluster: &DeploymentCluster, s: &DeploymentService) -> Vec<HealthCheck> {
    let on_breed = |c: &&HealthCheck| s.breed.ports.contains_key(&c.port);
    match (&s.health_checks, &cluster.health_checks) {
        (Some(own), cluster_checks) => {
            let mut out = own.clone();
            for c in cluster_checks.iter().flatten().filter(on_breed) {
                if !out.iter().any(|o| o.path == c.path) {
                    out.push(c.clone());
                }
            }
            out
        }
        (None, Some(cluster_checks)) => cluster_checks.iter().filter(on_breed).cloned().collect(),
        (None, None) => s.breed.health_checks.clone().unwrap_or_default(),
    }
}

fn phase(name: PhaseName, now: DateTime<Utc>, notification: Option<String>) -> Phase {
    Phase {
        name,
        since: now,
        notification,
    }
}

/// The `Failed` phase for `reason`, with its `synchronization:failed` event (§3.8).
fn failed(
    key: &ServiceKey,
    now: DateTime<Utc>,
    reason: String,
    events_out: &mut Vec<Event>,
) -> Phase {
    events_out.push(events::synchronization(
        key,
        "failed",
        reason.clone().into(),
    ));
    phase(PhaseName::Failed, now, Some(reason))
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
        {
            let _writes = self.inner.writes.lock().await;
            let now = Utc::now();
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
                self.plan(
                    &mut d,
                    &actual,
                    now,
                    &mut actions,
                    &mut sync_events,
                    &mut report,
                );
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
                    self.save(&d, Some(stored.revision), "").await?;
                    report.changed += 1;
                }
            }
            // Services the driver runs that no deployment wants (a crash between deleting a
            // deployment and undeploying it): remove them.
            for key in actual.keys().filter(|k| !known.contains(k)) {
                tracing::info!(service = %key, "undeploying a service no deployment wants");
                actions.push(Action::Undeploy(key.clone()));
            }
        }
        if report.changed > 0 {
            // Instances came or went: the routing loop routes them now, before the driver
            // calls below (which may take long) are done.
            self.inner.reroute.notify_one();
        }
        for event in sync_events {
            self.emit(event).await;
        }
        let limit = self.inner.config.driver_concurrency.max(1);
        let results: Vec<(String, Result<()>)> = futures::stream::iter(actions)
            .map(|action| async move {
                match action {
                    Action::Deploy(spec) => {
                        (format!("deploy {}", spec.key), driver.deploy(&spec).await)
                    }
                    Action::Undeploy(key) => {
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
        Ok(report)
    }

    /// Moves every service of `d` one step (spec §3.2), recording driver actions and events.
    fn plan(
        &self,
        d: &mut Deployment,
        actual: &BTreeMap<ServiceKey, ServiceState>,
        now: DateTime<Utc>,
        actions: &mut Vec<Action>,
        events_out: &mut Vec<crate::model::Event>,
        report: &mut Report,
    ) {
        let config = &self.inner.config;
        let endpoints = lock(&self.inner.endpoints).clone();
        let snapshot = d.clone();
        let mut finished: Vec<(String, String)> = Vec::new();
        for (cname, cluster) in &mut d.clusters {
            let cluster_view = cluster.clone();
            for s in &mut cluster.services {
                let key = ServiceKey {
                    deployment: snapshot.name.clone(),
                    cluster: cname.clone(),
                    service: s.breed.name.clone(),
                };
                let state = actual.get(&key);
                let running = state.map_or(0, |a| a.instances.len());
                // The driver's view is the truth for instances: what runs is shown, also
                // while a scale-up fails half-way or the service is being replaced.
                let seen = state.map(|a| a.instances.as_slice()).unwrap_or_default();
                if s.instances != seen {
                    s.instances = seen.to_vec();
                }
                let timeout = match s.status.intention {
                    Intention::Deployment => config.ready_for_deployment,
                    Intention::Undeployment => config.ready_for_undeployment,
                };
                let overdue = s.status.phase.name != PhaseName::Done
                    && chrono::Duration::from_std(timeout)
                        .is_ok_and(|t| now - s.status.phase.since > t);
                if s.status.phase.name == PhaseName::Failed {
                    continue;
                }
                if overdue {
                    let reason = format!("not done within {}s", timeout.as_secs());
                    s.status.phase = failed(&key, now, reason, events_out);
                    continue;
                }
                match s.status.intention {
                    Intention::Undeployment => {
                        if running > 0 || state.is_some() {
                            report.converged = false;
                            if s.status.phase.name != PhaseName::Updating {
                                s.status.phase = phase(PhaseName::Updating, now, None);
                            }
                            actions.push(Action::Undeploy(key));
                        } else {
                            events_out.push(events::synchronization(
                                &key,
                                "undeployed",
                                serde_json::Value::Null,
                            ));
                            finished.push((cname.clone(), s.breed.name.clone()));
                        }
                    }
                    Intention::Deployment => {
                        // Dependencies first: each must be Done and its gateway ports allocated.
                        let ready = s.dependencies.iter().all(|(alias, dep_cluster)| {
                            let wanted = s
                                .breed
                                .dependencies
                                .get(alias)
                                .map(|r| r.name().to_owned())
                                .unwrap_or_default();
                            snapshot.clusters.get(dep_cluster).is_some_and(|c| {
                                c.services.iter().any(|p| {
                                    p.status.phase.name == PhaseName::Done
                                        && match wanted.strip_suffix('*') {
                                            Some(prefix) => p.breed.name.starts_with(prefix),
                                            None => p.breed.name == wanted,
                                        }
                                })
                            }) && snapshot
                                .ports
                                .iter()
                                .filter(|(k, _)| k.starts_with(&format!("{dep_cluster}.")))
                                .all(|(_, v)| v.parse::<u16>().is_ok_and(|p| p != 0))
                        });
                        if !ready {
                            report.converged = false;
                            continue;
                        }
                        if s.interpolated.is_none() {
                            let sources = EnvironmentSources {
                                gateways: &endpoints,
                                config: &|_| None,
                                env: &|name| std::env::var(name).ok(),
                            };
                            s.interpolated =
                                Some(engine::resolve_environment(&snapshot, cname, s, &sources));
                        }
                        let spec = ServiceSpec {
                            key: key.clone(),
                            breed: s.breed.clone(),
                            scale: s
                                .scale
                                .clone()
                                .unwrap_or_else(|| config.engine.default_scale.clone()),
                            environment: s.interpolated.clone().unwrap_or_default(),
                            arguments: s.arguments.clone(),
                            health_checks: effective_checks(&cluster_view, s),
                            network: s.network.clone().or_else(|| cluster_view.network.clone()),
                            dialect: s
                                .dialects
                                .get(self.inner.driver.backend())
                                .or_else(|| cluster_view.dialects.get(self.inner.driver.backend()))
                                .cloned(),
                        };
                        let fingerprint = spec.fingerprint();
                        let matches = state.is_some_and(|a| {
                            a.fingerprint.as_deref() == Some(fingerprint.as_str())
                        });
                        if let Some(reason) =
                            state.filter(|_| matches).and_then(|a| a.failure.clone())
                        {
                            s.status.phase = failed(&key, now, reason, events_out);
                            continue;
                        }
                        let wanted = usize::try_from(spec.scale.instances).unwrap_or(usize::MAX);
                        if !matches || running != wanted {
                            report.converged = false;
                            if running > 0
                                && !matches
                                && s.status.phase.name == PhaseName::Initiated
                            {
                                events_out.push(events::synchronization(
                                    &key,
                                    "redeploy",
                                    serde_json::Value::Null,
                                ));
                            }
                            if s.status.phase.name != PhaseName::Updating {
                                s.status.phase = phase(PhaseName::Updating, now, None);
                            }
                            actions.push(Action::Deploy(Box::new(spec)));
                            continue;
                        }
                        let Some(a) = state else { continue };
                        if s.health != a.health {
                            s.health = a.health;
                        }
                        let healthy = a.instances.iter().all(|i| i.deployed)
                            && (spec.health_checks.is_empty()
                                || a.health
                                    .is_none_or(|h| h.healthy as usize == a.instances.len()));
                        if !healthy {
                            report.converged = false;
                        } else if s.status.phase.name != PhaseName::Done {
                            s.status.phase = phase(PhaseName::Done, now, None);
                            events_out.push(events::synchronization(
                                &key,
                                "deployed",
                                serde_json::Value::Null,
                            ));
                        }
                    }
                }
            }
        }
        for (cluster, service) in finished {
            engine::finish_undeployment(d, &cluster, &service);
        }
    }

    /// Routes the gateways as they are stored now: the deployments' and the standalone ones
    /// (what [`run`](Self::run) does at once after every change that affects routing).
    ///
    /// # Errors
    /// When the store cannot be read, or the driver or the router fails.
    ///
    /// Publishes the gateways to the driver and hands their resolved form to the router when
    /// it changed; emits `deployed` / `undeployed` gateway events. One pass at a time, each
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
        for a in self
            .list(Kind::Gateway, crate::traits::Page::ALL)
            .await?
            .items
        {
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
        let published = self.inner.driver.publish_gateways(&wanted).await?;
        *lock(&self.inner.endpoints) = published.into_iter().map(|e| (e.name.clone(), e)).collect();
        let resolved = engine::resolve_gateways(&gateways, deployments, &config.gateway_host);
        let previous = lock(&self.inner.applied).clone();
        if previous.as_ref() == Some(&resolved) {
            return Ok(());
        }
        let report = self.inner.router.apply(&resolved).await?;
        for (name, reason) in &report.failed {
            tracing::warn!(gateway = %name, %reason, "the router cannot serve a gateway");
        }
        let before: Vec<String> = previous
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.name)
            .collect();
        for g in &resolved {
            if !before.contains(&g.name) {
                self.emit(events::gateway(&g.name, "deployed")).await;
            }
        }
        for name in before
            .iter()
            .filter(|n| !resolved.iter().any(|g| &g.name == *n))
        {
            self.emit(events::gateway(name, "undeployed")).await;
        }
        *lock(&self.inner.applied) = Some(resolved);
        Ok(())
    }
}
