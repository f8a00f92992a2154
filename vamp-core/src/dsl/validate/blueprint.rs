//! Blueprint rules (spec §1.5): breeds, clusters, gateways, scoped environment, dependencies.

use super::*;

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
pub(super) fn dependency_traits(breeds: &[(&Breed, String)], out: &mut Vec<DslError>) {
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
pub(super) fn blueprint_cycle(breeds: &[(&Breed, String)], out: &mut Vec<DslError>) {
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
pub(super) fn cluster_ports(cluster: &Cluster) -> Option<Vec<(&Breed, &Map<Port>)>> {
    cluster
        .services
        .iter()
        .map(|s| s.breed.inline().map(|b| (b, &b.ports)))
        .collect()
}

pub(super) fn cluster_gateways(
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
pub(super) fn port_type_rules(
    gw: &Gateway,
    path: &str,
    port_type: Option<PortType>,
    out: &mut Vec<DslError>,
) {
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
pub(super) fn scoped_env(bp: &Blueprint, out: &mut Vec<DslError>) {
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

pub(super) fn external_gateways(bp: &Blueprint, out: &mut Vec<DslError>) {
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
