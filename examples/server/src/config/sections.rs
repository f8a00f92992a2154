//! The sections of the configuration file, each with its defaults (docs/server.md lists every
//! key).
//!
//! Over ~400 lines because it is the reference of the file: every key declared with its
//! documentation and its default, section by section.

use super::*;

/// `[rollouts]` (issue 18, docs/rollouts.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutsConfig {
    /// Seconds between rollout passes (each rollout's analysis interval is its own; this is how
    /// often they are looked at); 0 runs no rollout.
    pub period: u64,
    /// The hosts rollouts may call (metric providers, webhooks) as written in their URLs;
    /// empty allows any (docs/security.md).
    pub call_hosts: Vec<String>,
}

impl Default for RolloutsConfig {
    fn default() -> Self {
        RolloutsConfig {
            period: 1,
            call_hosts: Vec::new(),
        }
    }
}

/// `[workflows]` (issue 22, spec §5.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowsConfig {
    /// Seconds between workflow passes; 0 runs no workflow (they are only stored, and
    /// `DELETE` removes them at once).
    pub period: u64,
    /// Seconds a run may take before it is killed, unless the workflow sets
    /// `VAMP_WORKFLOW_EXECUTION_TIMEOUT`.
    pub timeout: u64,
    /// Seconds between the runs of a `daemon` workflow, unless it sets
    /// `VAMP_WORKFLOW_EXECUTION_PERIOD`.
    pub execution_period: u64,
    /// MiB of heap a JavaScript run may grow to before it is stopped.
    pub memory_limit: u64,
    /// Install the stock `health`, `metrics` and `allocation` workflows at start (those not
    /// stored yet) and refuse their deletion; needs JavaScript (feature `javascript`) and
    /// `period` above 0.
    pub stock: bool,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        WorkflowsConfig {
            period: 1,
            timeout: 60,
            execution_period: 60,
            memory_limit: 64,
            stock: true,
        }
    }
}

/// `[events]`: how many events the store keeps, and for how long (issue 17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Seconds between retention passes; 0 keeps every event.
    pub retention_period: u64,
    /// Seconds an event is kept (types without a rule of their own); 0: no bound.
    pub max_age: u64,
    /// Events kept, the newest (types without a rule of their own, together); 0: no bound.
    pub max_count: u64,
    /// Rules by event type (`metrics`, `health`, …), each `{ max_age, max_count }`.
    pub types: BTreeMap<String, EventRule>,
}

/// One event type's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    /// Seconds an event of the type is kept; 0: no bound.
    #[serde(default)]
    pub max_age: u64,
    /// Events of the type kept, the newest; 0: no bound.
    #[serde(default)]
    pub max_count: u64,
}

impl EventRule {
    fn rule(self) -> vamp_core::traits::RetentionRule {
        vamp_core::traits::RetentionRule {
            max_age: (self.max_age > 0).then(|| std::time::Duration::from_secs(self.max_age)),
            max_count: (self.max_count > 0).then_some(self.max_count),
        }
    }
}

impl Default for EventsConfig {
    /// The defaults of [`vamp_core::traits::Retention`], applied every 10 minutes.
    fn default() -> Self {
        let core = vamp_core::traits::Retention::default();
        let rule = |r: vamp_core::traits::RetentionRule| EventRule {
            max_age: r.max_age.map_or(0, |a| a.as_secs()),
            max_count: r.max_count.unwrap_or(0),
        };
        let default = rule(core.default);
        EventsConfig {
            retention_period: 600,
            max_age: default.max_age,
            max_count: default.max_count,
            types: core
                .by_type
                .into_iter()
                .map(|(t, r)| (t, rule(r)))
                .collect(),
        }
    }
}

impl EventsConfig {
    /// The policy, or `None` when retention is off.
    pub fn retention(&self) -> Option<vamp_core::traits::Retention> {
        (self.retention_period > 0).then(|| vamp_core::traits::Retention {
            default: EventRule {
                max_age: self.max_age,
                max_count: self.max_count,
            }
            .rule(),
            by_type: self
                .types
                .iter()
                .map(|(t, r)| (t.clone(), r.rule()))
                .collect(),
        })
    }
}

/// `[synchronization]` (spec §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynchronizationConfig {
    /// Seconds between reconciliation passes when nothing changes: a safety net, since every
    /// change made through the server starts a pass (and a routing pass) at once.
    pub period: u64,
}

