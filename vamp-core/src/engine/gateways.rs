//! The gateways a deployment owns, derived from it (spec §1.5.3, §1.5.4, §1.6).

use super::EngineConfig;
use crate::model::*;

/// Vamp's generated virtual host name for a gateway (spec §1.6): the name's segments in reverse
/// order under `.vamp`, each with non-alphanumerics replaced by `-` when it starts with a
/// letter or digit.
///
/// ```
/// use vamp_core::engine::virtual_host;
/// assert_eq!(virtual_host("sava/sava/webport"), "webport.sava.sava.vamp");
/// assert_eq!(virtual_host("sava/9050"), "9050.sava.vamp");
/// assert_eq!(virtual_host("shop:1.0/web"), "web.shop-1-0.vamp");
/// ```
pub fn virtual_host(gateway: &str) -> String {
    let mut parts: Vec<String> = gateway
        .split('/')
        .map(|s| {
            if s.chars().next().is_some_and(char::is_alphanumeric) {
                s.chars()
                    .map(|c| if c.is_alphanumeric() { c } else { '-' })
                    .collect()
            } else {
                s.to_owned()
            }
        })
        .collect();
    parts.reverse();
    parts.push("vamp".into());
    parts.join(".")
}

/// The internal gateways `<deployment>/<cluster>/<port>` (one per breed port of a cluster,
/// routing to `<deployment>/<cluster>/<service>/<port>`) and external gateways
/// `<deployment>/<port>` (routing `cluster/port` to `<deployment>/<cluster>/<port>`), in that
/// order. Ports come from `Deployment::ports` (0 until allocated) and the blueprint keys.
pub fn gateways(d: &Deployment, config: &EngineConfig) -> Vec<Gateway> {
    let mut out = Vec::new();
    for (cname, cluster) in &d.clusters {
        for (port, spec) in &cluster.gateways {
            let name = format!("{}/{cname}/{port}", d.name);
            let kind = cluster
                .services
                .iter()
                .find_map(|s| s.breed.ports.get(port).map(|p| p.kind))
                .unwrap_or_default();
            let number = d
                .ports
                .get(&format!("{cname}.{port}"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let routes = spec
                .routes
                .iter()
                .map(|(service, r)| (format!("{}/{cname}/{service}/{port}", d.name), r.clone()))
                .collect();
            out.push(derived(
                name,
                GatewayPort { number, kind },
                spec,
                routes,
                config,
            ));
        }
    }
    for (key, spec) in &d.gateways {
        let Ok(port) = GatewayPort::parse(key) else {
            continue;
        };
        let name = format!("{}/{}", d.name, port.number);
        let routes = spec
            .routes
            .iter()
            .map(|(path, r)| {
                let path = match names::segments(path) {
                    Some(2) if names::external_target(path).is_none() => {
                        format!("{}/{path}", d.name)
                    }
                    _ => path.clone(),
                };
                (path, r.clone())
            })
            .collect();
        out.push(derived(name, port, spec, routes, config));
    }
    out
}

fn derived(
    name: String,
    port: GatewayPort,
    spec: &Gateway,
    routes: Map<Ref<Route>>,
    config: &EngineConfig,
) -> Gateway {
    let mut virtual_hosts = spec.virtual_hosts.clone();
    if config.virtual_hosts {
        let generated = virtual_host(&name);
        if !virtual_hosts.contains(&generated) {
            virtual_hosts.push(generated);
        }
    }
    Gateway {
        name,
        metadata: spec.metadata.clone(),
        port: Some(port),
        sticky: spec.sticky,
        virtual_hosts,
        selector: spec.selector.clone(),
        routes,
    }
}
