//! Expanding references against a store (`expand_references`, spec §2.1).

use super::cursor::{index, join};
use super::error::{DslError, ErrorKind};
use super::node::Mark;
use crate::model::*;

/// Something that can look artifacts up by kind and name (a store snapshot, a file's documents).
pub trait ArtifactSource {
    /// The artifact, if it exists.
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact>;

    /// Every artifact of a kind, for rules across artifacts (a gateway port used twice, …).
    /// The default knows none, so those rules see only the input itself.
    fn artifacts(&self, kind: Kind) -> Vec<Artifact> {
        let _ = kind;
        Vec::new()
    }

    /// The gateways (standalone ones, and deployments' internal and external ones) that claim
    /// `port`, when the source keeps an index of them; `None` (the default) makes the rules
    /// look through [`artifacts`](Self::artifacts) instead.
    fn port_owners(&self, port: u16) -> Option<Vec<String>> {
        let _ = port;
        None
    }
}

impl ArtifactSource for [Artifact] {
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact> {
        self.iter()
            .find(|a| a.kind() == kind && a.name() == name)
            .cloned()
    }

    fn artifacts(&self, kind: Kind) -> Vec<Artifact> {
        self.iter().filter(|a| a.kind() == kind).cloned().collect()
    }
}

impl ArtifactSource for Vec<Artifact> {
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact> {
        self.as_slice().artifact(kind, name)
    }

    fn artifacts(&self, kind: Kind) -> Vec<Artifact> {
        self.as_slice().artifacts(kind)
    }
}

type R<T> = Result<T, DslError>;

/// Replaces every reference inside `artifact` by the stored artifact, recursively.
/// Dependencies written with a `*` prefix match stay references. A missing artifact is an
/// `ArtifactNotFound` error naming the path.
///
/// ```
/// use vamp_core::{dsl, model::{Artifact, Kind}};
/// let store = dsl::read("kind: breeds\nname: b:1\ndeployable: img\n", None).unwrap();
/// let bp = dsl::read("kind: blueprints\nname: bp\nclusters:\n  c: b:1\n", None).unwrap();
/// let Artifact::Blueprint(bp) = dsl::expand(&bp[0], &store).unwrap() else { panic!() };
/// assert!(bp.clusters["c"].services[0].breed.inline().is_some());
/// ```
pub fn expand(artifact: &Artifact, source: &dyn ArtifactSource) -> R<Artifact> {
    Expander {
        source,
        strict: true,
    }
    .artifact(artifact)
}

/// Like [`expand`], but references that `source` does not know stay references.
/// [`super::load`] uses it to validate with whatever the input itself defines.
pub fn expand_available(artifact: &Artifact, source: &dyn ArtifactSource) -> R<Artifact> {
    Expander {
        source,
        strict: false,
    }
    .artifact(artifact)
}

/// Bound on reference chains (dependencies of dependencies …) to stop cycles.
const MAX_DEPTH: usize = 32;

struct Expander<'a> {
    source: &'a dyn ArtifactSource,
    /// Missing references are errors (else they stay references).
    strict: bool,
}

