//! Opening the backends a [`ServerConfig`] names: the key-value store, the persistence, the
//! container driver and the router (ARCHITECTURE, "The four traits"). Backends beyond the
//! embedded defaults are cargo features of `vamp-server`; [`ServerConfig::load`] already
//! refuses a kind this build lacks, so the fallbacks here only guard against a hand-made
//! configuration.

use std::net::IpAddr;
use std::sync::Arc;

use vamp_core::traits::{ContainerDriver, KeyValueStore, Persistence, Router};

use crate::StartError;
use crate::config::{ConfigError, ServerConfig, port_range};

/// A backend that could not be opened.
fn failed(what: &'static str) -> impl Fn(vamp_core::Error) -> StartError {
    move |source| StartError::Backend { what, source }
}

/// A configuration value that cannot be used.
fn bad(message: String) -> StartError {
    StartError::Config(ConfigError::Invalid {
        origin: "configuration".into(),
        message,
    })
}

/// A kind this build does not have.
fn not_built(key: &str, kind: &str) -> StartError {
    bad(format!(
        "{key} = '{kind}' is not in this build of vamp-server"
    ))
}

/// The `[key_value]` store, through the same [`vamp_drivers::connect::key_value`] the gateway
/// agent uses.
pub(crate) async fn key_value(config: &ServerConfig) -> Result<Arc<dyn KeyValueStore>, StartError> {
    let backend = config.key_value.backend().map_err(bad)?;
    vamp_drivers::connect::key_value(&backend)
        .await
        .map_err(|e| bad(format!("key_value: {e}")))
}

/// The `[persistence]`; `kv` is the `[key_value]` store, for `key-value`.
pub(crate) async fn persistence(
    config: &ServerConfig,
    kv: &Arc<dyn KeyValueStore>,
) -> Result<Arc<dyn Persistence>, StartError> {
    #[cfg(any(feature = "postgres", feature = "elasticsearch"))]
    let url = config.persistence.url.clone().unwrap_or_default();
    let persistence: Arc<dyn Persistence> = match config.persistence.kind.as_str() {
        "memory" => Arc::new(vamp_core::memory::MemoryPersistence::default()),
        "sqlite" => Arc::new(
            vamp_drivers::sqlite::SqlitePersistence::open(config.sqlite_path())
                .await
                .map_err(failed("persistence (sqlite)"))?,
        ),
        "key-value" => Arc::new(vamp_drivers::kv::KvPersistence::new(
            kv.clone(),
            config.key_value.root.clone(),
        )),
        #[cfg(feature = "postgres")]
        "postgres" => Arc::new(
            vamp_drivers::postgres::PostgresPersistence::connect(&url)
                .await
                .map_err(failed("persistence (postgres)"))?,
        ),
        #[cfg(feature = "elasticsearch")]
        "elasticsearch" => {
            use vamp_drivers::elasticsearch::{ElasticsearchConfig, ElasticsearchPersistence};
            let mut es = ElasticsearchConfig::new(url);
            if let Some(c) = &config.persistence.credentials {
                es.credentials =
                    Some(crate::config::user_password(c, "elasticsearch").map_err(bad)?);
            }
            Arc::new(
                ElasticsearchPersistence::connect(es)
                    .await
                    .map_err(failed("persistence (elasticsearch)"))?,
            )
        }
        other => return Err(not_built("persistence.kind", other)),
    };
    Ok(persistence)
}

/// The `[election]` and this server as its candidate; `none` always leads. Each election
/// has a connection of its own to the store the servers share.
pub(crate) async fn election(
    config: &ServerConfig,
) -> Result<
    (
        Arc<dyn vamp_core::traits::LeaderElection>,
        vamp_core::traits::Candidate,
    ),
    StartError,
