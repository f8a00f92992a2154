//! Merging a blueprint into a deployment (spec §3.3).
//!
//! One file: the merge rules of spec §3.3, in the order the spec gives them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{EngineConfig, default_weights};
use crate::dsl::{DslError, ErrorKind, Mark, validate};
use crate::model::*;

type R<T> = Result<T, DslError>;

fn err(
    kind: ErrorKind,
    path: impl Into<String>,
    message: impl Into<String>,
    hint: &str,
) -> DslError {
    DslError::new(kind, path, Mark::default(), message, hint)
}

/// A fresh "deploy it" status.
pub(super) fn initiated(intention: Intention, now: DateTime<Utc>) -> ServiceStatus {
    ServiceStatus {
        intention,
        since: now,
        phase: Phase {
            name: PhaseName::Initiated,
            since: now,
            notification: None,
        },
    }
}

/// Merges `blueprint` into `current` (or a new deployment called `name`), spec §3.3:
///
/// - clusters and services not in the blueprint stay as they are;
/// - new services start `(Deployment, Initiated)` with the given or the default scale; services
///   already there take the blueprint's breed, variables, arguments and health checks (and its
///   scale, if given), and go back to `(Deployment, Initiated)` when anything changed;
/// - cluster gateways and SLAs are replaced when the blueprint gives them;
/// - every breed port gets an internal gateway spec routing to the services that expose it;
///   weights are defaulted, so a new service joins a gateway that holds 100% at 0% (§3.5);
/// - external gateways replace the deployment's gateways on the same port;
/// - dependencies are resolved to clusters, and every placeholder must have a value.
///
/// The blueprint must be expanded (breeds, scales inline — [`crate::dsl::expand()`]). New
/// internal gateways get port 0 in `ports`; [`allocate_ports`] assigns them.
pub fn merge(
    current: Option<&Deployment>,
    name: &str,
    blueprint: &Blueprint,
    config: &EngineConfig,
    now: DateTime<Utc>,
) -> R<Deployment> {
    crate::dsl::validate_name(name, "name", Mark::default())?;
    let mut d = current.cloned().unwrap_or_default();
    d.name = name.to_owned();
    d.metadata.extend(blueprint.metadata.clone());
    d.dialects.extend(blueprint.dialects.clone());
    for (cname, bc) in &blueprint.clusters {
        let cpath = format!("clusters.{cname}");
        let cluster = d.clusters.entry(cname.clone()).or_default();
        for (i, bs) in bc.services.iter().enumerate() {
            merge_service(cluster, bs, &format!("{cpath}.services[{i}]"), config, now)?;
        }
        if !bc.gateways.is_empty() {
            cluster.gateways = named_gateways(cluster, &bc.gateways, &cpath)?;
        }
        if bc.sla.is_some() {
            cluster.sla.clone_from(&bc.sla);
        }
        if bc.health_checks.is_some() {
            cluster.health_checks.clone_from(&bc.health_checks);
        }
        if bc.network.is_some() {
            cluster.network.clone_from(&bc.network);
        }
        cluster.dialects.extend(bc.dialects.clone());
        cluster.metadata.extend(bc.metadata.clone());
    }
    for (key, gateway) in &blueprint.gateways {
        let number = GatewayPort::parse(key).map(|p| p.number).ok();
        d.gateways
            .retain(|k, _| GatewayPort::parse(k).map(|p| p.number).ok() != number);
        d.gateways.insert(key.clone(), gateway.clone());
    }
    d.environment_variables
        .extend(blueprint.environment_variables.clone());
    sync_gateways(&mut d)?;
    resolve_dependencies(&mut d)?;
    d.hosts = d
        .clusters
        .keys()
        .map(|c| (c.clone(), config.gateway_host.clone()))
        .collect();
    check(&d)?;
    Ok(d)
}

fn reset(service: &mut DeploymentService, now: DateTime<Utc>) {
    service.status = initiated(Intention::Deployment, now);
    service.instances.clear();
    service.health = None;
    service.interpolated = None;
}

