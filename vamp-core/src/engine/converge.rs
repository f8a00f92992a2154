//! One step of reconciliation, planned (spec §3.2): a deployment and what the driver runs in,
//! the deployment moved one step towards its intentions and the driver calls and events that
//! step needs out. Pure: the store, the driver, the clock and the host environment are the
//! caller's ([`crate::Vamp::reconcile`] is the caller in a running Vamp).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{EnvironmentSources, finish_undeployment, resolve_environment};
use crate::model::{
    Deployment, DeploymentCluster, DeploymentService, Event, HealthCheck, Intention, Phase,
    PhaseName, Scale,
};
use crate::traits::{GatewayEndpoint, ServiceKey, ServiceSpec, ServiceState};

/// Everything a step looks at beside the deployment.
pub struct ConvergeInput<'a> {
    /// What the driver runs, by service.
    pub actual: &'a BTreeMap<ServiceKey, ServiceState>,
    /// The time of the step.
    pub now: DateTime<Utc>,
    /// Where each gateway is reachable for services (`$dependency…` values).
    pub endpoints: &'a BTreeMap<String, GatewayEndpoint>,
    /// `env://NAME` values: the host environment the embedder chose to expose.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The driver's name, which picks a service's dialect.
    pub driver: &'a str,
    /// The scale of services that give none.
    pub default_scale: &'a Scale,
    /// A service still not deployed after this fails (`ready-for-deployment`).
    pub ready_for_deployment: Duration,
    /// A service still not removed after this fails (`ready-for-undeployment`).
    pub ready_for_undeployment: Duration,
}

impl std::fmt::Debug for ConvergeInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvergeInput")
            .field("now", &self.now)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

/// A driver call a step asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverCall {
    /// Run (or re-run) a service as specified.
    Deploy(Box<ServiceSpec>),
    /// Remove a service.
    Undeploy(ServiceKey),
}

/// What a step needs done outside the deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Driver calls, in order.
    pub calls: Vec<DriverCall>,
    /// `synchronization` events (spec §3.8).
    pub events: Vec<Event>,
    /// Whether every service has reached its intention (done or failed).
    pub converged: bool,
}

/// Moves every service of `d` one step towards its intention.
pub fn converge(d: &mut Deployment, input: &ConvergeInput<'_>) -> Step {
    let mut step = Step {
        converged: true,
        ..Step::default()
    };
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
            let state = input.actual.get(&key);
            // The driver's view is the truth for instances: what runs is shown, also while a
            // scale-up fails half-way or the service is being replaced.
            let seen = state.map(|a| a.instances.as_slice()).unwrap_or_default();
            if s.instances != seen {
                s.instances = seen.to_vec();
            }
            if s.status.phase.name == PhaseName::Failed {
                continue;
            }
            if let Some(reason) = overdue(s, input) {
                s.status.phase = failed(&key, input.now, reason, &mut step.events);
                continue;
            }
            let done = match s.status.intention {
                Intention::Undeployment => undeploy_step(s, key, state, input.now, &mut step),
                Intention::Deployment => {
                    let service = Service {
                        deployment: &snapshot,
                        cluster_name: cname,
                        cluster: &cluster_view,
                    };
                    deploy_step(s, &key, state, &service, input, &mut step);
                    false
                }
            };
            if done {
                finished.push((cname.clone(), s.breed.name.clone()));
            }
        }
    }
    for (cluster, service) in finished {
        finish_undeployment(d, &cluster, &service);
    }
    step
}

/// Where a service stands in its deployment, as it was when the step began.
struct Service<'a> {
    deployment: &'a Deployment,
    cluster_name: &'a str,
    cluster: &'a DeploymentCluster,
}

/// Why a service that is not done has taken too long, if it has.
fn overdue(s: &DeploymentService, input: &ConvergeInput<'_>) -> Option<String> {
    let timeout = match s.status.intention {
        Intention::Deployment => input.ready_for_deployment,
        Intention::Undeployment => input.ready_for_undeployment,
    };
    let late = s.status.phase.name != PhaseName::Done
        && chrono::Duration::from_std(timeout).is_ok_and(|t| input.now - s.status.phase.since > t);
    late.then(|| format!("not done within {}s", timeout.as_secs()))
}

/// A service to remove: undeploy while anything runs; true once nothing does.
fn undeploy_step(
    s: &mut DeploymentService,
    key: ServiceKey,
    state: Option<&ServiceState>,
    now: DateTime<Utc>,
    step: &mut Step,
) -> bool {
    if state.is_some() {
        step.converged = false;
        if s.status.phase.name != PhaseName::Updating {
            s.status.phase = phase(PhaseName::Updating, now, None);
        }
        step.calls.push(DriverCall::Undeploy(key));
        return false;
    }
    step.events
        .push(synchronization(&key, "undeployed", serde_json::Value::Null));
    true
}

