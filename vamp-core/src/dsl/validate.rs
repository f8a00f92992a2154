//! Model-level validation (spec §1.3, §1.5, §1.6, §1.13).
//!
//! Rules that need a store (a referenced breed's ports, …) are checked where the information
//! is inline; run [`super::expand()`] first to check everything. Errors carry paths only;
//! [`super::load`] places them at their line and column.

use std::collections::{BTreeSet, HashMap};

use super::cursor::{index, join};
use super::error::{DslError, ErrorKind};
use super::node::Mark;
use crate::model::interpolation::{self, Variable};
use crate::model::*;

fn e(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>, hint: &str) -> DslError {
    DslError::new(kind, path, Mark::default(), message, hint)
}

/// Rules between an artifact and the others it will live with (the rest of the input, other
/// files, or a store): a gateway port claimed twice, a deployment and a workflow of one name.
pub fn against(artifact: &Artifact, others: &dyn super::ArtifactSource) -> Vec<DslError> {
    let mut out = Vec::new();
    match artifact {
        Artifact::Gateway(g) => {
            let Some(port) = g.port.map(|p| p.number).filter(|p| *p != 0) else {
                return out;
            };
            let owners = others.port_owners(port).unwrap_or_else(|| {
                claimed_ports(others)
                    .into_iter()
                    .filter(|(_, p)| *p == port)
                    .map(|(owner, _)| owner)
                    .collect()
            });
            for owner in owners {
                if owner != g.name {
                    out.push(e(
                        ErrorKind::UnavailableGatewayPortError,
                        "port",
                        format!("port {port} is already used by gateway '{owner}'"),
                        "choose another port, or leave the port out to get a free one",
                    ));
                }
            }
        }
        Artifact::Deployment(d) if others.artifact(Kind::Workflow, &d.name).is_some() => {
            out.push(name_collision(&d.name));
        }
        Artifact::Workflow(w) if others.artifact(Kind::Deployment, &w.name).is_some() => {
            out.push(name_collision(&w.name));
        }
        _ => {}
    }
    out
}

/// Ports claimed by standalone gateways and by deployments' external gateways, by owner.
fn claimed_ports(others: &dyn super::ArtifactSource) -> Vec<(String, u16)> {
    let mut claimed: Vec<(String, u16)> = others
        .artifacts(Kind::Gateway)
        .into_iter()
        .filter_map(|a| match a {
            Artifact::Gateway(g) => g.port.map(|p| (g.name, p.number)),
            _ => None,
        })
        .collect();
    for a in others.artifacts(Kind::Deployment) {
        if let Artifact::Deployment(d) = a {
            for key in d.gateways.keys() {
                if let Ok(p) = GatewayPort::parse(key) {
                    claimed.push((format!("{}/{}", d.name, p.number), p.number));
                }
            }
        }
    }
    claimed
}

fn name_collision(name: &str) -> DslError {
    e(
        ErrorKind::DeploymentWorkflowNameCollision,
        "name",
        format!("'{name}' names both a deployment and a workflow"),
        "deployments and workflows share one name space: rename one of them",
    )
}

/// Validates one artifact; returns every problem found.
pub fn artifact(artifact: &Artifact) -> Vec<DslError> {
    let mut out = Vec::new();
    match artifact {
        Artifact::Breed(b) => breed(b, "", &mut out),
        Artifact::Blueprint(bp) => blueprint(bp, &mut out),
        Artifact::Gateway(g) => gateway(g, "", g.port.map(|p| p.kind), true, &mut out),
        Artifact::Workflow(w) => workflow(w, &mut out),
        Artifact::Sla(s) => sla(s, "", None, &mut out),
        Artifact::Deployment(d) => deployment(d, &mut out),
        _ => {}
    }
    out
}

/// Deployment rules: every breed valid, and used once among the services that stay.
fn deployment(d: &Deployment, out: &mut Vec<DslError>) {
    let mut seen: Vec<&str> = Vec::new();
    for (cname, c) in &d.clusters {
        for (i, s) in c.services.iter().enumerate() {
            let p = join(
                &index(&join(&join("clusters", cname), "services"), i),
                "breed",
            );
            breed(&s.breed, &p, out);
            if s.status.intention == Intention::Undeployment {
                continue;
            }
            if seen.contains(&s.breed.name.as_str()) {
                out.push(e(
                    ErrorKind::NonUniqueBreedReferenceError,
                    &p,
                    format!(
                        "breed '{}' runs in more than one service of the deployment",
                        s.breed.name
                    ),
                    "a breed may run once per deployment; use another version or name",
                ));
            }
            seen.push(&s.breed.name);
        }
    }
}

