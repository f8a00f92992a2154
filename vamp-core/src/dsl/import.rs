//! `import:` — deep-merge templates or other artifacts into a document (spec §1.11).

use super::cursor::join;
use super::error::{DslError, ErrorKind};
use super::expand::ArtifactSource;
use super::node::{Node, Value};
use crate::model::{Artifact, Kind};

pub(crate) fn has_import(node: &Node) -> bool {
    matches!(&node.value, Value::Map(e) if e.iter().any(|(k, _)| is_import(k)))
}

fn is_import(k: &Node) -> bool {
    k.scalar_text().as_deref() == Some("import")
}

/// Merges the imported artifacts (in order) and then the document itself, which wins.
pub(crate) fn resolve(
    node: &Node,
    local: &[Artifact],
    source: Option<&dyn ArtifactSource>,
) -> Result<Node, DslError> {
    let Value::Map(entries) = &node.value else {
        return Ok(node.clone());
    };
    let Some((_, spec)) = entries.iter().find(|(k, _)| is_import(k)) else {
        return Ok(node.clone());
    };
    let path = join("", "import");
    let names: Vec<&Node> = match &spec.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        _ => vec![spec],
    };
    if names.is_empty()
        || names
            .iter()
            .any(|n| n.scalar_text().is_some_and(|s| s.trim().is_empty()))
    {
        return Err(DslError::new(
            ErrorKind::EmptyImportError,
            path,
            spec.mark,
            "'import' is empty",
            "name a template ('import: base') or an artifact ('import: breeds/sava:1.0.0')",
        ));
    }
    // Check the form of every entry before looking any of them up.
    let mut targets = Vec::new();
    for n in names {
        let Some(text) = n
            .scalar_text()
            .filter(|_| !matches!(n.value, Value::Map(_) | Value::Seq(_)))
        else {
            return Err(DslError::new(
                ErrorKind::ImportDefinitionError,
                &path,
                n.mark,
                "an import must be a name or a list of names",
                "write 'import: [base, breeds/sava:1.0.0]'",
            ));
        };
        let (kind, name) = match text.split_once('/') {
            Some((k, name)) => match Kind::parse(k) {
                Some(kind) => (kind, name.to_owned()),
                None => {
                    return Err(DslError::new(
                        ErrorKind::ImportDefinitionError,
                        &path,
                        n.mark,
                        format!("'{k}' in import '{text}' is not an artifact kind"),
                        "write '<kind>/<name>', e.g. 'breeds/sava:1.0.0', or a template name",
                    ));
                }
            },
            None => (Kind::Template, text.clone()),
        };
        targets.push((kind, name, n));
    }
    let mut merged = Node::synthetic(Value::Map(Vec::new()));
    for (kind, name, n) in targets {
        let found = local
            .iter()
            .find(|a| a.kind() == kind && a.name() == name)
            .cloned()
            .or_else(|| source.and_then(|s| s.artifact(kind, &name)));
        let Some(artifact) = found else {
            return Err(DslError::new(
                ErrorKind::ImportReferenceError,
                &path,
                n.mark,
                format!("cannot import {kind}/{name}: it does not exist"),
                "create it first or fix the name",
            ));
        };
        let json = match artifact {
            Artifact::Template(t) => serde_json::Value::Object(t.definition.into_iter().collect()),
            other => {
                let mut j = other.to_json();
                if let serde_json::Value::Object(m) = &mut j {
                    m.shift_remove("kind");
                    m.shift_remove("name");
                }
                j
            }
        };
        merged = merge(merged, Node::from_json(&json));
    }
    let own = Node {
        value: Value::Map(
            entries
                .iter()
                .filter(|(k, _)| !is_import(k))
                .cloned()
                .collect(),
        ),
        mark: node.mark,
    };
    Ok(merge(merged, own))
}

/// Deep merge: maps merge key by key, anything else is replaced by `over`.
fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, v) in o {
                match b.iter().position(|(bk, _)| bk.value == k.value) {
                    Some(i) => {
                        let (_, old) = b.remove(i);
                        b.insert(i, (k, merge(old, v)));
                    }
                    None => b.push((k, v)),
                }
            }
            Node {
                value: Value::Map(b),
                mark: over.mark,
            }
        }
        (_, value) => Node {
            value,
            mark: over.mark,
        },
    }
}
