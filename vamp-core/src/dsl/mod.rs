//! Reading and writing artifacts: YAML and JSON in every accepted form (spec §1).
//!
//! ```
//! use vamp_core::dsl;
//! let docs = dsl::load("kind: breeds\nname: sava:1.0.0\ndeployable: magneticio/sava:1.0.0\n\
//!                       ports:\n  web: 8080/http\n", None, None).unwrap();
//! assert_eq!(docs[0].name(), "sava:1.0.0");
//! let yaml = dsl::to_yaml(&docs).unwrap();
//! assert_eq!(dsl::load(&yaml, None, None).unwrap(), docs);
//! ```
//!
//! Errors are [`DslError`] values with the artifact path, line, column and a fix hint.

mod cursor;
pub mod error;
pub mod expand;
mod import;
pub mod node;
mod reader;
mod selector;
pub mod validate;
mod writer;

pub use cursor::SourceMap;
pub use error::{DslError, ErrorKind};
pub use expand::{ArtifactSource, expand, expand_available};
pub use node::{Mark, Node, Value, parse_documents};
pub use writer::{to_json, to_yaml, to_yaml_one};

use crate::model::{Artifact, Kind};

/// One artifact read from text, with the positions of its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The artifact.
    pub artifact: Artifact,
    /// Where each of its paths was found.
    pub source: SourceMap,
}

/// Reads every artifact of `text` (YAML or JSON, one or more documents, or a top-level list).
///
/// `kind` is the expected kind (as a typed API endpoint or `vamp validate --kind` gives it);
/// without it each document's `kind:` decides. `imports` resolves `import:` (spec §1.11) beside
/// the templates defined in the same text. Stops at the first error.
pub fn read_documents(
    text: &str,
    kind: Option<Kind>,
    imports: Option<&dyn ArtifactSource>,
) -> Result<Vec<Document>, DslError> {
    Ok(read_kinds(text, kind, imports, false)?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// Reads every document of `text` as the root of the API takes them (spec §2.2 `/api/v1`):
/// each with the kind it declares, except that a `deployments` document is read as the
/// blueprint to deploy. Returns each document's declared kind with what was read.
///
/// ```
/// use vamp_core::dsl;
/// use vamp_core::model::{Artifact, Kind};
/// let text = "kind: breeds\nname: web:1\ndeployable: x\n---\nkind: deployments\nname: shop\nclusters:\n  web:\n    breed: web:1\n";
/// let read = dsl::read_deployable(text).unwrap();
/// assert_eq!(read[0].0, Kind::Breed);
/// assert!(matches!(&read[1], (Kind::Deployment, Artifact::Blueprint(bp)) if bp.name == "shop"));
/// ```
///
/// # Errors
/// The first [`DslError`], with its line and column.
pub fn read_deployable(text: &str) -> Result<Vec<(Kind, Artifact)>, DslError> {
    read_deployable_importing(text, None)
}

/// [`read_deployable`] with `imports` resolving `import:` beside the templates of the text.
///
/// # Errors
/// The first [`DslError`], with its line and column.
pub fn read_deployable_importing(
    text: &str,
    imports: Option<&dyn ArtifactSource>,
) -> Result<Vec<(Kind, Artifact)>, DslError> {
    Ok(read_kinds(text, None, imports, true)?
        .into_iter()
        .map(|(k, d)| (k, d.artifact))
        .collect())
}

/// [`read_documents`], with each document's kind; `deploy` reads deployments as blueprints.
fn read_kinds(
    text: &str,
    kind: Option<Kind>,
    imports: Option<&dyn ArtifactSource>,
    deploy: bool,
) -> Result<Vec<(Kind, Document)>, DslError> {
    let mut items = Vec::new();
    for doc in parse_documents(text)? {
        match doc.value {
            Value::Seq(list) => items.extend(list),
            Value::Null => {}
            _ => items.push(doc),
        }
    }
    let kinds = items
        .iter()
        .map(|n| document_kind(n, kind))
        .collect::<Result<Vec<_>, _>>()?;
    // Documents without `import` first, so imports can use templates of the same text.
    let mut out: Vec<Option<Document>> = vec![None; items.len()];
    for pass in [false, true] {
        for (i, node) in items.iter().enumerate() {
            if import::has_import(node) != pass {
                continue;
            }
            let node = if pass {
                let local: Vec<Artifact> =
                    out.iter().flatten().map(|d| d.artifact.clone()).collect();
                import::resolve(node, &local, imports)?
            } else {
                node.clone()
            };
            let mut reader = reader::Reader::default();
            let read_as = match kinds[i] {
                Kind::Deployment if deploy => Kind::Blueprint,
                k => k,
            };
            let artifact = reader.artifact(read_as, &node)?;
            out[i] = Some(Document {
                artifact,
                source: reader.source,
            });
        }
    }
    Ok(kinds
        .into_iter()
        .zip(out)
        .filter_map(|(k, d)| Some((k, d?)))
        .collect())
}

/// Reads every artifact of `text` without validating it (see [`read_documents`]).
pub fn read(text: &str, kind: Option<Kind>) -> Result<Vec<Artifact>, DslError> {
    Ok(read_documents(text, kind, None)?
        .into_iter()
        .map(|d| d.artifact)
        .collect())
}

/// Reads and validates every artifact of `text`; returns all validation errors, each placed
/// at its line and column.
pub fn load(
    text: &str,
    kind: Option<Kind>,
    imports: Option<&dyn ArtifactSource>,
) -> Result<Vec<Artifact>, Vec<DslError>> {
    let docs = read_documents(text, kind, imports).map_err(|e| vec![e])?;
    // Validate with the references that the input itself (or `imports`) can resolve.
    let known = Known {
        local: docs.iter().map(|d| d.artifact.clone()).collect(),
        imports,
    };
    let mut errors = Vec::new();
    for doc in &docs {
        let mut found = match expand_available(&doc.artifact, &known) {
            Ok(expanded) => validate::artifact(&expanded),
            Err(e) => vec![e],
        };
        found.extend(validate::against(&doc.artifact, &known));
        errors.extend(found.into_iter().map(|e| doc.source.place(e)));
    }
    if errors.is_empty() {
        Ok(docs.into_iter().map(|d| d.artifact).collect())
    } else {
        Err(errors)
    }
}

/// The documents of one input, then an outside source.
struct Known<'a> {
    local: Vec<Artifact>,
    imports: Option<&'a dyn ArtifactSource>,
}

impl ArtifactSource for Known<'_> {
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact> {
        self.local
            .artifact(kind, name)
            .or_else(|| self.imports.and_then(|s| s.artifact(kind, name)))
    }

    fn artifacts(&self, kind: Kind) -> Vec<Artifact> {
        let mut all = self.local.artifacts(kind);
        for a in self.imports.map(|s| s.artifacts(kind)).unwrap_or_default() {
            if !all.iter().any(|l| l.name() == a.name()) {
                all.push(a);
            }
        }
        all
    }
}