/// Breed rules: trait references point at declared dependencies, health-check ports exist,
/// no recursive dependencies.
pub fn breed(b: &Breed, path: &str, out: &mut Vec<DslError>) {
    for (p, value) in trait_values(b, path) {
        let vars = match interpolation::variables(&value) {
            Ok(v) => v,
            Err(err) => {
                out.push(e(
                    ErrorKind::ParserError,
                    p,
                    err.to_string(),
                    "fix the $-expression; write $$ for a literal $",
                ));
                continue;
            }
        };
        for var in vars {
            let Some(alias) = var.alias() else { continue };
            match b.dependencies.get(alias) {
                None => out.push(e(
                    ErrorKind::UnresolvedDependencyInTraitValueError,
                    &p,
                    format!(
                        "unresolved reference '{var}': '{alias}' is not a dependency of breed '{}'",
                        b.name
                    ),
                    "declare the dependency under 'dependencies' or fix the alias",
                )),
                Some(Ref::Inline(dep)) => {
                    if let Variable::Trait { group, name, .. } = &var
                        && !has_trait(dep, group, name)
                    {
                        out.push(e(
                            ErrorKind::UnresolvedDependencyInTraitValueError,
                            &p,
                            format!(
                                "unresolved reference '{var}': breed '{}' has no {group} '{name}'",
                                dep.name
                            ),
                            "refer to a port, environment variable or constant the dependency has",
                        ));
                    }
                }
                Some(Ref::Reference(_)) => {}
            }
        }
    }
    if let Some(checks) = &b.health_checks {
        health_checks(checks, &join(path, "health_checks"), Some(b), out);
    }
    if let Some(cycle) = dependency_cycle(b, &mut Vec::new()) {
        out.push(e(
            ErrorKind::RecursiveDependenciesError,
            join(path, "dependencies"),
            format!("recursive dependencies: {}", cycle.join(" -> ")),
            "remove the dependency cycle",
        ));
    }
    for (alias, dep) in &b.dependencies {
        if let Ref::Inline(d) = dep {
            let mut nested = Vec::new();
            breed(d, &join(&join(path, "dependencies"), alias), &mut nested);
            // Cycles were reported once at the top already.
            out.extend(
                nested
                    .into_iter()
                    .filter(|x| x.kind != ErrorKind::RecursiveDependenciesError),
            );
        }
    }
}

/// Every value of a breed that may contain `$` references, with its path.
fn trait_values(b: &Breed, path: &str) -> Vec<(String, String)> {
    b.ports
        .iter()
        .filter_map(|(n, p)| match &p.value {
            PortValue::Expression(x) => Some((join(&join(path, "ports"), n), x.clone())),
            PortValue::Number(_) => None,
        })
        .chain(b.environment_variables.iter().filter_map(|(n, v)| {
            v.value
                .clone()
                .map(|x| (join(&join(path, "environment_variables"), n), x))
        }))
        .chain(
            b.constants
                .iter()
                .map(|(n, v)| (join(&join(path, "constants"), n), v.clone())),
        )
        .collect()
}

fn has_trait(b: &Breed, group: &str, name: &str) -> bool {
    match group {
        "ports" => b.ports.contains_key(name),
        "environment_variables" => b.environment_variables.contains_key(name),
        "constants" => b.constants.contains_key(name),
        // Hosts are resolved at deploy time.
        _ => true,
    }
}

/// The chain of names if an inline dependency (transitively) refers back to an ancestor.
fn dependency_cycle(b: &Breed, stack: &mut Vec<String>) -> Option<Vec<String>> {
    if stack.contains(&b.name) {
        let mut c = stack.clone();
        c.push(b.name.clone());
        return Some(c);
    }
    stack.push(b.name.clone());
    for dep in b.dependencies.values() {
        let found = match dep {
            Ref::Inline(d) => dependency_cycle(d, stack),
            Ref::Reference(name) if stack.contains(name) => {
                let mut c = stack.clone();
                c.push(name.clone());
                Some(c)
            }
            Ref::Reference(_) => None,
        };
        if found.is_some() {
            return found;
        }
    }
    stack.pop();
    None
}

