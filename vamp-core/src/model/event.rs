//! Events and event queries (spec §1.14).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The default event type.
pub const DEFAULT_EVENT_TYPE: &str = "event";

/// An event: tags, an optional value, a type and a timestamp.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Tags (at least one); `group:name` tags also match `group` in queries.
    pub tags: Vec<String>,
    /// Any JSON value.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub value: serde_json::Value,
    /// The type (default `event`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
}

impl Event {
    /// An event of type `event` with these tags, now.
    ///
    /// ```
    /// let e = vamp_core::model::Event::new(["deployments:shop"], serde_json::Value::Null);
    /// assert_eq!(e.kind, "event");
    /// ```
    pub fn new<I, S>(tags: I, value: serde_json::Value) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Event {
            tags: tags.into_iter().map(Into::into).collect(),
            value,
            kind: DEFAULT_EVENT_TYPE.to_owned(),
            timestamp: Utc::now(),
        }
    }

    /// The tags with `group:name` tags also expanded to `group` (spec §1.14), sorted and unique.
    pub fn expanded_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .tags
            .iter()
            .flat_map(|t| {
                let group = t.split_once(':').map(|(g, _)| g.to_owned());
                std::iter::once(t.clone()).chain(group)
            })
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

/// An event query.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct EventQuery {
    /// Every tag must be present (AND).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The type, if any.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A time range.
    #[serde(skip_serializing_if = "TimeRange::is_empty")]
    pub timestamp: TimeRange,
    /// An aggregation instead of a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Aggregator>,
}

/// A time range: at most one of `lt`/`lte` and one of `gt`/`gte`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TimeRange {
    /// Before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt: Option<String>,
    /// At or before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lte: Option<String>,
    /// After.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt: Option<String>,
    /// At or after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gte: Option<String>,
}

impl TimeRange {
    /// True when no bound is set.
    pub fn is_empty(&self) -> bool {
        self.lt.is_none() && self.lte.is_none() && self.gt.is_none() && self.gte.is_none()
    }
}

/// An aggregation over event values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aggregator {
    /// What to compute.
    #[serde(rename = "type")]
    pub kind: AggregatorType,
    /// The field of the value to aggregate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Aggregation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregatorType {
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Average.
    Average,
    /// Sum.
    Sum,
    /// Count.
    Count,
}

impl AggregatorType {
    /// Reads a name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "min" => AggregatorType::Min,
            "max" => AggregatorType::Max,
            "average" => AggregatorType::Average,
            "sum" => AggregatorType::Sum,
            "count" => AggregatorType::Count,
            _ => return None,
        })
    }
}
