//! `vamp-server`: the Vamp REST API over an embedded [`Vamp`], as a library with a thin binary.
//!
//! # Layout
//!
//! - [`config`]: the configuration (TOML file, `VAMP_<SECTION>__<KEY>` variables, flags);
//!   it chooses the backends (`backends`: other ones than the embedded defaults are cargo
//!   features: `postgres`, `elasticsearch`, `etcd`, `zookeeper`, `consul`, `docker`,
//!   `haproxy`).
//! - [`api`]: the `/api/v1` REST API (axum).
//! - [`dynamic`]: settings changed while the server runs (`PUT /api/v1/config`).
//! - [`demo`]: `vamp-server --demo`, a two-version service behind one gateway at 90/10.
//! - [`App`]: a Vamp composed from a configuration; [`App::serve`] runs the API and the
//!   reconciler until shutdown.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

pub mod api;
mod backends;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dynamic;
pub mod ui;

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use vamp_core::engine::{EngineConfig, PortAllocator};
use vamp_core::{Vamp, VampConfig};

use crate::config::{ServerConfig, port_range};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A backend could not be opened.
    #[error("{what}: {source}")]
    Backend {
        /// Which backend.
        what: &'static str,
        /// Why.
        source: vamp_core::Error,
    },
    /// The API address could not be bound.
    #[error(
        "cannot listen on {address}: {source} (set server.listen, e.g. --listen 127.0.0.1:8081)"
    )]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A Vamp composed from a [`ServerConfig`].
#[derive(Debug, Clone)]
pub struct App {
    /// The embedded Vamp.
    pub vamp: Vamp,
    /// The configuration it was built from.
    pub config: Arc<ServerConfig>,
    /// The configuration in force: `config` with the dynamic changes over it.
    pub settings: Arc<dynamic::Settings>,
}

impl App {
    /// Opens the key-value store, the persistence, the driver and the router the
    /// configuration names.
    ///
    /// # Errors
    /// [`StartError::Backend`] naming the backend that could not be opened.
    pub async fn build(config: ServerConfig) -> Result<App, StartError> {
        let kv = backends::key_value(&config).await?;
        let persistence = backends::persistence(&config, &kv).await?;
        let driver = backends::driver(&config).await?;
        let gateway_ports = port_range(&config.gateways.ports).map_err(|message| {
            StartError::Config(config::ConfigError::Invalid {
                origin: "configuration".into(),
                message: format!("gateways.ports: {message}"),
            })
        })?;
        let mut builder = Vamp::builder()
            .persistence(persistence)
            .driver(driver)
            .config(VampConfig {
                engine: EngineConfig {
                    gateway_host: config.gateways.host.clone(),
                    ports: PortAllocator::new(gateway_ports),
                    allowed_ports: port_range(&config.gateways.allowed_ports).map_err(
                        |message| {
                            StartError::Config(config::ConfigError::Invalid {
                                origin: "configuration".into(),
                                message: format!("gateways.allowed_ports: {message}"),
                            })
                        },
                    )?,
                    limits: config.limits.clone(),
                    ..EngineConfig::default()
                },
                sla_period: (config.sla.period > 0)
                    .then(|| std::time::Duration::from_secs(config.sla.period)),
                resync: std::time::Duration::from_secs(config.synchronization.period),
                rollout_period: (config.rollouts.period > 0)
                    .then(|| std::time::Duration::from_secs(config.rollouts.period)),
                call_hosts: config.rollouts.call_hosts.clone(),
                // `env://NAME` in services' environments reads the server's own environment.
                environment: std::env::vars().collect(),
                retention: config.events.retention(),
                retention_period: std::time::Duration::from_secs(
                    config.events.retention_period.max(1),
                ),
                workflows: workflow_config(&config),
                election_ttl: std::time::Duration::from_secs(config.election.ttl),
                ..VampConfig::default()
            });
        let (election, candidate) = backends::election(&config).await?;
        builder = builder.election(election, candidate);
        let settings = dynamic::Settings::load(config.clone(), kv.clone())
            .await
            .map_err(|e| match e {
                dynamic::DynamicError::Invalid(e) => StartError::Config(e),
                dynamic::DynamicError::Store(source) => StartError::Backend {
                    what: "key_value (dynamic configuration)",
                    source,
                },
            })?;
        if let Some(router) = backends::router(&config, &kv)? {
            builder = builder.router(router);
        }
        builder = backends::rollout_calls(builder)?;
        builder = backends::scripts(builder);
        let vamp = builder.build().map_err(|source| StartError::Backend {
            what: "vamp",
            source,
        })?;
        if config.workflows.stock && config.workflows.period > 0 && backends::SCRIPTS {
            vamp.install_stock_workflows()
                .await
                .map_err(|source| StartError::Backend {
                    what: "workflows (the stock ones)",
                    source,
                })?;
        }
        Ok(App {
            vamp,
            config: Arc::new(config),
            settings: Arc::new(settings),
        })
    }

