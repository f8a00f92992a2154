//! [`KubernetesDriver`]: services as Deployments on Kubernetes (issue 25, spec §6.3), through
//! kube-rs (feature `kubernetes`).
//!
//! **Tested against a fake**: no API server runs on the build machine, so this driver is
//! checked against [`FakeKubernetes`](crate::fakes::kubernetes::FakeKubernetes) (the
//! conformance kit, with its kubelet running the demo service as local processes), not yet
//! against a real cluster. docs/kubernetes.md says what the fake covers.
//!
//! - `deploy` applies the service's Deployment (spec §6.3, see docs/kubernetes.md) by **server-side apply** with the
//!   field manager `vamp` (forced: the driver owns what it applies); a second apply of the same
//!   spec changes nothing, not even the `resourceVersion`.
//! - `undeploy` deletes the Deployment (its pods go with it).
//! - `services` answers from two **watches** (kube-rs reflectors on Deployments and Pods
//!   labelled `app.kubernetes.io/managed-by=vamp`), not from polls; a watch that gets 410 Gone
//!   lists again (kube-rs's watcher). Each Deployment's annotations say which service it is,
//!   so a restarted server finds (adopts) what it made without re-creating it. An instance is a
//!   pod: its name, its pod IP, the breed's ports, deployed when `Ready`; while pods of an
//!   older template remain, the service reports that older spec's fingerprint. A pod that is not
//!   ready after [`KubernetesConfig::ready_timeout`] while its container waits for a reason
//!   (`ImagePullBackOff`, `CrashLoopBackOff`, …) fails the service with that reason.
//!
//! - `publish_gateways` gives each gateway a Service (spec §6.3: `NodePort` by default,
//!   selecting the gateway agents' pods on the gateway's port, labelled `io.vamp=gateway`) and
//!   answers its cluster IP; Services of gateways that went are deleted. A Service is updated
//!   by read-modify-write: a replace refused with 409 (another client changed it meanwhile) is
//!   retried with the fresh object.
//!
//! - `run_once` (a container workflow's run) is a Job of one pod, followed by a watch, its log
//!   streamed as it is written (both output streams as one: the log API does not keep them
//!   apart), deleted when the run ended or its timeout passed (see `run.rs`).

pub(crate) mod manifest;
mod run;

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use vamp_core::model::{Instance, Map, ServiceHealth};
use vamp_core::traits::{
    ContainerDriver, GatewayEndpoint, LineSink, RunOutcome, RunSpec, ServiceKey, ServiceSpec,
    ServiceState,
};
use vamp_core::{Error, Result};

const BACKEND: &str = "kubernetes";

/// Container reasons that keep a pod from ever becoming ready without a change of spec.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Settings of a [`KubernetesDriver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The namespace the driver's objects live in (spec §6.3: Vamp's namespace).
    pub namespace: String,
    /// The server-side apply field manager.
    pub field_manager: String,
    /// How long a pod may stay unready, its container waiting for a reason, before the service
    /// fails with that reason.
    pub ready_timeout: Duration,
    /// The containers' `imagePullPolicy`, when set (the cluster's default otherwise).
    pub image_pull_policy: Option<String>,
    /// Whether each gateway gets a Service (spec §6.3 `create-services`, default true).
    pub create_services: bool,
    /// The gateways' Services' type: `NodePort` (the default) or `LoadBalancer`.
    pub service_type: String,
    /// The label value `io.vamp=<id>` of the gateway agents' pods, which the gateways'
    /// Services select (default `vamp-gateway-agent`).
    pub gateway_agent_id: String,
    /// A kubeconfig file to use (its current context) instead of kube-rs's resolution.
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl KubernetesConfig {
    /// Defaults for `namespace`: field manager `vamp`, ready timeout 5 minutes.
    ///
    /// ```
    /// let config = vamp_drivers::kubernetes::KubernetesConfig::new("vamp");
    /// assert_eq!(config.field_manager, "vamp");
    /// ```
    pub fn new(namespace: impl Into<String>) -> KubernetesConfig {
        KubernetesConfig {
            namespace: namespace.into(),
            field_manager: "vamp".into(),
            ready_timeout: Duration::from_secs(300),
            image_pull_policy: None,
            create_services: true,
            service_type: "NodePort".into(),
            gateway_agent_id: "vamp-gateway-agent".into(),
            kubeconfig: None,
        }
    }
}

