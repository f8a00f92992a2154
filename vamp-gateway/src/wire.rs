//! Gateways as they travel through the key-value store (ARCHITECTURE, "KV layout"):
//! `<root>/gateways/<name>` holds one [`WireGateway`] as JSON, `<root>/gateways` the JSON list
//! of names, `<root>/gateways/haproxy/<version>/configuration` the rendered HAProxy text.
//!
//! Gateway names contain `/` (`shop/web/port`), so the name in a key is percent-encoded
//! (`shop%2Fweb%2Fport`): a gateway key never has a `/` after `gateways/`, and the
//! configuration key can never be taken for a gateway.

use serde::{Deserialize, Serialize};
use vamp_core::model::{Percentage, PortType, Sticky};
use vamp_core::traits::kv::{decode_segment, encode_segment};
use vamp_core::traits::{
    Balance, ResolvedCondition, ResolvedGateway, ResolvedRewrite, ResolvedRoute, RouteTarget,
};

/// The HAProxy version whose configuration the `haproxy-kv` router writes.
pub const HAPROXY_VERSION: &str = "2.6";

/// `<root>/gateways`: the JSON list of gateway names.
pub fn list_key(root: &str) -> String {
    format!("{}/gateways", root.trim_end_matches('/'))
}

/// `<root>/gateways/`: the prefix of gateway entries.
pub fn prefix(root: &str) -> String {
    format!("{}/gateways/", root.trim_end_matches('/'))
}

/// `<root>/gateways/<name>` with the name percent-encoded.
///
/// ```
/// assert_eq!(vamp_gateway::wire::gateway_key("/vamp/default", "shop/web/port"),
///            "/vamp/default/gateways/shop%2Fweb%2Fport");
/// ```
pub fn gateway_key(root: &str, name: &str) -> String {
    format!("{}{}", prefix(root), encode_segment(name))
}

/// `<root>/gateways/haproxy/<version>/configuration`.
pub fn configuration_key(root: &str) -> String {
    format!("{}haproxy/{HAPROXY_VERSION}/configuration", prefix(root))
}

/// The gateway name of a gateway key, or `None` for other keys under the prefix.
pub fn name_of(root: &str, key: &str) -> Option<String> {
    let encoded = key.strip_prefix(&prefix(root))?;
    if encoded.is_empty() || encoded.contains('/') {
        return None;
    }
    decode_segment(encoded)
}

/// One gateway in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireGateway {
    /// Name.
    pub name: String,
    /// Lookup name (spec §4.2.1).
    pub lookup_name: String,
    /// Port.
    pub port: u16,
    /// `http` or `tcp`.
    pub protocol: String,
    /// `route`, `instance` or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
    /// Virtual hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_hosts: Vec<String>,
    /// Routes in order.
    pub routes: Vec<WireRoute>,
}

/// One route in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRoute {
    /// Route path.
    pub path: String,
    /// Lookup name.
    pub lookup_name: String,
    /// Weight, percent.
    pub weight: u8,
    /// Condition text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Condition strength, percent.
    pub condition_strength: u8,
    /// `(path, condition)` rewrites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<(String, String)>,
    /// HAProxy balance algorithm name.
    pub balance: String,
    /// `(name, host, port)` targets.
    pub targets: Vec<(String, String, u16)>,
}

/// A stored gateway that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway entry {key}: {message}")]
pub struct WireError {
    /// The key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl From<&ResolvedGateway> for WireGateway {
    fn from(g: &ResolvedGateway) -> Self {
        WireGateway {
            name: g.name.clone(),
            lookup_name: g.lookup_name.clone(),
            port: g.port,
            protocol: match g.protocol {
                PortType::Http => "http",
                PortType::Tcp => "tcp",
            }
            .into(),
            sticky: g.sticky.map(|s| {
                match s {
                    Sticky::Route => "route",
                    Sticky::Instance => "instance",
                }
                .into()
            }),
            virtual_hosts: g.virtual_hosts.clone(),
            routes: g
                .routes
                .iter()
                .map(|r| WireRoute {
                    path: r.path.clone(),
                    lookup_name: r.lookup_name.clone(),
                    weight: r.weight.get(),
                    condition: r.condition.as_ref().map(|c| c.text.clone()),
                    condition_strength: r.condition_strength.get(),
                    rewrites: r
                        .rewrites
                        .iter()
                        .map(|rw| (rw.path.clone(), rw.condition.clone()))
                        .collect(),
                    balance: match &r.balance {
                        Balance::RoundRobin => "roundrobin".into(),
                        Balance::LeastConn => "leastconn".into(),
                        Balance::Source => "source".into(),
                        Balance::Other(o) => o.clone(),
                    },
                    targets: r
                        .targets
                        .iter()
                        .map(|t| (t.name.clone(), t.host.clone(), t.port))
                        .collect(),
                })
                .collect(),
        }
    }
}

