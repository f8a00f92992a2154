//! [`SwarmDriver`]: runs `container/docker` deployables as Docker Swarm services, through the
//! Swarm API of a manager node (bollard; API 1.41 and up).
//!
//! - **One Swarm service per instance**, with one replica, on **host networking**: each
//!   instance gets its own ports from [`DockerConfig::ports`], passed as `PORT`, `PORT0…N` and
//!   `PORT_<NAME>` as the Docker and process drivers do, so versions and instances never
//!   collide on a node. (One service with N replicas cannot give each replica its own port.)
//!   Swarm places the task on a node and restarts it when it exits (restart condition `any`,
//!   2 s apart); the instance's host is that node's address as the swarm reports it
//!   (`Status.Addr`), or [`DockerConfig::address`] when it reports none.
//! - Services carry Vamp's labels (spec §6.1, §6.4): `io.vamp=deployment-service`,
//!   `io.vamp.namespace`, `io.vamp.deployment`, `io.vamp.cluster`, `io.vamp.service`, the
//!   instance index, its ports, the spec fingerprint and the health checks — on the service
//!   and on its containers — so a restarted driver finds everything again from the swarm
//!   alone. Service names are `vamp-<deployment>-<cluster>-<service>-<hash>-<index>`, cut and
//!   cleaned to Swarm's 63-character rule. The driver sees only its namespace.
//! - A changed spec (image, environment, ports, health checks, resources, dialect) replaces the
//!   instance's services; scaling adds or removes services from the highest index.
//! - Undeploying first scales each service to 0 and waits (at most
//!   [`DockerConfig::stop_grace`] + [`DockerConfig::timeout`]) until its task has stopped, then
//!   removes it: when `undeploy` returns, the instances no longer serve.
//! - A service with no running task whose latest task failed, was rejected (an image that does
//!   not exist on the node: no registry is asked, like `docker service create
//!   --no-resolve-image`) or completed fails with Swarm's reason and the exit code.
//! - Ports are checked free on this host when handed out; on a swarm of many nodes the driver
//!   still never gives one port to two of its own instances, but cannot see what else listens
//!   on another node.
//! - The `docker` dialect may set `cmd` (the arguments after the image's entrypoint: a string,
//!   split without a shell, or a list) and extra `labels`.
//!
//! Tested against a real one-node swarm on loopback (`scripts/services.sh` starts it, with the
//! ingress mesh removed) with the `ContainerDriver` conformance kit.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    Limit, NetworkAttachmentConfig, Service, ServiceSpec as SwarmSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptions, ListTasksOptions, UpdateServiceOptions,
};
use vamp_core::Result;
use vamp_core::model::{Instance, Map, ServiceHealth};
use vamp_core::traits::{ContainerDriver, ServiceKey, ServiceSpec, ServiceState};

use crate::docker::DockerConfig;
use crate::docker::common::{self, Daemon, Described, lock};
use crate::health::all_pass;

mod driver;

const BACKEND: &str = "swarm";

/// Runs services as Docker Swarm services, one per instance.
///
/// Takes the same settings as the Docker driver; `host` is a manager node's API.
///
/// ```no_run
/// # async fn demo() -> vamp_core::Result<()> {
/// use vamp_drivers::docker::DockerConfig;
/// use vamp_drivers::swarm::SwarmDriver;
/// let driver = SwarmDriver::connect(DockerConfig::new("unix:///var/run/docker.sock")).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SwarmDriver {
    daemon: Daemon,
}

/// One Swarm service of ours (one instance), as listed.
#[derive(Debug, Clone)]
struct Unit {
    id: String,
    name: String,
    version: u64,
    described: Described,
}

/// A task's state that still holds (or is about to hold) its container.
fn live(state: Option<TaskState>) -> bool {
    !matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::SHUTDOWN
                | TaskState::FAILED
                | TaskState::REJECTED
                | TaskState::REMOVE
                | TaskState::ORPHANED
        ) | None
    )
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A Swarm service name for an instance: readable, unique (a hash of the exact key), and
/// within Swarm's rule (letters, digits, `-`, at most 63 characters).
fn service_name(namespace: &str, key: &ServiceKey, index: u32) -> String {
    // FNV-1a: stable across versions and platforms, which std's hasher is not.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [namespace, &key.deployment, &key.cluster, &key.service] {
        for b in part.bytes().chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let readable: String = format!("{}-{}-{}", key.deployment, key.cluster, key.service)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(36)
        .collect();
    format!(
        "vamp-{}-{:08x}-{index}",
        readable.trim_matches('-'),
        hash >> 32
    )
}

