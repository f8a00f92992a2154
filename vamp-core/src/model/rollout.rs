//! Rollouts: automated canary releases (issue 18, docs/rollouts.md). A rollout moves traffic
//! from a gateway's stable route to its canary route step by step, judges the canary on the
//! router's own counters, and rolls back by itself.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Metadata, Named, Percentage, Seconds};

/// A rollout: which routes of which gateway, the steps, and how the canary is judged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rollout {
    /// The name.
    pub name: String,
    /// Free metadata.
    pub metadata: Metadata,
    /// The gateway: a deployment's (`shop/web/port`, `shop/9050`) or a standalone one.
    pub gateway: String,
    /// The route that has the traffic now, exactly as the gateway lists it.
    pub stable: String,
    /// The route the traffic moves to.
    pub canary: String,
    /// What happens, in order.
    pub steps: Vec<RolloutStep>,
    /// How the canary is judged.
    pub analysis: Analysis,
}

impl Named for Rollout {
    fn name(&self) -> &str {
        &self.name
    }
}

/// One step of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStep {
    /// Give the canary this share of what stable and canary hold together.
    Weight(Percentage),
    /// Judge the canary until it passes or fails.
    Analysis,
    /// Wait this long; `None` waits for a promote.
    Pause(Option<Seconds>),
}

/// How a canary is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Time between verdicts (default 30 s, at least 1 s).
    pub interval: Seconds,
    /// Canary requests needed before a metric can *pass* (default 100); failing needs none.
    pub min_requests: u64,
    /// Failed verdicts tolerated; one more rolls back (default 0).
    pub failure_limit: u32,
    /// Intervals without enough evidence before the rollout pauses (default 3).
    pub inconclusive_limit: u32,
    /// The checks.
    pub metrics: Vec<MetricCheck>,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: Seconds::new(30),
            min_requests: 100,
            failure_limit: 0,
            inconclusive_limit: 3,
            metrics: vec![MetricCheck {
                metric: Metric::SuccessRate,
                bound: MetricBound::Min(0.99),
                critical: false,
            }],
        }
    }
}

/// One check of the canary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricCheck {
    /// What is measured.
    pub metric: Metric,
    /// The bound it must keep.
    pub bound: MetricBound,
    /// A failure rolls back at once, whatever `failure_limit` says.
    pub critical: bool,
}

/// A built-in metric, computed from the router's per-route counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Share of requests answered without a 5xx or a connection error.
    SuccessRate,
    /// Share of requests answered with a 5xx or a connection error.
    ErrorRate,
    /// Requests per second.
    RequestRate,
    /// A response-time percentile (50, 90 or 99).
    Latency(u8),
    /// The mean response time: what every router that counts can measure (HAProxy's own
    /// statistics keep an average, not a distribution).
    LatencyMean,
}

impl Metric {
    /// Every built-in metric.
    pub const ALL: [Metric; 7] = [
        Metric::SuccessRate,
        Metric::ErrorRate,
        Metric::RequestRate,
        Metric::Latency(50),
        Metric::Latency(90),
        Metric::Latency(99),
        Metric::LatencyMean,
    ];

    /// The name as written (`success-rate`, `latency-p99`, …).
    pub fn name(self) -> String {
        match self {
            Metric::SuccessRate => "success-rate".into(),
            Metric::ErrorRate => "error-rate".into(),
            Metric::RequestRate => "request-rate".into(),
            Metric::Latency(q) => format!("latency-p{q}"),
            Metric::LatencyMean => "latency-mean".into(),
        }
    }

    /// Reads a metric name.
    ///
    /// ```
    /// use vamp_core::model::Metric;
    /// assert_eq!(Metric::parse("latency-p99"), Some(Metric::Latency(99)));
    /// assert_eq!(Metric::parse("latency-p42"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == text.trim())
    }

    /// Whether the metric needs response-time percentiles from the router.
    pub fn needs_percentiles(self) -> bool {
        matches!(self, Metric::Latency(_))
    }
}

/// The bound a metric must keep. Rates are fractions (0–1), latencies milliseconds,
/// request rates requests per second; ratios compare the canary with the stable route over
/// the same window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricBound {
    /// At least this.
    Min(f64),
    /// At most this.
    Max(f64),
    /// At least this times the stable route's value.
    MinRatio(f64),
    /// At most this times the stable route's value.
    MaxRatio(f64),
}

impl MetricBound {
    /// The key it is written under.
    pub fn key(self) -> &'static str {
        match self {
            MetricBound::Min(_) => "min",
            MetricBound::Max(_) => "max",
            MetricBound::MinRatio(_) => "min_ratio",
            MetricBound::MaxRatio(_) => "max_ratio",
        }
    }

    /// The number.
    pub fn value(self) -> f64 {
        match self {
            MetricBound::Min(v)
            | MetricBound::Max(v)
            | MetricBound::MinRatio(v)
            | MetricBound::MaxRatio(v) => v,
        }
    }
}

/// A value of `metric` as it is written: rates as percentages, latencies with `ms`.
pub fn format_metric_value(metric: Metric, value: f64) -> serde_json::Value {
    let trim = |v: f64| {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    match metric {
        Metric::SuccessRate | Metric::ErrorRate => format!("{}%", trim(value * 100.0)).into(),
        Metric::Latency(_) | Metric::LatencyMean => format!("{}ms", trim(value)).into(),
        Metric::RequestRate => serde_json::Number::from_f64(value)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
    }
}

impl Serialize for MetricCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("metric", &self.metric.name())?;
        let value = match self.bound {
            MetricBound::Min(v) | MetricBound::Max(v) => format_metric_value(self.metric, v),
            MetricBound::MinRatio(v) | MetricBound::MaxRatio(v) => serde_json::json!(v),
        };
        m.serialize_entry(self.bound.key(), &value)?;
        if self.critical {
            m.serialize_entry("critical", &true)?;
        }
        m.end()
    }
}

impl Serialize for RolloutStep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            RolloutStep::Weight(w) => m.serialize_entry("weight", w)?,
            RolloutStep::Analysis => m.serialize_entry("analysis", &serde_json::json!({}))?,
            RolloutStep::Pause(Some(d)) => m.serialize_entry("pause", d)?,
            RolloutStep::Pause(None) => m.serialize_entry("pause", &serde_json::json!({}))?,
        }
        m.end()
    }
}

impl Serialize for Analysis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("interval", &self.interval)?;
        m.serialize_entry("min_requests", &self.min_requests)?;
        m.serialize_entry("failure_limit", &self.failure_limit)?;
        m.serialize_entry("inconclusive_limit", &self.inconclusive_limit)?;
        m.serialize_entry("metrics", &self.metrics)?;
        m.end()
    }
}

impl Serialize for Rollout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        if !self.metadata.is_empty() {
            m.serialize_entry("metadata", &self.metadata)?;
        }
        m.serialize_entry("gateway", &self.gateway)?;
        m.serialize_entry("stable", &self.stable)?;
        m.serialize_entry("canary", &self.canary)?;
        m.serialize_entry("steps", &self.steps)?;
        m.serialize_entry("analysis", &self.analysis)?;
        m.end()
    }
}
