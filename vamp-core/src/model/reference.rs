//! References: wherever an artifact may be embedded it may also be named (spec §1.1).

use serde::{Serialize, Serializer};

/// Either a reference to a stored artifact by name, or the artifact inline.
#[derive(Debug, Clone, PartialEq)]
pub enum Ref<T> {
    /// A reference by name, e.g. `breed: sava:1.0.0` or `{ref: my-sla}`.
    Reference(String),
    /// An inline definition (named or anonymous).
    Inline(T),
}

impl<T> Ref<T> {
    /// The referenced name, if this is a reference.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Ref::Reference(name) => Some(name),
            Ref::Inline(_) => None,
        }
    }

    /// The inline value, if any.
    pub fn inline(&self) -> Option<&T> {
        match self {
            Ref::Reference(_) => None,
            Ref::Inline(v) => Some(v),
        }
    }
}

impl<T: Named> Ref<T> {
    /// The name: the referenced one, or the inline artifact's own (empty when anonymous).
    pub fn name(&self) -> &str {
        match self {
            Ref::Reference(name) => name,
            Ref::Inline(v) => v.name(),
        }
    }
}

/// Artifacts that have a name (empty for anonymous inline definitions).
pub trait Named {
    /// The name.
    fn name(&self) -> &str;
}

/// Implements [`Named`] for artifacts whose `name` field is their name.
macro_rules! named {
    ($t:ty) => {
        impl $crate::model::Named for $t {
            fn name(&self) -> &str {
                &self.name
            }
        }
    };
}
pub(crate) use named;

/// Opens the map of an inline definition: its `name` and `metadata`, each left out when empty.
pub(crate) fn open_named<S: Serializer>(
    s: S,
    name: &str,
    metadata: &super::Metadata,
) -> Result<S::SerializeMap, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    if !name.is_empty() {
        m.serialize_entry("name", name)?;
    }
    if !metadata.is_empty() {
        m.serialize_entry("metadata", metadata)?;
    }
    Ok(m)
}

/// How a reference to `T` is written: scales, SLAs and escalations as plain strings; breeds
/// (as Vamp's API writes them) and conditions, rewrites, routes (whose plain string means
/// something else) as `{reference: name}`.
pub trait ReferenceStyle {
    /// True when a reference is written as a plain string.
    const PLAIN_STRING: bool;
}

impl<T: Serialize + ReferenceStyle> Serialize for Ref<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ref::Reference(name) if T::PLAIN_STRING => s.serialize_str(name),
            Ref::Reference(name) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("reference", name)?;
                m.end()
            }
            Ref::Inline(v) => v.serialize(s),
        }
    }
}