fn health_checks(checks: &[HealthCheck], path: &str, b: Option<&Breed>, out: &mut Vec<DslError>) {
    let Some(b) = b else { return };
    for (i, hc) in checks.iter().enumerate() {
        if !b.ports.contains_key(&hc.port) {
            out.push(e(
                ErrorKind::UnresolvedPortReferenceError,
                join(&index(path, i), "port"),
                format!(
                    "health check port '{}' is not a port of breed '{}'",
                    hc.port, b.name
                ),
                "use one of the breed's port names",
            ));
        }
    }
}

/// Does a breed name satisfy a dependency name (`name` or a `prefix*`)?
fn satisfies(breed_name: &str, dependency: &str) -> bool {
    match dependency.strip_suffix('*') {
        Some(prefix) => breed_name.starts_with(prefix),
        None => breed_name == dependency,
    }
}

/// Blueprint rules (spec §1.5).
pub fn blueprint(bp: &Blueprint, out: &mut Vec<DslError>) {
    // Breed names in the blueprint and the cluster each one is in.
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut inline_breeds: Vec<(&Breed, String)> = Vec::new();
    if bp.clusters.is_empty() {
        out.push(e(
            ErrorKind::NoServiceError,
            "clusters",
            "the blueprint has no services",
            "add a cluster with at least one breed",
        ));
    }
    for (cname, cluster) in &bp.clusters {
        let cpath = join("clusters", cname);
        if cluster.services.is_empty() {
            out.push(e(
                ErrorKind::NoServiceError,
                &cpath,
                format!("cluster '{cname}' has no services"),
                "add a breed to the cluster",
            ));
        }
        for (i, s) in cluster.services.iter().enumerate() {
            let spath = index(&join(&cpath, "services"), i);
            let bpath = join(&spath, "breed");
            let name = s.breed.name().to_owned();
            if seen.insert(name.clone(), cname.clone()).is_some() {
                out.push(e(
                    ErrorKind::NonUniqueBlueprintBreedReferenceError,
                    &bpath,
                    format!("breed '{name}' is used more than once in the blueprint"),
                    "use each breed once; deploy another version under another name",
                ));
            }
            if let Ref::Inline(b) = &s.breed {
                breed(b, &bpath, out);
                inline_breeds.push((b, bpath.clone()));
                for key in s.environment_variables.keys() {
                    if !b.environment_variables.contains_key(key) {
                        out.push(e(
                            ErrorKind::UnresolvedDependencyInTraitValueError,
                            join(&join(&spath, "environment_variables"), key),
                            format!("breed '{}' has no environment variable '{key}'", b.name),
                            "set only variables the breed declares",
                        ));
                    }
                }
                if let Some(checks) = &s.health_checks {
                    health_checks(checks, &join(&spath, "health_checks"), Some(b), out);
                }
                // Placeholders must be filled by the service or the blueprint (spec §1.5.5).
                for (var, v) in &b.environment_variables {
                    let scoped = format!("{cname}.environment_variables.{var}");
                    if v.value.is_none()
                        && !s.environment_variables.contains_key(var)
                        && bp
                            .environment_variables
                            .get(&scoped)
                            .is_none_or(Option::is_none)
                    {
                        out.push(e(
                            ErrorKind::UnresolvedVariableValueError,
                            join(&join(&bpath, "environment_variables"), var),
                            format!(
                                "environment variable '{var}' of breed '{}' has no value",
                                b.name
                            ),
                            &format!("set it in the service or as '{scoped}' in the blueprint"),
                        ));
                    }
                }
            }
        }
        if let (Some(checks), Some(ports)) = (&cluster.health_checks, cluster_ports(cluster)) {
            for (i, hc) in checks.iter().enumerate() {
                if !ports.iter().any(|(_, p)| p.contains_key(&hc.port)) {
                    out.push(e(
                        ErrorKind::UnresolvedPortReferenceError,
                        join(&index(&join(&cpath, "health_checks"), i), "port"),
                        format!("health check port '{}' is not a port of any breed of cluster '{cname}'", hc.port),
                        "use a port name of the cluster's breeds",
                    ));
                }
            }
        }
        cluster_gateways(bp, cname, cluster, &cpath, out);
        if let Some(Ref::Inline(s)) = &cluster.sla {
            sla(s, &join(&cpath, "sla"), Some(bp), out);
        }
    }
    // Inline breeds' dependencies must be satisfied inside the blueprint.
    for (b, bpath) in &inline_breeds {
        for (alias, dep) in &b.dependencies {
            let dep_name = dep.name();
            if !seen.keys().any(|n| satisfies(n, dep_name)) {
                out.push(e(
                    ErrorKind::UnresolvedBreedDependencyError,
                    join(&join(bpath, "dependencies"), alias),
                    format!(
                        "dependency '{alias}' ({dep_name}) of breed '{}' is not in the blueprint",
                        b.name
                    ),
                    "add a cluster with that breed",
                ));
            }
        }
    }
    dependency_traits(&inline_breeds, out);
    blueprint_cycle(&inline_breeds, out);
    scoped_env(bp, out);
    external_gateways(bp, out);
}

