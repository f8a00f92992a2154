//! Templates for `import` (spec §1.11).

use serde::Serialize;

use super::{Map, Metadata};

/// A template: a named JSON map that other artifacts `import` and deep-merge.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Template {
    /// The name.
    pub name: String,
    /// Free metadata.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Metadata,
    /// The body merged into importers.
    pub definition: Map<serde_json::Value>,
}

super::reference::named!(Template);
