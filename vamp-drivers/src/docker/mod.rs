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

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use futures::StreamExt;
use tokio::sync::Mutex;
use vamp_core::model::{Instance, Map, ServiceHealth};
use vamp_core::traits::{ContainerDriver, ServiceKey, ServiceSpec, ServiceState};
use vamp_core::{Error, Result};

use crate::health::{Check, all_pass};

const BACKEND: &str = "docker";
const LABEL: &str = "io.vamp";
const ROLE: &str = "deployment-service";

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
    docker: Docker,
    config: DockerConfig,
    /// Serializes deploy/undeploy, so port allocation and scaling do not race.
    writes: Mutex<()>,
    /// Failures with no container to carry them (the image does not exist), with the
    /// fingerprint of the spec that failed.
    failures: StdMutex<HashMap<ServiceKey, (String, String)>>,
    last_port: StdMutex<Option<u16>>,
}

fn unavailable(config: &DockerConfig, e: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        address: config.host.clone(),
        message: e.to_string(),
        source: None,
    }
}

/// One container of ours, as listed.
#[derive(Debug, Clone)]
struct Container {
    id: String,
    key: ServiceKey,
    index: u32,
    ports: Map<u16>,
    fingerprint: String,
    checks: Vec<Check>,
    running: bool,
    /// Created or running: it holds (or is about to hold) its ports.
    live: bool,
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DockerDriver {
    /// Connects to the daemon and negotiates the API version.
    pub async fn connect(config: DockerConfig) -> Result<Self> {
        let timeout = config.timeout.as_secs().max(1);
        let docker = if config.host.starts_with("tcp://") || config.host.starts_with("http://") {
            let url = config.host.replacen("tcp://", "http://", 1);
            Docker::connect_with_http(&url, timeout, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_unix(&config.host, timeout, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| unavailable(&config, e))?;
        let docker = tokio::time::timeout(config.timeout, docker.negotiate_version())
            .await
            .map_err(|_| unavailable(&config, "no answer while negotiating the API version"))?
            .map_err(|e| unavailable(&config, e))?;
        Ok(DockerDriver {
            docker,
            config,
            writes: Mutex::new(()),
            failures: StdMutex::new(HashMap::new()),
            last_port: StdMutex::new(None),
        })
    }

    async fn call<T>(
        &self,
        what: &'static str,
        f: impl std::future::Future<Output = std::result::Result<T, bollard::errors::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::Backend {
                backend: BACKEND,
                message: format!("{what}: {e}"),
                source: Some(Box::new(e)),
            }),
            Err(_) => Err(Error::Timeout {
                backend: BACKEND,
                address: self.config.host.clone(),
                operation: what,
                timeout: self.config.timeout,
            }),
        }
    }

    /// Our containers, optionally only those of one service.
    async fn containers(&self, key: Option<&ServiceKey>) -> Result<Vec<Container>> {
        let mut filters = vec![
            format!("{LABEL}={ROLE}"),
            format!("{LABEL}.namespace={}", self.config.namespace),
        ];
        if let Some(k) = key {
            filters.push(format!("{LABEL}.deployment={}", k.deployment));
            filters.push(format!("{LABEL}.cluster={}", k.cluster));
            filters.push(format!("{LABEL}.service={}", k.service));
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), filters)])),
            ..ListContainersOptions::default()
        };
        let list = self
            .call(
                "list containers",
                self.docker.list_containers(Some(options)),
            )
            .await?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels?;
                let get = |k: &str| labels.get(&format!("{LABEL}.{k}")).cloned();
                Some(Container {
                    id: c.id?,
                    key: ServiceKey {
                        deployment: get("deployment")?,
                        cluster: get("cluster")?,
                        service: get("service")?,
                    },
                    index: get("instance")?.parse().ok()?,
                    ports: serde_json::from_str(&get("ports")?).ok()?,
                    fingerprint: get("fingerprint").unwrap_or_default(),
                    checks: get("health-checks")
                        .and_then(|h| serde_json::from_str(&h).ok())
                        .unwrap_or_default(),
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
        let grace = i32::try_from(self.config.stop_grace.as_secs()).unwrap_or(10);
        let stop = StopContainerOptions {
            t: Some(grace),
            signal: None,
        };
        let _ = self
            .call("stop container", self.docker.stop_container(id, Some(stop)))
            .await;
        let remove = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        if let Err(e) = self
            .call(
                "remove container",
                self.docker.remove_container(id, Some(remove)),
            )
            .await
        {
            tracing::warn!(container = id, error = %e, "cannot remove container");
        }
    }

    /// A free host port: unused by our containers and bindable now.
    fn free_port(&self, used: &BTreeSet<u16>) -> Result<u16> {
        let (start, end) = (*self.config.ports.start(), *self.config.ports.end());
        let mut last = lock(&self.last_port);
        let from = last
            .filter(|p| (start..end).contains(p))
            .map_or(start, |p| p + 1);
        let port = (from..=end)
            .chain(start..from)
            .find(|p| {
                !used.contains(p)
                    && std::net::TcpListener::bind((self.config.address.as_str(), *p)).is_ok()
            })
            .ok_or_else(|| unavailable(&self.config, "no free host port left for a container"))?;
        *last = Some(port);
        Ok(port)
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
            let mut ports = Map::new();
            for name in spec.breed.ports.keys() {
                let port = self.free_port(used).map_err(|e| e.to_string())?;
                used.insert(port);
                ports.insert(name.clone(), port);
            }
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
            self.call("start container", self.docker.start_container(&id, None))
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
        ports: &Map<u16>,
    ) -> std::result::Result<String, String> {
        let mut env: Vec<String> = spec
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (i, (name, port)) in ports.iter().enumerate() {
            let upper: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            env.push(format!("PORT{i}={port}"));
            env.push(format!("PORT_{upper}={port}"));
        }
        if let Some(first) = ports.values().next() {
            env.push(format!("PORT={first}"));
        }
        let checks: Vec<Check> = spec.health_checks.iter().map(Check::from).collect();
        let mut labels = HashMap::from([
            (LABEL.to_owned(), ROLE.to_owned()),
            (format!("{LABEL}.namespace"), self.config.namespace.clone()),
            (format!("{LABEL}.deployment"), spec.key.deployment.clone()),
            (format!("{LABEL}.cluster"), spec.key.cluster.clone()),
            (format!("{LABEL}.service"), spec.key.service.clone()),
            (format!("{LABEL}.instance"), index.to_string()),
            (
                format!("{LABEL}.ports"),
                serde_json::to_string(ports).unwrap_or_default(),
            ),
            (format!("{LABEL}.fingerprint"), spec.fingerprint()),
            (
                format!("{LABEL}.health-checks"),
                serde_json::to_string(&checks).unwrap_or_default(),
            ),
            (
                format!("{LABEL}.scale"),
                serde_json::to_string(&spec.scale).unwrap_or_default(),
            ),
        ]);
        let dialect = spec.dialect.as_ref();
        if let Some(extra) = dialect
            .and_then(|d| d.get("labels"))
            .and_then(|l| l.as_object())
        {
            for (k, v) in extra {
                labels.insert(
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                );
            }
        }
        let cmd = match dialect.and_then(|d| d.get("cmd")) {
            Some(serde_json::Value::String(s)) => {
                Some(crate::command::split(s).map_err(|e| e.to_string())?)
            }
            Some(serde_json::Value::Array(a)) => Some(
                a.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect(),
            ),
            _ => None,
        };
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
            .call(
                "create container",
                self.docker
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
            .call(
                "inspect container",
                self.docker
                    .inspect_container(&c.id, None::<InspectContainerOptions>),
            )
            .await
            .ok()?;
        let state = inspect.state?;
        let parse =
            |t: Option<String>| t.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
        let (started, finished) = (parse(state.started_at)?, parse(state.finished_at)?);
        let lived = (finished - started).to_std().unwrap_or_default();
        if lived > self.config.startup_window {
            return None;
        }
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "5".into(),
            ..LogsOptions::default()
        };
        let lines: Vec<String> = self
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

#[async_trait]
impl ContainerDriver for DockerDriver {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn supports(&self, deployable_type: &str) -> bool {
        matches!(deployable_type, "container/docker" | "docker")
    }

    async fn deploy(&self, spec: &ServiceSpec) -> Result<()> {
        let kind = &spec.breed.deployable.kind;
        if !self.supports(kind) {
            return Err(Error::Invalid {
                what: "deployable",
                message: format!(
                    "the docker driver runs 'container/docker' deployables, not '{kind}'"
                ),
            });
        }
        let _writes = self.writes.lock().await;
        lock(&self.failures).remove(&spec.key);
        let fingerprint = spec.fingerprint();
        let mut keep = Vec::new();
        for c in self.containers(Some(&spec.key)).await? {
            if c.running && c.fingerprint == fingerprint {
                keep.push(c);
            } else {
                self.remove(&c.id).await;
            }
        }
        keep.sort_by_key(|c| c.index);
        let wanted = usize::try_from(spec.scale.instances).unwrap_or(usize::MAX);
        while keep.len() > wanted {
            if let Some(c) = keep.pop() {
                self.remove(&c.id).await;
            }
        }
        let mut used: BTreeSet<u16> = self
            .containers(None)
            .await?
            .iter()
            .flat_map(|c| c.ports.values().copied())
            .collect();
        let mut index = 0;
        let mut count = keep.len();
        while count < wanted {
            while keep.iter().any(|c| c.index == index) {
                index += 1;
            }
            if let Err(reason) = self.start(spec, index, &mut used).await {
                tracing::warn!(service = %spec.key, %reason, "cannot start container");
                lock(&self.failures).insert(spec.key.clone(), (fingerprint.clone(), reason));
                break;
            }
            index += 1;
            count += 1;
        }
        Ok(())
    }

    async fn undeploy(&self, key: &ServiceKey) -> Result<()> {
        let _writes = self.writes.lock().await;
        lock(&self.failures).remove(key);
        for c in self.containers(Some(key)).await? {
            self.remove(&c.id).await;
        }
        Ok(())
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        let mut grouped: Vec<(ServiceKey, Vec<Container>)> = Vec::new();
        for c in self.containers(None).await? {
            match grouped.iter_mut().find(|(k, _)| *k == c.key) {
                Some((_, list)) => list.push(c),
                None => grouped.push((c.key.clone(), vec![c])),
            }
        }
        let mut out = Vec::new();
        for (key, containers) in grouped {
            let mut failure = lock(&self.failures)
                .get(&key)
                .map(|(_, reason)| reason.clone());
            for c in containers.iter().filter(|c| !c.running) {
                if failure.is_none() {
                    failure = self.early_exit(c).await;
                }
            }
            let running: Vec<&Container> = containers.iter().filter(|c| c.running).collect();
            let address = self.config.address.clone();
            let healthy = futures::future::join_all(
                running
                    .iter()
                    .map(|c| all_pass(&c.checks, &address, &c.ports, self.config.health_timeout)),
            )
            .await
            .into_iter()
            .filter(|h| *h)
            .count();
            let n = u32::try_from(running.len()).unwrap_or(u32::MAX);
            let healthy = u32::try_from(healthy).unwrap_or(u32::MAX);
            out.push(ServiceState {
                instances: running
                    .iter()
                    .map(|c| Instance {
                        name: c.id.chars().take(12).collect(),
                        host: address.clone(),
                        ports: c.ports.clone(),
                        deployed: true,
                    })
                    .collect(),
                fingerprint: containers.first().map(|c| c.fingerprint.clone()),
                health: Some(ServiceHealth {
                    staged: 0,
                    running: n,
                    healthy,
                    unhealthy: n - healthy,
                }),
                failure,
                key: Some(key),
            });
        }
        // Services whose containers could not even be created.
        for (key, (fingerprint, reason)) in lock(&self.failures).iter() {
            if !out.iter().any(|s| s.key.as_ref() == Some(key)) {
                out.push(ServiceState {
                    key: Some(key.clone()),
                    fingerprint: Some(fingerprint.clone()),
                    failure: Some(reason.clone()),
                    ..ServiceState::default()
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