/// A `$alias.group.name` reference into a dependency that this blueprint defines inline must
/// name a trait that breed has.
fn dependency_traits(breeds: &[(&Breed, String)], out: &mut Vec<DslError>) {
    for (b, path) in breeds {
        for (p, value) in trait_values(b, path) {
            let Ok(vars) = interpolation::variables(&value) else {
                continue;
            };
            for var in vars {
                let Variable::Trait { alias, group, name } = &var else {
                    continue;
                };
                // Inline dependencies were checked by the breed rule already.
                let Some(dep @ Ref::Reference(_)) = b.dependencies.get(alias) else {
                    continue;
                };
                let target = breeds.iter().find(|(o, _)| satisfies(&o.name, dep.name()));
                if let Some((target, _)) = target
                    && !has_trait(target, group, name)
                {
                    out.push(e(
                        ErrorKind::UnresolvedEnvironmentVariableError,
                        &p,
                        format!(
                            "unresolved reference '{var}': breed '{}' has no {group} '{name}'",
                            target.name
                        ),
                        "refer to a port, environment variable or constant the dependency has",
                    ));
                }
            }
        }
    }
}

/// A cycle between the blueprint's breeds through their dependencies.
fn blueprint_cycle(breeds: &[(&Breed, String)], out: &mut Vec<DslError>) {
    let edges: HashMap<&str, Vec<&str>> = breeds
        .iter()
        .map(|(b, _)| {
            let deps = b
                .dependencies
                .values()
                .filter_map(|d| {
                    breeds
                        .iter()
                        .find(|(o, _)| satisfies(&o.name, d.name()))
                        .map(|(o, _)| o.name.as_str())
                })
                .collect();
            (b.name.as_str(), deps)
        })
        .collect();
    fn visit<'a>(
        n: &'a str,
        edges: &HashMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == n) {
            let mut c: Vec<String> = stack[pos..].iter().map(|s| (*s).to_owned()).collect();
            c.push(n.to_owned());
            return Some(c);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for (b, path) in breeds {
        if let Some(cycle) = visit(&b.name, &edges, &mut Vec::new(), &mut done) {
            out.push(e(
                ErrorKind::RecursiveDependenciesError,
                join(path, "dependencies"),
                format!("recursive dependencies: {}", cycle.join(" -> ")),
                "remove the dependency cycle",
            ));
            return;
        }
    }
}

/// Ports of the inline breeds of a cluster: name → type; `None` if any breed is a reference.
fn cluster_ports(cluster: &Cluster) -> Option<Vec<(&Breed, &Map<Port>)>> {
    cluster
        .services
        .iter()
        .map(|s| s.breed.inline().map(|b| (b, &b.ports)))
        .collect()
}

