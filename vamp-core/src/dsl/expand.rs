//! Expanding references against a store (`expand_references`, spec §2.1).

use super::cursor::{index, join};
use super::error::{DslError, ErrorKind};
use super::node::Mark;
use crate::model::*;

/// Something that can look artifacts up by kind and name (a store snapshot, a file's documents).
pub trait ArtifactSource {
    /// The artifact, if it exists.
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact>;
}

impl ArtifactSource for [Artifact] {
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact> {
        self.iter()
            .find(|a| a.kind() == kind && a.name() == name)
            .cloned()
    }
}

impl ArtifactSource for Vec<Artifact> {
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact> {
        self.as_slice().artifact(kind, name)
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
    let x = Expander { source };
    Ok(match artifact.clone() {
        Artifact::Breed(b) => Artifact::Breed(x.breed(b, "", 0)?),
        Artifact::Blueprint(mut bp) => {
            for (name, cluster) in &mut bp.clusters {
                x.cluster(cluster, &join("clusters", name))?;
            }
            for (key, gw) in &mut bp.gateways {
                x.gateway(gw, &join("gateways", key))?;
            }
            Artifact::Blueprint(bp)
        }
        Artifact::Gateway(mut g) => {
            x.gateway(&mut g, "")?;
            Artifact::Gateway(g)
        }
        Artifact::Route(r) => Artifact::Route(x.route(r, "")?),
        Artifact::Sla(s) => Artifact::Sla(x.sla(s, "")?),
        Artifact::Escalation(e) => Artifact::Escalation(x.escalation(e, "", 0)?),
        Artifact::Workflow(mut w) => {
            w.breed = Ref::Inline(x.breed_ref(&w.breed, "breed")?);
            if let Some(s) = &w.scale {
                w.scale = Some(Ref::Inline(x.scale(s, "scale")?));
            }
            Artifact::Workflow(w)
        }
        Artifact::Deployment(mut d) => {
            for (name, c) in &mut d.clusters {
                if let Some(sla) = &c.sla {
                    let p = join(&join("clusters", name), "sla");
                    c.sla = Some(Ref::Inline(x.sla_ref(sla, &p)?));
                }
            }
            Artifact::Deployment(d)
        }
        other => other,
    })
}

/// Bound on reference chains (dependencies of dependencies …) to stop cycles.
const MAX_DEPTH: usize = 32;

struct Expander<'a> {
    source: &'a dyn ArtifactSource,
}