> {
    let ttl = std::time::Duration::from_secs(config.election.ttl);
    let election: Arc<dyn vamp_core::traits::LeaderElection> = match config.election.kind.as_str() {
        // One server: it leads, under the name it would have in a cluster.
        "none" => Arc::new(vamp_core::memory::AlwaysLeader),
        #[cfg(feature = "postgres")]
        "postgres" => {
            let url = config.persistence.url.clone().unwrap_or_default();
            let db = vamp_drivers::postgres::PostgresPersistence::connect(&url)
                .await
                .map_err(failed("election (postgres)"))?;
            Arc::new(db.election(config.key_value.root.as_str()))
        }
        "etcd" | "zookeeper" => {
            let backend = config.key_value.backend().map_err(bad)?;
            vamp_drivers::connect::election(&backend, &config.key_value.root, ttl)
                .await
                .map_err(|e| bad(format!("election: {e}")))?
        }
        other => return Err(not_built("election.kind", other)),
    };
    let listen = config.server.listen;
    let candidate = vamp_core::traits::Candidate {
        // Unique per process: a paused server and its replacement must never share a name,
        // or both would take the lease for their own.
        node: config.election.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "vamp".into());
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("{host}-{}-{}", listen.port(), &id[..8])
        }),
        url: config
            .election
            .url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}/api/v1")),
    };
    Ok((election, candidate))
}

/// The Docker daemon (or Swarm manager) settings of the `[driver]`.
#[cfg(any(feature = "docker", feature = "swarm"))]
fn daemon(
    config: &ServerConfig,
    ports: std::ops::RangeInclusive<u16>,
) -> vamp_drivers::docker::DockerConfig {
    vamp_drivers::docker::DockerConfig {
        ports,
        ..vamp_drivers::docker::DockerConfig::new(config.driver.docker_host.clone())
    }
}

/// The `[driver]`.
pub(crate) async fn driver(config: &ServerConfig) -> Result<Arc<dyn ContainerDriver>, StartError> {
    let ports = port_range(&config.driver.ports)
        .map_err(|message| bad(format!("driver.ports: {message}")))?;
    let driver: Arc<dyn ContainerDriver> = match config.driver.kind() {
        "process" => {
            use vamp_drivers::process::{ProcessConfig, ProcessDriver};
            let mut process = ProcessConfig::new(config.server.data_dir.join("process"));
            process.ports = ports;
            // Commands run only where the process driver was chosen (issue 15).
            process.run_commands = config.driver.commands_enabled();
            Arc::new(ProcessDriver::new(process).map_err(failed("driver (process)"))?)
        }
        #[cfg(feature = "docker")]
        "docker" => Arc::new(
            vamp_drivers::docker::DockerDriver::connect(daemon(config, ports))
                .await
                .map_err(failed("driver (docker)"))?,
        ),
        #[cfg(feature = "swarm")]
        "swarm" => Arc::new(
            vamp_drivers::swarm::SwarmDriver::connect(daemon(config, ports))
                .await
                .map_err(failed("driver (swarm)"))?,
        ),
        #[cfg(feature = "kubernetes")]
        "kubernetes" => {
            use vamp_drivers::kubernetes::{KubernetesConfig, KubernetesDriver};
            let d = &config.driver;
            if !matches!(d.service_type.as_str(), "NodePort" | "LoadBalancer") {
                return Err(bad(format!(
                    "driver.service_type = '{}': choose NodePort or LoadBalancer",
                    d.service_type
                )));
            }
            let kubernetes = KubernetesConfig {
                service_type: d.service_type.clone(),
                gateway_agent_id: d.gateway_agent_id.clone(),
                ready_timeout: std::time::Duration::from_secs(d.ready_timeout),
                kubeconfig: d.kubeconfig.clone(),
                ..KubernetesConfig::new(d.namespace.clone())
            };
            Arc::new(
                KubernetesDriver::connect(kubernetes)
                    .await
                    .map_err(failed("driver (kubernetes)"))?,
            )
        }
        other => return Err(not_built("driver.kind", other)),
    };
    Ok(driver)
}