/// Runs `container/docker` services as Deployments on Kubernetes.
///
/// ```no_run
/// # async fn demo() -> vamp_core::Result<()> {
/// use vamp_drivers::kubernetes::{KubernetesConfig, KubernetesDriver};
/// // kubeconfig, or the pod's service account in a cluster (kube-rs's resolution).
/// let driver = KubernetesDriver::connect(KubernetesConfig::new("vamp")).await?;
/// # Ok(()) }
/// ```
pub struct KubernetesDriver {
    client: kube::Client,
    config: KubernetesConfig,
    deployments: Store<Deployment>,
    pods: Store<Pod>,
    /// The reflectors' tasks, stopped with the driver.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// When each pod (by uid) was first seen unready with a stuck container.
    stuck_since: StdMutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for KubernetesDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for KubernetesDriver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        address: "the Kubernetes API".into(),
        message: e.to_string(),
        cause: None,
    }
}

/// A kube-rs error as this crate's: API refusals are `Invalid` with the server's message,
/// the rest unavailability.
fn failed(what: &'static str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => Error::Invalid {
            what,
            message: format!(
                "the Kubernetes API refused it ({}): {}",
                status.code, status.message
            ),
        },
        other => unavailable(other),
    }
}

impl KubernetesDriver {
    /// Connects with [`KubernetesConfig::kubeconfig`] when set, else kube-rs's standard
    /// resolution (`KUBECONFIG` or `~/.kube/config`, else the in-cluster service account), and
    /// starts watching.
    ///
    /// # Errors
    /// `Invalid` for a kubeconfig file that does not read; `Unavailable` when no
    /// configuration is found or the API cannot be reached.
    pub async fn connect(config: KubernetesConfig) -> Result<KubernetesDriver> {
        let client = match &config.kubeconfig {
            Some(path) => {
                let file =
                    kube::config::Kubeconfig::read_from(path).map_err(|e| Error::Invalid {
                        what: "kubeconfig",
                        message: format!("{}: {e}", path.display()),
                    })?;
                let options = kube::config::KubeConfigOptions::default();
                let resolved = kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| Error::Invalid {
                        what: "kubeconfig",
                        message: format!("{}: {e}", path.display()),
                    })?;
                kube::Client::try_from(resolved).map_err(unavailable)?
            }
            None => kube::Client::try_default().await.map_err(unavailable)?,
        };
        KubernetesDriver::with_client(client, config).await
    }

    /// Uses `client` and starts watching the namespace's Deployments and Pods.
    ///
    /// # Errors
    /// None today; kept fallible for checks a real cluster may need.
    pub async fn with_client(
        client: kube::Client,
        config: KubernetesConfig,
    ) -> Result<KubernetesDriver> {
        let selector = format!("{}={}", manifest::MANAGED_BY.0, manifest::MANAGED_BY.1);
        let watch = watcher::Config::default().labels(&selector);
        let (deployments, d_writer) = reflector::store();
        let (pods, p_writer) = reflector::store();
        let d_api: Api<Deployment> = Api::namespaced(client.clone(), &config.namespace);
        let p_api: Api<Pod> = Api::namespaced(client.clone(), &config.namespace);
        let d_stream =
            reflector::reflector(d_writer, watcher(d_api, watch.clone()).default_backoff());
        let p_stream = reflector::reflector(p_writer, watcher(p_api, watch).default_backoff());
        let tasks = vec![
            tokio::spawn(d_stream.for_each(|e| async move {
                if let Err(e) = e {
                    tracing::debug!(error = %e, "watching deployments (retried)");
                }
            })),
            tokio::spawn(p_stream.for_each(|e| async move {
                if let Err(e) = e {
                    tracing::debug!(error = %e, "watching pods (retried)");
                }
            })),
        ];
        Ok(KubernetesDriver {
            client,
            config,
            deployments,
            pods,
            tasks,
            stuck_since: StdMutex::default(),
        })
    }

    fn api(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    /// Waits (bounded) for both watches to have listed once.
    async fn synced(&self) -> Result<()> {
        let both = async {
            self.deployments.wait_until_ready().await.ok();
            self.pods.wait_until_ready().await.ok();
        };
        tokio::time::timeout(Duration::from_secs(30), both)
            .await
            .map_err(|_| {
                unavailable("the watches of deployments and pods did not list within 30 s")
            })
    }

    /// The state of one Deployment's service, from the watched objects.
    fn state_of(&self, d: &Deployment, pods: &[std::sync::Arc<Pod>]) -> Option<ServiceState> {
        let annotations = d.metadata.annotations.as_ref()?;
        let key = ServiceKey {
            deployment: annotations.get(manifest::DEPLOYMENT)?.clone(),
            cluster: annotations.get(manifest::CLUSTER)?.clone(),
            service: annotations.get(manifest::SERVICE)?.clone(),
        };
        let name = d.metadata.name.as_deref()?;
        let ports: Map<u16> = annotations
            .get(manifest::PORTS)
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        let fingerprint = annotations.get(manifest::FINGERPRINT).cloned();
        let mine: Vec<&Pod> = pods
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(manifest::ID))
                        .is_some_and(|id| id == name)
            })
            .collect();
        let mut health = ServiceHealth::default();
        let mut instances = Vec::new();
        let mut failure = None;
        for pod in &mine {
            let status = pod.status.as_ref();
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            match (phase, ready) {
                ("Running", true) => {
                    health.running += 1;
                    health.healthy += 1;
                }
                ("Running", false) => {
                    health.running += 1;
                    health.unhealthy += 1;
                }
                _ => health.staged += 1,
            }
            instances.push(Instance {
                name: pod.metadata.name.clone().unwrap_or_default(),
                host: status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
                ports: ports.clone(),
                deployed: ready,
            });
            if !ready && failure.is_none() {
                failure = self.stuck(pod);
            }
        }
        // While pods of an older template remain (a rollout in progress, or the pods' watch
        // behind the Deployments'), the service runs that older spec: say so, so nobody
        // takes it for converged on the new one.
        let older = mine
            .iter()
            .filter_map(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(manifest::FINGERPRINT))
            })
            .find(|f| Some(*f) != fingerprint.as_ref())
            .cloned();
        Some(ServiceState {
            key: Some(key),
            instances,
            health: Some(health),
            fingerprint: older.or(fingerprint),
            failure,
        })
    }

    /// Why a pod will not become ready, once it has waited longer than the ready timeout.
    fn stuck(&self, pod: &Pod) -> Option<String> {
        let uid = pod.metadata.uid.clone()?;
        let waiting = pod
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find_map(|c| c.state.as_ref()?.waiting.clone())
            .filter(|w| w.reason.as_deref().is_some_and(|r| STUCK.contains(&r)))?;
        let since = *self
            .stuck_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(uid)
            .or_insert_with(Instant::now);
        (since.elapsed() >= self.config.ready_timeout).then(|| {
            format!(
                "pod {} not ready after {} s: {}{}",
                pod.metadata.name.as_deref().unwrap_or("?"),
                self.config.ready_timeout.as_secs(),
                waiting.reason.unwrap_or_default(),
                waiting
                    .message
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            )
        })
    }
}

