//! The server's configuration: one TOML file, then environment variables
//! `VAMP_<SECTION>__<KEY>`, then flags, over defaults that need nothing installed (the process
//! driver, a SQLite file in the data directory, the embedded router, `127.0.0.1:8080`).
//! docs/server.md lists every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything the server is configured with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    /// The address the API listens on.
    pub listen: SocketAddr,
    /// Where the database, process state and logs live.
    pub data_dir: PathBuf,
    /// When set, every API request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("vamp-data"),
            token: None,
            body_limit: 4 * 1024 * 1024,
        }
    }
}

/// `[driver]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Driver {
    /// `process` (local processes, built in), `docker` (feature `docker`) or `swarm` (Docker
    /// Swarm services through a manager node, feature `swarm`).
    pub kind: String,
    /// The host ports handed to instances, `first-last`.
    pub ports: String,
    /// The Docker daemon (`unix:///var/run/docker.sock` or `tcp://host:port`), for `docker`;
    /// a manager node's daemon for `swarm`.
    pub docker_host: String,
}

impl Default for Driver {
    fn default() -> Self {
        Driver {
            kind: "process".into(),
            ports: "31000-32999".into(),
            docker_host: "unix:///var/run/docker.sock".into(),
        }
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
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            kind: "embedded".into(),
            haproxy: PathBuf::from("haproxy"),
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
    /// The ports internal gateways get, `first-last` (Vamp: 40000-45000).
    pub ports: String,
}

impl Default for Gateways {
    fn default() -> Self {
        Gateways {
            host: "127.0.0.1".into(),
            ports: "40000-45000".into(),
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
            set(&mut table, &path, &value);
        }
        for (path, value) in flags {
            if !known.contains(&path) {
                return Err(invalid("flags", format!("{path} is not a setting")));
            }
            set(&mut table, &path, &value);
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
            ("driver.kind", self.driver.kind.as_str(), available::DRIVERS),
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
        port_range(&self.driver.ports)
            .map_err(|e| invalid("configuration", format!("driver.ports: {e}")))?;
        port_range(&self.gateways.ports)
            .map_err(|e| invalid("configuration", format!("gateways.ports: {e}")))?;
        if self.server.token.as_deref() == Some("") {
            return fail("server.token is empty: leave it out for no authentication".into());
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

/// Sets `section.key` to `value`, typed like TOML when it reads as a TOML value (numbers,
/// booleans), else as a string.
fn set(table: &mut toml::Table, path: &str, value: &str) {
    let Some((section, key)) = path.split_once('.') else {
        return;
    };
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_array())
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let entry = table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = entry.as_table_mut() {
        t.insert(key.to_owned(), parsed);
    }
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
                config.driver.kind.as_str(),
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
            "[server]\ntoken = \"s3cret\"\n[key_value]\ncredentials = \"root:s3cret\"\n[persistence]\nkind = \"memory\"\nurl = \"postgres://u:s3cret@h/db\"\n",
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
