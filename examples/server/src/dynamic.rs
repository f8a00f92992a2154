//! Dynamic configuration (spec §2.2 `PUT /api/v1/config`): settings changed while the server
//! runs. They are checked like the file's, applied at once, and kept in the key-value store at
//! `<key_value.root>/config`, so with a shared store (etcd, ZooKeeper, Consul) they outlive a
//! restart; with the default `memory` store they last as long as the process.
//!
//! Only settings the running server can take without a restart are dynamic
//! ([`KEYS`]); the others are refused with the way to change them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use vamp_core::traits::KeyValueStore;

use crate::config::{ConfigError, ServerConfig};

/// The settings that may change while the server runs.
pub const KEYS: &[&str] = &["server.body_limit", "server.token", "server.tokens"];

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DynamicError {
    /// The change names an unknown or non-dynamic key, or a value that does not fit.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The key-value store could not keep it (nothing changed).
    #[error("cannot keep the dynamic configuration: {0}")]
    Store(#[from] vamp_core::Error),
}

/// The configuration as it is now: the one the server started with, and the dynamic changes
/// over it.
#[derive(Debug)]
pub struct Settings {
    start: Arc<ServerConfig>,
    kv: Arc<dyn KeyValueStore>,
    key: String,
    now: RwLock<Now>,
    writes: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct Now {
    changes: BTreeMap<String, Value>,
    config: Arc<ServerConfig>,
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: "dynamic configuration".into(),
        message,
    }
}

/// `{"server.token": …}` or `{"server": {"token": …}}` as `section.key` → value.
fn flatten(body: &Value) -> Result<BTreeMap<String, Value>, ConfigError> {
    let Value::Object(top) = body else {
        return Err(invalid(
            "send a map of settings, e.g. {\"server.body_limit\": 1048576}".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (key, value) in top {
        match value {
            Value::Object(inner) if !key.contains('.') => {
                for (k, v) in inner {
                    out.insert(format!("{key}.{k}"), v.clone());
                }
            }
            v => {
                out.insert(key.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

/// `config` with `changes` over it, checked like a file.
fn apply(
    config: &ServerConfig,
    changes: &BTreeMap<String, Value>,
) -> Result<ServerConfig, ConfigError> {
    let mut table =
        toml::Table::try_from(config).map_err(|e| invalid(format!("cannot apply: {e}")))?;
    for (key, value) in changes {
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        let value = to_toml(key, value)?;
        if let Some(t) = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
        {
            t.insert(name.to_owned(), value);
        }
    }
    let text = toml::to_string(&table).map_err(|e| invalid(e.to_string()))?;
    ServerConfig::from_toml(&text, "dynamic configuration")
}

impl Settings {
    /// The settings of a server started with `start`, with the changes kept in `kv` (under
    /// `<key_value.root>/config`) over it.
    ///
    /// # Errors
    /// When the store cannot be read, or what it keeps no longer fits (say a key stopped
    /// being dynamic): the message names the key to fix or delete.
    pub async fn load(
        start: ServerConfig,
        kv: Arc<dyn KeyValueStore>,
    ) -> Result<Settings, DynamicError> {
        let key = format!("{}/config", start.key_value.root);
        let changes = match kv.get(&key).await? {
            Some(entry) => {
                let value: Value = serde_json::from_slice(&entry.value).map_err(|e| {
                    invalid(format!("{key} in the key-value store is not JSON: {e}"))
                })?;
                check_keys(&flatten(&value)?)?
            }
            None => BTreeMap::new(),
        };
        let config = Arc::new(apply(&start, &changes)?);
        Ok(Settings {
            start: Arc::new(start),
            kv,
            key,
            now: RwLock::new(Now { changes, config }),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    fn now(&self) -> Now {
        self.now
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.now().config
    }

    /// The configuration the server started with.
    pub fn start(&self) -> &ServerConfig {
        &self.start
    }

    /// The dynamic changes in force, `section.key` → value.
    pub fn changes(&self) -> BTreeMap<String, Value> {
        self.now().changes
    }

    /// Applies `body` (a map of dynamic settings; `null` drops a change, back to the start
    /// value) over the changes in force, keeps the result in the store, and returns it.
    /// Nothing changes when it is refused.
    ///
    /// # Errors
    /// [`DynamicError::Invalid`] naming the key; [`DynamicError::Store`] when the store fails.
    pub async fn change(&self, body: &Value) -> Result<BTreeMap<String, Value>, DynamicError> {
        let _one_at_a_time = self.writes.lock().await;
        let (changes, config) = self.changed(body)?;
        let config = Arc::new(config);
        let stored =
            serde_json::to_vec(&changes).map_err(|e| vamp_core::Error::backend("json", e))?;
        self.kv.put(&self.key, &stored).await?;
        *self
            .now
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Now {
            changes: changes.clone(),
            config,
        };
        tracing::info!(keys = ?changes.keys().collect::<Vec<_>>(), "dynamic configuration changed");
        Ok(changes)
    }
}

/// A JSON setting as TOML: strings, whole numbers, booleans, lists and maps of them.
fn to_toml(key: &str, value: &Value) -> Result<toml::Value, ConfigError> {
    Ok(match value {
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => return Err(invalid(format!("{key} = {n}: expected a whole number"))),
        },
        Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|v| to_toml(key, v))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(entries) => toml::Value::Table(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_toml(&format!("{key}.{k}"), v)?)))
                .collect::<Result<_, ConfigError>>()?,
        ),
        Value::Null => {
            return Err(invalid(format!(
                "{key} = null: expected a value (null drops a change only at the top)"
            )));
        }
    })
}

impl Settings {
    /// The changes in force with `body` over them, and the configuration they make, checked
    /// like [`change`](Self::change) and kept nowhere (`validate_only`).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn changed(
        &self,
        body: &Value,
    ) -> Result<(BTreeMap<String, Value>, ServerConfig), ConfigError> {
        let mut changes = self.changes();
        for (key, value) in check_keys(&flatten(body)?)? {
            if value.is_null() {
                changes.remove(&key);
            } else {
                changes.insert(key, value);
            }
        }
        let config = apply(&self.start, &changes)?;
        Ok((changes, config))
    }
}

/// Every key must be a dynamic setting.
fn check_keys(changes: &BTreeMap<String, Value>) -> Result<BTreeMap<String, Value>, ConfigError> {
    for key in changes.keys() {
        if !KEYS.contains(&key.as_str()) {
            let known = ServerConfig::known_keys();
            let why = if known.contains(key) {
                format!(
                    "{key} cannot change while the server runs: set it in the config file (or VAMP_{}) and restart",
                    key.to_uppercase().replace('.', "__")
                )
            } else {
                format!("{key} is not a setting")
            };
            return Err(invalid(format!(
                "{why} (dynamic settings: {})",
                KEYS.join(", ")
            )));
        }
    }
    Ok(changes.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn settings() -> Settings {
        let kv: Arc<dyn KeyValueStore> = Arc::new(vamp_core::memory::MemoryStore::default());
        Settings::load(ServerConfig::default(), kv)
            .await
            .expect("settings")
    }

    #[tokio::test]
    async fn changes_apply_persist_and_reload() {
        let kv: Arc<dyn KeyValueStore> = Arc::new(vamp_core::memory::MemoryStore::default());
        let s = Settings::load(ServerConfig::default(), kv.clone())
            .await
            .expect("settings");
        s.change(&json!({"server": {"body_limit": 1000}, "server.token": "t0k3n-long"}))
            .await
            .expect("change");
        assert_eq!(s.current().server.body_limit, 1000);
        assert_eq!(s.current().server.token.as_deref(), Some("t0k3n-long"));
        assert_eq!(s.start().server.body_limit, 4 * 1024 * 1024);
        let again = Settings::load(ServerConfig::default(), kv)
            .await
            .expect("reload");
        assert_eq!(again.current().server.body_limit, 1000, "kept in the store");
        s.change(&json!({"server.token": null}))
            .await
            .expect("drop");
        assert_eq!(s.current().server.token, None);
        assert_eq!(s.changes().len(), 1);
    }

    #[tokio::test]
    async fn refusals_name_the_key_and_change_nothing() {
        let s = settings().await;
        for (body, expected) in [
            (json!({"router.kind": "none"}), "restart"),
            (json!({"server.colour": 1}), "not a setting"),
            (json!({"server.body_limit": "lots"}), "body_limit"),
            (json!({"server.token": ""}), "server.token"),
            (json!(["server.token"]), "map"),
        ] {
            let err = s.change(&body).await.expect_err("refused").to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
        assert!(s.changes().is_empty());
        assert_eq!(s.current().as_ref(), s.start());
    }
}
