//! The server's configuration: one TOML file, then environment variables
//! `VAMP_<SECTION>__<KEY>`, then flags, over defaults that need nothing installed (the process
//! driver, a SQLite file in the data directory, the embedded router, `127.0.0.1:8080`).
//! docs/server.md lists every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything the server is configured with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The HTTP API.
    pub server: Server,
    /// Where services run.
    pub driver: Driver,
    /// Where artifacts and events are stored.
    pub persistence: PersistenceConfig,
    /// The key-value store (for the `key-value` persistence and the `haproxy-kv` router).
    pub key_value: KeyValueConfig,
    /// How gateways are served.
    pub router: RouterConfig,
    /// Gateway addresses and ports handed out.
    pub gateways: Gateways,
    /// The SLA runtime.
    pub sla: SlaConfig,
    /// The reconciler.
    pub synchronization: SynchronizationConfig,
    /// Bounds on what a request can make the server do.
    pub limits: LimitsConfig,
    /// Event retention.
    pub events: EventsConfig,
    /// Automated canary releases.
    pub rollouts: RolloutsConfig,
}

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

/// `[limits]`: bounds on what one request can make the server do. Each has a default that
/// fits a laptop and a cluster alike; raise them where a real deployment needs more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Instances of one service.
    pub instances: u32,
    /// Instances of all the services of one deployment.
    pub deployment_instances: u32,
    /// CPUs of one instance.
    pub cpu: f64,
    /// Memory of one instance, in MB.
    pub memory_mb: u64,
    /// Standalone gateways.
    pub gateways: usize,
    /// Routes of one gateway.
    pub routes: usize,
    /// Characters of a name (artifacts, clusters, ports, routes).
    pub name_length: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let engine = vamp_core::engine::Limits::default();
        LimitsConfig {
            instances: engine.instances,
            deployment_instances: engine.deployment_instances,
            cpu: engine.cpu,
            memory_mb: engine.memory_mb,
            gateways: engine.gateways,
            routes: engine.routes,
            name_length: engine.name_length,
        }
    }
}

impl LimitsConfig {
    /// As the engine takes them.
    pub fn engine(&self) -> vamp_core::engine::Limits {
        vamp_core::engine::Limits {
            instances: self.instances,
            deployment_instances: self.deployment_instances,
            cpu: self.cpu,
            memory_mb: self.memory_mb,
            gateways: self.gateways,
            routes: self.routes,
            name_length: self.name_length,
        }
    }
}

/// `[driver]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Driver {
    /// `process` (local processes, built in), `docker` (feature `docker`) or `swarm` (Docker
    /// Swarm services through a manager node, feature `swarm`). Unset, the process driver
    /// runs nothing new: a `command` breed runs any program as the server's user, so it runs
    /// only where `process` is chosen explicitly (or under `--demo`).
    pub kind: Option<String>,
    /// The host ports handed to instances, `first-last`.
    pub ports: String,
    /// The Docker daemon (`unix:///var/run/docker.sock` or `tcp://host:port`), for `docker`;
    /// a manager node's daemon for `swarm`.
    pub docker_host: String,
}

impl Default for Driver {
    fn default() -> Self {
        Driver {
            kind: None,
            ports: "31000-32999".into(),
            docker_host: "unix:///var/run/docker.sock".into(),
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
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            kind: "embedded".into(),
            haproxy: PathBuf::from("haproxy"),
            header_timeout: 10,
            idle_timeout: 60,
            max_connections: 10_000,
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
    /// The ports internal gateways get, `first-last` (Vamp: 40000-45000); standalone
    /// gateways created without a port get one from here too.
    pub ports: String,
    /// The ports a gateway may be given explicitly, `first-last`.
    pub allowed_ports: String,
}

impl Default for Gateways {
    fn default() -> Self {
        Gateways {
            host: "127.0.0.1".into(),
            ports: "40000-45000".into(),
            allowed_ports: "1-65535".into(),
        }
    }
}

/// A configuration that cannot be used: where it came from and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value is wrong.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file, `environment` or `flags`.
        origin: String,
        /// What is wrong, with the key (and line, for files).
        message: String,
    },
}