impl Expander<'_> {
    fn artifact(&self, artifact: &Artifact) -> R<Artifact> {
        Ok(match artifact.clone() {
            Artifact::Breed(b) => Artifact::Breed(self.breed(b, "", &mut Vec::new())?),
            Artifact::Blueprint(mut bp) => {
                for (name, cluster) in &mut bp.clusters {
                    self.cluster(cluster, &join("clusters", name))?;
                }
                for (key, gw) in &mut bp.gateways {
                    self.gateway(gw, &join("gateways", key))?;
                }
                Artifact::Blueprint(bp)
            }
            Artifact::Gateway(mut g) => {
                self.gateway(&mut g, "")?;
                Artifact::Gateway(g)
            }
            Artifact::Route(r) => Artifact::Route(self.route(r, "")?),
            Artifact::Sla(s) => Artifact::Sla(self.sla(s, "")?),
            Artifact::Escalation(e) => Artifact::Escalation(self.escalation(e, "", 0)?),
            Artifact::Workflow(mut w) => {
                w.breed = self.breed_ref(&w.breed, "breed", &mut Vec::new())?;
                if let Some(s) = &w.scale {
                    w.scale = Some(self.scale(s, "scale")?);
                }
                Artifact::Workflow(w)
            }
            Artifact::Deployment(mut d) => {
                for (name, c) in &mut d.clusters {
                    if let Some(sla) = &c.sla {
                        c.sla = Some(self.sla_ref(sla, &join(&join("clusters", name), "sla"))?);
                    }
                }
                Artifact::Deployment(d)
            }
            other => other,
        })
    }

    /// The referenced artifact; `None` when it is missing and the expansion is lenient.
    fn find(&self, kind: Kind, name: &str, path: &str) -> R<Option<Artifact>> {
        match self.source.artifact(kind, name) {
            Some(a) if a.kind() == kind => Ok(Some(a)),
            None if !self.strict => Ok(None),
            _ => Err(DslError::new(
                ErrorKind::ArtifactNotFound,
                path,
                Mark::default(),
                format!("{} '{name}' does not exist", kind.singular()),
                format!("create the {} first or fix the name", kind.singular()),
            )),
        }
    }

    /// `chain` holds the breeds being expanded above this one, to report a cycle by name.
    fn breed_ref(&self, r: &Ref<Breed>, path: &str, chain: &mut Vec<String>) -> R<Ref<Breed>> {
        match r {
            Ref::Inline(b) => Ok(Ref::Inline(self.breed(b.clone(), path, chain)?)),
            Ref::Reference(name) if name.ends_with('*') => Ok(r.clone()),
            Ref::Reference(name) => match self.find(Kind::Breed, name, path)? {
                Some(Artifact::Breed(b)) => Ok(Ref::Inline(self.breed(b, path, chain)?)),
                _ => Ok(r.clone()),
            },
        }
    }

    fn breed(&self, mut b: Breed, path: &str, chain: &mut Vec<String>) -> R<Breed> {
        if chain.contains(&b.name) || chain.len() > MAX_DEPTH {
            let mut cycle = chain.clone();
            cycle.push(b.name.clone());
            // Report at the first dependency of the chain, where the user can break it.
            let at = path
                .split(".dependencies.")
                .take(2)
                .collect::<Vec<_>>()
                .join(".dependencies.");
            return Err(DslError::new(
                ErrorKind::RecursiveDependenciesError,
                at,
                Mark::default(),
                format!("recursive dependencies: {}", cycle.join(" -> ")),
                "remove the dependency cycle",
            ));
        }
        chain.push(b.name.clone());
        for (alias, dep) in &mut b.dependencies {
            let p = join(&join(path, "dependencies"), alias);
            *dep = self.breed_ref(dep, &p, chain)?;
        }
        chain.pop();
        Ok(b)
    }

    fn scale(&self, r: &Ref<Scale>, path: &str) -> R<Ref<Scale>> {
        match r {
            Ref::Inline(_) => Ok(r.clone()),
            Ref::Reference(name) => match self.find(Kind::Scale, name, path)? {
                Some(Artifact::Scale(mut s)) => {
                    s.name.clear();
                    s.metadata.clear();
                    Ok(Ref::Inline(s))
                }
                _ => Ok(r.clone()),
            },
        }
    }

    fn cluster(&self, c: &mut Cluster, path: &str) -> R<()> {
        for (i, s) in c.services.iter_mut().enumerate() {
            let p = index(&join(path, "services"), i);
            s.breed = self.breed_ref(&s.breed, &join(&p, "breed"), &mut Vec::new())?;
            if let Some(scale) = &s.scale {
                s.scale = Some(self.scale(scale, &join(&p, "scale"))?);
            }
        }
        for (key, gw) in &mut c.gateways {
            self.gateway(gw, &join(&join(path, "gateways"), key))?;
        }
        if let Some(sla) = &c.sla {
            c.sla = Some(self.sla_ref(sla, &join(path, "sla"))?);
        }
        Ok(())
    }

    fn sla_ref(&self, r: &Ref<Sla>, path: &str) -> R<Ref<Sla>> {
        match r {
            // A stored SLA with escalations added (Vamp's `SlaReference(name, escalations)`).
            Ref::Inline(
                local @ Sla {
                    kind: SlaKind::Extends(name),
                    ..
                },
            ) => match self.find(Kind::Sla, name, path)? {
                Some(Artifact::Sla(mut s)) => {
                    s.name.clear();
                    s.metadata.clear();
                    let mut all = std::mem::take(&mut s.escalations);
                    all.extend(local.escalations.iter().cloned());
                    s.escalations = if all.len() > 1 {
                        vec![Ref::Inline(Escalation {
                            kind: EscalationKind::ToAll(all),
                            ..Escalation::default()
                        })]
                    } else {
                        all
                    };
                    Ok(Ref::Inline(self.sla(s, path)?))
                }
                _ => Ok(r.clone()),
            },
            Ref::Inline(s) => Ok(Ref::Inline(self.sla(s.clone(), path)?)),
            Ref::Reference(name) => match self.find(Kind::Sla, name, path)? {
                Some(Artifact::Sla(mut s)) => {
                    s.name.clear();
                    s.metadata.clear();
                    Ok(Ref::Inline(self.sla(s, path)?))
                }
                _ => Ok(r.clone()),
            },
        }
    }

    fn sla(&self, mut s: Sla, path: &str) -> R<Sla> {
        for (i, e) in s.escalations.iter_mut().enumerate() {
            *e = self.escalation_ref(e, &index(&join(path, "escalations"), i), 0)?;
        }
        Ok(s)
    }

    fn escalation_ref(&self, r: &Ref<Escalation>, path: &str, depth: usize) -> R<Ref<Escalation>> {
        match r {
            Ref::Inline(e) => Ok(Ref::Inline(self.escalation(e.clone(), path, depth)?)),
            Ref::Reference(name) => match self.find(Kind::Escalation, name, path)? {
                Some(Artifact::Escalation(mut e)) => {
                    e.name.clear();
                    e.metadata.clear();
                    Ok(Ref::Inline(self.escalation(e, path, depth)?))
                }
                _ => Ok(r.clone()),
            },
        }
    }

    fn escalation(&self, mut e: Escalation, path: &str, depth: usize) -> R<Escalation> {
        if depth > MAX_DEPTH {
            return Err(DslError::new(
                ErrorKind::RecursiveDependenciesError,
                path,
                Mark::default(),
                "an escalation group contains itself",
                "remove the cycle between escalation groups",
            ));
        }
        if let EscalationKind::ToAll(list) | EscalationKind::ToOne(list) = &mut e.kind {
            for (i, item) in list.iter_mut().enumerate() {
                let p = index(&join(path, "escalations"), i);
                *item = self.escalation_ref(item, &p, depth + 1)?;
            }
        }
        Ok(e)
    }

    fn gateway(&self, g: &mut Gateway, path: &str) -> R<()> {
        for (key, route) in &mut g.routes {
            let p = join(&join(path, "routes"), key);
            let r = match route {
                Ref::Inline(r) => r.clone(),
                Ref::Reference(name) => match self.find(Kind::Route, name, &p)? {
                    Some(Artifact::Route(mut r)) => {
                        // A stored route's own name is not part of the gateway's route.
                        r.name.clear();
                        r.metadata.clear();
                        r
                    }
                    _ => continue,
                },
            };
            *route = Ref::Inline(self.route(r, &p)?);
        }
        Ok(())
    }

    fn route(&self, mut r: Route, path: &str) -> R<Route> {
        if let Some(Ref::Reference(name)) = &r.condition {
            let p = join(path, "condition");
            if let Some(Artifact::Condition(mut c)) = self.find(Kind::Condition, name, &p)? {
                c.name.clear();
                c.metadata.clear();
                r.condition = Some(Ref::Inline(c));
            }
        }
        for (i, rw) in r.rewrites.iter_mut().enumerate() {
            if let Ref::Reference(name) = rw {
                let p = index(&join(path, "rewrites"), i);
                if let Some(Artifact::Rewrite(mut w)) = self.find(Kind::Rewrite, name, &p)? {
                    w.name.clear();
                    w.metadata.clear();
                    *rw = Ref::Inline(w);
                }
            }
        }
        Ok(r)
    }
}
