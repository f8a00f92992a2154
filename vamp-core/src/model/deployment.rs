//! Deployments: the runtime artifact made from blueprints (spec §1.12).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Argument, Breed, Dialects, Gateway, HealthCheck, Map, Metadata, Ref, Scale, Sla};

/// A deployment.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Deployment {
    /// The name.
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// The clusters.
    pub clusters: Map<DeploymentCluster>,
    /// External gateways by port key, as in blueprints.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub gateways: Map<Gateway>,
    /// Internal gateway ports, `<cluster>.<port>` → port number.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub ports: Map<String>,
    /// Deployment-scope values (`<cluster>.environment_variables.<NAME>`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub environment_variables: Map<Option<String>>,
    /// Host of every cluster (the gateway host).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub hosts: Map<String>,
    /// Deployment-scope dialects.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dialects: Dialects,
}

super::reference::named!(Deployment);

/// A cluster of a deployment.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DeploymentCluster {
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// The services.
    pub services: Vec<DeploymentService>,
    /// Internal gateway settings by port name.
    #[serde(
        skip_serializing_if = "Map::is_empty",
        serialize_with = "super::blueprint::serialize_cluster_gateways"
    )]
    pub gateways: Map<Gateway>,
    /// Cluster health checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    /// Cluster network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The SLA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<Ref<Sla>>,
    /// Dialects.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dialects: Dialects,
}

/// A service of a deployment, with its runtime state.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DeploymentService {
    /// Intention and phase.
    pub status: ServiceStatus,
    /// The full breed.
    pub breed: Breed,
    /// Environment variable values (before interpolation).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub environment_variables: Map<Option<String>>,
    /// Interpolated values passed to the container; `None` until resolved (spec §3.6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpolated: Option<Map<String>>,
    /// The scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    /// Running instances.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Instance>,
    /// Arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<Argument>,
    /// Health checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    /// Network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Dependency alias → cluster name.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dependencies: Map<String>,
    /// Dialects.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub dialects: Dialects,
    /// Scheduler health.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<ServiceHealth>,
}

/// Status of a deployment service (spec §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// Deploy or undeploy.
    pub intention: Intention,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Where the service is.
    pub phase: Phase,
}

impl Default for ServiceStatus {
    fn default() -> Self {
        let now = Utc::now();
        ServiceStatus {
            intention: Intention::Deployment,
            since: now,
            phase: Phase {
                name: PhaseName::Initiated,
                since: now,
                notification: None,
            },
        }
    }
}

/// What should happen to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Intention {
    /// Be deployed.
    Deployment,
    /// Be removed.
    Undeployment,
}

/// The phase of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phase {
    /// The phase.
    pub name: PhaseName,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Why it failed (only for `Failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<String>,
}

/// Phase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PhaseName {
    /// Waiting to start.
    Initiated,
    /// Being changed.
    Updating,
    /// Reached the intention.
    Done,
    /// Failed; see the notification.
    Failed,
}

/// An instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Instance {
    /// Task / container / process id.
    pub name: String,
    /// Host address.
    pub host: String,
    /// Breed port name → port.
    pub ports: Map<u16>,
    /// Whether it is started.
    pub deployed: bool,
}

/// Scheduler health counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ServiceHealth {
    /// Staged.
    pub staged: u32,
    /// Running.
    pub running: u32,
    /// Healthy.
    pub healthy: u32,
    /// Unhealthy.
    pub unhealthy: u32,
}

impl Deployment {
    /// The blueprint that deploys this deployment as it is now (spec §2.2 `as_blueprint`):
    /// every cluster with its services (breeds and scales inline), gateways, SLA and settings;
    /// services being removed are left out. Runtime state (status, instances, ports) is not
    /// part of a blueprint.
    ///
    /// ```
    /// use vamp_core::model::{Artifact, Deployment};
    /// let Artifact::Deployment(d) = vamp_core::dsl::read(
    ///     "kind: deployments\nname: shop\nclusters:\n  web:\n    services:\n      - breed: {name: web:1, deployable: img}\n",
    ///     None,
    /// ).unwrap().remove(0) else { panic!() };
    /// let bp = d.as_blueprint();
    /// assert_eq!(bp.name, "shop");
    /// assert_eq!(bp.clusters["web"].services[0].breed.inline().unwrap().name, "web:1");
    /// ```
    pub fn as_blueprint(&self) -> super::Blueprint {
        let clusters = self
            .clusters
            .iter()
            .filter_map(|(name, c)| {
                let services: Vec<super::Service> = c
                    .services
                    .iter()
                    .filter(|s| s.status.intention != Intention::Undeployment)
                    .map(|s| super::Service {
                        breed: Ref::Inline(s.breed.clone()),
                        scale: s.scale.clone().map(Ref::Inline),
                        environment_variables: s
                            .environment_variables
                            .iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                            .collect(),
                        arguments: s.arguments.clone(),
                        health_checks: s.health_checks.clone(),
                        network: s.network.clone(),
                        dialects: s.dialects.clone(),
                    })
                    .collect();
                (!services.is_empty()).then(|| {
                    (
                        name.clone(),
                        super::Cluster {
                            metadata: c.metadata.clone(),
                            services,
                            gateways: c.gateways.clone(),
                            sla: c.sla.clone(),
                            health_checks: c.health_checks.clone(),
                            network: c.network.clone(),
                            dialects: c.dialects.clone(),
                        },
                    )
                })
            })
            .collect();
        super::Blueprint {
            name: self.name.clone(),
            metadata: self.metadata.clone(),
            gateways: self.gateways.clone(),
            environment_variables: self.environment_variables.clone(),
            dialects: self.dialects.clone(),
            clusters,
        }
    }
}