/// Where a value came from, for error messages and `--print-config`.
fn invalid(origin: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_owned(),
        message: message.into(),
    }
}

/// Whether `token` can be sent in an `Authorization` header: visible ASCII, no spaces, at
/// least 8 characters. `key` names the setting in the message.
///
/// ```
/// use vamp_server::config::check_token;
/// assert!(check_token("server.token", "a-long-secret").is_ok());
/// assert!(check_token("server.token", "two\nlines").unwrap_err().contains("server.token"));
/// ```
///
/// # Errors
/// What is wrong with the token, naming `key`.
pub fn check_token(key: &str, token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err(format!(
            "{key} is empty: leave it out for no authentication"
        ));
    }
    if let Some(c) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{key} holds {}: a token must be visible ASCII without spaces, or no client can send it in an Authorization header",
            if c.is_control() {
                format!("the control character U+{:04X}", u32::from(c))
            } else {
                format!("'{c}'")
            }
        ));
    }
    if token.len() < 8 {
        return Err(format!(
            "{key} is {} characters long: use at least 8 (e.g. `openssl rand -hex 16`)",
            token.len()
        ));
    }
    Ok(())
}

/// `first-last` as a port range.
///
/// ```
/// assert_eq!(vamp_server::config::port_range("40000-45000").unwrap(), 40000..=45000);
/// assert!(vamp_server::config::port_range("45000-40000").is_err());
/// ```
pub fn port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("'{text}' is not a port range like 40000-45000"))?;
    let first: u16 = first
        .trim()
        .parse()
        .map_err(|_| format!("'{first}' is not a port"))?;
    let last: u16 = last
        .trim()
        .parse()
        .map_err(|_| format!("'{last}' is not a port"))?;
    if first == 0 || first > last {
        return Err(format!("'{text}': the first port must be 1..=last"));
    }
    Ok(first..=last)
}

