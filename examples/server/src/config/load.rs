//! Layering with `config` (config-rs): the defaults, then the TOML file, then the
//! `VAMP_<SECTION>__<KEY>` variables, then flags — each value converted to the type of the
//! field it lands in when the whole is deserialized (so a token `12345` stays text and
//! `VAMP_SERVER__BODY_LIMIT=20` is a number). Every value keeps where it came from, for errors
//! and `--print-config`.
//!
//! Variables and flags come in through one small [`config::Source`] of ours ([`Layer`]): it
//! keeps each value's own name (`VAMP_SERVER__TOKEN`, `--listen`) as its origin, reads lists
//! (`a,b`) and tables (`{ ci = "…" }`) for the fields that are lists and tables, and leaves
//! every other value as text for config-rs to convert.

use std::collections::BTreeMap;

use config::{Map, Source, Value, ValueKind};

use super::*;

/// Where each setting's value came from: `section.key` → the file, the variable or the flag
/// (settings left at their default are absent).
pub type Origins = BTreeMap<String, String>;

/// The TOML type a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text (and settings without a default).
    Text,
    /// A whole number.
    Integer,
    /// A number.
    Float,
    /// `true` or `false`.
    Boolean,
    /// A list of text.
    List,
    /// A table of text.
    Table,
}

/// The type of setting `section.key`, from the defaults (optional settings are text, but
/// `server.tokens`).
///
/// ```
/// use vamp_server::config::{FieldType, field_type};
/// assert_eq!(field_type("server.body_limit"), FieldType::Integer);
/// assert_eq!(field_type("server.token"), FieldType::Text);
/// assert_eq!(field_type("rollouts.call_hosts"), FieldType::List);
/// ```
pub fn field_type(path: &str) -> FieldType {
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

/// Settings given as text (variables or flags), each with its own name as its origin.
#[derive(Debug, Clone, Default)]
struct Layer {
    /// `(section.key, origin, text)`.
    entries: Vec<(String, String, String)>,
}

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let mut out = Map::new();
        for (key, origin, text) in &self.entries {
            let value = read(key, origin, text)
                .map_err(|m| config::ConfigError::Message(format!("{origin} ({key}): {m}")))?;
            out.insert(key.clone(), value);
        }
        Ok(out)
    }
}

/// `text` for setting `key`: a list or a table when the field is one, else text.
fn read(key: &str, origin: &str, text: &str) -> Result<Value, String> {
    let here = Some(&origin.to_owned());
    let string = |s: &str| Value::new(here, ValueKind::String(s.to_owned()));
    Ok(match field_type(key) {
        FieldType::List => {
            let items: Vec<Value> = if text.trim_start().starts_with('[') {
                let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {text}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .filter(toml::Value::is_array)
                    .ok_or_else(|| format!("'{text}' is not a list like [\"a\", \"b\"] or a,b"))?;
                parsed
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| string(v.as_str().unwrap_or_default()))
                    .collect()
            } else {
                text.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(string)
                    .collect()
            };
            Value::new(here, ValueKind::Array(items))
        }
        FieldType::Table => {
            let table = toml::from_str::<toml::Table>(&format!("v = {text}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .and_then(|v| v.as_table().cloned())
                .ok_or_else(|| format!("'{text}' is not a table like {{ ci = \"…\" }}"))?;
            let entries: Map<String, Value> = table
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(s) => Ok((k.clone(), string(s))),
                    None => Err(format!("{key}.{k} must be text")),
                })
                .collect::<Result<_, _>>()?;
            Value::new(here, ValueKind::Table(entries))
        }
        FieldType::Text | FieldType::Integer | FieldType::Float | FieldType::Boolean => {
            string(text)
        }
    })
}

/// The `VAMP_<SECTION>__<KEY>` variables of `env` that name settings; an error for one that
/// looks like a setting but is none.
fn variables(
    env: impl IntoIterator<Item = (String, String)>,
    known: &[String],
) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
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
        layer.entries.push((path, name, value));
    }
    Ok(layer)
}

