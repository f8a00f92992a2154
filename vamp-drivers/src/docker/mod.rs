//! [`DockerDriver`]: runs `container/docker` deployables as containers through the Docker
//! Engine API (bollard), negotiating down to the daemon's API version (1.41 for Docker 20.10).
//!
//! - One container per instance, on **host networking**: each instance gets its own ports from
//!   [`DockerConfig::ports`] (33000–34999), passed as `PORT`, `PORT0…N` and `PORT_<NAME>` like
//!   the process driver, so two versions or instances never collide. Containers run with
//!   `--init`, so SIGTERM reaches the service.
//! - Containers carry Vamp's labels (spec §6.4): `io.vamp=deployment-service`,
//!   `io.vamp.namespace`, `io.vamp.deployment`, `io.vamp.cluster`, `io.vamp.service`, plus the
//!   instance index, its ports, the spec fingerprint and the health checks, so a restarted
//!   driver finds everything again from the daemon alone. The driver sees only its namespace.
//! - The `docker` dialect may set `cmd` (a string, split without a shell, or a list) and extra
//!   `labels`.
//! - An image that does not exist, or a container that exits within
//!   [`DockerConfig::startup_window`], fails the service with the reason (the daemon's message,
//!   or the exit code and the last line logged).
//! - Every API call has a timeout; an unreachable daemon is `Error::Unavailable`.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
};
use futures::StreamExt;
use vamp_core::Result;
use vamp_core::model::{Instance, ServiceHealth};
use vamp_core::traits::{ContainerDriver, ServiceKey, ServiceSpec, ServiceState};

use crate::health::all_pass;
use common::{Daemon, Described, lock};

mod driver;
pub(crate) mod run;

pub(crate) mod common;

const BACKEND: &str = "docker";

/// Settings of the [`DockerDriver`].
#[derive(Debug, Clone, PartialEq)]
pub struct DockerConfig {
    /// The daemon: `unix:///var/run/docker.sock` or `tcp://host:port` (plain HTTP).
    pub host: String,
    /// Vamp's namespace (`vamp.namespace`): the driver only sees and touches containers
    /// labelled with it, so several Vamps can share a daemon.
    pub namespace: String,
    /// Host ports handed to instances.
    pub ports: RangeInclusive<u16>,
    /// The address instances listen on and are reached at (host networking).
    pub address: String,
    /// Time between SIGTERM and SIGKILL when stopping a container.
    pub stop_grace: Duration,
    /// A container exiting this soon after its start fails the service.
    pub startup_window: Duration,
    /// Timeout of every API call.
    pub timeout: Duration,
    /// Timeout of a health check that sets none.
    pub health_timeout: Duration,
}

impl DockerConfig {
    /// Defaults for the daemon at `host`: ports 33000–34999 on 127.0.0.1, 5 s grace, 3 s
    /// startup window, 30 s API timeout.
    pub fn new(host: impl Into<String>) -> Self {
        DockerConfig {
            host: host.into(),
            namespace: "default".into(),
            ports: 33000..=34999,
            address: "127.0.0.1".into(),
            stop_grace: Duration::from_secs(5),
            startup_window: Duration::from_secs(3),
            timeout: Duration::from_secs(30),
            health_timeout: Duration::from_secs(2),
        }
    }
}

/// Runs services as Docker containers.
///
/// ```no_run
/// # async fn demo() -> vamp_core::Result<()> {
/// use vamp_drivers::docker::{DockerConfig, DockerDriver};
/// let driver = DockerDriver::connect(DockerConfig::new("unix:///var/run/docker.sock")).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DockerDriver {
    daemon: Daemon,
}

/// One container of ours, as listed.
#[derive(Debug, Clone)]
struct Container {
    id: String,
    described: Described,
    running: bool,
    /// Created or running: it holds (or is about to hold) its ports.
    live: bool,
}

impl std::ops::Deref for Container {
    type Target = Described;
    fn deref(&self) -> &Described {
        &self.described
    }
}

impl DockerDriver {
    /// Connects to the daemon and negotiates the API version.
    pub async fn connect(config: DockerConfig) -> Result<Self> {
        Ok(DockerDriver {
            daemon: Daemon::connect(BACKEND, config).await?,
        })
    }

