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

mod breed;
pub use breed::breed;
use breed::*;
mod blueprint;
pub use blueprint::blueprint;
use blueprint::*;

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
