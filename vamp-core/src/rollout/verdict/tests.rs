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
