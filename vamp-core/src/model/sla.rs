//! SLAs and escalations (spec §1.9–1.10).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Map, Metadata, Ref, ReferenceStyle};

/// An SLA of a cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sla {
    /// The name (empty inline).
    pub name: String,
    /// Free metadata.
    pub metadata: Metadata,
    /// What the SLA checks.
    pub kind: SlaKind,
    /// What to do when it is broken (one element; several are wrapped in `to_all`).
    pub escalations: Vec<Ref<Escalation>>,
}

/// The SLA types.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SlaKind {
    /// `response_time_sliding_window`: escalate above `upper` ms, de-escalate below `lower` ms.
    ResponseTimeSlidingWindow {
        /// Upper threshold, ms.
        upper: u64,
        /// Lower threshold, ms.
        lower: u64,
        /// Aggregation window, s.
        interval: u64,
        /// Quiet time after an SLA event, s.
        cooldown: u64,
    },
    /// `escalation_only`: escalations fire only on posted SLA events.
    #[default]
    EscalationOnly,
    /// Any other type, kept with its parameters.
    Generic {
        /// The type string.
        kind: String,
        /// Other fields.
        parameters: Map<serde_json::Value>,
    },
    /// A stored SLA, named, with escalations of its own added to the stored SLA's
    /// (`sla: {reference: name, escalations: […]}`, Vamp's `SlaReference(name, escalations)`).
    /// Expansion replaces it by the stored SLA.
    Extends(String),
}

super::reference::named!(Sla);

impl ReferenceStyle for Sla {
    const PLAIN_STRING: bool = true;
}

impl Serialize for Sla {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = super::reference::open_named(s, &self.name, &self.metadata)?;
        match &self.kind {
            SlaKind::ResponseTimeSlidingWindow {
                upper,
                lower,
                interval,
                cooldown,
            } => {
                m.serialize_entry("type", "response_time_sliding_window")?;
                m.serialize_entry(
                    "threshold",
                    &serde_json::json!({"upper": upper, "lower": lower}),
                )?;
                m.serialize_entry(
                    "window",
                    &serde_json::json!({"interval": interval, "cooldown": cooldown}),
                )?;
            }
            SlaKind::EscalationOnly => m.serialize_entry("type", "escalation_only")?,
            SlaKind::Extends(name) => m.serialize_entry("reference", name)?,
            SlaKind::Generic { kind, parameters } => {
                m.serialize_entry("type", kind)?;
                for (k, v) in parameters {
                    m.serialize_entry(k, v)?;
                }
            }
        }
        if !self.escalations.is_empty() {
            m.serialize_entry("escalations", &self.escalations)?;
        }
        m.end()
    }
}

/// An escalation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Escalation {
    /// The name (empty inline).
    pub name: String,
    /// Free metadata.
    pub metadata: Metadata,
    /// What it does.
    pub kind: EscalationKind,
}

/// The escalation types.
#[derive(Debug, Clone, PartialEq)]
pub enum EscalationKind {
    /// Scale the number of instances.
    ScaleInstances(ScaleBy<i64>),
    /// Scale CPU (cores).
    ScaleCpu(ScaleBy<f64>),
    /// Scale memory (MB).
    ScaleMemory(ScaleBy<f64>),
    /// Apply every escalation.
    ToAll(Vec<Ref<Escalation>>),
    /// Apply the first that applies.
    ToOne(Vec<Ref<Escalation>>),
    /// Any other type (ignored at runtime).
    Generic {
        /// The type string.
        kind: String,
        /// Other fields.
        parameters: Map<serde_json::Value>,
    },
}

impl Default for EscalationKind {
    fn default() -> Self {
        EscalationKind::ToAll(Vec::new())
    }
}

/// Parameters of a scale escalation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleBy<T> {
    /// Lower bound.
    pub minimum: T,
    /// Upper bound.
    pub maximum: T,
    /// Step.
    pub scale_by: T,
    /// Target cluster (default: the SLA's cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

super::reference::named!(Escalation);

impl ReferenceStyle for Escalation {
    const PLAIN_STRING: bool = true;
}

impl Serialize for Escalation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = super::reference::open_named(s, &self.name, &self.metadata)?;
        fn scale<M: SerializeMap, T: Serialize>(m: &mut M, p: &ScaleBy<T>) -> Result<(), M::Error> {
            m.serialize_entry("minimum", &p.minimum)?;
            m.serialize_entry("maximum", &p.maximum)?;
            m.serialize_entry("scale_by", &p.scale_by)?;
            if let Some(t) = &p.target {
                m.serialize_entry("target", t)?;
            }
            Ok(())
        }
        match &self.kind {
            EscalationKind::ScaleInstances(p) => {
                m.serialize_entry("type", "scale_instances")?;
                scale(&mut m, p)?;
            }
            EscalationKind::ScaleCpu(p) => {
                m.serialize_entry("type", "scale_cpu")?;
                scale(&mut m, p)?;
            }
            EscalationKind::ScaleMemory(p) => {
                m.serialize_entry("type", "scale_memory")?;
                scale(&mut m, p)?;
            }
            EscalationKind::ToAll(list) => {
                m.serialize_entry("type", "to_all")?;
                m.serialize_entry("escalations", list)?;
            }
            EscalationKind::ToOne(list) => {
                m.serialize_entry("type", "to_one")?;
                m.serialize_entry("escalations", list)?;
            }
            EscalationKind::Generic { kind, parameters } => {
                m.serialize_entry("type", kind)?;
                for (k, v) in parameters {
                    m.serialize_entry(k, v)?;
                }
            }
        }
        m.end()
    }
}