impl Expander<'_> {
    fn find(&self, kind: Kind, name: &str, path: &str) -> R<Artifact> {
        self.source.artifact(kind, name).ok_or_else(|| {
            DslError::new(
                ErrorKind::ArtifactNotFound,
                path,
                Mark::default(),
                format!("{} '{name}' does not exist", kind.singular()),
                format!("create the {} first or fix the name", kind.singular()),
            )
        })
    }

    fn breed_ref(&self, r: &Ref<Breed>, path: &str) -> R<Breed> {
        self.breed_ref_at(r, path, 0)
    }

    fn breed_ref_at(&self, r: &Ref<Breed>, path: &str, depth: usize) -> R<Breed> {
        match r {
            Ref::Inline(b) => self.breed(b.clone(), path, depth),
            Ref::Reference(name) => match self.find(Kind::Breed, name, path)? {
                Artifact::Breed(b) => self.breed(b, path, depth),
                _ => unreachable_kind(path),
            },
        }
    }

    fn breed(&self, mut b: Breed, path: &str, depth: usize) -> R<Breed> {
        if depth > MAX_DEPTH {
            return Err(DslError::new(
                ErrorKind::RecursiveDependenciesError,
                path,
                Mark::default(),
                format!("breed '{}' depends on itself", b.name),
                "remove the dependency cycle",
            ));
        }
        for (alias, dep) in &mut b.dependencies {
            if dep.reference().is_some_and(|n| n.ends_with('*')) {
                continue;
            }
            let p = join(&join(path, "dependencies"), alias);
            *dep = Ref::Inline(self.breed_ref_at(dep, &p, depth + 1)?);
        }
        Ok(b)
    }

    fn scale(&self, r: &Ref<Scale>, path: &str) -> R<Scale> {
        match r {
            Ref::Inline(s) => Ok(s.clone()),
            Ref::Reference(name) => match self.find(Kind::Scale, name, path)? {
                Artifact::Scale(s) => Ok(s),
                _ => unreachable_kind(path),
            },
        }
    }

    fn cluster(&self, c: &mut Cluster, path: &str) -> R<()> {
        for (i, s) in c.services.iter_mut().enumerate() {
            let p = index(&join(path, "services"), i);
            s.breed = Ref::Inline(self.breed_ref(&s.breed, &join(&p, "breed"))?);
            if let Some(scale) = &s.scale {
                s.scale = Some(Ref::Inline(self.scale(scale, &join(&p, "scale"))?));
            }
        }
        for (key, gw) in &mut c.gateways {
            self.gateway(gw, &join(&join(path, "gateways"), key))?;
        }
        if let Some(sla) = &c.sla {
            c.sla = Some(Ref::Inline(self.sla_ref(sla, &join(path, "sla"))?));
        }
        Ok(())
    }

    fn sla_ref(&self, r: &Ref<Sla>, path: &str) -> R<Sla> {
        match r {
            Ref::Inline(s) => self.sla(s.clone(), path),
            Ref::Reference(name) => match self.find(Kind::Sla, name, path)? {
                Artifact::Sla(s) => self.sla(s, path),
                _ => unreachable_kind(path),
            },
        }
    }

    fn sla(&self, mut s: Sla, path: &str) -> R<Sla> {
        for (i, e) in s.escalations.iter_mut().enumerate() {
            *e = Ref::Inline(self.escalation_ref(e, &index(&join(path, "escalations"), i), 0)?);
        }
        Ok(s)
    }

    fn escalation_ref(&self, r: &Ref<Escalation>, path: &str, depth: usize) -> R<Escalation> {
        match r {
            Ref::Inline(e) => self.escalation(e.clone(), path, depth),
            Ref::Reference(name) => match self.find(Kind::Escalation, name, path)? {
                Artifact::Escalation(e) => self.escalation(e, path, depth),
                _ => unreachable_kind(path),
            },
        }
    }

    fn escalation(&self, mut e: Escalation, path: &str, depth: usize) -> R<Escalation> {
        if depth > MAX_DEPTH {
            return Err(DslError::new(
                ErrorKind::RecursiveDependenciesError,
                path,
                Mark::default(),
                format!("escalation '{}' contains itself", e.name),
                "remove the cycle between escalation groups",
            ));
        }
        if let EscalationKind::ToAll(list) | EscalationKind::ToOne(list) = &mut e.kind {
            for (i, item) in list.iter_mut().enumerate() {
                let p = index(&join(path, "escalations"), i);
                *item = Ref::Inline(self.escalation_ref(item, &p, depth + 1)?);
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
                    Artifact::Route(r) => r,
                    _ => return unreachable_kind(&p),
                },
            };
            let mut r = self.route(r, &p)?;
            // A stored route's own name is not part of the gateway's route.
            r.name.clear();
            *route = Ref::Inline(r);
        }
        Ok(())
    }

    fn route(&self, mut r: Route, path: &str) -> R<Route> {
        if let Some(Ref::Reference(name)) = &r.condition {
            let p = join(path, "condition");
            match self.find(Kind::Condition, name, &p)? {
                Artifact::Condition(mut c) => {
                    c.name.clear();
                    c.metadata.clear();
                    r.condition = Some(Ref::Inline(c));
                }
                _ => return unreachable_kind(&p),
            }
        }
        for (i, rw) in r.rewrites.iter_mut().enumerate() {
            if let Ref::Reference(name) = rw {
                let p = index(&join(path, "rewrites"), i);
                match self.find(Kind::Rewrite, name, &p)? {
                    Artifact::Rewrite(mut w) => {
                        w.name.clear();
                        w.metadata.clear();
                        *rw = Ref::Inline(w);
                    }
                    _ => return unreachable_kind(&p),
                }
            }
        }
        Ok(r)
    }
}

/// A source returned an artifact of another kind than asked for.
fn unreachable_kind<T>(path: &str) -> R<T> {
    Err(DslError::new(
        ErrorKind::UnexpectedArtifact,
        path,
        Mark::default(),
        "the store returned an artifact of another kind",
        "check the artifact source implementation",
    ))
}
