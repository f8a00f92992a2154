//! The normalized writer: long forms, units normalized, `kind` first.

use crate::model::Artifact;

/// Error writing YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot write YAML: {0}")]
pub struct WriteError(String);

/// One artifact as normalized YAML.
pub fn to_yaml_one(artifact: &Artifact) -> Result<String, WriteError> {
    serde_saphyr::to_string(&artifact.to_json()).map_err(|e| WriteError(e.to_string()))
}

/// Artifacts as normalized YAML documents separated by `---`.
pub fn to_yaml(artifacts: &[Artifact]) -> Result<String, WriteError> {
    let mut out = String::new();
    for (i, a) in artifacts.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml_one(a)?);
    }
    Ok(out)
}

/// Artifacts as normalized JSON: one object, or an array for several.
pub fn to_json(artifacts: &[Artifact]) -> serde_json::Value {
    match artifacts {
        [one] => one.to_json(),
        many => serde_json::Value::Array(many.iter().map(Artifact::to_json).collect()),
    }
}
