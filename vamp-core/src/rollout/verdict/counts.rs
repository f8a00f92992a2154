//! What a route's counters say about a metric check: how many of the canary's requests were
//! "bad" against the bound, and the mean latency.

use super::*;

/// How a check counts "bad" requests: the fraction it bounds, and which way.
pub(super) struct Fraction {
    /// Bad requests of the canary.
    pub(super) bad: f64,
    /// The largest fraction of bad requests the bound allows.
    pub(super) allowed: f64,
    /// The canary's value of the metric.
    pub(super) canary: Option<f64>,
    /// The stable route's.
    pub(super) stable: Option<f64>,
}

/// The bad requests and allowed fraction of a rate or percentile check; `None` when a ratio
/// has no stable value to compare with.
pub(super) fn fraction(check: &MetricCheck, canary: &Counts, stable: &Counts) -> Option<Fraction> {
    let rate = |c: &Counts, errors: bool| {
        (c.requests > 0).then(|| {
            let e = c.errors as f64 / c.requests as f64;
            if errors { e } else { 1.0 - e }
        })
    };
    match check.metric {
        Metric::SuccessRate | Metric::ErrorRate => {
            let errors = check.metric == Metric::ErrorRate;
            let (cv, sv) = (rate(canary, errors), rate(stable, errors));
            // The fraction bounded is the metric itself: a max bounds the metric's events, a
            // min bounds the others.
            let limit = match check.bound {
                MetricBound::Min(v) | MetricBound::Max(v) => v,
                MetricBound::MinRatio(r) | MetricBound::MaxRatio(r) => {
                    // Smoothed, so a stable route without errors still allows some.
                    let s = if errors {
                        (stable.errors as f64 + 0.5) / (stable.requests as f64 + 1.0)
                    } else {
                        sv?
                    };
                    if stable.requests == 0 {
                        return None;
                    }
                    (r * s).clamp(0.0, 1.0)
                }
            };
            let is_max = matches!(check.bound, MetricBound::Max(_) | MetricBound::MaxRatio(_));
            let metric_events = if errors {
                canary.errors as f64
            } else {
                (canary.requests - canary.errors.min(canary.requests)) as f64
            };
            let (bad, allowed) = if is_max {
                (metric_events, limit)
            } else {
                (canary.requests as f64 - metric_events, 1.0 - limit)
            };
            Some(Fraction {
                bad,
                allowed,
                canary: cv,
                stable: sv,
            })
        }
        Metric::Latency(q) => {
            let q = f64::from(q) / 100.0;
            let threshold = match check.bound {
                MetricBound::Min(v) | MetricBound::Max(v) => v,
                MetricBound::MinRatio(r) | MetricBound::MaxRatio(r) => {
                    r * stable.percentile(q)?.max(LATENCY_FLOOR_MS)
                }
            };
            let is_max = matches!(check.bound, MetricBound::Max(_) | MetricBound::MaxRatio(_));
            // p_q ≤ T ⟺ at most (1 − q) of the requests are slower than T.
            let (bad, allowed) = if is_max {
                (canary.slower_than(threshold), 1.0 - q)
            } else {
                (canary.requests as f64 - canary.slower_than(threshold), q)
            };
            Some(Fraction {
                bad,
                allowed,
                canary: canary.percentile(q),
                stable: stable.percentile(q),
            })
        }
        Metric::RequestRate | Metric::LatencyMean => None,
    }
}

/// A bound on the mean response time. Without the distribution there is no sequential test:
/// the mean is compared with its bound once the canary has `min_requests` requests in the
/// window (and, for a ratio, the stable route as many), so it fails no sooner than it passes.
pub(super) fn mean_latency(
    check: &MetricCheck,
    canary: &Counts,
    stable: &Counts,
    seconds: f64,
    min_requests: u64,
) -> CheckResult {
    let name = check.metric.name();
    let (cv, sv) = (canary.mean_ms(), stable.mean_ms());
    let result = |verdict: Verdict, reason: String| CheckResult {
        metric: name.clone(),
        bound: check.bound.key().to_owned(),
        limit: check.bound.value(),
        canary: cv,
        stable: sv,
        verdict,
        critical: check.critical,
        reason,
    };
    let ms = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.1}ms"));
    if canary.requests < min_requests {
        return result(
            Verdict::Inconclusive,
            format!(
                "{name} {}: {} canary requests in {seconds:.0} s, {min_requests} needed",
                ms(cv),
                canary.requests
            ),
        );
    }
    let (limit, is_max) = match check.bound {
        MetricBound::Min(v) => (Some(v), false),
        MetricBound::Max(v) => (Some(v), true),
        MetricBound::MinRatio(r) => (sv.map(|s| r * s.max(LATENCY_FLOOR_MS)), false),
        MetricBound::MaxRatio(r) => (sv.map(|s| r * s.max(LATENCY_FLOOR_MS)), true),
    };
    let ratio = matches!(
        check.bound,
        MetricBound::MinRatio(_) | MetricBound::MaxRatio(_)
    );
    let limit = match limit {
        Some(l) if !ratio || stable.requests >= min_requests => l,
        _ => {
            return result(
                Verdict::Inconclusive,
                format!(
                    "{name}: {} stable requests to compare with, {min_requests} needed",
                    stable.requests
                ),
            );
        }
    };
    let Some(c) = cv else {
        return result(Verdict::Inconclusive, format!("{name}: no canary requests"));
    };
    let within = if is_max { c <= limit } else { c >= limit };
    let described = format!(
        "{name} {} over {} canary requests (stable {}), {} {}",
        ms(cv),
        canary.requests,
        ms(sv),
        check.bound.key(),
        match check.bound {
            MetricBound::Min(v) | MetricBound::Max(v) => ms(Some(v)),
            MetricBound::MinRatio(r) | MetricBound::MaxRatio(r) => {
                format!("{r}× stable ({limit:.1}ms)")
            }
        }
    );
    if within {
        result(Verdict::Pass, format!("{described}: within bound"))
    } else {
        result(Verdict::Fail, format!("{described}: out of bound"))
    }
}
