//! From gateways to what the data plane routes (spec §3.5 steps 3–4).

use super::merge::running;
use crate::model::lookup::{gateway_lookup_name, route_lookup_name};
use crate::model::*;
use crate::traits::{
    Balance, ResolvedCondition, ResolvedGateway, ResolvedMirror, ResolvedRewrite, ResolvedRoute,
    RouteTarget,
};

/// Resolves gateways to concrete targets (the input of `Router::apply`):
///
/// - `[host:port]` routes target that address;
/// - `deployment/cluster/service/port` routes target every deployed instance of that service
///   on that port;
/// - 1–3 segment routes target the gateway of that name on `gateway_host` (chaining) when it
///   is served: an internal gateway with nothing behind it yet is not, so routes to it get no
///   targets and the data plane answers 503 at once;
/// - references that were not expanded, and routes whose target is not there yet, get no
///   targets.
///
/// External gateways (fewer than three segments) are always returned; internal ones only when
/// at least one route has a target, so a deployment that is still starting is not served
/// with nothing behind it (the fix of Vamp issue #1072). A gateway without a port but with
/// virtual hosts is resolved with port 0 (served on the shared virtual-host listener only);
/// other gateways without a port are skipped.
pub fn resolve_gateways(
    gateways: &[Gateway],
    deployments: &[Deployment],
    gateway_host: &str,
) -> Vec<ResolvedGateway> {
    let mut out = Vec::new();
    for g in gateways {
        let port = match g.port {
            Some(p) if p.number != 0 => p,
            None if !g.virtual_hosts.is_empty() => GatewayPort {
                number: 0,
                kind: PortType::Http,
            },
            _ => continue,
        };
        let routes: Vec<ResolvedRoute> = g
            .routes
            .iter()
            .filter_map(|(path, r)| {
                let route = r.inline()?;
                Some(ResolvedRoute {
                    path: path.clone(),
                    lookup_name: route_lookup_name(&g.name, path),
                    weight: route.weight.unwrap_or_default(),
                    condition: match &route.condition {
                        Some(Ref::Inline(c)) => Some(ResolvedCondition::parse(&c.definition)),
                        _ => None,
                    },
                    condition_strength: route.condition_strength.unwrap_or_default(),
                    rewrites: route
                        .rewrites
                        .iter()
                        .filter_map(|rw| rw.inline()?.parts())
                        .map(|(path, condition)| ResolvedRewrite { path, condition })
                        .collect(),
                    balance: match route.balance.as_deref() {
                        None | Some("default") if port.kind == PortType::Tcp => Balance::LeastConn,
                        None | Some("default" | "roundrobin") => Balance::RoundRobin,
                        Some("leastconn") => Balance::LeastConn,
                        Some("source") => Balance::Source,
                        Some(other) => Balance::Other(other.to_owned()),
                    },
                    targets: targets(path, gateways, deployments, gateway_host),
                    mirror: route.mirror.as_ref().and_then(|m| {
                        let (host, port) = names::host_port(&m.target)?;
                        Some(ResolvedMirror {
                            // `[::1]:8080`: the address without its brackets.
                            host: host.trim_matches(['[', ']']).to_owned(),
                            port,
                            percentage: m.percentage,
                        })
                    }),
                })
            })
            .collect();
        let internal = names::segments(&g.name).is_some_and(|n| n >= 3);
        if internal && routes.iter().all(|r| r.targets.is_empty()) {
            continue;
        }
        out.push(ResolvedGateway {
            name: g.name.clone(),
            lookup_name: gateway_lookup_name(&g.name),
            port: port.number,
            protocol: port.kind,
            sticky: g.sticky,
            virtual_hosts: g.virtual_hosts.clone(),
            routes,
        });
    }
    // Fewer segments first, then by name (spec §3.5 step 6): chained gateways come later.
    out.sort_by(|a, b| {
        let segments = |n: &str| n.split('/').count();
        segments(&a.name)
            .cmp(&segments(&b.name))
            .then(a.name.cmp(&b.name))
    });
    out
}

fn targets(
    path: &str,
    gateways: &[Gateway],
    deployments: &[Deployment],
    host: &str,
) -> Vec<RouteTarget> {
    targets_within(path, gateways, deployments, host, 0)
}

/// [`targets`], with the depth of gateway chaining so far (a chain of more than 4 gateways —
/// a cycle — targets nothing).
fn targets_within(
    path: &str,
    gateways: &[Gateway],
    deployments: &[Deployment],
    host: &str,
    depth: usize,
) -> Vec<RouteTarget> {
    if let Some(address) = names::external_target(path) {
        return names::host_port(address)
            .map(|(host, port)| RouteTarget {
                name: path.to_owned(),
                host: host.to_owned(),
                port,
            })
            .into_iter()
            .collect();
    }
    let segments: Vec<&str> = path.split('/').collect();
    if let [d, c, s, p] = segments.as_slice() {
        let Some(service) = deployments
            .iter()
            .find(|x| x.name == *d)
            .and_then(|x| x.clusters.get(*c))
            .and_then(|cl| running(cl).find(|x| x.breed.name == *s))
        else {
            return Vec::new();
        };
        return service
            .instances
            .iter()
            .filter(|i| i.deployed)
            .filter_map(|i| {
                Some(RouteTarget {
                    name: i.name.clone(),
                    host: i.host.clone(),
                    port: *i.ports.get(*p)?,
                })
            })
            .collect();
    }
    // A chained gateway that is internal is only served with something behind it (see
    // `resolve_gateways`): until then, routing to its port would connect to a port nobody
    // listens on — and on Linux such a connection to a port in the ephemeral range can
    // connect to itself and take the port the gateway is about to bind.
    let served = |g: &Gateway| {
        names::segments(&g.name).is_none_or(|n| n < 3)
            || (depth < 4
                && g.routes
                    .keys()
                    .any(|p| !targets_within(p, gateways, deployments, host, depth + 1).is_empty()))
    };
    gateways
        .iter()
        .find(|g| g.name == path)
        .filter(|g| served(g))
        .and_then(|g| g.port.filter(|p| p.number != 0))
        .map(|p| RouteTarget {
            name: path.to_owned(),
            host: host.to_owned(),
            port: p.number,
        })
        .into_iter()
        .collect()
}