fn cluster_gateways(
    bp: &Blueprint,
    cname: &str,
    cluster: &Cluster,
    cpath: &str,
    out: &mut Vec<DslError>,
) {
    let _ = bp;
    let ports = cluster_ports(cluster);
    for (key, gw) in &cluster.gateways {
        let gpath = join(&join(cpath, "gateways"), key);
        let gpath = if key.is_empty() {
            join(cpath, "gateways")
        } else {
            gpath
        };
        let mut port_name = key.clone();
        if let Some(ports) = &ports {
            if key.is_empty() {
                let names: BTreeSet<&String> = ports.iter().flat_map(|(_, p)| p.keys()).collect();
                if ports.iter().any(|(_, p)| p.len() != 1) || names.len() != 1 {
                    out.push(e(
                        ErrorKind::IllegalAnonymousRoutingPortMappingError,
                        &gpath,
                        format!("cluster '{cname}' has a gateway without a port name, but its breeds do not have exactly one port"),
                        "name the port: 'gateways: {<port>: {routes: …}}'",
                    ));
                    continue;
                }
                port_name = names.into_iter().next().cloned().unwrap_or_default();
            } else if !ports.iter().any(|(_, p)| p.contains_key(key)) {
                out.push(e(
                    ErrorKind::UnresolvedGatewayPortError,
                    &gpath,
                    format!("no breed of cluster '{cname}' has a port '{key}'"),
                    "use a port name of the cluster's breeds",
                ));
                continue;
            }
        }
        let port_type = ports.as_ref().and_then(|ps| {
            ps.iter()
                .find_map(|(_, p)| p.get(&port_name).map(|p| p.kind))
        });
        for route in gw.routes.keys() {
            let known = cluster.services.iter().any(|s| s.breed.name() == route);
            if names::segments(route) != Some(1) || !known {
                out.push(e(
                    ErrorKind::UnresolvedServiceRouteError,
                    join(&join(&gpath, "routes"), route),
                    format!("route '{route}' does not name a service of cluster '{cname}'"),
                    "use the breed name of one of the cluster's services",
                ));
            }
        }
        let total: u32 = gw
            .routes
            .values()
            .filter_map(|r| r.inline().and_then(|r| r.weight))
            .map(|w| u32::from(w.get()))
            .sum();
        if total > 100 {
            out.push(e(
                ErrorKind::RouteWeightError,
                join(&gpath, "routes"),
                format!("route weights of cluster '{cname}' total {total}%, more than 100%"),
                "make the weights total at most 100%",
            ));
        }
        port_type_rules(gw, &gpath, port_type, out);
    }
}

/// Sticky sessions and conditions need HTTP.
fn port_type_rules(gw: &Gateway, path: &str, port_type: Option<PortType>, out: &mut Vec<DslError>) {
    if port_type != Some(PortType::Tcp) {
        return;
    }
    if gw.sticky.is_some() {
        out.push(e(
            ErrorKind::StickyPortTypeError,
            join(path, "sticky"),
            "sticky sessions need an HTTP port, this one is TCP",
            "remove 'sticky' or use an HTTP port",
        ));
    }
    for (name, r) in &gw.routes {
        if r.inline().is_some_and(|r| r.condition.is_some()) {
            out.push(e(
                ErrorKind::ConditionPortTypeError,
                join(&join(&join(path, "routes"), name), "condition"),
                "conditions need an HTTP port, this one is TCP",
                "remove the condition or use an HTTP port",
            ));
        }
    }
}