/// A config-rs error as ours: which file, variable or flag, which key, what is wrong.
fn explain(e: config::ConfigError, origins: &Origins) -> ConfigError {
    let place = |key: &Option<String>| {
        key.as_ref()
            .and_then(|k| origins.get(k))
            .cloned()
            .unwrap_or_else(|| "configuration".into())
    };
    match e {
        config::ConfigError::Type {
            ref key,
            ref unexpected,
            expected,
            ..
        } => {
            let origin = place(key);
            let key = key.clone().unwrap_or_default();
            invalid(&origin, format!("{key}: {unexpected} is not {expected}"))
        }
        config::ConfigError::At {
            ref key, ref error, ..
        } => {
            let origin = place(key);
            let key = key.clone().unwrap_or_default();
            invalid(&origin, format!("{key}: {error}"))
        }
        other => invalid("configuration", other.to_string()),
    }
}

/// Every leaf of `value` under `prefix`, with its origin.
fn walk(prefix: &str, value: &Value, out: &mut Origins) {
    match &value.kind {
        ValueKind::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v, out);
            }
        }
        _ => {
            if let Some(origin) = value.origin() {
                // `server.tokens.ci` is the setting `server.tokens`.
                let setting = prefix.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
                out.insert(setting, origin.to_owned());
            }
        }
    }
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
        Self::load_with_origins(file, env, flags).map(|(config, _)| config)
    }

    /// [`load`](Self::load), and where each value that is not a default came from.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    ///
    /// ```
    /// use vamp_server::config::ServerConfig;
    /// let env = [("VAMP_SERVER__BODY_LIMIT".to_owned(), "2048".to_owned())];
    /// let flags = [("server.listen".to_owned(), "127.0.0.1:9999".to_owned())];
    /// let (config, origins) = ServerConfig::load_with_origins(None, env, flags).unwrap();
    /// assert_eq!(config.server.body_limit, 2048);
    /// assert_eq!(origins["server.body_limit"], "VAMP_SERVER__BODY_LIMIT");
    /// assert_eq!(origins["server.listen"], "flag server.listen");
    /// assert!(!origins.contains_key("driver.kind"), "a default");
    /// ```
    pub fn load_with_origins(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Origins), ConfigError> {
        let defaults = config::Config::try_from(&ServerConfig::default())
            .map_err(|e| invalid("defaults", e.to_string()))?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let origin = path.display().to_string();
            // Read once by toml itself: its errors carry the line and column.
            toml::from_str::<ServerConfig>(&text).map_err(|e| invalid(&origin, e.to_string()))?;
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let known = Self::known_keys();
        builder = builder.add_source(variables(env, &known)?);
        let mut given = Layer::default();
        for (path, value) in flags {
            if !known.contains(&path) {
                return Err(invalid("flags", format!("{path} is not a setting")));
            }
            given
                .entries
                .push((path.clone(), format!("flag {path}"), value));
        }
        let layered = builder
            .add_source(given)
            .build()
            .map_err(|e| explain(e, &Origins::new()))?;
        let mut origins = Origins::new();
        let tree = layered.collect().map_err(|e| explain(e, &origins))?;
        walk("", &Value::new(None, ValueKind::Table(tree)), &mut origins);
        // config-rs names the file relative to the working directory; say it as given.
        if let Some(path) = file {
            for origin in origins.values_mut() {
                if !origin.starts_with("VAMP_") && !origin.starts_with("flag ") {
                    *origin = path.display().to_string();
                }
            }
        }
        let config: ServerConfig = layered
            .try_deserialize()
            .map_err(|e| explain(e, &origins))?;
        config.check()?;
        Ok((config, origins))
    }

    /// The effective configuration as TOML (secrets hidden, as [`to_toml`](Self::to_toml)),
    /// each value that is not a default followed by where it came from.
    ///
    /// ```
    /// use vamp_server::config::ServerConfig;
    /// let env = [("VAMP_SERVER__BODY_LIMIT".to_owned(), "2048".to_owned())];
    /// let (config, origins) = ServerConfig::load_with_origins(None, env, []).unwrap();
    /// assert!(config.to_toml_with_origins(&origins).contains("body_limit = 2048  # VAMP_SERVER__BODY_LIMIT"));
    /// ```
    pub fn to_toml_with_origins(&self, origins: &Origins) -> String {
        let mut out = String::new();
        let mut section = String::new();
        for line in self.to_toml().lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            }
            out.push_str(line);
            if let Some((key, _)) = line.split_once(" = ")
                && let Some(origin) = origins.get(&format!("{section}.{}", key.trim()))
            {
                out.push_str("  # ");
                out.push_str(origin);
            }
            out.push('\n');
        }
        out
    }
}
