//! Rollouts: automated canary releases (issue 18, docs/rollouts.md). A rollout moves traffic
//! from a gateway's stable route to its canary route step by step, judges the canary on the
//! router's own counters, and rolls back by itself.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Metadata, Percentage, Seconds};

mod serialize;

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
    /// Who is told, or asked, as the rollout goes (docs/rollouts.md "Webhooks").
    pub webhooks: Vec<Webhook>,
}

impl Rollout {
    /// Its webhooks of one kind.
    pub fn webhooks_of(&self, kind: WebhookKind) -> impl Iterator<Item = &Webhook> {
        self.webhooks.iter().filter(move |w| w.kind == kind)
    }

    /// Whether it has a webhook of `kind`.
    pub fn has_webhook(&self, kind: WebhookKind) -> bool {
        self.webhooks_of(kind).next().is_some()
    }
}

crate::model::reference::named!(Rollout);

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
    /// Intervals in a row whose metric providers failed or had no data that are tolerated;
    /// one more pauses the rollout (default 4). Never a failed canary.
    pub consecutive_error_limit: u32,
    /// The checks.
    pub metrics: Vec<Check>,
}

impl Analysis {
    /// The checks on metric providers, in order.
    pub fn provider_checks(&self) -> impl Iterator<Item = &ProviderCheck> {
        self.metrics.iter().filter_map(|c| match c {
            Check::Provider(p) => Some(p),
            Check::BuiltIn(_) => None,
        })
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: Seconds::new(30),
            min_requests: 100,
            failure_limit: 0,
            inconclusive_limit: 3,
            consecutive_error_limit: 4,
            metrics: vec![Check::BuiltIn(MetricCheck {
                metric: Metric::SuccessRate,
                bound: MetricBound::Min(0.99),
                critical: false,
            })],
        }
    }
}

/// One check of an analysis: a built-in metric, or a number a metric provider answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// From the router's own counters.
    BuiltIn(MetricCheck),
    /// From Prometheus or a web endpoint.
    Provider(ProviderCheck),
}

impl Check {
    /// Whether its failure rolls back at once.
    pub fn critical(&self) -> bool {
        match self {
            Check::BuiltIn(m) => m.critical,
            Check::Provider(p) => p.critical,
        }
    }
}

/// A metric provider: where a check's number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// A Prometheus instant query whose result is one number.
    Prometheus,
    /// A JSON document fetched with GET, the number read by a JSON path.
    Web,
}

impl ProviderKind {
    /// `prometheus`, `web`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Prometheus => "prometheus",
            ProviderKind::Web => "web",
        }
    }

    /// Reads a provider name.
    pub fn parse(text: &str) -> Option<ProviderKind> {
        match text.trim() {
            "prometheus" => Some(ProviderKind::Prometheus),
            "web" => Some(ProviderKind::Web),
            _ => None,
        }
    }
}

/// A check on a number a metric provider answers. `url`, `query` and `json_path` may use
/// `{{canary}}`, `{{stable}}`, `{{gateway}}` (route and gateway names) and `{{interval}}`
/// (the analysis interval, as `30s`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderCheck {
    /// A name for verdicts and events (default: the provider's).
    pub name: Option<String>,
    /// Which provider.
    pub provider: ProviderKind,
    /// Prometheus' base URL, or the document's URL.
    pub url: String,
    /// The PromQL query (Prometheus) or the JSON path (web).
    pub query: String,
    /// The bound: `min` or `max` (the number is the provider's, as it answers it).
    pub bound: MetricBound,
    /// A failure rolls back at once.
    pub critical: bool,
    /// How long one request may take (default 10 s).
    pub timeout: Seconds,
}

impl ProviderCheck {
    /// The name shown in verdicts: `name`, else the provider's.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(self.provider.as_str())
    }
}

/// The template variables of provider queries and URLs.
pub const TEMPLATE_VARIABLES: [&str; 4] = ["canary", "stable", "gateway", "interval"];

/// `text` with `{{name}}` replaced by `value(name)` for each template variable; `None` when
/// it uses a variable that is not one of [`TEMPLATE_VARIABLES`] (the first such name in `Err`).
///
/// ```
/// use vamp_core::model::render_template;
/// let out = render_template("up{route=\"{{canary}}\"}[{{interval}}]", |v| match v {
///     "canary" => "shop/web/v2".into(),
///     _ => "30s".into(),
/// });
/// assert_eq!(out.unwrap(), "up{route=\"shop/web/v2\"}[30s]");
/// assert_eq!(render_template("{{nope}}", |_| String::new()), Err("nope".to_owned()));
/// ```
///
/// # Errors
/// The unknown variable's name.
pub fn render_template(
    text: &str,
    value: impl Fn(&str) -> String,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        if !TEMPLATE_VARIABLES.contains(&name) {
            return Err(name.to_owned());
        }
        out.push_str(&value(name));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// When a webhook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    /// Before the first shift: a 2xx answer is needed; anything else holds the rollout
    /// paused, asked again every interval.
    PreRollout,
    /// Before the canary takes all of the traffic: a gate, asked every interval until 2xx.
    ConfirmPromotion,
    /// Once the rollout ended (succeeded, rolled back or aborted); a failure is logged.
    PostRollout,
    /// Asked every interval while the rollout works: a 2xx answer rolls the canary back.
    Rollback,
    /// Every phase change, in order, as JSON with a `text` line for chat.
    Event,
}

impl WebhookKind {
    /// Every kind.
    pub const ALL: [WebhookKind; 5] = [
        WebhookKind::PreRollout,
        WebhookKind::ConfirmPromotion,
        WebhookKind::PostRollout,
        WebhookKind::Rollback,
        WebhookKind::Event,
    ];

    /// The name as written (`pre-rollout`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::PreRollout => "pre-rollout",
            WebhookKind::ConfirmPromotion => "confirm-promotion",
            WebhookKind::PostRollout => "post-rollout",
            WebhookKind::Rollback => "rollback",
            WebhookKind::Event => "event",
        }
    }

    /// Reads a kind's name.
    pub fn parse(text: &str) -> Option<WebhookKind> {
        WebhookKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text.trim())
    }
}

/// A webhook: a URL called with a POST of JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// When it is called.
    pub kind: WebhookKind,
    /// Where.
    pub url: String,
    /// How long one call may take (default 10 s).
    pub timeout: Seconds,
    /// Further attempts after a failed call (default 2).
    pub retries: u32,
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

/// The default timeout of webhook calls and provider requests, seconds.
pub const DEFAULT_CALL_TIMEOUT: u64 = 10;