/// Blueprint-scope variables name existing clusters and variables (spec §1.5.5).
fn scoped_env(bp: &Blueprint, out: &mut Vec<DslError>) {
    for key in bp.environment_variables.keys() {
        let path = join("environment_variables", key);
        let mut parts = key.splitn(3, '.');
        let (Some(c), Some(group), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(cluster) = bp.clusters.get(c) else {
            out.push(e(
                ErrorKind::UnresolvedEnvironmentVariableError,
                &path,
                format!("'{key}' names cluster '{c}', which the blueprint does not have"),
                "use '<cluster>.<NAME>' with a cluster of this blueprint",
            ));
            continue;
        };
        if let Some(ports) = cluster_ports(cluster) {
            let found = ports.iter().any(|(b, _)| has_trait(b, group, name));
            if !found {
                out.push(e(
                    ErrorKind::UnresolvedEnvironmentVariableError,
                    &path,
                    format!("no breed of cluster '{c}' has {group} '{name}'"),
                    "set only variables the cluster's breeds declare",
                ));
            }
        }
    }
}

fn external_gateways(bp: &Blueprint, out: &mut Vec<DslError>) {
    for (key, gw) in &bp.gateways {
        let gpath = join("gateways", key);
        let port = GatewayPort::parse(key).ok();
        for route in gw.routes.keys() {
            let rpath = join(&join(&gpath, "routes"), route);
            let Some((c, p)) = route.split_once('/').filter(|(_, p)| !p.contains('/')) else {
                out.push(e(
                    ErrorKind::UnresolvedGatewayPortError,
                    &rpath,
                    format!("route '{route}' must be '<cluster>/<port>'"),
                    "write the route as '<cluster>/<port name>'",
                ));
                continue;
            };
            let Some(cluster) = bp.clusters.get(c) else {
                out.push(e(
                    ErrorKind::UnresolvedGatewayPortError,
                    &rpath,
                    format!("route '{route}' names an unknown cluster '{c}'"),
                    "use a cluster of this blueprint",
                ));
                continue;
            };
            if let Some(ports) = cluster_ports(cluster)
                && !ports.iter().any(|(_, ps)| ps.contains_key(p))
            {
                out.push(e(
                    ErrorKind::UnresolvedGatewayPortError,
                    &rpath,
                    format!("no breed of cluster '{c}' has a port '{p}'"),
                    "use a port name of the cluster's breeds",
                ));
            }
        }
        weights(gw, &gpath, out);
        port_type_rules(gw, &gpath, port.map(|p| p.kind), out);
    }
}

/// Gateway route weights must total exactly 0% or 100% once defaulted (spec §1.6, §3.5).
fn weights(gw: &Gateway, path: &str, out: &mut Vec<DslError>) {
    let given: Vec<u32> = gw
        .routes
        .values()
        .filter_map(|r| r.inline().and_then(|r| r.weight))
        .map(|w| u32::from(w.get()))
        .collect();
    let total: u32 = given.iter().sum();
    let all_given = given.len() == gw.routes.len();
    if total > 100 || (all_given && total != 0 && total != 100) {
        out.push(e(
            ErrorKind::GatewayRouteWeightError,
            join(path, "routes"),
            format!("route weights total {total}%; they must total 0% or 100%"),
            "adjust the weights so they add up to 100%",
        ));
    }
}

/// Standalone gateway rules.
pub fn gateway(
    g: &Gateway,
    path: &str,
    port_type: Option<PortType>,
    top: bool,
    out: &mut Vec<DslError>,
) {
    let _ = top;
    weights(g, path, out);
    port_type_rules(g, path, port_type, out);
}

fn sla(s: &Sla, path: &str, bp: Option<&Blueprint>, out: &mut Vec<DslError>) {
    let Some(bp) = bp else { return };
    fn walk(list: &[Ref<Escalation>], path: &str, bp: &Blueprint, out: &mut Vec<DslError>) {
        for (i, item) in list.iter().enumerate() {
            let p = index(&join(path, "escalations"), i);
            let Ref::Inline(esc) = item else { continue };
            let target = match &esc.kind {
                EscalationKind::ScaleInstances(s) => s.target.as_ref(),
                EscalationKind::ScaleCpu(s) | EscalationKind::ScaleMemory(s) => s.target.as_ref(),
                EscalationKind::ToAll(l) | EscalationKind::ToOne(l) => {
                    walk(l, &p, bp, out);
                    None
                }
                EscalationKind::Generic { .. } => None,
            };
            if let Some(t) = target
                && !bp.clusters.contains_key(t)
            {
                out.push(e(
                    ErrorKind::UnresolvedScaleEscalationTargetCluster,
                    join(&p, "target"),
                    format!("escalation target cluster '{t}' is not in the blueprint"),
                    "name a cluster of this blueprint, or leave target out for the SLA's cluster",
                ));
            }
        }
    }
    walk(&s.escalations, path, bp, out);
}

fn workflow(w: &Workflow, out: &mut Vec<DslError>) {
    if let Ref::Inline(b) = &w.breed {
        breed(b, "breed", out);
        for key in w.environment_variables.keys() {
            if !b.environment_variables.contains_key(key) {
                out.push(e(
                    ErrorKind::UnresolvedDependencyInTraitValueError,
                    join("environment_variables", key),
                    format!("breed '{}' has no environment variable '{key}'", b.name),
                    "set only variables the workflow's breed declares",
                ));
            }
        }
    }
}
