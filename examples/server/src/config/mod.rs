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
    pub limits: vamp_core::engine::Limits,
    /// Event retention.
    pub events: EventsConfig,
    /// Automated canary releases.
    pub rollouts: RolloutsConfig,
    /// Workflows that run.
    pub workflows: WorkflowsConfig,
    /// Leader election among servers sharing the stores.
    pub election: ElectionConfig,
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

impl ServerConfig {
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
                "driver.kubeconfig",
                "persistence.path",
                "persistence.url",
                "persistence.credentials",
                "key_value.credentials",
                "key_value.ca",
                "key_value.cert",
                "key_value.key",
                "election.node",
                "election.url",
            ]
            .map(str::to_owned),
        );
        keys.sort();
        keys.dedup();
        keys
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

/// `user:password` credentials as a pair; the error names `what` they are for.
///
/// ```
/// # use vamp_server::config::user_password;
/// assert_eq!(user_password("vamp:s3cret", "etcd").unwrap(), ("vamp".to_owned(), "s3cret".to_owned()));
/// assert!(user_password("vamp", "etcd").unwrap_err().contains("etcd"));
/// ```
///
/// # Errors
/// When there is no `:`.
pub fn user_password(credentials: &str, what: &str) -> Result<(String, String), String> {
    credentials
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .ok_or_else(|| format!("the credentials for {what} must be user:password"))
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

mod check;
mod load;
#[cfg(test)]
mod tests;

pub use check::{
    check_token, client_port_warnings, kernel_client_ports, port_range, ports_open_to_clients,
};
pub use load::{FieldType, Origins, field_type};

mod sections;
pub use sections::*;