/// How many times a Service update is tried against concurrent writers.
const ATTEMPTS: usize = 5;

impl KubernetesDriver {
    /// Makes the Service of one gateway what it should be; answers where it is reachable.
    async fn publish_one(
        &self,
        api: &Api<Service>,
        gateway: &GatewayEndpoint,
    ) -> Result<GatewayEndpoint> {
        let desired = manifest::gateway_service(
            gateway,
            &self.config.service_type,
            &self.config.gateway_agent_id,
        );
        let name = manifest::gateway_service_name(&gateway.name);
        let reachable = |s: &Service| GatewayEndpoint {
            name: gateway.name.clone(),
            host: s
                .spec
                .as_ref()
                .and_then(|spec| spec.cluster_ip.clone())
                .filter(|ip| !ip.is_empty() && ip != "None")
                .unwrap_or_else(|| format!("{name}.{}.svc", self.config.namespace)),
            port: gateway.port,
        };
        let unreadable = |e: serde_json::Error| Error::Invalid {
            what: "gateway service",
            message: e.to_string(),
        };
        for _ in 0..ATTEMPTS {
            let current = api
                .get_opt(&name)
                .await
                .map_err(|e| failed("gateway service", e))?;
            let Some(current) = current else {
                let made: Service = serde_json::from_value(desired.clone()).map_err(unreadable)?;
                match api.create(&PostParams::default(), &made).await {
                    Ok(s) => return Ok(reachable(&s)),
                    // Made meanwhile by another server: read it and go on.
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => return Err(failed("gateway service", e)),
                }
            };
            let mut next = serde_json::to_value(&current).map_err(unreadable)?;
            manifest::update_gateway_service(&mut next, &desired);
            let next: Service = serde_json::from_value(next).map_err(unreadable)?;
            if next == current {
                return Ok(reachable(&current));
            }
            match api.replace(&name, &PostParams::default(), &next).await {
                Ok(s) => return Ok(reachable(&s)),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tracing::debug!(service = %name, "changed meanwhile; trying again with the fresh object");
                }
                Err(e) => return Err(failed("gateway service", e)),
            }
        }
        Err(Error::Invalid {
            what: "gateway service",
            message: format!("the Service {name} changed under every one of {ATTEMPTS} updates"),
        })
    }
}

