//! Readers: one file per artifact kind, accepting every form of spec §1.
//!
//! [`Reader`] walks a [`Node`] tree, consumes every key it knows (anything left over is an
//! `UnexpectedElement`), and records where each artifact path was found in its [`SourceMap`].

mod blueprint;
mod breed;
mod deployment;
mod event;
mod gateway;
mod rollout;
mod sla;
mod template;
mod workflow;

/// What every reader file uses.
mod prelude {
    pub(super) use super::super::cursor::{
        Obj, boolean, check_name, check_strict_name, entries, err, index, integer, item_string,
        join, json_map, key_text, list_or_one, number, one_line, percentage, string, type_err,
        unsigned,
    };
    pub(super) use super::super::error::{DslError, ErrorKind};
    pub(super) use super::super::node::{Node, Value};
    pub(super) use super::{R, Reader, check_ref_name, malformed, timestamp, trait_value};
    pub(super) use crate::model::*;
}

use super::cursor::{
    Obj, SourceMap, check_name, err, join, json_map, metadata, opt_string, string,
};
use super::error::{DslError, ErrorKind};
use super::node::{Node, Value};
use crate::model::*;

/// Reads artifacts and records where every path was found.
#[derive(Default)]
pub(crate) struct Reader {
    pub(crate) source: SourceMap,
    /// Inside a cluster gateway, route errors are `Route*Error`; elsewhere `GatewayRoute*Error`.
    cluster_gateway: bool,
}

pub(super) type R<T> = Result<T, DslError>;