fn merge_service(
    cluster: &mut DeploymentCluster,
    bs: &Service,
    path: &str,
    config: &EngineConfig,
    now: DateTime<Utc>,
) -> R<()> {
    let breed = bs.breed.inline().cloned().ok_or_else(|| {
        err(
            ErrorKind::ArtifactNotFound,
            format!("{path}.breed"),
            format!("breed '{}' is a reference", bs.breed.name()),
            "expand the blueprint against the store before merging",
        )
    })?;
    let scale = match &bs.scale {
        Some(Ref::Inline(s)) => Some(Scale {
            name: String::new(),
            metadata: Metadata::default(),
            ..s.clone()
        }),
        Some(Ref::Reference(n)) => {
            return Err(err(
                ErrorKind::ArtifactNotFound,
                format!("{path}.scale"),
                format!("scale '{n}' is a reference"),
                "expand the blueprint against the store before merging",
            ));
        }
        None => None,
    };
    let environment: Map<Option<String>> = bs
        .environment_variables
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    match cluster
        .services
        .iter_mut()
        .find(|s| s.breed.name == breed.name)
    {
        Some(existing) => {
            // Only a change of what runs restarts the service's lifecycle (and clears its resolved
            // environment). Vamp also counted an omitted scale and any gateway change, which
            // re-announced unchanged services after every weight shift.
            let changed = existing.breed != breed
                || existing.environment_variables != environment
                || scale
                    .as_ref()
                    .is_some_and(|s| Some(s) != existing.scale.as_ref())
                || existing.arguments != bs.arguments
                || existing.health_checks != bs.health_checks
                || existing.network != bs.network
                || existing.dialects != bs.dialects
                || existing.status.intention == Intention::Undeployment;
            existing.breed = breed;
            existing.environment_variables = environment;
            if scale.is_some() {
                existing.scale = scale;
            }
            existing.arguments.clone_from(&bs.arguments);
            existing.health_checks.clone_from(&bs.health_checks);
            existing.network.clone_from(&bs.network);
            existing.dialects.clone_from(&bs.dialects);
            if changed {
                reset(existing, now);
            }
        }
        None => cluster.services.push(DeploymentService {
            status: initiated(Intention::Deployment, now),
            breed,
            environment_variables: environment,
            scale: Some(scale.unwrap_or_else(|| config.default_scale.clone())),
            arguments: bs.arguments.clone(),
            health_checks: bs.health_checks.clone(),
            network: bs.network.clone(),
            dialects: bs.dialects.clone(),
            ..DeploymentService::default()
        }),
    }
    Ok(())
}

/// Services that are (to be) running.
pub(super) fn running(cluster: &DeploymentCluster) -> impl Iterator<Item = &DeploymentService> {
    cluster
        .services
        .iter()
        .filter(|s| s.status.intention == Intention::Deployment)
}

/// Port names of the running services' breeds, in order of first appearance.
fn port_names(cluster: &DeploymentCluster) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in running(cluster) {
        for p in s.breed.ports.keys() {
            if !names.contains(p) {
                names.push(p.clone());
            }
        }
    }
    names
}

/// The blueprint's cluster gateways keyed by port name: an anonymous one (key "") takes the
/// single port of the cluster's breeds (spec §1.5.3).
fn named_gateways(
    cluster: &DeploymentCluster,
    given: &Map<Gateway>,
    path: &str,
) -> R<Map<Gateway>> {
    let ports = port_names(cluster);
    given
        .iter()
        .map(|(key, g)| {
            if !key.is_empty() {
                return Ok((key.clone(), g.clone()));
            }
            match ports.as_slice() {
                [only] => Ok((only.clone(), g.clone())),
                _ => Err(err(
                    ErrorKind::IllegalAnonymousRoutingPortMappingError,
                    format!("{path}.gateways"),
                    "a gateway without a port name needs breeds with exactly one port",
                    "name the port: 'gateways: {<port>: {routes: …}}'",
                )),
            }
        })
        .collect()
}

/// Makes every cluster's internal gateway specs route to exactly its running services, with
/// weights defaulted; specs of ports nobody exposes any more go, as do their ports.
pub(super) fn sync_gateways(d: &mut Deployment) -> R<()> {
    // In breed port order, so allocation follows the order ports were declared in.
    let mut port_keys: Vec<String> = Vec::new();
    for (cname, cluster) in &mut d.clusters {
        let ports = port_names(cluster);
        cluster.gateways.retain(|p, _| ports.contains(p));
        for port in &ports {
            let serving: Vec<String> = running(cluster)
                .filter(|s| s.breed.ports.contains_key(port))
                .map(|s| s.breed.name.clone())
                .collect();
            let spec = cluster.gateways.entry(port.clone()).or_default();
            spec.routes.retain(|route, _| serving.contains(route));
            for service in &serving {
                spec.routes
                    .entry(service.clone())
                    .or_insert_with(|| Ref::Inline(Route::default()));
            }
            let path = format!("clusters.{cname}.gateways.{port}.routes");
            default_weights(&mut spec.routes, ErrorKind::InvalidRouteWeight, &path)?;
            port_keys.push(format!("{cname}.{port}"));
        }
    }
    // Deployment gateways (`gateways: {9050: monarch/web}`) default their weights too: a
    // single route takes all the traffic (spec §1.7).
    for (port, spec) in &mut d.gateways {
        let path = format!("gateways.{port}.routes");
        default_weights(&mut spec.routes, ErrorKind::InvalidRouteWeight, &path)?;
    }
    d.ports.retain(|k, _| port_keys.contains(k));
    for key in port_keys {
        d.ports.entry(key).or_insert_with(|| "0".to_owned());
    }
    Ok(())
}