/// A service to run: wait for its dependencies, resolve its environment once, (re)deploy
/// until the driver runs what is specified, then wait for it to be healthy.
fn deploy_step(
    s: &mut DeploymentService,
    key: &ServiceKey,
    state: Option<&ServiceState>,
    service: &Service<'_>,
    input: &ConvergeInput<'_>,
    step: &mut Step,
) {
    if !dependencies_ready(s, service.deployment) {
        step.converged = false;
        return;
    }
    if s.interpolated.is_none() {
        let sources = EnvironmentSources {
            gateways: input.endpoints,
            config: &|_| None,
            env: input.env,
        };
        s.interpolated = Some(resolve_environment(
            service.deployment,
            service.cluster_name,
            s,
            &sources,
        ));
    }
    let spec = service_spec(s, key.clone(), service.cluster, input);
    let fingerprint = spec.fingerprint();
    let matches = state.is_some_and(|a| a.fingerprint.as_deref() == Some(fingerprint.as_str()));
    if let Some(reason) = state.filter(|_| matches).and_then(|a| a.failure.clone()) {
        s.status.phase = failed(key, input.now, reason, &mut step.events);
        return;
    }
    let running = state.map_or(0, |a| a.instances.len());
    let wanted = usize::try_from(spec.scale.instances).unwrap_or(usize::MAX);
    if !matches || running != wanted {
        step.converged = false;
        if running > 0 && !matches && s.status.phase.name == PhaseName::Initiated {
            step.events
                .push(synchronization(key, "redeploy", serde_json::Value::Null));
        }
        if s.status.phase.name != PhaseName::Updating {
            s.status.phase = phase(PhaseName::Updating, input.now, None);
        }
        step.calls.push(DriverCall::Deploy(Box::new(spec)));
        return;
    }
    let Some(a) = state else { return };
    if s.health != a.health {
        s.health = a.health;
    }
    let healthy = a.instances.iter().all(|i| i.deployed)
        && (spec.health_checks.is_empty()
            || a.health
                .is_none_or(|h| h.healthy as usize == a.instances.len()));
    if !healthy {
        step.converged = false;
    } else if s.status.phase.name != PhaseName::Done {
        s.status.phase = phase(PhaseName::Done, input.now, None);
        step.events
            .push(synchronization(key, "deployed", serde_json::Value::Null));
    }
}

/// Whether every dependency of `s` is done and has its gateway ports allocated.
fn dependencies_ready(s: &DeploymentService, d: &Deployment) -> bool {
    s.dependencies.iter().all(|(alias, dep_cluster)| {
        let wanted = s
            .breed
            .dependencies
            .get(alias)
            .map(|r| r.name().to_owned())
            .unwrap_or_default();
        let done = d.clusters.get(dep_cluster).is_some_and(|c| {
            c.services.iter().any(|p| {
                p.status.phase.name == PhaseName::Done
                    && match wanted.strip_suffix('*') {
                        Some(prefix) => p.breed.name.starts_with(prefix),
                        None => p.breed.name == wanted,
                    }
            })
        });
        let ported = d
            .ports
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{dep_cluster}.")))
            .all(|(_, v)| v.parse::<u16>().is_ok_and(|p| p != 0));
        done && ported
    })
}

/// What the driver is asked to run for `s`.
fn service_spec(
    s: &DeploymentService,
    key: ServiceKey,
    cluster: &DeploymentCluster,
    input: &ConvergeInput<'_>,
) -> ServiceSpec {
    ServiceSpec {
        key,
        breed: s.breed.clone(),
        scale: s
            .scale
            .clone()
            .unwrap_or_else(|| input.default_scale.clone()),
        environment: s.interpolated.clone().unwrap_or_default(),
        arguments: s.arguments.clone(),
        health_checks: effective_checks(cluster, s),
        network: s.network.clone().or_else(|| cluster.network.clone()),
        dialect: s
            .dialects
            .get(input.driver)
            .or_else(|| cluster.dialects.get(input.driver))
            .cloned(),
    }
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
fn failed(key: &ServiceKey, now: DateTime<Utc>, reason: String, events: &mut Vec<Event>) -> Phase {
    events.push(synchronization(key, "failed", reason.clone().into()));
    phase(PhaseName::Failed, now, Some(reason))
}

/// `synchronization` events of the reconciler: `deployed`, `redeploy`, `undeployed`, `failed`.
fn synchronization(key: &ServiceKey, what: &str, value: serde_json::Value) -> Event {
    Event {
        kind: "synchronization".into(),
        ..Event::new(
            [
                format!("deployments:{}", key.deployment),
                format!("clusters:{}", key.cluster),
                format!("services:{}", key.service),
                format!("synchronization:{what}"),
            ],
            value,
        )
    }
}
