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
//! The library does the work (`vamp_gateway::agent`); this binary reads flags, connects and
//! waits for SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use vamp_core::traits::KeyValueStore;
use vamp_drivers::etcd::{EtcdConfig, EtcdStore};
use vamp_gateway::agent::{Agent, AgentConfig, serve_status};

/// Applies Vamp's gateways from a key-value store to a local HAProxy.
#[derive(Parser, Debug)]
#[command(name = "vamp-gateway-agent", version)]
struct Args {
    /// etcd endpoint(s), comma-separated (the default store).
    #[arg(
        long,
        env = "VAMP_KEY_VALUE_STORE_CONNECTION",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd: Vec<String>,
    /// etcd user (with --etcd-password).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_USER", requires = "etcd_password")]
    etcd_user: Option<String>,
    /// etcd password.
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_PASSWORD", hide_env_values = true)]
    etcd_password: Option<String>,
    /// The CA certificate (PEM) that signed etcd's, for TLS (feature `etcd-tls`).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_CA")]
    etcd_ca: Option<PathBuf>,
    /// This agent's client certificate (PEM), with --etcd-key, when etcd asks for one.
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_CERT", requires = "etcd_key")]
    etcd_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_KEY", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    /// Read from ZooKeeper instead: `host:port` servers, comma-separated (feature `zookeeper`).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_ZOOKEEPER", conflicts_with_all = ["consul", "etcd"])]
    zookeeper: Option<String>,
    /// Read from Consul instead: the agent's URL, e.g. `http://127.0.0.1:8500` (feature
    /// `consul`).
    #[arg(long, env = "VAMP_KEY_VALUE_STORE_CONSUL", conflicts_with = "etcd")]
    consul: Option<String>,
    /// The Consul ACL token.
    #[arg(
        long,
        env = "VAMP_KEY_VALUE_STORE_TOKEN",
        hide_env_values = true,
        requires = "consul"
    )]
    consul_token: Option<String>,
    /// The key root Vamp publishes under (`/vamp/<namespace>`).
    #[arg(
        long,
        env = "VAMP_KEY_VALUE_STORE_PATH",
        default_value = "/vamp/default"
    )]
    root: String,
    /// The HAProxy binary (2.6 or later).
    #[arg(long, env = "VAMP_HAPROXY", default_value = "/usr/sbin/haproxy")]
    haproxy: PathBuf,
    /// Directory for HAProxy's config and sockets (short: socket paths hold 107 bytes).
    #[arg(
        long,
        env = "VAMP_AGENT_DIR",
        default_value = "/tmp/vamp-gateway-agent"
    )]
    dir: PathBuf,
    /// Address the gateway ports bind to.
    #[arg(long, env = "VAMP_AGENT_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Where `GET /health` answers with the agent's status.
    #[arg(long, env = "VAMP_AGENT_STATUS", default_value = "127.0.0.1:1988")]
    status: SocketAddr,
    /// Do not health-check instances.
    #[arg(long)]
    no_health_checks: bool,
    /// The name this agent publishes its counters under (`<root>/stats/<name>`), unique per
    /// agent; default `agent-<pid>`.
    #[arg(long, env = "VAMP_AGENT_NAME")]
    name: Option<String>,
    /// Longest wait between two attempts to reach etcd, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    max_backoff_ms: u64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("vamp-gateway-agent: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.haproxy.exists(),
        "no HAProxy at {} (install haproxy or pass --haproxy)",
        args.haproxy.display()
    );
    let (store, watching) = store(&args).await?;
    let mut config = AgentConfig::new(args.root.clone(), args.haproxy.clone(), args.dir.clone());
    config.render.bind_host = args.bind;
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

/// The store the flags name, and how to say which it is. The clients connect lazily enough
/// that a store that is down is retried by the agent's loop; a malformed address is an error
/// now.
async fn store(args: &Args) -> anyhow::Result<(Arc<dyn KeyValueStore>, String)> {
    if let Some(servers) = &args.zookeeper {
        #[cfg(feature = "zookeeper")]
        {
            use vamp_drivers::zookeeper::{ZookeeperConfig, ZookeeperStore};
            let store = ZookeeperStore::connect(ZookeeperConfig::new(servers.clone()))
                .await
                .context("zookeeper")?;
            return Ok((Arc::new(store), format!("zookeeper {servers}")));
        }
        #[cfg(not(feature = "zookeeper"))]
        anyhow::bail!(
            "--zookeeper {servers}: this build has no ZooKeeper client (rebuild with --features zookeeper)"
        );
    }
    if let Some(url) = &args.consul {
        #[cfg(feature = "consul")]
        {
            use vamp_drivers::consul::{ConsulConfig, ConsulStore};
            let mut consul = ConsulConfig::new(url.clone());
            consul.token.clone_from(&args.consul_token);
            let store = ConsulStore::connect(consul).await.context("consul")?;
            return Ok((Arc::new(store), format!("consul {url}")));
        }
        #[cfg(not(feature = "consul"))]
        anyhow::bail!(
            "--consul {url}: this build has no Consul client (rebuild with --features consul)"
        );
    }
    let mut etcd = EtcdConfig::new(args.etcd.first().cloned().unwrap_or_default());
    etcd.endpoints = args.etcd.clone();
    if let (Some(user), Some(password)) = (&args.etcd_user, &args.etcd_password) {
        etcd.user = Some((user.clone(), password.clone()));
    }
    if args.etcd_ca.is_some() || args.etcd_cert.is_some() {
        #[cfg(feature = "etcd-tls")]
        {
            let identity = args.etcd_cert.as_deref().zip(args.etcd_key.as_deref());
            etcd.tls = Some(
                vamp_drivers::etcd::EtcdTls::from_files(args.etcd_ca.as_deref(), identity)
                    .context("etcd TLS files")?,
            );
        }
        #[cfg(not(feature = "etcd-tls"))]
        anyhow::bail!(
            "--etcd-ca/--etcd-cert: this build has no TLS for etcd (rebuild with --features etcd-tls)"
        );
    }
    let store = EtcdStore::connect(etcd).await.context("etcd")?;
    Ok((Arc::new(store), format!("etcd {}", args.etcd.join(","))))
}