/// The `[router]`; `None` for `none` (gateways are computed, not served).
#[cfg_attr(not(feature = "haproxy"), allow(unused_variables))]
pub(crate) fn router(
    config: &ServerConfig,
    kv: &Arc<dyn KeyValueStore>,
) -> Result<Option<Arc<dyn Router>>, StartError> {
    let host = || -> Result<IpAddr, StartError> {
        config.gateways.host.parse().map_err(|_| {
            bad(format!(
                "gateways.host = '{}' is not an IP address (the router binds it, e.g. 127.0.0.1)",
                config.gateways.host
            ))
        })
    };
    let vhosts = config.gateways.vhost_address().map_err(bad)?;
    let router: Arc<dyn Router> = match config.router.kind.as_str() {
        "none" => return Ok(None),
        "embedded" => {
            let router = vamp_gateway::embedded::EmbeddedRouter::on(host()?).with_limits(
                vamp_gateway::listen::ConnectionLimits {
                    header_timeout: std::time::Duration::from_secs(config.router.header_timeout),
                    idle_timeout: std::time::Duration::from_secs(config.router.idle_timeout),
                    max_connections: config.router.max_connections,
                },
            );
            let router = match config.router.workers {
                0 => router,
                n => router.with_workers(n).map_err(|e| {
                    bad(format!(
                        "router.workers = {n}: cannot start the router's threads: {e}"
                    ))
                })?,
            };
            Arc::new(match vhosts {
                Some(address) => router.with_shared_listener(address),
                None => router,
            })
        }
        #[cfg(feature = "haproxy")]
        "haproxy-kv" => {
            use vamp_gateway::haproxy::kv::KvRouter;
            use vamp_gateway::haproxy::render::RenderOptions;
            let options = RenderOptions {
                bind_host: host().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                virtual_hosts: vhosts,
                ..RenderOptions::default()
            };
            Arc::new(KvRouter::new(
                kv.clone(),
                config.key_value.root.clone(),
                options,
            ))
        }
        #[cfg(feature = "haproxy")]
        "haproxy-local" => {
            use vamp_gateway::haproxy::local::LocalRouter;
            use vamp_gateway::haproxy::render::RenderOptions;
            let options = RenderOptions {
                bind_host: host()?,
                virtual_hosts: vhosts,
                ..RenderOptions::default()
            };
            Arc::new(LocalRouter::new(
                config.router.haproxy.clone(),
                config.server.data_dir.join("haproxy"),
                options,
            ))
        }
        other => return Err(not_built("router.kind", other)),
    };
    Ok(Some(router))
}

/// What runs JavaScript workflows: QuickJS (feature `javascript`, on by default). Without
/// the feature, their runs fail saying so.
pub(crate) fn scripts(builder: vamp_core::VampBuilder) -> vamp_core::VampBuilder {
    #[cfg(feature = "javascript")]
    return builder.scripts(Arc::new(vamp_drivers::javascript::QuickJs));
    #[cfg(not(feature = "javascript"))]
    builder
}

/// Whether this build runs JavaScript workflows.
pub(crate) const SCRIPTS: bool = cfg!(feature = "javascript");

/// What rollouts call outside: the Prometheus and web metric providers and the webhook
/// sender (feature `rollout-calls`, on by default). Without the feature, rollouts with
/// provider checks or webhooks are refused when stored.
#[cfg_attr(not(feature = "rollout-calls"), allow(clippy::unnecessary_wraps))]
pub(crate) fn rollout_calls(
    builder: vamp_core::VampBuilder,
) -> Result<vamp_core::VampBuilder, StartError> {
    #[cfg(feature = "rollout-calls")]
    {
        use vamp_drivers::outside::{HttpWebhooks, PrometheusProvider, WebProvider};
        let http = |e: vamp_core::traits::CallError| {
            failed("rollouts (HTTP client)")(vamp_core::Error::backend("http", e))
        };
        Ok(builder
            .provider(Arc::new(PrometheusProvider::new().map_err(http)?))
            .provider(Arc::new(WebProvider::new().map_err(http)?))
            .webhook_sender(Arc::new(HttpWebhooks::new().map_err(http)?)))
    }
    #[cfg(not(feature = "rollout-calls"))]
    Ok(builder)
}