impl SwarmDriver {
    /// Connects to a manager node's API and negotiates the API version. A daemon that is not
    /// a swarm manager answers the first call with Docker's reason.
    pub async fn connect(config: DockerConfig) -> Result<Self> {
        Ok(SwarmDriver {
            daemon: Daemon::connect(BACKEND, config).await?,
        })
    }

    /// Our services, optionally only those of one Vamp service.
    async fn units(&self, key: Option<&ServiceKey>) -> Result<Vec<Unit>> {
        let options = ListServicesOptions {
            filters: Some(common::filters(&self.daemon.config.namespace, key)),
            ..ListServicesOptions::default()
        };
        let list = self
            .daemon
            .call(
                "list services",
                self.daemon.docker.list_services(Some(options)),
            )
            .await?;
        Ok(list.into_iter().filter_map(unit).collect())
    }

    /// The tasks of the given services.
    async fn tasks(&self, ids: impl IntoIterator<Item = String>) -> Result<Vec<Task>> {
        let ids: Vec<String> = ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let options = ListTasksOptions {
            filters: Some(HashMap::from([("service".to_owned(), ids)])),
        };
        self.daemon
            .call("list tasks", self.daemon.docker.list_tasks(Some(options)))
            .await
    }

    /// Node id → the address instances on it are reached at.
    async fn node_addresses(&self) -> Result<HashMap<String, String>> {
        let nodes = self
            .daemon
            .call(
                "list nodes",
                self.daemon.docker.list_nodes(None::<ListNodesOptions>),
            )
            .await?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                let addr = n.status?.addr.filter(|a| !a.is_empty() && a != "0.0.0.0")?;
                Some((n.id?, addr))
            })
            .collect())
    }

    /// Scales the service to 0, waits until its task has stopped, removes it.
    async fn remove(&self, unit: &Unit) {
        let mut spec = None;
        if let Ok(current) = self
            .daemon
            .call(
                "inspect service",
                self.daemon.docker.inspect_service(&unit.id, None),
            )
            .await
        {
            spec = current.spec;
        }
        if let Some(mut spec) = spec {
            spec.mode = Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
                ..ServiceSpecMode::default()
            });
            let options = UpdateServiceOptions {
                version: i32::try_from(unit.version).unwrap_or(i32::MAX),
                ..UpdateServiceOptions::default()
            };
            match self
                .daemon
                .call(
                    "scale service to 0",
                    self.daemon
                        .docker
                        .update_service(&unit.id, spec, options, None),
                )
                .await
            {
                Ok(_) => self.wait_stopped(unit).await,
                Err(e) => {
                    tracing::debug!(service = %unit.name, error = %e, "cannot scale to 0 first; removing")
                }
            }
        }
        if let Err(e) = self
            .daemon
            .call(
                "remove service",
                self.daemon.docker.delete_service(&unit.id),
            )
            .await
        {
            tracing::warn!(service = %unit.name, error = %e, "cannot remove service");
        }
    }

    /// Polls until no task of `unit` holds a container, at most stop grace + API timeout.
    async fn wait_stopped(&self, unit: &Unit) {
        let deadline = tokio::time::Instant::now()
            + self.daemon.config.stop_grace
            + self.daemon.config.timeout;
        loop {
            match self.tasks([unit.id.clone()]).await {
                Ok(tasks) if !tasks.iter().any(|t| live(task_state(t))) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(service = %unit.name, error = %e, "cannot list tasks while stopping");
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(service = %unit.name, "task still running after the stop grace; removing the service anyway");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates one instance's service; returns its id. Another driver may pick the same
    /// free port at the same moment: after creating, the service with the smaller id keeps a
    /// contested port and the other one tries new ports.
    async fn start(
        &self,
        spec: &ServiceSpec,
        index: u32,
        used: &mut BTreeSet<u16>,
    ) -> std::result::Result<(), String> {
        for _ in 0..8 {
            let ports = self.daemon.take_ports(spec, used)?;
            let body = self.swarm_spec(spec, index, &ports)?;
            let created = self
                .daemon
                .call(
                    "create service",
                    self.daemon.docker.create_service(body, None),
                )
                .await
                .map_err(|e| {
                    format!(
                        "cannot create a service of '{}': {e}",
                        spec.breed.deployable.definition
                    )
                })?;
            let id = created.id.unwrap_or_default();
            let mine: BTreeSet<u16> = ports.values().copied().collect();
            let others = self.units(None).await.map_err(|e| e.to_string())?;
            if others
                .iter()
                .any(|u| u.id < id && u.described.ports.values().any(|p| mine.contains(p)))
            {
                tracing::debug!(service = %spec.key, ?ports, "port taken by another service at the same time; retrying");
                if let Some(unit) = others.into_iter().find(|u| u.id == id) {
                    self.remove(&unit).await;
                }
                continue;
            }
            tracing::info!(service = %spec.key, index, swarm_service = %id, ?ports, "created swarm service");
            return Ok(());
        }
        Err("no free host ports after 8 attempts".into())
    }

    fn swarm_spec(
        &self,
        spec: &ServiceSpec,
        index: u32,
        ports: &Map<u16>,
    ) -> std::result::Result<SwarmSpec, String> {
        let labels = common::labels(&self.daemon.config.namespace, spec, index, ports);
        Ok(SwarmSpec {
            name: Some(service_name(
                &self.daemon.config.namespace,
                &spec.key,
                index,
            )),
            labels: Some(labels.clone()),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                ..ServiceSpecMode::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(spec.breed.deployable.definition.clone()),
                    labels: Some(labels),
                    args: common::command(spec)?,
                    env: Some(common::environment(spec, ports)),
                    init: Some(true),
                    stop_grace_period: Some(nanos(self.daemon.config.stop_grace)),
                    ..TaskSpecContainerSpec::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        nano_cpus: i64::try_from(spec.scale.cpu.millis())
                            .ok()
                            .filter(|m| *m > 0)
                            .map(|m| m * 1_000_000),
                        memory_bytes: i64::try_from(spec.scale.memory.bytes())
                            .ok()
                            .filter(|m| *m >= 6 * 1024 * 1024),
                        pids: None,
                    }),
                    ..TaskSpecResources::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(nanos(Duration::from_secs(2))),
                    max_attempts: None,
                    window: None,
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some("host".into()),
                    ..NetworkAttachmentConfig::default()
                }]),
                ..TaskSpec::default()
            }),
            ..SwarmSpec::default()
        })
    }
}

