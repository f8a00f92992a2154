//! Gateways, routes, conditions and rewrites (spec §1.6–1.8).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Map, Metadata, Percentage, PortType, Ref, ReferenceStyle};

/// A gateway: a port whose traffic is split over routes.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Gateway {
    /// The name: one segment for user gateways; `<deployment>/<port>` and
    /// `<deployment>/<cluster>/<port>` for Vamp-managed ones. Empty inside blueprints.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// The port of a standalone gateway (number 0 = assign one). `None` inside blueprints,
    /// where the map key carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<GatewayPort>,
    /// Sticky sessions; `None` = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Virtual host names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub virtual_hosts: Vec<String>,
    /// A route selector expression (spec §1.7.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Routes by path, in order (conditions are evaluated in this order).
    pub routes: Map<Ref<Route>>,
}

super::reference::named!(Gateway);

impl ReferenceStyle for Gateway {
    const PLAIN_STRING: bool = true;
}

/// A gateway port: number and protocol, written `"9050/http"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GatewayPort {
    /// The number; 0 = let Vamp assign one.
    pub number: u16,
    /// The protocol.
    pub kind: PortType,
}

impl GatewayPort {
    /// Reads `9050`, `"9050/http"` or `"9050/tcp"`.
    pub fn parse(text: &str) -> Result<GatewayPort, String> {
        let t = text.trim();
        let (n, kind) = match t.split_once('/') {
            Some((n, "http")) => (n, PortType::Http),
            Some((n, "tcp")) => (n, PortType::Tcp),
            Some(_) => {
                return Err(format!(
                    "'{text}' is not a gateway port: use <number>[/http|/tcp]"
                ));
            }
            None => (t, PortType::Http),
        };
        n.parse::<u16>()
            .map(|number| GatewayPort { number, kind })
            .map_err(|_| {
                format!("'{text}' is not a gateway port: use a number 0-65535, e.g. 9050/http")
            })
    }
}

impl std::fmt::Display for GatewayPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.number, self.kind.as_str())
    }
}

impl Serialize for GatewayPort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Sticky sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sticky {
    /// Pin a client to a route.
    Route,
    /// Pin a client to a route and an instance inside it.
    Instance,
}

/// A route of a gateway.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Route {
    /// The name of a stored route (`kind: routes`); empty inside gateways.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// The share of the traffic that does not match a condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<Percentage>,
    /// Which requests this route attracts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Ref<Condition>>,
    /// The share of matching requests sent here (default 100% with a condition, else 0%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_strength: Option<Percentage>,
    /// Path rewrites.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<Ref<Rewrite>>,
    /// The balance algorithm (`default` = gateway default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// A route-level selector (spec §1.7.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Copies of a share of this route's requests sent elsewhere, their answers thrown away
    /// (not in Vamp; embedded router only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
}

/// Traffic mirroring of a route: `mirror: {target: "10.0.0.9:8080", percentage: 100%}`.
/// The client's answer and latency never depend on the mirror: copies are sent after the
/// request is routed, fire and forget, at most a bounded number at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mirror {
    /// `host:port` the copies go to.
    pub target: String,
    /// The share of the route's requests copied.
    pub percentage: Percentage,
}

super::reference::named!(Route);

impl ReferenceStyle for Route {
    const PLAIN_STRING: bool = false;
}

/// A condition: a routing filter expression (spec §1.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Condition {
    /// The name of a stored condition; empty inline.
    pub name: String,
    /// Free metadata.
    pub metadata: Metadata,
    /// The expression, e.g. `user-agent == Firefox`.
    pub definition: String,
}

super::reference::named!(Condition);

impl ReferenceStyle for Condition {
    const PLAIN_STRING: bool = false;
}

impl Serialize for Condition {
    /// Anonymous conditions are written as their expression string.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.name.is_empty() && self.metadata.is_empty() {
            return s.serialize_str(&self.definition);
        }
        let mut m = super::reference::open_named(s, &self.name, &self.metadata)?;
        m.serialize_entry("condition", &self.definition)?;
        m.end()
    }
}

/// A path rewrite `{path: "<new path> if <condition>"}` (spec §1.8).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Rewrite {
    /// The name of a stored rewrite; empty inline.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// `<new path> if <condition>`.
    pub path: String,
}

super::reference::named!(Rewrite);

impl ReferenceStyle for Rewrite {
    const PLAIN_STRING: bool = false;
}

impl Rewrite {
    /// Splits `path` into the new path and the HAProxy condition (wrapped in `{ }`), following
    /// the regex `^(?i)(.+) if (.+)$`.
    ///
    /// ```
    /// use vamp_core::model::Rewrite;
    /// let r = Rewrite { path: "/a if path_beg /b".into(), ..Default::default() };
    /// assert_eq!(r.parts(), Some(("/a".to_string(), "{ path_beg /b }".to_string())));
    /// ```
    pub fn parts(&self) -> Option<(String, String)> {
        let lower = self.path.to_ascii_lowercase();
        let at = lower.rfind(" if ")?;
        let (new_path, cond) = (&self.path[..at], &self.path[at + 4..]);
        if new_path.trim().is_empty() || cond.trim().is_empty() {
            return None;
        }
        let cond = cond.trim();
        let cond = if cond.starts_with('{') && cond.ends_with('}') {
            cond.to_owned()
        } else {
            format!("{{ {cond} }}")
        };
        Some((new_path.to_owned(), cond))
    }
}