impl ServerConfig {
    /// Reads `file` (if any) over the defaults, then the `VAMP_<SECTION>__<KEY>` variables of
    /// `env`, then `flags` (`section.key` → value), and checks the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, variable or flag, the key, and what is expected.
    ///
    /// ```
    /// use vamp_server::config::ServerConfig;
    /// let env = [("VAMP_SERVER__LISTEN".to_owned(), "127.0.0.1:9999".to_owned())];
    /// let config = ServerConfig::load(None, env, []).unwrap();
    /// assert_eq!(config.server.listen.port(), 9999);
    /// let err = ServerConfig::load(None, [("VAMP_SERVER__LISTN".into(), "x".into())], []).unwrap_err();
    /// assert!(err.to_string().contains("VAMP_SERVER__LISTN"));
    /// ```
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let origin = path.display().to_string();
                // Deserialize once straight from the text: its errors carry line and column.
                toml::from_str::<ServerConfig>(&text)
                    .map_err(|e| invalid(&origin, e.to_string()))?;
                text.parse::<toml::Table>()
                    .map_err(|e| invalid(&origin, e.to_string()))?
            }
            None => toml::Table::new(),
        };
        let known = Self::known_keys();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("VAMP_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let path = format!("{}.{}", section.to_lowercase(), key.to_lowercase());
            if !known.contains(&path) {
                return Err(invalid(
                    "environment",
                    format!(
                        "{name} is not a setting (known: {})",
                        known
                            .iter()
                            .map(|k| format!("VAMP_{}", k.to_uppercase().replace('.', "__")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let fail = |m: String| invalid("environment", format!("{name} ({path}): {m}"));
            set(&mut table, &path, &value).map_err(fail)?;
            // Checked alone, so an error names the variable that caused it.
            checked_alone(&path, &value).map_err(fail)?;
        }
        for (path, value) in flags {
            if !known.contains(&path) {
                return Err(invalid("flags", format!("{path} is not a setting")));
            }
            let fail = |m: String| invalid("flags", format!("{path}: {m}"));
            set(&mut table, &path, &value).map_err(fail)?;
            checked_alone(&path, &value).map_err(fail)?;
        }
        let config: ServerConfig =
            toml::Table::try_into(table).map_err(|e| invalid("configuration", e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Reads a whole configuration from TOML `text` and checks it; `origin` names the text
    /// in errors.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key and what is expected.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: ServerConfig =
            toml::from_str(text).map_err(|e| invalid(origin, e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Every setting, as `section.key`.
    pub fn known_keys() -> Vec<String> {
        let defaults = toml::Table::try_from(ServerConfig::default()).unwrap_or_default();
        let mut keys: Vec<String> = defaults
            .iter()
            .flat_map(|(section, v)| {
                v.as_table()
                    .map(|t| {
                        t.keys()
                            .map(|k| format!("{section}.{k}"))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect();
        // Optional keys have no default to list.
        keys.extend(
            [
                "server.token",
                "server.tokens",
                "driver.kind",
                "persistence.path",
                "persistence.url",
                "persistence.credentials",
                "key_value.credentials",
                "key_value.ca",
                "key_value.cert",
                "key_value.key",
            ]
            .map(str::to_owned),
        );
        keys.sort();
        keys.dedup();
        keys
    }

    /// Values that parse but cannot be used.
    fn check(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(invalid("configuration", message));
        let kinds = [
            ("driver.kind", self.driver.kind(), available::DRIVERS),
            (
                "persistence.kind",
                self.persistence.kind.as_str(),
                available::PERSISTENCES,
            ),
            (
                "key_value.kind",
                self.key_value.kind.as_str(),
                available::KEY_VALUES,
            ),
            ("router.kind", self.router.kind.as_str(), available::ROUTERS),
        ];
        for (key, value, known) in kinds {
            let built: Vec<&str> = known.iter().filter(|(_, b)| *b).map(|(k, _)| *k).collect();
            match known.iter().find(|(k, _)| *k == value) {
                Some((_, true)) => {}
                Some((_, false)) => {
                    return fail(format!(
                        "{key} = '{value}' is not in this build: rebuild with `--features {}` (this build has: {})",
                        feature_of(value),
                        built.join(", ")
                    ));
                }
                None => {
                    return fail(format!(
                        "{key} = '{value}' is not a choice (choose one of: {})",
                        built.join(", ")
                    ));
                }
            }
        }
        let needs_ip = matches!(self.router.kind.as_str(), "embedded" | "haproxy-local");
        if needs_ip && self.gateways.host.parse::<std::net::IpAddr>().is_err() {
            return fail(format!(
                "gateways.host = '{}' is not an IP address (the {} router binds it, e.g. 127.0.0.1)",
                self.gateways.host, self.router.kind
            ));
        }
        if matches!(self.persistence.kind.as_str(), "postgres" | "elasticsearch")
            && self.persistence.url.as_deref().is_none_or(str::is_empty)
        {
            let example = if self.persistence.kind == "postgres" {
                "postgres://vamp@127.0.0.1:5432/vamp"
            } else {
                "http://127.0.0.1:9200"
            };
            return fail(format!(
                "persistence.kind = '{}' needs persistence.url (e.g. {example})",
                self.persistence.kind
            ));
        }
        if self.key_value.kind != "memory" && self.key_value.servers.trim().is_empty() {
            return fail(format!(
                "key_value.kind = '{}' needs key_value.servers (e.g. {})",
                self.key_value.kind,
                match self.key_value.kind.as_str() {
                    "etcd" => "http://127.0.0.1:2379",
                    "zookeeper" => "127.0.0.1:2181",
                    _ => "http://127.0.0.1:8500",
                }
            ));
        }
        if self.key_value.cert.is_some() != self.key_value.key.is_some() {
            return fail(
                "key_value.cert and key_value.key go together (a client certificate and its key)"
                    .into(),
            );
        }
        let tls = self.key_value.ca.is_some() || self.key_value.cert.is_some();
        if tls && (self.key_value.kind != "etcd" || !cfg!(feature = "etcd-tls")) {
            return fail(format!(
                "key_value.ca/cert/key are for etcd over TLS (key_value.kind = 'etcd', vamp-server built with --features etcd-tls); key_value.kind is '{}'",
                self.key_value.kind
            ));
        }
        if self.router.kind == "haproxy-kv" && self.key_value.kind == "memory" {
            return fail(
                "router.kind = 'haproxy-kv' publishes gateways for agents in other processes: set key_value.kind to etcd, zookeeper or consul".into(),
            );
        }
        if !self.key_value.root.starts_with('/') || self.key_value.root.ends_with('/') {
            return fail(format!(
                "key_value.root = '{}' must start with '/' and not end with one (e.g. /vamp/default)",
                self.key_value.root
            ));
        }
        if self.synchronization.period == 0 {
            return fail(
                "synchronization.period = 0: the reconciler needs a period of at least 1 second"
                    .into(),
            );
        }
        port_range(&self.driver.ports)
            .map_err(|e| invalid("configuration", format!("driver.ports: {e}")))?;
        port_range(&self.gateways.ports)
            .map_err(|e| invalid("configuration", format!("gateways.ports: {e}")))?;
        for (name, token) in self.server.all_tokens() {
            let key = if name == "token" {
                "server.token".to_owned()
            } else {
                format!("server.tokens.{name}")
            };
            check_token(&key, token).map_err(|m| invalid("configuration", m))?;
        }
        for origin in &self.server.cors_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return fail(format!(
                    "server.cors_origins: '{origin}' is not an origin: write scheme://host[:port] with no path, e.g. https://ui.example.com"
                ));
            }
        }
        if !self.server.listen.ip().is_loopback()
            && !self.server.has_tokens()
            && !self.server.insecure
        {
            return fail(format!(
                "server.listen = {} is reachable from other machines, and whoever reaches the API can run programs through it: set server.token (or server.tokens), or server.insecure = true to serve without one",
                self.server.listen
            ));
        }
        if self.server.header_timeout == 0 || self.server.idle_timeout == 0 {
            return fail(
                "server.header_timeout and server.idle_timeout must be at least 1 second".into(),
            );
        }
        if self.server.max_connections == 0 || self.router.max_connections == 0 {
            return fail(
                "server.max_connections and router.max_connections must be at least 1".into(),
            );
        }
        if self.router.header_timeout == 0 || self.router.idle_timeout == 0 {
            return fail(
                "router.header_timeout and router.idle_timeout must be at least 1 second".into(),
            );
        }
        port_range(&self.gateways.allowed_ports)
            .map_err(|e| invalid("configuration", format!("gateways.allowed_ports: {e}")))?;
        let l = &self.limits;
        if l.instances == 0
            || l.deployment_instances == 0
            || l.gateways == 0
            || l.routes == 0
            || l.name_length == 0
            || l.memory_mb == 0
            || !(l.cpu > 0.0 && l.cpu.is_finite())
        {
            return fail("limits: every limit must be above 0".into());
        }
        Ok(())
    }

    /// The effective configuration as TOML (the token, credentials and a URL's password
    /// hidden).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        let hidden = || Some("<hidden>".to_owned());
        if shown.server.token.is_some() {
            shown.server.token = hidden();
        }
        for token in shown.server.tokens.values_mut() {
            *token = "<hidden>".to_owned();
        }
        if shown.key_value.credentials.is_some() {
            shown.key_value.credentials = hidden();
        }
        if shown.persistence.credentials.is_some() {
            shown.persistence.credentials = hidden();
        }
        shown.persistence.url = shown.persistence.url.as_deref().map(hide_password);
        toml::to_string(&shown).unwrap_or_default()
    }

    /// The SQLite file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.persistence
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("vamp.db"))
    }
}

/// `scheme://user:password@host/…` with the password hidden.
///
/// ```
/// # use vamp_server::config::hide_password;
/// assert_eq!(hide_password("postgres://vamp:s3cret@db:5432/vamp"), "postgres://vamp:<hidden>@db:5432/vamp");
/// assert_eq!(hide_password("http://127.0.0.1:9200"), "http://127.0.0.1:9200");
/// ```
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<hidden>@{host}"),
        None => url.to_owned(),
    }
}

/// The cargo feature of `vamp-server` that builds a backend.
fn feature_of(kind: &str) -> &str {
    match kind {
        "haproxy-kv" | "haproxy-local" => "haproxy",
        other => other,
    }
}

/// The TOML type a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Text,
    Integer,
    Float,
    Boolean,
    List,
    Table,
}

/// The type of setting `section.key`, from the defaults (optional settings are text, but
/// `server.tokens`).
fn field_type(path: &str) -> FieldType {
    if path == "server.tokens" {
        return FieldType::Table;
    }
    let defaults = toml::Table::try_from(ServerConfig::default()).unwrap_or_default();
    let value = path
        .split_once('.')
        .and_then(|(section, key)| defaults.get(section)?.as_table()?.get(key).cloned());
    match value {
        Some(toml::Value::Integer(_)) => FieldType::Integer,
        Some(toml::Value::Float(_)) => FieldType::Float,
        Some(toml::Value::Boolean(_)) => FieldType::Boolean,
        Some(toml::Value::Array(_)) => FieldType::List,
        Some(toml::Value::Table(_)) => FieldType::Table,
        _ => FieldType::Text,
    }
}

/// `value` (from a variable or a flag) as the type of setting `path` takes: text stays the
/// text it is (`12345` and `"x"` included — a token is a string, whatever it looks like),
/// numbers and booleans are read as such, lists are `a,b` or a TOML array, tables a TOML
/// inline table.
fn typed(path: &str, value: &str) -> Result<toml::Value, String> {
    let toml_value = |text: &str| {
        format!("v = {text}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    match field_type(path) {
        FieldType::Text => Ok(toml::Value::String(value.to_owned())),
        FieldType::Integer => value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("'{value}' is not a whole number")),
        FieldType::Float => value
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("'{value}' is not a number")),
        FieldType::Boolean => match value.trim() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("'{value}' is not true or false")),
        },
        FieldType::List => {
            if value.trim_start().starts_with('[') {
                toml_value(value)
                    .filter(toml::Value::is_array)
                    .ok_or_else(|| format!("'{value}' is not a list like [\"a\", \"b\"]"))
            } else {
                Ok(toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| toml::Value::String(v.to_owned()))
                        .collect(),
                ))
            }
        }
        FieldType::Table => toml_value(value)
            .filter(toml::Value::is_table)
            .ok_or_else(|| format!("'{value}' is not a table like {{ ci = \"…\" }}")),
    }
}

