//! Breed rules (spec §1.3): ports, environment, traits, dependencies, health checks.

use super::*;

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
pub(super) fn trait_values(b: &Breed, path: &str) -> Vec<(String, String)> {
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

pub(super) fn has_trait(b: &Breed, group: &str, name: &str) -> bool {
    match group {
        "ports" => b.ports.contains_key(name),
        "environment_variables" => b.environment_variables.contains_key(name),
        "constants" => b.constants.contains_key(name),
        // Hosts are resolved at deploy time.
        _ => true,
    }
}

/// The chain of names if an inline dependency (transitively) refers back to an ancestor.
pub(super) fn dependency_cycle(b: &Breed, stack: &mut Vec<String>) -> Option<Vec<String>> {
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

pub(super) fn health_checks(
    checks: &[HealthCheck],
    path: &str,
    b: Option<&Breed>,
    out: &mut Vec<DslError>,
) {
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
pub(super) fn satisfies(breed_name: &str, dependency: &str) -> bool {
    match dependency.strip_suffix('*') {
        Some(prefix) => breed_name.starts_with(prefix),
        None => breed_name == dependency,
    }
}
