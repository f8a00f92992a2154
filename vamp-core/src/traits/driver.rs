//! The container driver trait (spec §6.1).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::Result;
use crate::model::{Argument, Breed, Deployable, HealthCheck, Instance, Map, Scale, ServiceHealth};

/// Which service: deployment, cluster and service (breed) name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceKey {
    /// The deployment.
    pub deployment: String,
    /// The cluster.
    pub cluster: String,
    /// The service, i.e. its breed name.
    pub service: String,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.deployment, self.cluster, self.service)
    }
}

/// Everything a driver needs to run a service: resolved, nothing left to look up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpec {
    /// Which service.
    pub key: ServiceKey,
    /// The full breed (deployable, ports).
    pub breed: Breed,
    /// CPU, memory and the number of instances.
    pub scale: Scale,
    /// Environment passed to every instance, already interpolated (name or alias → value).
    pub environment: Map<String>,
    /// Scheduler arguments.
    pub arguments: Vec<Argument>,
    /// Effective health checks (spec §1.5.6 merge rule applied).
    pub health_checks: Vec<HealthCheck>,
    /// Network, e.g. `HOST`.
    pub network: Option<String>,
    /// This driver's dialect, deep-merged into its request.
    pub dialect: Option<serde_json::Value>,
}

impl ServiceSpec {
    /// A stable digest of what defines the running instances (deployable, ports, environment,
    /// arguments, health checks, network, dialect — not the instance count). Drivers record it
    /// with the instances (a label, a state file) and report it back, so the engine can tell
    /// whether a redeploy is needed (spec §3.2 equality checks).
    pub fn fingerprint(&self) -> String {
        let relevant = serde_json::json!({
            "deployable": self.breed.deployable,
            "ports": self.breed.ports,
            "environment": self.environment,
            "arguments": self.arguments,
            "health_checks": self.health_checks,
            "network": self.network,
            "dialect": self.dialect,
            "cpu": self.scale.cpu,
            "memory": self.scale.memory,
        });
        let digest = Sha1::digest(relevant.to_string().as_bytes());
        crate::model::lookup::hex(&digest)
    }
}

/// What the scheduler runs for a service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceState {
    /// Which service.
    pub key: Option<ServiceKey>,
    /// Its instances.
    pub instances: Vec<Instance>,
    /// Scheduler health counts, when the scheduler has them.
    pub health: Option<ServiceHealth>,
    /// The [`ServiceSpec::fingerprint`] the instances were started from.
    pub fingerprint: Option<String>,
    /// Set when the driver saw the service fail for good (bad image, command exits at once),
    /// with the reason; the engine marks the service Failed at once (spec §3.2).
    pub failure: Option<String>,
}

/// One run to completion (a workflow's run, spec §5.6): the breed's deployable with an
/// environment, stopped at its timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Whose run: the workflow's name (labels, logs).
    pub name: String,
    /// The breed whose deployable runs.
    pub breed: Breed,
    /// The run's environment, complete (nothing else of the host's is added).
    pub environment: Map<String>,
    /// Killed when it runs longer.
    pub timeout: std::time::Duration,
}

/// One line a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogLine {
    /// When it was read.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Written to standard error.
    pub stderr: bool,
    /// The line, without its end.
    pub text: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOutcome {
    /// The exit status; `None` when it was killed or did not start.
    pub status: Option<i32>,
    /// Why it failed when it did not exit 0: killed at its timeout, could not start, the exit
    /// status.
    pub failure: Option<String>,
}

/// A sink for the lines a run writes, as they come.
pub type LineSink<'a> = &'a (dyn Fn(LogLine) + Send + Sync);

/// A gateway as services reach it (spec §3.5 step 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEndpoint {
    /// The gateway's name.
    pub name: String,
    /// The host services use.
    pub host: String,
    /// The port services use.
    pub port: u16,
}

/// Runs services on a scheduler: local processes, Docker, Kubernetes, …
///
/// Contract:
/// - [`deploy`](Self::deploy) is idempotent: it makes the scheduler run `spec` (creating,
///   updating or scaling as needed) and returns once the request is accepted, not when the
///   instances are healthy; progress shows in [`services`](Self::services).
/// - [`undeploy`](Self::undeploy) of a service that does not run is `Ok`.
/// - [`services`](Self::services) lists every service this driver manages — also ones started
///   before a restart of the process, found again by label or state file.
#[async_trait]
pub trait ContainerDriver: Send + Sync + Debug {
    /// The backend's name, e.g. `process`, `docker`.
    fn backend(&self) -> &'static str;

    /// Whether this driver runs deployables of this type (`container/docker`, `command`, …).
    fn supports(&self, deployable_type: &str) -> bool;

    /// Whether this driver can run `deployable` here: `Err` with the reason (and how to make
    /// it possible) when not, so a deployment is refused when it is validated instead of
    /// stored and never run. The default asks [`supports`](Self::supports).
    ///
    /// # Errors
    /// Why the deployable cannot run, in words.
    fn check_deployable(&self, deployable: &Deployable) -> std::result::Result<(), String> {
        if self.supports(&deployable.kind) {
            Ok(())
        } else {
            Err(format!(
                "the {} driver does not run '{}' deployables",
                self.backend(),
                deployable.kind
            ))
        }
    }

    /// Makes the scheduler run `spec`.
    async fn deploy(&self, spec: &ServiceSpec) -> Result<()>;

    /// Stops and removes every instance of a service.
    async fn undeploy(&self, key: &ServiceKey) -> Result<()>;

    /// The state of every service this driver manages.
    async fn services(&self) -> Result<Vec<ServiceState>>;

    /// Runs `spec` once to completion and says how it ended; every line it writes goes to
    /// `lines` as it comes. A run that outlives `spec.timeout` is killed (its outcome says so).
    /// The default: `Error::Unsupported`.
    ///
    /// # Errors
    /// `Unsupported` where the driver cannot run things to completion; `Invalid` for a
    /// deployable it does not run. A run that fails is an `Ok` outcome with its failure.
    async fn run_once(&self, spec: &RunSpec, lines: LineSink<'_>) -> Result<RunOutcome> {
        let _ = (spec, lines);
        Err(crate::Error::Unsupported {
            backend: self.backend(),
            operation: "run to completion",
        })
    }

    /// Publishes gateways for services to reach and returns where each is reachable. The
    /// default returns them unchanged (the gateway host is reachable from instances as is).
    async fn publish_gateways(&self, gateways: &[GatewayEndpoint]) -> Result<Vec<GatewayEndpoint>> {
        Ok(gateways.to_vec())
    }
}