    /// The API as a tower service over this app's `Vamp`, without a listener: what
    /// [`serve`](Self::serve) serves, and what in-process tests call with
    /// `tower::ServiceExt::oneshot`. Event streams end when `stopping` turns `true`.
    pub fn router(&self, stopping: watch::Receiver<bool>) -> axum::Router {
        api::router(api::AppState {
            vamp: self.vamp.clone(),
            config: self.config.clone(),
            settings: self.settings.clone(),
            started: Instant::now(),
            running_since: chrono::Utc::now(),
            uuid: uuid::Uuid::new_v4().to_string(),
            stopping,
            metrics: std::sync::Arc::default(),
            live: std::sync::Arc::default(),
        })
    }

    /// Binds the configured API address.
    ///
    /// # Errors
    /// [`StartError::Listen`] when the address is taken or not local.
    pub async fn bind(&self) -> Result<TcpListener, StartError> {
        let address = self.config.server.listen;
        TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Listen { address, source })
    }

    /// Serves the API on `listener` and runs the reconciler until `shutdown` resolves; then
    /// stops taking requests, lets running ones finish (for at most 10 s), and stops the
    /// reconciler. Connections get the header and idle timeouts of `[server]` and at most
    /// `server.max_connections` are served at once.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let server = &self.config.server;
        if !server.listen.ip().is_loopback() && !server.has_tokens() {
            tracing::warn!(
                listen = %server.listen,
                "server.insecure: the API is served to the network without a token; anyone who reaches it can run programs through it"
            );
        }
        for warning in config::client_port_warnings(&self.config) {
            tracing::warn!("{warning}");
        }
        let (stop, stopped) = watch::channel(false);
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        // Workflows reach the API where it really listens (a port 0 in the config is chosen
        // by the system).
        if let Ok(at) = listener.local_addr() {
            self.vamp.set_workflow_api_url(api_url(at));
        }
        let app = self.router(stopped.clone());
        let reconciler = {
            let vamp = self.vamp.clone();
            let rx = stopped.clone();
            tokio::spawn(async move { vamp.run(until(rx)).await })
        };
        let stop = std::sync::Arc::new(stop);
        let on_signal = stop.clone();
        let waiting = tokio::spawn(async move {
            shutdown.await;
            let _ = on_signal.send(true);
        });
        let limits = vamp_gateway::listen::ConnectionLimits {
            header_timeout: std::time::Duration::from_secs(server.header_timeout),
            idle_timeout: std::time::Duration::from_secs(server.idle_timeout),
            max_connections: server.max_connections,
        };
        let served = accept_loop(listener, app, &limits, until(stopped)).await;
        // Serving may also end by an error: the reconciler stops either way.
        let _ = stop.send(true);
        waiting.abort();
        let _ = reconciler.await;
        served
    }
}

/// Accepts connections until `stop` resolves, each served by `app` under `limits`; then lets
/// open connections finish their requests (at most 10 s).
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    limits: &vamp_gateway::listen::ConnectionLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use vamp_gateway::listen::IdleTimeout;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = limits.http();
    let slots = limits.slots();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = slots.take() => permit,
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "API connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 10 s after shutdown began; closing them");
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub use vamp_core::signal::shutdown as shutdown_signal;

/// How the server runs workflows: `[workflows]`, and `VAMP_URL` from where it listens.
fn workflow_config(config: &ServerConfig) -> vamp_core::workflow::WorkflowConfig {
    let w = &config.workflows;
    vamp_core::workflow::WorkflowConfig {
        period: (w.period > 0).then(|| std::time::Duration::from_secs(w.period)),
        timeout: std::time::Duration::from_secs(w.timeout.max(1)),
        execution_period: std::time::Duration::from_secs(w.execution_period.max(1)),
        api_url: Some(api_url(config.server.listen)),
        memory_limit: usize::try_from(w.memory_limit.max(1))
            .unwrap_or(usize::MAX)
            .saturating_mul(1 << 20),
    }
}

/// The API's URL as this machine's workflows reach it: an unspecified address (`0.0.0.0`)
/// through loopback.
fn api_url(mut at: std::net::SocketAddr) -> String {
    if at.ip().is_unspecified() {
        at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{at}/api/v1")
}
