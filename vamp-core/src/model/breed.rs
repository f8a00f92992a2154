//! Breeds: static descriptions of one deployable service (spec §1.3).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Map, Metadata, Ref, ReferenceStyle, Seconds};

/// The default deployable type (`vamp.model.default-deployable-type`).
pub const DEFAULT_DEPLOYABLE_TYPE: &str = "container/docker";

/// A breed.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Breed {
    /// The breed's name, e.g. `sava:1.0.0` (empty only while invalid).
    pub name: String,
    /// Free metadata.
    pub metadata: Metadata,
    /// What to run.
    pub deployable: Deployable,
    /// Ports by name. This and the other collections are written also when empty, as
    /// Vamp's API writes them (issue 17: clients read `breed.ports` without a check).
    pub ports: Map<Port>,
    /// Environment variables by trait name.
    #[serde(serialize_with = "serialize_env")]
    pub environment_variables: Map<EnvVar>,
    /// Constants by name (never injected into the container).
    pub constants: Map<String>,
    /// Arguments passed to the scheduler.
    pub arguments: Vec<Argument>,
    /// Dependencies by alias (a referenced breed written as its name, as Vamp writes it).
    #[serde(serialize_with = "serialize_dependencies")]
    pub dependencies: Map<Ref<Breed>>,
    /// Health checks; `None` = not specified, `Some([])` = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
}

super::reference::named!(Breed);

/// A breed reference is written `{reference: name}`, as Vamp's API writes it (issue 17).
impl ReferenceStyle for Breed {
    const PLAIN_STRING: bool = false;
}

/// What a breed runs: `{type, definition}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Deployable {
    /// `container/docker`, `command`, `application/javascript`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The image, command line or script.
    pub definition: String,
}

impl Deployable {
    /// Normalizes the type aliases `docker` → `container/docker`, `rkt` → `container/rkt`,
    /// `cmd` → `command`, `javascript` → `application/javascript`.
    pub fn normalize_type(kind: &str) -> String {
        match kind {
            "docker" => "container/docker".to_owned(),
            "rkt" => "container/rkt".to_owned(),
            "cmd" => "command".to_owned(),
            "javascript" | "js" => "application/javascript".to_owned(),
            other => other.to_owned(),
        }
    }
}

/// The protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// HTTP (the default).
    #[default]
    Http,
    /// Plain TCP: no sticky sessions, no conditions.
    Tcp,
}

impl PortType {
    /// `http` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::Http => "http",
            PortType::Tcp => "tcp",
        }
    }
}

/// A port: a number or a reference (`$db.constants.port`), and a type; written `"8080/http"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The value.
    pub value: PortValue,
    /// The protocol.
    pub kind: PortType,
}

/// The value of a [`Port`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortValue {
    /// A port number.
    Number(u16),
    /// An expression to resolve at deploy time.
    Expression(String),
}

impl Port {
    /// Reads `8080`, `"8080/http"`, `"8080/tcp"` or `"$db.constants.port/tcp"`.
    pub fn parse(text: &str) -> Result<Port, String> {
        let t = text.trim();
        let (value, kind) = match t.rsplit_once('/') {
            Some((v, "http")) => (v, PortType::Http),
            Some((v, "tcp")) => (v, PortType::Tcp),
            Some((_, other)) => {
                return Err(format!(
                    "port type '{other}' is unknown; write <number>/http or <number>/tcp"
                ));
            }
            None => (t, PortType::Http),
        };
        if value.starts_with('$') {
            return Ok(Port {
                value: PortValue::Expression(value.to_owned()),
                kind,
            });
        }
        value
            .parse::<u16>()
            .map(|n| Port {
                value: PortValue::Number(n),
                kind,
            })
            .map_err(|_| format!("'{text}' is not a port: use a number 0-65535, e.g. 8080/http"))
    }

    /// The number, if known.
    pub fn number(&self) -> Option<u16> {
        match self.value {
            PortValue::Number(n) => Some(n),
            PortValue::Expression(_) => None,
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            PortValue::Number(n) => write!(f, "{n}/{}", self.kind.as_str()),
            PortValue::Expression(e) => write!(f, "{e}/{}", self.kind.as_str()),
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An environment variable of a breed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvVar {
    /// The name injected into the container when it differs from the trait name
    /// (`debug[SAVA_DEBUG]: true`).
    pub alias: Option<String>,
    /// The value; `None` is a placeholder to fill at blueprint or deploy time.
    pub value: Option<String>,
}

fn serialize_dependencies<S: Serializer>(
    dependencies: &Map<Ref<Breed>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(dependencies.len()))?;
    for (alias, dependency) in dependencies {
        match dependency {
            Ref::Reference(name) => m.serialize_entry(alias, name)?,
            Ref::Inline(breed) => m.serialize_entry(alias, breed)?,
        }
    }
    m.end()
}

fn serialize_env<S: Serializer>(env: &Map<EnvVar>, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(env.len()))?;
    for (name, var) in env {
        match &var.alias {
            Some(alias) => m.serialize_entry(&format!("{name}[{alias}]"), &var.value)?,
            None => m.serialize_entry(name, &var.value)?,
        }
    }
    m.end()
}

/// One scheduler argument, `- key: value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    /// The key, e.g. `privileged`.
    pub key: String,
    /// A scalar value.
    pub value: serde_json::Value,
}

impl Serialize for Argument {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(&self.key, &self.value)?;
        m.end()
    }
}

/// A health check (spec §1.5.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// HTTP path, default `/`.
    pub path: String,
    /// The breed port to check.
    pub port: String,
    /// Delay before the first check.
    pub initial_delay: Seconds,
    /// Timeout of one check.
    pub timeout: Seconds,
    /// Time between checks.
    pub interval: Seconds,
    /// Failures before the instance is unhealthy.
    pub failures: u32,
    /// `HTTP` (default), `HTTPS`, `TCP`, … passed to the scheduler.
    pub protocol: String,
}
