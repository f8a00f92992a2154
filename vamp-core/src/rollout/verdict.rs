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
//! The regularized incomplete beta function is written here (Lentz's continued fraction, as in
//! Numerical Recipes §6.4): the crates that have it (statrs) bring a linear-algebra library
//! for one function.

use serde::{Deserialize, Serialize};

use super::Counts;
use crate::model::{Metric, MetricBound, MetricCheck, ProviderCheck};

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

/// `I_x(a, b)`, the regularized incomplete beta function: `P(X ≤ x)` for `X ~ Beta(a, b)`.
///
/// ```
/// use vamp_core::rollout::verdict::beta_cdf;
/// assert!((beta_cdf(0.5, 1.0, 1.0) - 0.5).abs() < 1e-12);
/// assert!((beta_cdf(0.01, 1.0, 100.0) - (1.0 - 0.99f64.powi(100))).abs() < 1e-9);
/// ```
pub fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    // I_x(a, b) = 1 − I_{1−x}(b, a) otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        (front * continued_fraction(x, a, b) / a).clamp(0.0, 1.0)
    } else {
        (1.0 - front * continued_fraction(1.0 - x, b, a) / b).clamp(0.0, 1.0)
    }
}

fn continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPSILON: f64 = 1e-14;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < EPSILON {
            break;
        }
    }
    h
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The probability that the true bad fraction is within `allowed`, after `bad` of `n`
/// requests (see the module docs for the prior).
pub fn within_probability(bad: f64, n: f64, allowed: f64) -> f64 {
    let allowed = allowed.clamp(1e-9, 1.0 - 1e-9);
    let b0 = std::f64::consts::LN_2 / -(1.0 - allowed).ln();
    let bad = bad.clamp(0.0, n);
    beta_cdf(allowed, 1.0 + bad, b0 + (n - bad))
}

/// How a check counts "bad" requests: the fraction it bounds, and which way.
struct Fraction {
    /// Bad requests of the canary.
    bad: f64,
    /// The largest fraction of bad requests the bound allows.
    allowed: f64,
    /// The canary's value of the metric.
    canary: Option<f64>,
    /// The stable route's.
    stable: Option<f64>,
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

/// The bad requests and allowed fraction of a rate or percentile check; `None` when a ratio
/// has no stable value to compare with.
fn fraction(check: &MetricCheck, canary: &Counts, stable: &Counts) -> Option<Fraction> {
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
fn mean_latency(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incomplete_beta_matches_closed_forms() {
        // Beta(1, b): 1 − (1 − x)^b; Beta(a, 1): x^a.
        for (x, a, b) in [(0.01_f64, 1.0, 69.0), (0.3, 1.0, 2.5), (0.7, 1.0, 10.0)] {
            let want = 1.0 - (1.0 - x).powf(b);
            assert!((beta_cdf(x, a, b) - want).abs() < 1e-10, "{x} {a} {b}");
        }
        for (x, a) in [(0.2_f64, 3.0), (0.9, 7.5)] {
            assert!((beta_cdf(x, a, 1.0) - x.powf(a)).abs() < 1e-10);
        }
        // Symmetry.
        assert!((beta_cdf(0.4, 2.5, 7.0) + beta_cdf(0.6, 7.0, 2.5) - 1.0).abs() < 1e-10);
    }

    #[test]
    fn the_prior_is_even_odds_at_the_bound() {
        for f in [0.001, 0.01, 0.05, 0.5] {
            assert!((within_probability(0.0, 0.0, f) - 0.5).abs() < 1e-9, "{f}");
        }
    }

    #[test]
    fn one_early_error_does_not_fail_ten_of_ten_do() {
        assert!(1.0 - within_probability(1.0, 1.0, 0.01) < FAIL_CONFIDENCE);
        assert!(1.0 - within_probability(10.0, 10.0, 0.01) >= FAIL_CONFIDENCE);
    }

    #[test]
    fn a_mean_latency_is_judged_once_there_are_enough_requests() {
        let check = |bound| MetricCheck {
            metric: Metric::LatencyMean,
            bound,
            critical: false,
        };
        let counts = |requests, mean: f64| Counts {
            requests,
            sum_ms: mean * requests as f64,
            ..Counts::default()
        };
        let stable = counts(500, 20.0);
        let slow = counts(60, 220.0);
        let ratio = check(MetricBound::MaxRatio(1.5));
        assert_eq!(
            judge(&ratio, &counts(10, 220.0), &stable, 10.0, 50).verdict,
            Verdict::Inconclusive
        );
        let failed = judge(&ratio, &slow, &stable, 10.0, 50);
        assert_eq!(failed.verdict, Verdict::Fail, "{failed:?}");
        assert!(failed.reason.contains("220.0ms"), "{}", failed.reason);
        assert_eq!(
            judge(&ratio, &counts(60, 25.0), &stable, 10.0, 50).verdict,
            Verdict::Pass
        );
        // A ratio waits for as much evidence on the stable route.
        assert_eq!(
            judge(&ratio, &slow, &counts(3, 20.0), 10.0, 50).verdict,
            Verdict::Inconclusive
        );
        let absolute = check(MetricBound::Max(100.0));
        assert_eq!(
            judge(&absolute, &slow, &Counts::default(), 10.0, 50).verdict,
            Verdict::Fail
        );
        assert_eq!(
            judge(&absolute, &counts(60, 80.0), &Counts::default(), 10.0, 50).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn latency_ratios_ignore_sub_millisecond_noise() {
        let check = MetricCheck {
            metric: Metric::LatencyMean,
            bound: MetricBound::MaxRatio(1.5),
            critical: false,
        };
        let counts = |requests, mean: f64| Counts {
            requests,
            sum_ms: mean * requests as f64,
            ..Counts::default()
        };
        // HAProxy reports 0 ms for the stable route and 1 ms for the canary: not a failure.
        let r = judge(&check, &counts(100, 1.0), &counts(100, 0.0), 10.0, 50);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }

    #[test]
    fn provider_numbers_are_judged_with_enough_traffic_and_errors_are_no_verdict() {
        let check = ProviderCheck {
            name: Some("5xx".into()),
            provider: crate::model::ProviderKind::Prometheus,
            url: "http://127.0.0.1:9090".into(),
            query: "x".into(),
            bound: MetricBound::Max(0.01),
            critical: false,
            timeout: crate::model::Seconds::new(10),
        };
        let judge = |m: Measured, n: Option<u64>| judge_provider(&check, &m, n, 10.0, 50);
        assert_eq!(
            judge(Measured::Value(0.001), Some(60)).verdict,
            Verdict::Pass
        );
        let failed = judge(Measured::Value(0.2), Some(60));
        assert_eq!(failed.verdict, Verdict::Fail);
        assert!(
            failed.reason.contains("5xx 0.2") && failed.reason.contains("max 0.01"),
            "{}",
            failed.reason
        );
        assert_eq!(
            judge(Measured::Value(0.2), Some(10)).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(
            judge(Measured::Value(0.2), None).verdict,
            Verdict::Fail,
            "a router that cannot count"
        );
        let empty = judge(Measured::NoData("empty result".into()), Some(60));
        assert_eq!(empty.verdict, Verdict::Error);
        assert!(empty.reason.contains("no data"), "{}", empty.reason);
        assert_eq!(
            judge(Measured::Failed("connection refused".into()), Some(60)).verdict,
            Verdict::Error
        );
    }
}
