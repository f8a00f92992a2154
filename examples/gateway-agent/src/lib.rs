//! `vamp-gateway-agent`: watches the gateways Vamp publishes in a key-value store (the
//! `haproxy-kv` router) — etcd, ZooKeeper or Consul — and applies them to a local HAProxy it
//! runs itself: weights through the runtime API with no reload, structure through a checked
//! seamless reload; keeps serving when the store is away.
//!
//! ```text
//! vamp-gateway-agent --etcd http://127.0.0.1:2379 --root /vamp/default \
//!     --haproxy /usr/sbin/haproxy --dir /tmp/vamp-agent --status 127.0.0.1:1988
//! vamp-gateway-agent --zookeeper 127.0.0.1:2181 …     # feature `zookeeper`
//! vamp-gateway-agent --consul http://127.0.0.1:8500 … # feature `consul`
//! ```
//!
//! The library does the work (`vamp_gateway::agent`); this crate reads flags, opens the store
//! through [`vamp_drivers::connect`] (as `vamp-server` does) and waits for SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use vamp_drivers::connect::{ConsulSettings, EtcdSettings, KeyValueBackend, ZookeeperSettings};
use vamp_gateway::agent::{Agent, AgentConfig, serve_status};

/// Applies Vamp's gateways from a key-value store to a local HAProxy.
#[derive(Parser, Debug)]
#[command(name = "vamp-gateway-agent", version)]
pub struct Args {
    /// etcd endpoint(s), comma-separated (the default store).
    #[arg(
        long,
        env = "VAMP_KEY_VALUE_STORE_CONNECTION",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd: Vec<String>,
    /// etcd user (with --etcd-password).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_USER", requires = "etcd_password")]
    pub etcd_user: Option<String>,
    /// etcd password.
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_PASSWORD", hide_env_values = true)]
    pub etcd_password: Option<String>,
    /// The CA certificate (PEM) that signed etcd's, for TLS (feature `etcd-tls`).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// This agent's client certificate (PEM), with --etcd-key, when etcd asks for one.
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_CERT", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_KEY", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// Read from ZooKeeper instead: `host:port` servers, comma-separated (feature `zookeeper`).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_ZOOKEEPER", conflicts_with_all = ["consul", "etcd"])]
    pub zookeeper: Option<String>,
    /// Read from Consul instead: the agent's URL, e.g. `http://127.0.0.1:8500` (feature
    /// `consul`).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_CONSUL", conflicts_with = "etcd")]
    pub consul: Option<String>,
    /// The Consul ACL token.
    #[arg(
        long,
        env = "VAMP_KEY_VALUE_STORE_TOKEN",
        hide_env_values = true,
        requires = "consul"
    )]
    pub consul_token: Option<String>,
    /// The key root Vamp publishes under (`/vamp/<namespace>`).
    #[arg(
        long,
        env = "VAMP_KEY_VALUE_STORE_PATH",
        default_value = "/vamp/default"
    )]
    pub root: String,
    /// The HAProxy binary (2.6 or later).
    #[arg(long, env = "VAMP_HAPROXY", default_value = "/usr/sbin/haproxy")]
    pub haproxy: PathBuf,
    /// Directory for HAProxy's config and sockets (short: socket paths hold 107 bytes).
    #[arg(
        long,
        env = "VAMP_AGENT_DIR",
        default_value = "/tmp/vamp-gateway-agent"
    )]
    pub dir: PathBuf,
    /// Address the gateway ports bind to.
    #[arg(long, env = "VAMP_AGENT_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Where one HAProxy frontend serves every HTTP gateway with virtual hosts by its `Host`
    /// header (the server's `gateways.vhost_listen`); gateways without a port of their own
    /// are served there only.
    #[arg(long, env = "VAMP_AGENT_VHOST_LISTEN")]
    pub vhost_listen: Option<SocketAddr>,
    /// Where `GET /health` answers with the agent's status.
    #[arg(long, env = "VAMP_AGENT_STATUS", default_value = "127.0.0.1:1988")]
    pub status: SocketAddr,
    /// Do not health-check instances.
    #[arg(long)]
    pub no_health_checks: bool,
    /// The name this agent publishes its counters under (`<root>/stats/<name>`), unique per
    /// agent; default `agent-<pid>`.
    #[arg(long, env = "VAMP_AGENT_NAME")]
    pub name: Option<String>,
    /// Longest wait between two attempts to reach etcd, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub max_backoff_ms: u64,
}

/// Runs the agent the flags describe until SIGINT or SIGTERM.
///
/// # Errors
/// No HAProxy binary, a store that cannot be opened, a status address that cannot be bound.
pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.haproxy.exists(),
        "no HAProxy at {} (install haproxy or pass --haproxy)",
        args.haproxy.display()
    );
    let backend = backend(&args);
    let watching = backend.describe();
    let store = vamp_drivers::connect::key_value(&backend).await?;
    let mut config = AgentConfig::new(args.root.clone(), args.haproxy.clone(), args.dir.clone());
    config.render.bind_host = args.bind;
    config.render.virtual_hosts = args.vhost_listen;
    config.render.health_checks = !args.no_health_checks;
    config.max_backoff = Duration::from_millis(args.max_backoff_ms);
    if let Some(name) = &args.name {
        config.name.clone_from(name);
    }
    let agent = Agent::new(store, config);

    let listener = tokio::net::TcpListener::bind(args.status)
        .await
        .with_context(|| format!("status address {}", args.status))?;
    println!(
        "vamp-gateway-agent watching {watching} under {}; status on http://{}/health",
        args.root,
        listener.local_addr()?
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let status = tokio::spawn(serve_status(listener, agent.status(), async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));
    agent.run(vamp_core::signal::shutdown()).await;
    let _ = stop.send(true);
    let _ = status.await;
    Ok(())
}

/// The store the flags name, as the typed settings the server's `[key_value]` makes too.
pub fn backend(args: &Args) -> KeyValueBackend {
    if let Some(servers) = &args.zookeeper {
        return KeyValueBackend::Zookeeper(ZookeeperSettings {
            servers: servers.clone(),
            digest: None,
        });
    }
    if let Some(address) = &args.consul {
        return KeyValueBackend::Consul(ConsulSettings {
            address: address.clone(),
            token: args.consul_token.clone(),
        });
    }
    KeyValueBackend::Etcd(EtcdSettings {
        endpoints: args.etcd.clone(),
        user: args.etcd_user.clone().zip(args.etcd_password.clone()),
        ca: args.etcd_ca.clone(),
        identity: args.etcd_cert.clone().zip(args.etcd_key.clone()),
    })
}