impl Default for SynchronizationConfig {
    fn default() -> Self {
        SynchronizationConfig { period: 5 }
    }
}

/// `[election]` (issue 24): several servers on shared stores, one of them leading. The
/// leader runs the reconciler, the SLA, rollout and workflow runtimes and event retention;
/// every server serves the API and routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElectionConfig {
    /// `none` (one server: it always leads), `postgres` (a lease row in the
    /// `persistence.kind = 'postgres'` database), `etcd` or `zookeeper` (on the `[key_value]`
    /// store of that kind, under `key_value.root`).
    pub kind: String,
    /// Seconds of a leader's lease: renewed every third of it; a leader that cannot renew
    /// stops acting after two thirds of it, before another can be elected.
    pub ttl: u64,
    /// This server's name among the servers, unique per running process (default:
    /// `<hostname>-<API port>-<8 random hex digits>`, new at every start: a paused server and
    /// its replacement must not share one).
    pub node: Option<String>,
    /// This server's API as the others show it for their leader (default:
    /// `http://<server.listen>/api/v1`).
    pub url: Option<String>,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            kind: "none".into(),
            ttl: 3,
            node: None,
            url: None,
        }
    }
}

/// `[sla]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    /// Seconds between passes of the SLA runtime (metrics of the gateways SLAs watch, SLA
    /// checks, escalations); 0 runs none.
    pub period: u64,
}

impl Default for SlaConfig {
    fn default() -> Self {
        SlaConfig { period: 10 }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// The address the API listens on. An address other than loopback needs a token (or
    /// `insecure = true`): anyone who reaches the API can run programs through it.
    pub listen: SocketAddr,
    /// Where the database, process state and logs live.
    pub data_dir: PathBuf,
    /// When set, every API request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Named tokens, each accepted like `token` (rotate one without downtime: add the new
    /// one, move the clients, remove the old one). The name shows in logs, never the token.
    pub tokens: BTreeMap<String, String>,
    /// Serve on a non-loopback address without a token. Logs a warning at every start.
    pub insecure: bool,
    /// `Host` names (with or without port) accepted besides loopback ones while no token is
    /// set; any other `Host` is refused, which stops DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://ui.example.com`) whose web pages may call the API; no others may.
    pub cors_origins: Vec<String>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Seconds a client has to send a request's headers before its connection is closed.
    pub header_timeout: u64,
    /// Seconds a connection may stay open without a request before it is closed.
    pub idle_timeout: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("vamp-data"),
            token: None,
            tokens: BTreeMap::new(),
            insecure: false,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            body_limit: 4 * 1024 * 1024,
            header_timeout: 10,
            idle_timeout: 60,
            max_connections: 1024,
        }
    }
}

impl Server {
    /// Every accepted token with its name (`token` is named `token`).
    pub fn all_tokens(&self) -> impl Iterator<Item = (&str, &str)> {
        self.token
            .as_deref()
            .map(|t| ("token", t))
            .into_iter()
            .chain(self.tokens.iter().map(|(n, t)| (n.as_str(), t.as_str())))
    }

    /// Whether requests must carry a token.
    pub fn has_tokens(&self) -> bool {
        self.all_tokens().next().is_some()
    }
}

/// `[driver]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Driver {
    /// `process` (local processes, built in), `docker` (feature `docker`), `swarm` (Docker
    /// Swarm services through a manager node, feature `swarm`) or `kubernetes` (feature
    /// `kubernetes`, tested against a fake API server: docs/kubernetes.md). Unset, the process driver
    /// runs nothing new: a `command` breed runs any program as the server's user, so it runs
    /// only where `process` is chosen explicitly (or under `--demo`).
    pub kind: Option<String>,
    /// The host ports handed to instances, `first-last` (below Linux's range for outgoing
    /// connections, as `gateways.ports`).
    pub ports: String,
    /// The Docker daemon (`unix:///var/run/docker.sock` or `tcp://host:port`), for `docker`;
    /// a manager node's daemon for `swarm`.
    pub docker_host: String,
    /// `kubernetes` (feature `kubernetes`): the namespace of the driver's objects. The cluster
    /// is found as kubectl finds it (`KUBECONFIG`, `~/.kube/config`, else the pod's service
    /// account) unless `kubeconfig` is set.
    pub namespace: String,
    /// `kubernetes`: the type of each gateway's Service, `NodePort` or `LoadBalancer`
    /// (spec §6.3).
    pub service_type: String,
    /// `kubernetes`: the `io.vamp` label value of the gateway agents' pods, which the gateways'
    /// Services select.
    pub gateway_agent_id: String,
    /// `kubernetes`: seconds a pod may stay unready, its container waiting for a reason,
    /// before its service fails with that reason.
    pub ready_timeout: u64,
    /// `kubernetes`: a kubeconfig file to use (its current context) instead of kubectl's
    /// resolution.
    pub kubeconfig: Option<PathBuf>,
}

