//! Rollouts written back in their DSL form: defaults left out, bounds and durations as written.

use super::*;

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

impl Serialize for Check {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Check::BuiltIn(m) => m.serialize(s),
            Check::Provider(p) => p.serialize(s),
        }
    }
}

impl Serialize for ProviderCheck {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(name) = &self.name {
            m.serialize_entry("name", name)?;
        }
        m.serialize_entry("provider", self.provider.as_str())?;
        m.serialize_entry("url", &self.url)?;
        let key = match self.provider {
            ProviderKind::Prometheus => "query",
            ProviderKind::Web => "json_path",
        };
        m.serialize_entry(key, &self.query)?;
        m.serialize_entry(self.bound.key(), &self.bound.value())?;
        if self.critical {
            m.serialize_entry("critical", &true)?;
        }
        if self.timeout.get() != DEFAULT_CALL_TIMEOUT {
            m.serialize_entry("timeout", &self.timeout)?;
        }
        m.end()
    }
}

impl Serialize for Webhook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.kind.as_str())?;
        m.serialize_entry("url", &self.url)?;
        m.serialize_entry("timeout", &self.timeout)?;
        m.serialize_entry("retries", &self.retries)?;
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
        m.serialize_entry("consecutive_error_limit", &self.consecutive_error_limit)?;
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
        if !self.webhooks.is_empty() {
            m.serialize_entry("webhooks", &self.webhooks)?;
        }
        m.end()
    }
}