/// Sets `section.key` to `value`, typed as the setting is.
fn set(table: &mut toml::Table, path: &str, value: &str) -> Result<(), String> {
    let Some((section, key)) = path.split_once('.') else {
        return Ok(());
    };
    let parsed = typed(path, value)?;
    let entry = table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = entry.as_table_mut() {
        t.insert(key.to_owned(), parsed);
    }
    Ok(())
}

/// Whether `path = value` alone, over the defaults, makes a configuration that reads.
fn checked_alone(path: &str, value: &str) -> Result<(), String> {
    let mut table = toml::Table::new();
    set(&mut table, path, value)?;
    toml::Table::try_into::<ServerConfig>(table)
        .map(|_| ())
        .map_err(|e| e.message().replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        file: &str,
        env: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> Result<ServerConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vamp.toml");
        std::fs::write(&path, file).expect("write");
        ServerConfig::load(
            Some(&path),
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            flags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn defaults_need_nothing_installed() {
        let config = ServerConfig::load(None, [], []).expect("defaults");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            (
                config.driver.kind(),
                config.persistence.kind.as_str(),
                config.router.kind.as_str()
            ),
            ("process", "sqlite", "embedded")
        );
        assert_eq!(config.sqlite_path(), PathBuf::from("vamp-data/vamp.db"));
    }

    #[test]
    fn file_then_environment_then_flags() {
        let config = load(
            "[server]\nlisten = \"127.0.0.1:1000\"\nbody_limit = 10\n[persistence]\nkind = \"memory\"\n",
            &[("VAMP_SERVER__LISTEN", "127.0.0.1:2000"), ("VAMP_SERVER__BODY_LIMIT", "20"), ("HOME", "/x")],
            &[("server.listen", "127.0.0.1:3000")],
        )
        .expect("config");
        assert_eq!(config.server.listen.port(), 3000, "flags win");
        assert_eq!(
            config.server.body_limit, 20,
            "the environment beats the file"
        );
        assert_eq!(config.persistence.kind, "memory", "the file beats defaults");
    }

    #[test]
    fn mistakes_name_the_key_the_place_and_the_fix() {
        let err = load("[server]\nlisen = \"x\"\n", &[], &[])
            .expect_err("unknown key")
            .to_string();
        assert!(
            err.contains("vamp.toml") && err.contains("lisen") && err.contains("line 2"),
            "{err}"
        );
        let err = load("[server]\nlisten = 8080\n", &[], &[])
            .expect_err("wrong type")
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = load("[server\n", &[], &[])
            .expect_err("bad toml")
            .to_string();
        assert!(err.contains("vamp.toml"), "{err}");
        let err = load("", &[("VAMP_SERVER__LISTEN", "nowhere")], &[])
            .expect_err("bad address")
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = load("[persistence]\nkind = \"oracle\"\n", &[], &[])
            .expect_err("kind")
            .to_string();
        assert!(
            err.contains("persistence.kind") && err.contains("sqlite, memory"),
            "{err}"
        );
        let err = load("[persistence]\nkind = \"postgres\"\n", &[], &[])
            .expect_err("postgres without a url, or without the feature")
            .to_string();
        assert!(
            err.contains("persistence.url") || err.contains("--features postgres"),
            "{err}"
        );
        let err = load("[router]\nkind = \"haproxy-kv\"\n", &[], &[])
            .expect_err("haproxy-kv on a private store")
            .to_string();
        assert!(
            err.contains("key_value.kind") || err.contains("--features haproxy"),
            "{err}"
        );
        let err = load("[key_value]\ncert = \"c.pem\"\n", &[], &[])
            .expect_err("a certificate without its key")
            .to_string();
        assert!(err.contains("key_value.key"), "{err}");
        let err = load("[key_value]\nca = \"ca.pem\"\n", &[], &[])
            .expect_err("TLS for the memory store")
            .to_string();
        assert!(err.contains("etcd"), "{err}");
        let err = load("[key_value]\nroot = \"vamp\"\n", &[], &[])
            .expect_err("relative root")
            .to_string();
        assert!(err.contains("key_value.root"), "{err}");
        let err = load("[gateways]\nports = \"9-1\"\n", &[], &[])
            .expect_err("range")
            .to_string();
        assert!(err.contains("gateways.ports"), "{err}");
        let err = load("[server]\ntoken = \"\"\n", &[], &[])
            .expect_err("empty token")
            .to_string();
        assert!(err.contains("server.token"), "{err}");
    }

    #[test]
    fn the_printed_config_hides_the_token_and_reads_back() {
        let config = load(
            "[server]\ntoken = \"s3cret-token\"\n[key_value]\ncredentials = \"root:s3cret\"\n[persistence]\nkind = \"memory\"\nurl = \"postgres://u:s3cret@h/db\"\n",
            &[],
            &[],
        )
        .expect("config");
        let shown = config.to_toml();
        assert!(
            !shown.contains("s3cret") && shown.matches("<hidden>").count() == 3,
            "{shown}"
        );
        let back: ServerConfig = toml::from_str(&shown).expect("reads back");
        assert_eq!(back.server.listen, config.server.listen);
    }
}
