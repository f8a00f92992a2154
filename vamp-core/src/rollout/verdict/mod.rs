//! The sequential verdict of one metric check (issue 18, docs/rollouts.md "Verdicts").
//!
//! Every bound on a rate or a percentile is a bound on a fraction of requests: a success rate
//! of at least 99% allows at most 1% failed requests; a p99 of at most 500 ms allows at most
//! 1% of requests slower than 500 ms. So each check counts the canary's "bad" requests `k`
//! of `n` since the analysis window began, and asks how likely the canary's true bad fraction
//! θ is above the allowed one `f`:
//!
//! - prior `Beta(1, b)` with `b = ln 2 / −ln(1 − f)`: its median is exactly `f` — even odds
//!   before any request, worth about `b` requests of evidence (69 for `f` = 1%), so one early
//!   error does not condemn a canary and ten errors in ten requests do;
//! - posterior `Beta(1 + k, b + n − k)`;
//! - **fail** when `P(θ > f) ≥ 0.99` — at any `n`: a canary that fails 10 of its 10 requests is
//!   failed long before `min_requests`;
//! - **pass** when `n ≥ min_requests` and `P(θ ≤ f) ≥ 0.5` (the posterior median is within the
//!   bound);
//! - otherwise **inconclusive**: not enough evidence, which never fails and never promotes.
//!
//! Ratios compare with the stable route over the same window (its success rate, error rate or
//! percentile, estimated from its counters; latencies of at least [`LATENCY_FLOOR_MS`]).
//! `latency-mean` has no distribution to test: it is compared with its bound once the canary
//! (and for a ratio the stable route) has `min_requests` requests in the window. Request-rate bounds are plain comparisons: too
//! little traffic is never a failure.
//!
//! Layout: `beta.rs` — the posterior (the regularized incomplete beta function, hand-written:
//! see there); `counts.rs` — what a route's counters say about a check (its bad fraction, its
//! mean latency); here — the verdicts.

use serde::{Deserialize, Serialize};

use super::Counts;
use crate::model::{Metric, MetricBound, MetricCheck, ProviderCheck};
pub use beta::{beta_cdf, within_probability};
use counts::{fraction, mean_latency};

/// Posterior probability needed to fail a canary.
pub const FAIL_CONFIDENCE: f64 = 0.99;
/// Posterior probability needed to pass one (with `min_requests` met).
pub const PASS_CONFIDENCE: f64 = 0.5;

/// Latency ratios compare with the stable route's value, but never with less than this (ms):
/// below a millisecond the measure is noise (HAProxy counts whole milliseconds), and a canary
/// at 0.6 ms is not "twice as slow" as a stable route at 0.3 ms.
pub const LATENCY_FLOOR_MS: f64 = 1.0;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within its bound, with enough evidence.
    Pass,
    /// Out of its bound, beyond reasonable doubt.
    Fail,
    /// Not enough evidence either way.
    Inconclusive,
    /// A metric provider failed or had no data: no verdict on the canary at all.
    Error,
}

impl Verdict {
    /// `pass`, `fail`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
        }
    }
}

/// One check judged, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The metric (`success-rate`, `latency-p99`, …).
    pub metric: String,
    /// `min`, `max`, `min_ratio` or `max_ratio`.
    pub bound: String,
    /// The bound as written.
    pub limit: f64,
    /// The canary's value over the window, when it can be computed.
    pub canary: Option<f64>,
    /// The stable route's value over the window, when it can be computed.
    pub stable: Option<f64>,
    /// The outcome.
    pub verdict: Verdict,
    /// Whether a failure rolls back at once.
    pub critical: bool,
    /// The outcome in words, with the numbers.
    pub reason: String,
}

/// What a metric provider answered for one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measured {
    /// One number.
    Value(f64),
    /// Nothing to judge (an empty result, NaN): why, in words.
    NoData(String),
    /// The provider could not be asked or answered something unreadable: why, in words.
    Failed(String),
}

/// Judges a provider check on what the provider answered. The number is compared with the
/// bound as it is; like `latency-mean` it has no sample size of its own, so it passes or fails
/// only once the canary has `min_requests` requests in the window (when the router counts:
/// `canary_requests` is `None` when it cannot). No data and provider failures are
/// [`Verdict::Error`], never a failed canary.
pub fn judge_provider(
    check: &ProviderCheck,
    measured: &Measured,
    canary_requests: Option<u64>,
    seconds: f64,
    min_requests: u64,
) -> CheckResult {
    let label = check.label().to_owned();
    let result = |verdict: Verdict, value: Option<f64>, reason: String| CheckResult {
        metric: label.clone(),
        bound: check.bound.key().to_owned(),
        limit: check.bound.value(),
        canary: value,
        stable: None,
        verdict,
        critical: check.critical,
        reason,
    };
    let v = match measured {
        Measured::Value(v) => *v,
        Measured::NoData(why) => {
            return result(Verdict::Error, None, format!("{label}: no data ({why})"));
        }
        Measured::Failed(why) => {
            return result(Verdict::Error, None, format!("{label}: {why}"));
        }
    };
    let (limit, is_max) = match check.bound {
        MetricBound::Max(b) | MetricBound::MaxRatio(b) => (b, true),
        MetricBound::Min(b) | MetricBound::MinRatio(b) => (b, false),
    };
    let described = format!(
        "{label} {} ({}), {} {}",
        trim_number(v),
        check.provider.as_str(),
        check.bound.key(),
        trim_number(limit)
    );
    if let Some(n) = canary_requests
        && n < min_requests
    {
        return result(
            Verdict::Inconclusive,
            Some(v),
            format!("{described}: {n} canary requests in {seconds:.0} s, {min_requests} needed"),
        );
    }
    let within = if is_max { v <= limit } else { v >= limit };
    if within {
        result(Verdict::Pass, Some(v), format!("{described}: within bound"))
    } else {
        result(Verdict::Fail, Some(v), format!("{described}: out of bound"))
    }
}