/// The kind of one document: its `kind:` field, checked against the expected kind.
fn document_kind(node: &Node, expected: Option<Kind>) -> Result<Kind, DslError> {
    let declared = match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some("kind"))
            .map(|(_, v)| v),
        _ => None,
    };
    match (declared, expected) {
        (Some(v), expected) => {
            let text = v.scalar_text().unwrap_or_default();
            let Some(kind) = Kind::parse(&text) else {
                return Err(DslError::new(
                    ErrorKind::UnexpectedArtifact,
                    "kind",
                    v.mark,
                    format!("unknown artifact kind '{text}'"),
                    "use breeds, blueprints, deployments, gateways, routes, conditions, rewrites, \
                     scales, slas, escalations, workflows, events, event-queries or templates",
                ));
            };
            match expected {
                Some(e) if e != kind => Err(DslError::new(
                    ErrorKind::InconsistentArtifactKind,
                    "kind",
                    v.mark,
                    format!("the document is of kind '{kind}' but '{e}' is expected"),
                    format!("change 'kind' to '{e}', or read it as '{kind}'"),
                )),
                _ => Ok(kind),
            }
        }
        (None, Some(kind)) => Ok(kind),
        (None, None) => Err(DslError::new(
            ErrorKind::MissingPathValueError,
            "kind",
            node.mark,
            "the document does not say what kind of artifact it is",
            "add 'kind: <kind>' (e.g. 'kind: breeds') or pass --kind",
        )),
    }
}

/// Checks that an artifact read from a request body has the name the URL gives
/// (`PUT /api/v1/<kind>/<name>`, spec §2.3).
pub fn expect_name(artifact: &Artifact, name: &str) -> Result<(), DslError> {
    if artifact.name() == name {
        Ok(())
    } else {
        Err(DslError::new(
            ErrorKind::InconsistentArtifactName,
            "name",
            Mark::default(),
            format!(
                "the body names '{}' but the request is for '{name}'",
                artifact.name()
            ),
            format!("set 'name: {name}' in the body or use the body's name in the URL"),
        ))
    }
}

/// Checks a name with the generic rule (`IllegalName`), for readers outside this module.
pub fn validate_name(name: &str, path: &str, mark: Mark) -> Result<(), DslError> {
    if crate::model::names::is_valid_name(name) {
        Ok(())
    } else {
        Err(DslError::new(
            ErrorKind::IllegalName,
            path,
            mark,
            format!("illegal name '{name}'"),
            "names may not be empty or contain blanks, '/', '[' or ']'",
        ))
    }
}