    /// Our containers, optionally only those of one service.
    async fn containers(&self, key: Option<&ServiceKey>) -> Result<Vec<Container>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(common::filters(&self.daemon.config.namespace, key)),
            ..ListContainersOptions::default()
        };
        let list = self
            .daemon
            .call(
                "list containers",
                self.daemon.docker.list_containers(Some(options)),
            )
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                Some(Container {
                    described: Described::read(c.labels.as_ref()?)?,
                    id: c.id?,
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    live: matches!(
                        c.state,
                        Some(
                            ContainerSummaryStateEnum::RUNNING
                                | ContainerSummaryStateEnum::CREATED
                                | ContainerSummaryStateEnum::RESTARTING
                        )
                    ),
                })
            })
            .collect())
    }

    async fn remove(&self, id: &str) {
        self.daemon.remove_container(id).await;
    }

    /// Creates and starts one instance. Other drivers (another Vamp, another test) may pick
    /// the same free port at the same moment: after creating, the live container with the
    /// smaller id keeps a contested port and the other one tries new ports.
    async fn start(
        &self,
        spec: &ServiceSpec,
        index: u32,
        used: &mut BTreeSet<u16>,
    ) -> std::result::Result<(), String> {
        for _ in 0..8 {
            let ports = self.daemon.take_ports(spec, used)?;
            let id = self.create(spec, index, &ports).await?;
            let mine: BTreeSet<u16> = ports.values().copied().collect();
            let contested = self
                .containers(None)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .any(|c| c.live && c.id < id && c.ports.values().any(|p| mine.contains(p)));
            if contested {
                tracing::debug!(service = %spec.key, ?ports, "port taken by another container at the same time; retrying");
                self.remove(&id).await;
                continue;
            }
            self.daemon
                .call(
                    "start container",
                    self.daemon.docker.start_container(&id, None),
                )
                .await
                .map_err(|e| format!("cannot start container {id}: {e}"))?;
            tracing::info!(service = %spec.key, index, container = %id, ?ports, "started container");
            return Ok(());
        }
        Err("no free host ports after 8 attempts".into())
    }

    /// Creates (does not start) one instance's container; returns its id.
    async fn create(
        &self,
        spec: &ServiceSpec,
        index: u32,
        ports: &vamp_core::model::Map<u16>,
    ) -> std::result::Result<String, String> {
        let env = common::environment(spec, ports);
        let labels = common::labels(&self.daemon.config.namespace, spec, index, ports);
        let cmd = common::command(spec)?;
        let body = ContainerCreateBody {
            image: Some(spec.breed.deployable.definition.clone()),
            env: Some(env),
            cmd,
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                init: Some(true),
                nano_cpus: i64::try_from(spec.scale.cpu.millis())
                    .ok()
                    .filter(|m| *m > 0)
                    .map(|m| m * 1_000_000),
                memory: i64::try_from(spec.scale.memory.bytes())
                    .ok()
                    .filter(|m| *m >= 6 * 1024 * 1024),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let created = self
            .daemon
            .call(
                "create container",
                self.daemon
                    .docker
                    .create_container(None::<CreateContainerOptions>, body),
            )
            .await
            .map_err(|e| {
                format!(
                    "cannot create a container of '{}': {e}",
                    spec.breed.deployable.definition
                )
            })?;
        Ok(created.id)
    }

    /// Why a stopped container failed, if it stopped within the startup window.
    async fn early_exit(&self, c: &Container) -> Option<String> {
        let inspect = self
            .daemon
            .call(
                "inspect container",
                self.daemon
                    .docker
                    .inspect_container(&c.id, None::<InspectContainerOptions>),
            )
            .await
            .ok()?;
        let state = inspect.state?;
        let parse =
            |t: Option<String>| t.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
        let (started, finished) = (parse(state.started_at)?, parse(state.finished_at)?);
        let lived = (finished - started).to_std().unwrap_or_default();
        if lived > self.daemon.config.startup_window {
            return None;
        }
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "5".into(),
            ..LogsOptions::default()
        };
        let lines: Vec<String> = self
            .daemon
            .docker
            .logs(&c.id, Some(options))
            .take(5)
            .filter_map(|l| async move { l.ok().map(|l| l.to_string()) })
            .collect()
            .await;
        let last = lines
            .iter()
            .rev()
            .flat_map(|l| l.lines())
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_owned();
        Some(format!(
            "container {} exited with code {} right after starting; last output: {last}",
            c.index,
            state.exit_code.unwrap_or(-1)
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests;
