//! What the Docker and Swarm drivers share: the client, timeouts, host-port allocation, how
//! an instance is described to the daemon (environment, labels, command) and read back, and
//! containers removed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex as StdMutex;

use bollard::Docker;
use bollard::query_parameters::{RemoveContainerOptions, StopContainerOptions};
use tokio::sync::Mutex;
use vamp_core::model::Map;
use vamp_core::traits::{ServiceKey, ServiceSpec, ServiceState};
use vamp_core::{Error, Result};

use super::DockerConfig;
use crate::health::Check;

/// The label namespace of spec §6.1.
pub(crate) const LABEL: &str = "io.vamp";
/// The value of [`LABEL`] on a deployment service's containers (spec §6.4).
pub(crate) const ROLE: &str = "deployment-service";

/// The deployables both drivers run: `container/docker` (and `docker`).
pub(crate) fn supports(deployable_type: &str) -> bool {
    matches!(deployable_type, "container/docker" | "docker")
}

/// Refuses a spec whose deployable the `backend` driver cannot run.
pub(crate) fn check_deployable(backend: &str, spec: &ServiceSpec) -> Result<()> {
    let kind = &spec.breed.deployable.kind;
    if supports(kind) {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "deployable",
            message: format!(
                "the {backend} driver runs 'container/docker' deployables, not '{kind}'"
            ),
        })
    }
}

pub(crate) fn unavailable(
    backend: &'static str,
    address: &str,
    e: impl std::fmt::Display,
) -> Error {
    Error::Unavailable {
        backend,
        address: address.to_owned(),
        message: e.to_string(),
        cause: None,
    }
}

pub(crate) fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a Docker or Swarm driver holds: the client, its settings, the write lock, the failures
/// with nothing to carry them and the host-port pool. The drivers deref to it.
#[derive(Debug)]
pub(crate) struct Daemon {
    backend: &'static str,
    pub(crate) docker: Docker,
    pub(crate) config: DockerConfig,
    /// Serializes deploy/undeploy, so port allocation and scaling do not race.
    pub(crate) writes: Mutex<()>,
    /// Failures with no container or service to carry them (the image does not exist, the
    /// swarm refused the spec), with the fingerprint of the spec that failed.
    pub(crate) failures: StdMutex<HashMap<ServiceKey, (String, String)>>,
    pub(crate) ports: PortPool,
}

impl Daemon {
    /// Stops a container (within the configured grace) and removes it with its volumes;
    /// a failure is logged, not returned: the caller has nothing better to do.
    pub(crate) async fn remove_container(&self, id: &str) {
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

    /// Connects to the daemon at `config.host` and negotiates the API version.
    pub(crate) async fn connect(backend: &'static str, config: DockerConfig) -> Result<Self> {
        Ok(Daemon {
            backend,
            docker: connect(backend, &config).await?,
            config,
            writes: Mutex::new(()),
            failures: StdMutex::new(HashMap::new()),
            ports: PortPool::default(),
        })
    }

    /// One API call under the configured timeout; errors name the call.
    pub(crate) async fn call<T>(
        &self,
        what: &'static str,
        f: impl std::future::Future<Output = std::result::Result<T, bollard::errors::Error>>,
    ) -> Result<T> {
        call(self.backend, &self.config, what, f).await
    }

    /// Takes the write lock for a change to the service `key` and forgets its recorded failure.
    pub(crate) async fn write(&self, key: &ServiceKey) -> tokio::sync::MutexGuard<'_, ()> {
        let guard = self.writes.lock().await;
        lock(&self.failures).remove(key);
        guard
    }

    /// Host ports for one instance of `spec`, none of them in `used` (which gains them).
    pub(crate) fn take_ports(
        &self,
        spec: &ServiceSpec,
        used: &mut BTreeSet<u16>,
    ) -> std::result::Result<Map<u16>, String> {
        self.ports
            .take_for(self.backend, &self.config, spec, used)
            .map_err(|e| e.to_string())
    }