fn unit(s: Service) -> Option<Unit> {
    let spec = s.spec?;
    Some(Unit {
        described: Described::read(spec.labels.as_ref()?)?,
        name: spec.name.unwrap_or_default(),
        version: s.version.and_then(|v| v.index).unwrap_or(0),
        id: s.id?,
    })
}

fn task_state(t: &Task) -> Option<TaskState> {
    t.status.as_ref().and_then(|s| s.state)
}

/// Why a unit with no running task fails: its latest finished task's error and exit code.
fn failure(unit: &Unit, tasks: &[&Task]) -> Option<String> {
    if tasks
        .iter()
        .any(|t| task_state(t) == Some(TaskState::RUNNING))
    {
        return None;
    }
    let latest = tasks
        .iter()
        .filter(|t| {
            matches!(
                task_state(t),
                Some(TaskState::FAILED | TaskState::REJECTED | TaskState::COMPLETE)
            )
        })
        .max_by_key(|t| t.version.as_ref().and_then(|v| v.index).unwrap_or(0))?;
    let status = latest.status.as_ref()?;
    // A failed task's error names the exit code ("task: non-zero exit (1)"), a rejected one
    // the cause ("No such image: …"); a completed one has none.
    let what = match status.err.as_deref().filter(|e| !e.is_empty()) {
        Some(err) => err.to_owned(),
        None => {
            let code = status.container_status.as_ref().and_then(|c| c.exit_code);
            format!("the container exited with code {}", code.unwrap_or(0))
        }
    };
    Some(format!(
        "instance {} ({}) is not running: {what}",
        unit.described.index, unit.name
    ))
}

#[cfg(test)]
mod tests;
