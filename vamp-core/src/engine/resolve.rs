//! A service's environment with references resolved (spec §1.4, §3.6).

use std::collections::BTreeMap;

use crate::model::interpolation::{self, Part, Variable};
use crate::model::*;
use crate::traits::GatewayEndpoint;

/// Where values outside the deployment come from.
pub struct EnvironmentSources<'a> {
    /// Where each gateway is reachable for services, by gateway name (from
    /// `ContainerDriver::publish_gateways`); `$dep.ports.x` falls back to the allocated port.
    pub gateways: &'a BTreeMap<String, GatewayEndpoint>,
    /// `config://<key>` values.
    pub config: &'a dyn Fn(&str) -> Option<String>,
    /// `env://<NAME>` values (the environment of the Vamp process).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for EnvironmentSources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentSources")
            .field("gateways", &self.gateways)
            .finish_non_exhaustive()
    }
}

/// The effective, uninterpolated value of a variable of a service: service value, else the
/// deployment-scope `<cluster>.environment_variables.<NAME>`, else the breed's (spec §1.5.5).
fn raw_value(d: &Deployment, cluster: &str, s: &DeploymentService, name: &str) -> Option<String> {
    s.environment_variables
        .get(name)
        .cloned()
        .flatten()
        .or_else(|| {
            d.environment_variables
                .get(&format!("{cluster}.environment_variables.{name}"))
                .cloned()
                .flatten()
        })
        .or_else(|| {
            s.breed
                .environment_variables
                .get(name)
                .and_then(|v| v.value.clone())
        })
}

/// The variables a service's container gets — name (or alias) → value — with every reference
/// resolved once (spec §3.6): `$dep.host` and `$dep.ports.p` name the dependency's internal
/// gateway (so dependent services talk through the data plane, where weights apply),
/// `$dep.environment_variables.X` / `$dep.constants.X` the dependency's values, `$NAME` the
/// service's own variable or constant, `config://` and `env://` the sources. Anything unknown
/// resolves to the empty string, as in Vamp.
pub fn resolve_environment(
    d: &Deployment,
    cluster: &str,
    service: &DeploymentService,
    sources: &EnvironmentSources<'_>,
) -> Map<String> {
    let mut out = Map::new();
    for (name, var) in &service.breed.environment_variables {
        let Some(value) = raw_value(d, cluster, service, name) else {
            continue;
        };
        let key = var.alias.clone().unwrap_or_else(|| name.clone());
        out.insert(key, interpolate(d, cluster, service, &value, sources));
    }
    out
}

fn dependency<'d>(
    d: &'d Deployment,
    s: &DeploymentService,
    alias: &str,
) -> Option<(&'d str, &'d DeploymentService)> {
    let cluster = s.dependencies.get(alias)?;
    let wanted = s.breed.dependencies.get(alias)?.name().to_owned();
    let (name, c) = d.clusters.get_key_value(cluster)?;
    let provider = c.services.iter().find(|p| match wanted.strip_suffix('*') {
        Some(prefix) => p.breed.name.starts_with(prefix),
        None => p.breed.name == wanted,
    })?;
    Some((name.as_str(), provider))
}

fn interpolate(
    d: &Deployment,
    cluster: &str,
    s: &DeploymentService,
    value: &str,
    sources: &EnvironmentSources<'_>,
) -> String {
    let Ok(parts) = interpolation::parse(value) else {
        // Validation rejects malformed values; a stored one passes through unchanged.
        return value.to_owned();
    };
    let endpoint = |alias: &str, port: &str| -> Option<GatewayEndpoint> {
        let (dep_cluster, _) = dependency(d, s, alias)?;
        let name = format!("{}/{dep_cluster}/{port}", d.name);
        sources.gateways.get(&name).cloned().or_else(|| {
            let number = d
                .ports
                .get(&format!("{dep_cluster}.{port}"))?
                .parse()
                .ok()?;
            let host = d.hosts.get(dep_cluster)?.clone();
            Some(GatewayEndpoint {
                name,
                host,
                port: number,
            })
        })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < parts.len() {
        // `$a.host:$a.ports.p` names one endpoint: host and port of the same gateway.
        if let (
            Some(Part::Variable(Variable::Host { alias })),
            Some(Part::Literal(colon)),
            Some(Part::Variable(Variable::Trait {
                alias: a2,
                group,
                name,
            })),
        ) = (parts.get(i), parts.get(i + 1), parts.get(i + 2))
            && colon == ":"
            && alias == a2
            && group == "ports"
            && let Some(e) = endpoint(alias, name)
        {
            out.push_str(&format!("{}:{}", e.host, e.port));
            i += 3;
            continue;
        }
        match &parts[i] {
            Part::Literal(text) => out.push_str(text),
            Part::Variable(v) => {
                out.push_str(&variable(d, cluster, s, v, sources, &endpoint).unwrap_or_default())
            }
        }
        i += 1;
    }
    out
}

fn variable(
    d: &Deployment,
    cluster: &str,
    s: &DeploymentService,
    v: &Variable,
    sources: &EnvironmentSources<'_>,
    endpoint: &dyn Fn(&str, &str) -> Option<GatewayEndpoint>,
) -> Option<String> {
    match v {
        Variable::Global { scheme, path } => match scheme.as_str() {
            "config" | "conf" | "configuration" => (sources.config)(path),
            "env" | "environment" | "env_var" | "environment_variable" => (sources.env)(path),
            _ => None,
        },
        Variable::Host { alias } => {
            let (dep_cluster, _) = dependency(d, s, alias)?;
            d.hosts.get(dep_cluster).cloned()
        }
        Variable::Trait { alias, group, name } => {
            let (dep_cluster, provider) = dependency(d, s, alias)?;
            match group.as_str() {
                "ports" => endpoint(alias, name).map(|e| e.port.to_string()),
                "environment_variables" => raw_value(d, dep_cluster, provider, name),
                "constants" => provider.breed.constants.get(name).cloned(),
                "hosts" => d.hosts.get(dep_cluster).cloned(),
                _ => None,
            }
        }
        Variable::Local(name) => {
            raw_value(d, cluster, s, name).or_else(|| s.breed.constants.get(name).cloned())
        }
    }
}