    /// Adds the services whose recorded failure has nothing listed to carry it (the image
    /// does not exist, the swarm refused the spec) to `states`.
    pub(crate) fn add_failures(&self, states: &mut Vec<ServiceState>) {
        for (key, (fingerprint, reason)) in lock(&self.failures).iter() {
            if !states.iter().any(|s| s.key.as_ref() == Some(key)) {
                states.push(ServiceState {
                    key: Some(key.clone()),
                    fingerprint: Some(fingerprint.clone()),
                    failure: Some(reason.clone()),
                    ..ServiceState::default()
                });
            }
        }
    }

    /// Records why `spec` (with this `fingerprint`) could not start an instance.
    pub(crate) fn failed(&self, spec: &ServiceSpec, fingerprint: &str, reason: String) {
        tracing::warn!(backend = self.backend, service = %spec.key, %reason, "cannot start an instance");
        lock(&self.failures).insert(spec.key.clone(), (fingerprint.to_owned(), reason));
    }
}

/// The instance indexes to start so that `wanted` run beside the `kept` ones: the lowest
/// indexes the kept ones do not hold.
pub(crate) fn free_indexes(kept: &[u32], wanted: usize) -> Vec<u32> {
    let missing = wanted.saturating_sub(kept.len());
    (0..=u32::MAX)
        .filter(|i| !kept.contains(i))
        .take(missing)
        .collect()
}

/// Connects to the daemon at `config.host` and negotiates the API version.
pub(crate) async fn connect(backend: &'static str, config: &DockerConfig) -> Result<Docker> {
    let timeout = config.timeout.as_secs().max(1);
    let docker = if config.host.starts_with("tcp://") || config.host.starts_with("http://") {
        let url = config.host.replacen("tcp://", "http://", 1);
        Docker::connect_with_http(&url, timeout, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_unix(&config.host, timeout, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|e| unavailable(backend, &config.host, e))?;
    tokio::time::timeout(config.timeout, docker.negotiate_version())
        .await
        .map_err(|_| {
            unavailable(
                backend,
                &config.host,
                "no answer while negotiating the API version",
            )
        })?
        .map_err(|e| unavailable(backend, &config.host, e))
}

/// One API call under the configured timeout; errors name the call.
pub(crate) async fn call<T>(
    backend: &'static str,
    config: &DockerConfig,
    what: &'static str,
    f: impl std::future::Future<Output = std::result::Result<T, bollard::errors::Error>>,
) -> Result<T> {
    match tokio::time::timeout(config.timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Backend {
            backend,
            message: format!("{what}: {e}"),
            cause: Some(Box::new(e)),
        }),
        Err(_) => Err(Error::Timeout {
            backend,
            address: config.host.clone(),
            operation: what,
            timeout: config.timeout,
        }),
    }
}

/// Host ports for instances on host networking: from the configured range, not used by an
/// instance of ours, and bindable now. The search goes on from the last port handed out, so a
/// port just given back is not handed out again at once.
#[derive(Debug, Default)]
pub(crate) struct PortPool {
    last: StdMutex<Option<u16>>,
}

impl PortPool {
    pub(crate) fn take(
        &self,
        backend: &'static str,
        config: &DockerConfig,
        used: &BTreeSet<u16>,
    ) -> Result<u16> {
        let (start, end) = (*config.ports.start(), *config.ports.end());
        let mut last = lock(&self.last);
        let from = last
            .filter(|p| (start..end).contains(p))
            .map_or(start, |p| p + 1);
        let port = (from..=end)
            .chain(start..from)
            .find(|p| {
                !used.contains(p)
                    && std::net::TcpListener::bind((config.address.as_str(), *p)).is_ok()
            })
            .ok_or_else(|| unavailable(backend, &config.host, "no free host port left"))?;
        *last = Some(port);
        Ok(port)
    }

    /// One port per breed port of `spec`, each added to `used`.
    pub(crate) fn take_for(
        &self,
        backend: &'static str,
        config: &DockerConfig,
        spec: &ServiceSpec,
        used: &mut BTreeSet<u16>,
    ) -> Result<Map<u16>> {
        let mut ports = Map::new();
        for name in spec.breed.ports.keys() {
            let port = self.take(backend, config, used)?;
            used.insert(port);
            ports.insert(name.clone(), port);
        }
        Ok(ports)
    }
}

/// The instance's environment: the service's variables, then `PORT`, `PORT0…N` and
/// `PORT_<NAME>` for its ports (as the process driver sets them).
pub(crate) fn environment(spec: &ServiceSpec, ports: &Map<u16>) -> Vec<String> {
    let mut env: Vec<String> = spec
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.extend(
        crate::command::port_variables(ports)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}")),
    );
    env
}