#[async_trait]
impl ContainerDriver for KubernetesDriver {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// spec §6.3: `container/docker` (`docker` as its short form).
    fn supports(&self, deployable_type: &str) -> bool {
        matches!(deployable_type, "container/docker" | "docker")
    }

    async fn deploy(&self, spec: &ServiceSpec) -> Result<()> {
        let kind = &spec.breed.deployable.kind;
        if !self.supports(kind) {
            return Err(Error::Invalid {
                what: "deployable",
                message: format!(
                    "the kubernetes driver runs 'container/docker' deployables, not '{kind}'"
                ),
            });
        }
        let manifest = manifest::deployment(
            spec,
            &self.config.namespace,
            self.config.image_pull_policy.as_deref(),
        );
        let name = manifest::name(&spec.key);
        self.api()
            .patch(
                &name,
                &PatchParams::apply(&self.config.field_manager).force(),
                &Patch::Apply(&manifest),
            )
            .await
            .map_err(|e| failed("deployment", e))?;
        Ok(())
    }

    async fn undeploy(&self, key: &ServiceKey) -> Result<()> {
        match self
            .api()
            .delete(&manifest::name(key), &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(failed("deployment", e)),
        }
    }

    async fn publish_gateways(&self, gateways: &[GatewayEndpoint]) -> Result<Vec<GatewayEndpoint>> {
        if !self.config.create_services {
            return Ok(gateways.to_vec());
        }
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let mut out = Vec::with_capacity(gateways.len());
        for g in gateways {
            out.push(self.publish_one(&api, g).await?);
        }
        let wanted: std::collections::BTreeSet<String> = gateways
            .iter()
            .map(|g| manifest::gateway_service_name(&g.name))
            .collect();
        let existing = api
            .list(&ListParams::default().labels(&format!(
                "io.vamp=gateway,{}={}",
                manifest::MANAGED_BY.0,
                manifest::MANAGED_BY.1
            )))
            .await
            .map_err(|e| failed("gateway service", e))?;
        for s in existing.items {
            let Some(name) = s.metadata.name else {
                continue;
            };
            if !wanted.contains(&name) {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(failed("gateway service", e)),
                }
            }
        }
        Ok(out)
    }

    async fn run_once(&self, spec: &RunSpec, lines: LineSink<'_>) -> Result<RunOutcome> {
        self.run(spec, lines).await
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        self.synced().await?;
        let pods = self.pods.state();
        Ok(self
            .deployments
            .state()
            .iter()
            .filter_map(|d| self.state_of(d, &pods))
            .collect())
    }
}

#[cfg(all(test, feature = "fakes"))]
mod tests;