/// Maps every running service's dependency aliases to the cluster that provides them.
fn resolve_dependencies(d: &mut Deployment) -> R<()> {
    let providers: Vec<(String, String)> = d
        .clusters
        .iter()
        .flat_map(|(c, cl)| running(cl).map(move |s| (s.breed.name.clone(), c.clone())))
        .collect();
    for (cname, cluster) in &mut d.clusters {
        for (i, s) in cluster.services.iter_mut().enumerate() {
            if s.status.intention != Intention::Deployment {
                continue;
            }
            let mut deps = Map::new();
            for (alias, dep) in &s.breed.dependencies {
                let wanted = dep.name();
                let found = providers
                    .iter()
                    .find(|(breed, _)| match wanted.strip_suffix('*') {
                        Some(prefix) => breed.starts_with(prefix),
                        None => breed == wanted,
                    });
                let Some((_, provider)) = found else {
                    return Err(err(
                        ErrorKind::UnresolvedDependencyError,
                        format!("clusters.{cname}.services[{i}].breed.dependencies.{alias}"),
                        format!(
                            "no service of the deployment provides dependency '{alias}' ({wanted})"
                        ),
                        "deploy a cluster with that breed first, or in the same blueprint",
                    ));
                };
                deps.insert(alias.clone(), provider.clone());
            }
            s.dependencies = deps;
        }
    }
    Ok(())
}

/// The merged deployment's own rules: model validation, placeholders filled, no cycles.
fn check(d: &Deployment) -> R<()> {
    if let Some(first) = validate::artifact(&Artifact::Deployment(d.clone()))
        .into_iter()
        .next()
    {
        return Err(first);
    }
    for (cname, cluster) in &d.clusters {
        for (i, s) in cluster.services.iter().enumerate() {
            if s.status.intention != Intention::Deployment {
                continue;
            }
            for (var, v) in &s.breed.environment_variables {
                let scoped = format!("{cname}.environment_variables.{var}");
                let filled = v.value.is_some()
                    || s.environment_variables
                        .get(var)
                        .is_some_and(Option::is_some)
                    || d.environment_variables
                        .get(&scoped)
                        .is_some_and(Option::is_some);
                if !filled {
                    return Err(err(
                        ErrorKind::UnresolvedVariableValueError,
                        format!("clusters.{cname}.services[{i}].breed.environment_variables.{var}"),
                        format!(
                            "environment variable '{var}' of breed '{}' has no value",
                            s.breed.name
                        ),
                        "set it in the service, or as '<cluster>.environment_variables.<NAME>'",
                    ));
                }
            }
        }
    }
    if let Some(cycle) = cluster_cycle(d) {
        return Err(err(
            ErrorKind::RecursiveDependenciesError,
            "clusters",
            format!("recursive dependencies: {}", cycle.join(" -> ")),
            "remove the dependency cycle between clusters",
        ));
    }
    Ok(())
}

/// A cycle in cluster → dependency-cluster edges, if any.
fn cluster_cycle(d: &Deployment) -> Option<Vec<String>> {
    fn visit(
        d: &Deployment,
        c: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == c) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(c.to_owned());
            return Some(cycle);
        }
        if !done.insert(c.to_owned()) {
            return None;
        }
        stack.push(c.to_owned());
        let next: BTreeSet<&String> = d
            .clusters
            .get(c)
            .map(|cl| running(cl).flat_map(|s| s.dependencies.values()).collect())
            .unwrap_or_default();
        for n in next {
            // A cluster depending on itself (two versions of one service) is not a cycle.
            if n != c
                && let Some(cycle) = visit(d, n, stack, done)
            {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    d.clusters
        .keys()
        .find_map(|c| visit(d, c, &mut Vec::new(), &mut done))
}

/// Gives every internal gateway without a port (`"0"` in `ports`) the next free port from
/// `config.ports`, skipping `taken` (ports used by any other gateway). Ports already assigned
/// are kept, so re-planning after a restart yields the same ports. Returns the last port
/// handed out, if any.
pub fn allocate_ports(
    d: &mut Deployment,
    taken: &BTreeSet<u16>,
    config: &EngineConfig,
    last: Option<u16>,
) -> R<Option<u16>> {
    let mut taken = taken.clone();
    taken.extend(
        d.ports
            .values()
            .filter_map(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0),
    );
    let mut last = last;
    for value in d.ports.values_mut() {
        if value.parse::<u16>().is_ok_and(|p| p != 0) {
            continue;
        }
        let port = config.ports.next(&taken, last)?;
        taken.insert(port);
        last = Some(port);
        *value = port.to_string();
    }
    Ok(last)
}