impl WireGateway {
    /// JSON bytes for the store.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain strings and numbers: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the JSON stored at `key`, checking every field.
    ///
    /// # Errors
    /// [`WireError`] naming the key and the problem.
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<ResolvedGateway, WireError> {
        let bad = |message: String| WireError {
            key: key.to_owned(),
            message,
        };
        let w: WireGateway = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let pct = |what: &str, v: u8| {
            Percentage::new(v).ok_or_else(|| bad(format!("{what} {v} is above 100")))
        };
        let routes = w
            .routes
            .into_iter()
            .map(|r| {
                Ok(ResolvedRoute {
                    // Agents run HAProxy, which cannot mirror: such gateways are refused
                    // before they are published.
                    mirror: None,
                    weight: pct("weight", r.weight)?,
                    condition_strength: pct("condition_strength", r.condition_strength)?,
                    condition: r.condition.as_deref().map(ResolvedCondition::parse),
                    rewrites: r
                        .rewrites
                        .into_iter()
                        .map(|(path, condition)| ResolvedRewrite { path, condition })
                        .collect(),
                    balance: match r.balance.as_str() {
                        "roundrobin" => Balance::RoundRobin,
                        "leastconn" => Balance::LeastConn,
                        "source" => Balance::Source,
                        other => Balance::Other(other.to_owned()),
                    },
                    targets: r
                        .targets
                        .into_iter()
                        .map(|(name, host, port)| RouteTarget { name, host, port })
                        .collect(),
                    path: r.path,
                    lookup_name: r.lookup_name,
                })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        Ok(ResolvedGateway {
            protocol: match w.protocol.as_str() {
                "http" => PortType::Http,
                "tcp" => PortType::Tcp,
                other => return Err(bad(format!("protocol '{other}' is not http or tcp"))),
            },
            sticky: match w.sticky.as_deref() {
                None => None,
                Some("route") => Some(Sticky::Route),
                Some("instance") => Some(Sticky::Instance),
                Some(other) => {
                    return Err(bad(format!("sticky '{other}' is not route or instance")));
                }
            },
            name: w.name,
            lookup_name: w.lookup_name,
            port: w.port,
            virtual_hosts: w.virtual_hosts,
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gateway() -> impl Strategy<Value = ResolvedGateway> {
        let route = (
            ".{0,12}",
            0u8..=100,
            prop::option::of(".{0,20}"),
            0u8..=100,
            prop::collection::vec((".{0,8}", ".{0,8}", any::<u16>()), 0..3),
        );
        (
            ".{1,12}",
            any::<u16>(),
            any::<bool>(),
            0u8..3,
            prop::collection::vec(route, 0..4),
        )
            .prop_map(|(name, port, tcp, sticky, routes)| ResolvedGateway {
                lookup_name: format!("l{port}"),
                name,
                port,
                protocol: if tcp { PortType::Tcp } else { PortType::Http },
                sticky: [None, Some(Sticky::Route), Some(Sticky::Instance)][usize::from(sticky)],
                virtual_hosts: vec![],
                routes: routes
                    .into_iter()
                    .map(|(path, w, cond, s, targets)| ResolvedRoute {
                        lookup_name: format!("r{path}"),
                        path,
                        weight: Percentage::new(w).unwrap(),
                        condition: cond.as_deref().map(ResolvedCondition::parse),
                        condition_strength: Percentage::new(s).unwrap(),
                        rewrites: vec![],
                        balance: Balance::RoundRobin,
                        mirror: None,
                        targets: targets
                            .into_iter()
                            .map(|(name, host, port)| RouteTarget { name, host, port })
                            .collect(),
                    })
                    .collect(),
            })
    }

    proptest! {
        /// What the router publishes, the agent reads back the same.
        #[test]
        fn gateways_round_trip_through_json(g in gateway()) {
            let back = WireGateway::from_json("k", &WireGateway::from(&g).to_json()).unwrap();
            prop_assert_eq!(back, g);
        }

        /// Whatever is stored at a gateway key, reading it answers (never panics).
        #[test]
        fn any_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = WireGateway::from_json("k", &bytes);
        }

        #[test]
        fn names_round_trip_through_keys(name in ".{1,40}") {
            let key = gateway_key("/vamp/x", &name);
            prop_assert!(!key["/vamp/x/gateways/".len()..].contains('/'));
            prop_assert_eq!(name_of("/vamp/x", &key), Some(name));
        }
    }

    #[test]
    fn the_configuration_key_is_not_a_gateway() {
        assert_eq!(name_of("/v", &configuration_key("/v")), None);
        assert_eq!(name_of("/v", "/v/gateways"), None);
    }

    #[test]
    fn bad_entries_name_their_key_and_field() {
        let e = WireGateway::from_json("/v/gateways/g", b"{\"name\": 1}").unwrap_err();
        assert!(e.to_string().contains("/v/gateways/g"), "{e}");
        let json = br#"{"name":"g","lookup_name":"l","port":1,"protocol":"udp","routes":[]}"#;
        assert!(
            WireGateway::from_json("k", json)
                .unwrap_err()
                .message
                .contains("udp")
        );
    }
}

/// `<root>/stats/`: where gateway agents publish their HAProxy's per-route counters, one key
/// each (`<root>/stats/<agent>`), for the `haproxy-kv` router to add up.
pub fn stats_prefix(root: &str) -> String {
    format!("{}/stats/", root.trim_end_matches('/'))
}

/// One agent's counters, as it publishes them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentStats {
    /// When the agent read them.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Per route of every gateway it serves.
    pub routes: Vec<WireRouteStats>,
}

/// One route's counters (cumulative since the agent started).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WireRouteStats {
    /// The gateway.
    pub gateway: String,
    /// The route path.
    pub route: String,
    /// Requests (HTTP) or connections (TCP).
    pub requests: u64,
    /// Failed ones.
    pub errors: u64,
    /// Response times added up, ms.
    pub sum_ms: f64,
}

/// The counters of every agent under `root`, added up per route: what the `haproxy-kv`
/// router reports. An agent's counters only grow while it runs (they survive HAProxy
/// reloads); one restarted under the same name starts again from zero, which the rollout
/// engine reads as a counter reset and skips that interval.
pub fn sum_stats(all: &[AgentStats]) -> Vec<vamp_core::traits::RouteStats> {
    let mut out: std::collections::BTreeMap<(&str, &str), vamp_core::traits::RouteStats> =
        std::collections::BTreeMap::new();
    for r in all.iter().flat_map(|a| &a.routes) {
        let o = out
            .entry((r.gateway.as_str(), r.route.as_str()))
            .or_insert_with(|| vamp_core::traits::RouteStats {
                gateway: r.gateway.clone(),
                route: r.route.clone(),
                requests: 0,
                errors: 0,
                latency: vamp_core::traits::LatencyHistogram {
                    buckets: Vec::new(),
                    sum_ms: 0.0,
                },
            });
        o.requests = o.requests.saturating_add(r.requests);
        o.errors = o.errors.saturating_add(r.errors);
        o.latency.sum_ms += r.sum_ms;
    }
    out.into_values().collect()
}

#[cfg(test)]
mod stats_tests {
    use super::*;

    fn agent(routes: &[(&str, &str, u64, u64, f64)]) -> AgentStats {
        AgentStats {
            at: chrono::Utc::now(),
            routes: routes
                .iter()
                .map(|&(g, r, requests, errors, sum_ms)| WireRouteStats {
                    gateway: g.into(),
                    route: r.into(),
                    requests,
                    errors,
                    sum_ms,
                })
                .collect(),
        }
    }

    #[test]
    fn every_agents_counters_add_up_per_route() {
        let a = agent(&[
            ("shop/web", "shop/web/v1", 10, 1, 50.0),
            ("shop/web", "shop/web/v2", 4, 2, 8.0),
        ]);
        let b = agent(&[("shop/web", "shop/web/v1", 5, 0, 25.0)]);
        let sum = sum_stats(&[a, b]);
        assert_eq!(sum.len(), 2);
        let v1 = sum.iter().find(|r| r.route == "shop/web/v1").expect("v1");
        assert_eq!((v1.requests, v1.errors), (15, 1));
        assert!((v1.latency.sum_ms - 75.0).abs() < 1e-9);
        let v2 = sum.iter().find(|r| r.route == "shop/web/v2").expect("v2");
        assert_eq!((v2.requests, v2.errors), (4, 2));
    }

    #[test]
    fn the_record_reads_back_as_written() {
        let a = agent(&[("g", "g/r", 1, 0, 0.5)]);
        let json = serde_json::to_vec(&a).expect("serialize");
        assert_eq!(
            serde_json::from_slice::<AgentStats>(&json).expect("read"),
            a
        );
    }
}