impl Default for Driver {
    fn default() -> Self {
        Driver {
            kind: None,
            ports: "31000-32767".into(),
            docker_host: "unix:///var/run/docker.sock".into(),
            namespace: "vamp".into(),
            service_type: "NodePort".into(),
            gateway_agent_id: "vamp-gateway-agent".into(),
            ready_timeout: 300,
            kubeconfig: None,
        }
    }
}

impl Driver {
    /// The driver in use: `kind`, else `process`.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("process")
    }

    /// Whether `command` deployables may run: the process driver was chosen explicitly.
    pub fn commands_enabled(&self) -> bool {
        self.kind.as_deref() == Some("process")
    }
}

/// `[persistence]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// `sqlite`, `memory`, `key-value` (in the `[key_value]` store), `postgres` (feature
    /// `postgres`) or `elasticsearch` (feature `elasticsearch`).
    pub kind: String,
    /// The SQLite file (default: `<data_dir>/vamp.db`).
    pub path: Option<PathBuf>,
    /// The server of `postgres` (`postgres://user:password@host:port/db`) or
    /// `elasticsearch` (`http://host:9200`).
    pub url: Option<String>,
    /// `user:password` for Elasticsearch's basic authentication.
    pub credentials: Option<String>,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            kind: "sqlite".into(),
            path: None,
            url: None,
            credentials: None,
        }
    }
}

/// `[key_value]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyValueConfig {
    /// `memory` (this process only), `etcd`, `zookeeper` or `consul` (each its feature).
    pub kind: String,
    /// The servers: etcd endpoints (`http://127.0.0.1:2379`, comma-separated), ZooKeeper
    /// `host:port` list, or the Consul agent's URL.
    pub servers: String,
    /// The key every Vamp key lives under (spec §4.1: `/vamp/<namespace>`).
    pub root: String,
    /// Credentials: etcd `user:password`, ZooKeeper digest `user:password`, or the Consul
    /// ACL token.
    pub credentials: Option<String>,
    /// The CA certificate (PEM) that signed etcd's: etcd over TLS (feature `etcd-tls`).
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) for etcd, with `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    pub key: Option<PathBuf>,
}

impl Default for KeyValueConfig {
    fn default() -> Self {
        KeyValueConfig {
            kind: "memory".into(),
            servers: String::new(),
            root: "/vamp/default".into(),
            credentials: None,
            ca: None,
            cert: None,
            key: None,
        }
    }
}

impl KeyValueConfig {
    /// The store as the typed settings [`vamp_drivers::connect`] opens.
    ///
    /// # Errors
    /// Credentials that are not `user:password` where they must be, or an unknown kind.
    ///
    /// ```
    /// use vamp_drivers::connect::KeyValueBackend;
    /// use vamp_server::config::KeyValueConfig;
    /// let kv = KeyValueConfig { kind: "etcd".into(), servers: "http://a:2379, http://b:2379".into(), ..KeyValueConfig::default() };
    /// let KeyValueBackend::Etcd(etcd) = kv.backend().unwrap() else { panic!() };
    /// assert_eq!(etcd.endpoints, ["http://a:2379", "http://b:2379"]);
    /// ```
    pub fn backend(&self) -> Result<vamp_drivers::connect::KeyValueBackend, String> {
        use vamp_drivers::connect::{
            ConsulSettings, EtcdSettings, KeyValueBackend, ZookeeperSettings,
        };
        Ok(match self.kind.as_str() {
            "memory" => KeyValueBackend::Memory,
            "etcd" => KeyValueBackend::Etcd(EtcdSettings {
                endpoints: self
                    .servers
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                user: self
                    .credentials
                    .as_deref()
                    .map(|c| super::user_password(c, "etcd"))
                    .transpose()?,
                ca: self.ca.clone(),
                identity: self.cert.clone().zip(self.key.clone()),
            }),
            "zookeeper" => KeyValueBackend::Zookeeper(ZookeeperSettings {
                servers: self.servers.trim().to_owned(),
                digest: self.credentials.clone(),
            }),
            "consul" => KeyValueBackend::Consul(ConsulSettings {
                address: self.servers.trim().to_owned(),
                token: self.credentials.clone(),
            }),
            other => return Err(format!("key_value.kind = '{other}' is not a store")),
        })
    }
}