/// The labels that let a restarted driver find an instance again from the daemon alone
/// (spec §6.4), plus the `labels` of the `docker` dialect.
pub(crate) fn labels(
    namespace: &str,
    spec: &ServiceSpec,
    index: u32,
    ports: &Map<u16>,
) -> HashMap<String, String> {
    let checks: Vec<Check> = spec.health_checks.iter().map(Check::from).collect();
    let mut labels = HashMap::from([
        (LABEL.to_owned(), ROLE.to_owned()),
        (format!("{LABEL}.namespace"), namespace.to_owned()),
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
    if let Some(extra) = spec
        .dialect
        .as_ref()
        .and_then(|d| d.get("labels"))
        .and_then(|l| l.as_object())
    {
        for (k, v) in extra {
            // Our own labels are how the driver finds its instances: the dialect cannot
            // replace them.
            if k == LABEL || k.starts_with(&format!("{LABEL}.")) {
                continue;
            }
            labels.insert(
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            );
        }
    }
    labels
}

/// The `cmd` of the `docker` dialect: a string (split without a shell) or a list.
pub(crate) fn command(spec: &ServiceSpec) -> std::result::Result<Option<Vec<String>>, String> {
    match spec.dialect.as_ref().and_then(|d| d.get("cmd")) {
        Some(serde_json::Value::String(s)) => {
            Ok(Some(crate::command::split(s).map_err(|e| e.to_string())?))
        }
        Some(serde_json::Value::Array(a)) => Ok(Some(
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect(),
        )),
        _ => Ok(None),
    }
}

/// The label filters that select the instances of `namespace`, or of one service in it.
pub(crate) fn filters(namespace: &str, key: Option<&ServiceKey>) -> HashMap<String, Vec<String>> {
    let mut filters = vec![
        format!("{LABEL}={ROLE}"),
        format!("{LABEL}.namespace={namespace}"),
    ];
    if let Some(k) = key {
        filters.push(format!("{LABEL}.deployment={}", k.deployment));
        filters.push(format!("{LABEL}.cluster={}", k.cluster));
        filters.push(format!("{LABEL}.service={}", k.service));
    }
    HashMap::from([("label".to_owned(), filters)])
}

/// One instance of ours, as its labels describe it.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    pub(crate) key: ServiceKey,
    pub(crate) index: u32,
    pub(crate) ports: Map<u16>,
    pub(crate) fingerprint: String,
    pub(crate) checks: Vec<Check>,
}

impl Described {
    /// Reads the labels [`labels`] wrote; `None` for anything else.
    pub(crate) fn read(labels: &HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| labels.get(&format!("{LABEL}.{k}")).cloned();
        Some(Described {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::free_indexes;

    #[test]
    fn new_instances_take_the_lowest_indexes_the_kept_ones_do_not_hold() {
        assert_eq!(free_indexes(&[], 3), vec![0, 1, 2]);
        assert_eq!(free_indexes(&[0, 2], 4), vec![1, 3]);
        assert_eq!(free_indexes(&[1], 1), Vec::<u32>::new());
        assert_eq!(free_indexes(&[0, 1, 2], 2), Vec::<u32>::new(), "over: none");
    }
}