/// A number without trailing zeros (`0.01`, `12`, `0.3333`).
fn trim_number(v: f64) -> String {
    let s = format!("{v:.4}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Judges one check on the canary's and the stable route's counts over the window of
/// `seconds`.
pub fn judge(
    check: &MetricCheck,
    canary: &Counts,
    stable: &Counts,
    seconds: f64,
    min_requests: u64,
) -> CheckResult {
    let name = check.metric.name();
    let result =
        |verdict: Verdict, canary_v: Option<f64>, stable_v: Option<f64>, reason: String| {
            CheckResult {
                metric: name.clone(),
                bound: check.bound.key().to_owned(),
                limit: check.bound.value(),
                canary: canary_v,
                stable: stable_v,
                verdict,
                critical: check.critical,
                reason,
            }
        };
    let n = canary.requests as f64;
    if check.metric == Metric::RequestRate {
        let rate = |c: &Counts| (seconds > 0.0).then(|| c.requests as f64 / seconds);
        let (cv, sv) = (rate(canary), rate(stable));
        let Some(c) = cv else {
            return result(Verdict::Inconclusive, cv, sv, "no time has passed".into());
        };
        let (limit, is_max) = match check.bound {
            MetricBound::Min(v) => (Some(v), false),
            MetricBound::Max(v) => (Some(v), true),
            MetricBound::MinRatio(r) => (sv.map(|s| r * s), false),
            MetricBound::MaxRatio(r) => (sv.map(|s| r * s), true),
        };
        let Some(limit) = limit else {
            return result(
                Verdict::Inconclusive,
                cv,
                sv,
                "no stable traffic to compare with".into(),
            );
        };
        let within = if is_max { c <= limit } else { c >= limit };
        let verdict = match (within, is_max) {
            (true, _) => Verdict::Pass,
            (false, true) => Verdict::Fail,
            // Too little traffic is never a failure.
            (false, false) => Verdict::Inconclusive,
        };
        return result(
            verdict,
            cv,
            sv,
            format!(
                "{name} {c:.2}/s, {} {limit:.2}/s",
                if is_max { "at most" } else { "at least" }
            ),
        );
    }
    if check.metric == Metric::LatencyMean {
        return mean_latency(check, canary, stable, seconds, min_requests);
    }
    let Some(fraction) = fraction(check, canary, stable) else {
        return result(
            Verdict::Inconclusive,
            None,
            None,
            format!("{name}: the stable route has no traffic to compare with yet"),
        );
    };
    let within = within_probability(fraction.bad, n, fraction.allowed);
    let shown = |v: Option<f64>| match check.metric {
        Metric::Latency(_) | Metric::LatencyMean => v.map_or("n/a".into(), |v| format!("{v:.1}ms")),
        _ => v.map_or("n/a".into(), |v| format!("{:.2}%", v * 100.0)),
    };
    let described = format!(
        "{name} {} over {} canary requests (stable {}), {} {}",
        shown(fraction.canary),
        canary.requests,
        shown(fraction.stable),
        check.bound.key(),
        match check.bound {
            MetricBound::Min(v) | MetricBound::Max(v) => shown(Some(v)),
            MetricBound::MinRatio(r) | MetricBound::MaxRatio(r) => format!("{r}× stable"),
        }
    );
    if 1.0 - within >= FAIL_CONFIDENCE {
        return result(
            Verdict::Fail,
            fraction.canary,
            fraction.stable,
            format!(
                "{described}: out of bound ({:.1}% sure)",
                (1.0 - within) * 100.0
            ),
        );
    }
    if canary.requests >= min_requests && within >= PASS_CONFIDENCE {
        return result(
            Verdict::Pass,
            fraction.canary,
            fraction.stable,
            format!("{described}: within bound ({:.0}% likely)", within * 100.0),
        );
    }
    let why = if canary.requests < min_requests {
        format!(
            "{} canary requests in {seconds:.0} s, {min_requests} needed",
            canary.requests
        )
    } else {
        format!("not clear yet ({:.0}% likely within bound)", within * 100.0)
    };
    result(
        Verdict::Inconclusive,
        fraction.canary,
        fraction.stable,
        format!("{described}: {why}"),
    )
}

mod beta;
mod counts;
#[cfg(test)]
mod tests;