/// `[router]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// `embedded` (gateways served in-process), `none` (gateways only computed),
    /// `haproxy-kv` (published to the `[key_value]` store for gateway agents) or
    /// `haproxy-local` (one local HAProxy run by the server); the HAProxy ones with feature
    /// `haproxy`.
    pub kind: String,
    /// The HAProxy binary, for `haproxy-local`.
    pub haproxy: PathBuf,
    /// `embedded`: seconds a client has to send a request's headers.
    pub header_timeout: u64,
    /// `embedded`: seconds an HTTP connection may stay silent before it is closed.
    pub idle_timeout: u64,
    /// `embedded`: connections one gateway port serves at once.
    pub max_connections: usize,
    /// `embedded`: threads of the data path's own; 0 serves the gateways on the server's
    /// runtime (sharing its threads with the API and the loops).
    pub workers: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            kind: "embedded".into(),
            haproxy: PathBuf::from("haproxy"),
            header_timeout: 10,
            idle_timeout: 60,
            max_connections: 10_000,
            workers: 0,
        }
    }
}

/// The backends of each kind this build has (cargo features of `vamp-server`).
pub mod available {
    /// Container drivers.
    pub const DRIVERS: &[(&str, bool)] = &[
        ("process", true),
        ("docker", cfg!(feature = "docker")),
        ("swarm", cfg!(feature = "swarm")),
        ("kubernetes", cfg!(feature = "kubernetes")),
    ];
    /// Persistences.
    pub const PERSISTENCES: &[(&str, bool)] = &[
        ("sqlite", true),
        ("memory", true),
        ("key-value", true),
        ("postgres", cfg!(feature = "postgres")),
        ("elasticsearch", cfg!(feature = "elasticsearch")),
    ];
    /// Key-value stores.
    pub const KEY_VALUES: &[(&str, bool)] = &[
        ("memory", true),
        ("etcd", cfg!(feature = "etcd")),
        ("zookeeper", cfg!(feature = "zookeeper")),
        ("consul", cfg!(feature = "consul")),
    ];
    /// Routers.
    pub const ROUTERS: &[(&str, bool)] = &[
        ("embedded", true),
        ("none", true),
        ("haproxy-kv", cfg!(feature = "haproxy")),
        ("haproxy-local", cfg!(feature = "haproxy")),
    ];
}

/// `[gateways]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gateways {
    /// The address gateways listen on and services reach them at.
    pub host: String,
    /// The ports internal gateways get, `first-last`; standalone gateways created without a
    /// port get one from here too. Vamp's 40000-45000 lies inside Linux's range for outgoing
    /// connections (32768-60999), where any client socket can hold a port when a gateway
    /// binds it; the default is below it, and a range inside it is warned of at start.
    pub ports: String,
    /// The ports a gateway may be given explicitly, `first-last`.
    pub allowed_ports: String,
    /// `ip:port` of one listener serving every HTTP gateway with virtual hosts by its `Host`
    /// header (embedded router, and HAProxy's `virtual_hosts` frontend); empty = none. With
    /// it, a gateway written with virtual hosts and no port has no port of its own.
    pub vhost_listen: String,
}

impl Gateways {
    /// [`vhost_listen`](Self::vhost_listen) read, `None` when unset.
    ///
    /// # Errors
    /// The value is not an `ip:port` address.
    pub fn vhost_address(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let text = self.vhost_listen.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            format!(
                "gateways.vhost_listen = '{text}' is not an ip:port address (e.g. 127.0.0.1:8080, or empty for none)"
            )
        })
    }
}

impl Default for Gateways {
    fn default() -> Self {
        Gateways {
            host: "127.0.0.1".into(),
            ports: "20000-24999".into(),
            allowed_ports: "1-65535".into(),
            vhost_listen: String::new(),
        }
    }
}