impl Reader {
    fn obj<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> R<Obj<'n>> {
        self.source.record(path, node.mark);
        Obj::new(node, path, what)
    }

    fn mark(&mut self, path: &str, node: &Node) {
        self.source.record(path, node.mark);
    }

    /// The map at `node` (path `path`, `what` naming it in errors), each entry read by
    /// `read(reader, key, the entry's path, key node, value node)`.
    fn map_of<T>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        mut read: impl FnMut(&mut Self, &str, &str, &Node, &Node) -> R<T>,
    ) -> R<Map<T>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in super::cursor::entries(node, path, what)? {
            let key = super::cursor::key_text(k, path)?;
            let entry = join(path, &key);
            let value = read(self, &key, &entry, k, v)?;
            out.insert(key, value);
        }
        Ok(out)
    }

    /// Reads one artifact of `kind` from a document node.
    pub(crate) fn artifact(&mut self, kind: Kind, node: &Node) -> R<Artifact> {
        Ok(match kind {
            Kind::Breed => Artifact::Breed(self.breed(node, "", true)?),
            Kind::Blueprint => Artifact::Blueprint(self.blueprint(node)?),
            Kind::Deployment => Artifact::Deployment(self.deployment(node)?),
            Kind::Gateway => Artifact::Gateway(self.gateway(node)?),
            Kind::Route => Artifact::Route(self.route(node, "", true)?),
            Kind::Condition => Artifact::Condition(self.condition_artifact(node, "", true)?),
            Kind::Rewrite => Artifact::Rewrite(self.rewrite(node, "", true)?),
            Kind::Scale => Artifact::Scale(self.scale(node, "", true)?),
            Kind::Sla => Artifact::Sla(self.sla(node, "", true)?),
            Kind::Escalation => Artifact::Escalation(self.escalation(node, "", true)?),
            Kind::Workflow => Artifact::Workflow(self.workflow(node)?),
            Kind::Event => Artifact::Event(self.event(node)?),
            Kind::EventQuery => Artifact::EventQuery(self.event_query(node)?),
            Kind::Template => Artifact::Template(self.template(node)?),
            Kind::Rollout => Artifact::Rollout(self.rollout(node)?),
            Kind::RolloutStatus => {
                return Err(err(
                    ErrorKind::UnexpectedArtifact,
                    "kind",
                    node,
                    "a rollout's status is kept by Vamp and cannot be written",
                    "write the rollout (kind: rollouts); its status comes with it",
                ));
            }
            Kind::WorkflowState => {
                return Err(err(
                    ErrorKind::UnexpectedArtifact,
                    "kind",
                    node,
                    "a workflow's state is kept by Vamp and cannot be written",
                    "write the workflow (kind: workflows); set its status with PUT /api/v1/workflows/<name>/status",
                ));
            }
        })
    }

    /// `name` of a top-level or named inline artifact.
    fn name(&mut self, o: &mut Obj<'_>) -> R<String> {
        let (n, p) = o.required(&["name"])?;
        self.mark(&p, n);
        let name = string(n, &p)?;
        check_name(&name, &p, n)?;
        Ok(name)
    }

    /// Opens a stored-or-inline artifact: at the top level `kind` is allowed and `name`
    /// required; inline definitions are anonymous. Returns the map, the name and the metadata.
    fn header<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        top: bool,
        what: &str,
    ) -> R<(Obj<'n>, String, Metadata)> {
        let mut o = self.obj(node, path, what)?;
        if top {
            o.ignore(&["kind"]);
        }
        let name = if top {
            self.name(&mut o)?
        } else {
            String::new()
        };
        let metadata = self.metadata(&mut o)?;
        Ok((o, name, metadata))
    }

    fn metadata(&mut self, o: &mut Obj<'_>) -> R<Metadata> {
        match o.take(&["metadata"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                metadata(n, &p)
            }
            None => Ok(Metadata::default()),
        }
    }

    fn dialects(&mut self, o: &mut Obj<'_>) -> R<Dialects> {
        match o.take(&["dialects", "dialect"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                json_map(n, &p)
            }
            None => Ok(Dialects::default()),
        }
    }

    fn opt_str(&mut self, o: &mut Obj<'_>, key: &str) -> R<Option<String>> {
        match o.take(&[key]) {
            Some((n, p)) => {
                self.mark(&p, n);
                opt_string(n, &p)
            }
            None => Ok(None),
        }
    }

    /// If the map is `{ref: x}` / `{reference: x}`, the name; a reference with a body is an error.
    fn reference(&mut self, node: &Node, path: &str) -> R<Option<String>> {
        let Value::Map(entries) = &node.value else {
            return Ok(None);
        };
        let Some((k, v)) = entries
            .iter()
            .find(|(k, _)| matches!(k.scalar_text().as_deref(), Some("ref" | "reference")))
        else {
            return Ok(None);
        };
        let key = k.scalar_text().unwrap_or_default();
        let p = join(path, &key);
        if entries.len() > 1 {
            return Err(err(
                ErrorKind::EitherReferenceOrAnonymous,
                path,
                node,
                "either a reference or an inline definition, not both",
                format!("keep only '{key}: <name>' or drop '{key}' and define it inline"),
            ));
        }
        self.mark(&p, v);
        let name = string(v, &p)?;
        check_ref_name(&name, &p, v)?;
        Ok(Some(name))
    }

    /// An anonymous-or-reference value: `x`, `{ref: x}` or an inline body without `name`.
    fn anonymous_ref<T>(
        &mut self,
        node: &Node,
        path: &str,
        read: impl FnOnce(&mut Self, &Node, &str) -> R<T>,
    ) -> R<Ref<T>> {
        self.mark(path, node);
        match &node.value {
            Value::Map(_) => {
                if let Some(name) = self.reference(node, path)? {
                    return Ok(Ref::Reference(name));
                }
                if Obj::new(node, path, "")?.has("name") {
                    return Err(err(
                        ErrorKind::EitherReferenceOrAnonymous,
                        path,
                        node,
                        "a named definition is not allowed here",
                        "refer to a stored artifact by name, or drop 'name' for an inline definition",
                    ));
                }
                Ok(Ref::Inline(read(self, node, path)?))
            }
            _ => {
                let name = string(node, path)?;
                check_ref_name(&name, path, node)?;
                Ok(Ref::Reference(name))
            }
        }
    }
}

pub(super) fn malformed(path: &str, node: &Node) -> DslError {
    err(
        ErrorKind::MalformedTraitError,
        path,
        node,
        format!(
            "a trait value must be a scalar, found {}",
            node.value.type_name()
        ),
        "write a single value, quoted if it contains special characters",
    )
}

/// A trait value: scalar (as text) or null; maps and lists are malformed (spec §1.1).
pub(super) fn trait_value(node: &Node, path: &str) -> R<Option<String>> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Map(_) | Value::Seq(_) => Err(malformed(path, node)),
        _ => opt_string(node, path),
    }
}

/// Reference names: the generic rule, plus a trailing `*` prefix match for dependencies.
pub(super) fn check_ref_name(name: &str, path: &str, node: &Node) -> R<()> {
    check_name(
        name.strip_suffix('*')
            .filter(|s| !s.is_empty())
            .unwrap_or(name),
        path,
        node,
    )
}

pub(super) fn timestamp(node: &Node) -> Option<chrono::DateTime<chrono::Utc>> {
    match &node.value {
        Value::Str(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc())
            }),
        Value::Int(ms) => chrono::DateTime::from_timestamp_millis(*ms),
        _ => None,
    }
}
