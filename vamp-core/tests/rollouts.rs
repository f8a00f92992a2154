//! The rollout planner on a virtual clock (issue 18): healthy canaries succeed, failing ones
//! are rolled back in the tick of the failing verdict, slow ones by the latency ratio, quiet
//! ones are never rolled back; commands and a changing world.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use vamp_core::dsl;
use vamp_core::model::{Artifact, Rollout};
use vamp_core::rollout::plan::{self, Command};
use vamp_core::rollout::{Action, Counts, Observation, Phase, RolloutStatus, Weights};

const BOUNDS: [f64; 14] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
];

/// `n` requests, `errors` of them failed, all taking about `ms`.
fn counts(n: u64, errors: u64, ms: f64) -> Counts {
    let mut buckets = vec![0; BOUNDS.len() + 1];
    let i = BOUNDS.iter().position(|b| ms <= *b).unwrap_or(BOUNDS.len());
    buckets[i] = n;
    Counts {
        requests: n,
        errors,
        bounds: BOUNDS.to_vec(),
        buckets,
        sum_ms: ms * n as f64,
    }
}

fn rollout(text: &str) -> Rollout {
    let Artifact::Rollout(r) = dsl::read(text, None).unwrap().remove(0) else {
        panic!()
    };
    r
}

/// Every request to the stable route: where a rollout starts.
const ALL_STABLE: Weights = Weights {
    stable: 100,
    canary: 0,
};

const SPEC: &str = "kind: rollouts\nname: r\ngateway: shop/web/http\nstable: shop/web/v1/http\ncanary: shop/web/v2/http\nsteps:\n  - weight: 10%\n  - analysis: {}\n  - weight: 50%\n  - analysis: {}\nanalysis:\n  interval: 10s\n  min_requests: 50\n  metrics:\n    - {metric: success-rate, min: 99%, critical: true}\n    - {metric: latency-p99, max: 500ms}\n    - {metric: latency-p99, max_ratio: 1.5}\n";

/// A canary and a stable route at `rps` requests per second in all, split by the weights;
/// `canary_error` of the canary's requests fail (rounded down per tick), it answers in
/// `canary_ms`, the stable route in 1 ms without errors.
fn traffic(
    rps: f64,
    canary_error: f64,
    canary_ms: f64,
) -> impl FnMut(DateTime<Utc>, Weights) -> (Counts, Counts) {
    let (mut carry_s, mut carry_c, mut carry_e) = (0.0, 0.0, 0.0);
    move |_, w| {
        let share = w.canary_share();
        carry_c += rps * share;
        carry_s += rps * (1.0 - share);
        let (c, s) = (carry_c.floor(), carry_s.floor());
        carry_c -= c;
        carry_s -= s;
        carry_e += c * canary_error;
        let e = carry_e.floor();
        carry_e -= e;
        (
            counts(s as u64, 0, 1.0),
            counts(c as u64, e as u64, canary_ms),
        )
    }
}

fn last(timeline: &[(RolloutStatus, Vec<Action>)]) -> &RolloutStatus {
    &timeline.last().unwrap().0
}

#[test]
fn a_healthy_canary_succeeds_with_every_shift_applied() {
    let r = rollout(SPEC);
    let start = ALL_STABLE;
    let timeline = plan::simulate(&r, start, 1, 600, traffic(50.0, 0.0, 1.0));
    let end = last(&timeline);
    assert_eq!(end.phase, Phase::Succeeded, "{:?}", end.reason);
    let shifts: Vec<Weights> = timeline
        .iter()
        .flat_map(|(_, a)| a)
        .filter_map(|a| match a {
            Action::SetWeights(w) => Some(*w),
            Action::Event { .. } => None,
        })
        .collect();
    assert_eq!(
        shifts,
        [
            Weights {
                stable: 90,
                canary: 10
            },
            Weights {
                stable: 50,
                canary: 50
            },
            Weights {
                stable: 0,
                canary: 100
            },
        ]
    );
    assert!(
        end.verdicts.fail == 0 && end.verdicts.pass == 2,
        "{:?}",
        end.verdicts
    );
}

#[test]
fn a_canary_with_errors_is_rolled_back_in_the_tick_of_the_failing_verdict() {
    let r = rollout(SPEC);
    let start = ALL_STABLE;
    let timeline = plan::simulate(&r, start, 1, 600, traffic(50.0, 0.2, 1.0));
    let end = last(&timeline);
    assert_eq!(end.phase, Phase::RolledBack, "{:?}", end.reason);
    assert_eq!(end.weights, ALL_STABLE);
    // The tick with the failing verdict also carries the rollback.
    let (status, actions) = timeline
        .iter()
        .find(|(_, a)| {
            a.iter().any(|a| matches!(a, Action::Event { tags, .. } if tags.contains(&"verdict:fail".to_owned())))
        })
        .expect("a failing verdict");
    assert_eq!(status.phase, Phase::RolledBack);
    assert!(actions.contains(&Action::SetWeights(ALL_STABLE)));
    // At the first interval that can judge it: 10 s after the 10% shift.
    assert_eq!(end.intervals.len(), 1, "{:?}", end.intervals);
    let reason = end.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("success-rate") && reason.contains("80.00%"),
        "{reason}"
    );
}

#[test]
fn a_slow_canary_is_rolled_back_by_the_latency_ratio() {
    let r = rollout(SPEC);
    let start = ALL_STABLE;
    let timeline = plan::simulate(&r, start, 1, 600, traffic(50.0, 0.0, 201.0));
    let end = last(&timeline);
    assert_eq!(end.phase, Phase::RolledBack, "{:?}", end.reason);
    let reason = end.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("latency-p99") && reason.contains("max_ratio"),
        "{reason}"
    );
}

#[test]
fn a_quiet_healthy_canary_is_never_rolled_back() {
    let r = rollout(SPEC);
    let start = ALL_STABLE;
    // One request per second in all: the canary sees one every ten seconds at 10%.
    let timeline = plan::simulate(&r, start, 1, 3600, traffic(1.0, 0.0, 1.0));
    let end = last(&timeline);
    assert!(
        matches!(end.phase, Phase::Succeeded | Phase::Paused),
        "{:?} {:?}",
        end.phase,
        end.reason
    );
    assert!(timeline.iter().all(|(s, _)| s.phase != Phase::RolledBack));
    if end.phase == Phase::Paused {
        let reason = end.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("canary requests in") && reason.contains("50 needed"),
            "{reason}"
        );
    }
}

fn observed(weights: Weights) -> Observation {
    Observation {
        weights: Some(weights),
        counts: Some((Counts::default(), Counts::default())),
        canary_ready: true,
        ..Observation::default()
    }
}

#[test]
fn the_world_changing_pauses_or_aborts() {
    let r = rollout(SPEC);
    let t0 = DateTime::<Utc>::UNIX_EPOCH;
    let (s, _) = plan::tick(&r, None, &observed(ALL_STABLE), t0);
    assert_eq!(
        s.weights,
        Weights {
            stable: 90,
            canary: 10
        }
    );
    // A hand edit of the two routes pauses, naming it.
    let (paused, actions) = plan::tick(
        &r,
        Some(&s),
        &observed(Weights {
            stable: 70,
            canary: 30,
        }),
        t0,
    );
    assert_eq!(paused.phase, Phase::Paused);
    assert!(
        paused
            .reason
            .clone()
            .unwrap_or_default()
            .contains("changed by hand")
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::SetWeights(_))));
    // Resume adopts the weights as they are.
    let (resumed, _) = plan::command(
        &r,
        Some(&paused),
        Command::Resume,
        Some(Weights {
            stable: 70,
            canary: 30,
        }),
        t0,
    )
    .unwrap();
    assert_eq!(
        (resumed.phase, resumed.weights),
        (
            Phase::Progressing,
            Weights {
                stable: 70,
                canary: 30
            }
        )
    );
    // The gateway gone aborts.
    let gone = Observation {
        missing: Some("gateway 'shop/web/http' is gone".into()),
        ..Observation::default()
    };
    let (aborted, _) = plan::tick(&r, Some(&s), &gone, t0);
    assert_eq!(aborted.phase, Phase::Aborted);
    assert!(
        aborted
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("is gone")
    );
    // The first shift waits for the canary's instances.
    let waiting = Observation {
        canary_ready: false,
        ..observed(ALL_STABLE)
    };
    let (w, actions) = plan::tick(&r, None, &waiting, t0);
    assert_eq!((w.step, w.weights.canary), (0, 0));
    assert!(w.reason.as_deref().unwrap_or_default().contains("healthy"));
    assert!(!actions.iter().any(|a| matches!(a, Action::SetWeights(_))));
}

/// A leader stored a status with its new weights ahead (issue 24) and stopped: whether it set
/// them or not, the next leader goes on from that step — it never takes its own rollout's
/// weights for a hand edit, nor does a step twice.
#[test]
fn a_status_written_ahead_of_its_weights_is_finished_by_the_next_leader() {
    let r = rollout(SPEC);
    let t0 = DateTime::<Utc>::UNIX_EPOCH;
    let (first, _) = plan::tick(&r, None, &observed(ALL_STABLE), t0);
    let ahead = RolloutStatus {
        previous: Some(ALL_STABLE),
        ..first.clone()
    };
    // Stopped before the weights were set: they are set now, and the step is kept.
    let (s, actions) = plan::tick(&r, Some(&ahead), &observed(ALL_STABLE), t0);
    assert_eq!(s.phase, Phase::Progressing, "{:?}", s.reason);
    assert_eq!(
        (s.step, s.weights, s.previous),
        (first.step, first.weights, None)
    );
    assert_eq!(
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SetWeights(w) => Some(*w),
                Action::Event { .. } => None,
            })
            .collect::<Vec<_>>(),
        [first.weights]
    );
    // Stopped after: nothing to set again, it goes on as if the status had been stored.
    let (s, actions) = plan::tick(&r, Some(&ahead), &observed(first.weights), t0);
    assert_eq!(
        (s.phase, s.step, s.previous),
        (Phase::Progressing, first.step, None)
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::SetWeights(_))));
    // Neither: a hand edit after all.
    let edited = Weights {
        stable: 70,
        canary: 30,
    };
    let (s, _) = plan::tick(&r, Some(&ahead), &observed(edited), t0);
    assert_eq!(s.phase, Phase::Paused);
}

#[test]
fn commands_abort_retry_and_promote() {
    let r = rollout(SPEC);
    let t0 = DateTime::<Utc>::UNIX_EPOCH;
    let (s, _) = plan::tick(&r, None, &observed(ALL_STABLE), t0);
    let (aborted, actions) =
        plan::command(&r, Some(&s), Command::Abort, Some(s.weights), t0).unwrap();
    assert_eq!(aborted.phase, Phase::Aborted);
    assert!(actions.contains(&Action::SetWeights(ALL_STABLE)));
    assert!(plan::command(&r, Some(&aborted), Command::Abort, None, t0).is_err());
    let (retried, _) =
        plan::command(&r, Some(&aborted), Command::Retry, Some(ALL_STABLE), t0).unwrap();
    assert_eq!((retried.phase, retried.step), (Phase::Progressing, 0));
    let (full, actions) = plan::command(
        &r,
        Some(&s),
        Command::Promote { full: true },
        Some(s.weights),
        t0,
    )
    .unwrap();
    assert_eq!(full.phase, Phase::Succeeded);
    assert!(actions.contains(&Action::SetWeights(Weights {
        stable: 0,
        canary: 100
    })));
    // Promote leaves the analysis step: on to the 50% shift at once.
    let (promoted, actions) = plan::command(
        &r,
        Some(&s),
        Command::Promote { full: false },
        Some(s.weights),
        t0,
    )
    .unwrap();
    assert_eq!(promoted.step, 3);
    assert!(actions.contains(&Action::SetWeights(Weights {
        stable: 50,
        canary: 50
    })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the traffic: the two routes always hold what they held together; a rollback
    /// and an abort give the stable route all of it, a success the canary; the phase never
    /// leaves a final one.
    #[test]
    fn weights_are_kept_and_endings_are_clean(
        total in 1u8..=100,
        rps in 0.0f64..200.0,
        error in 0.0f64..0.5,
        ms in 0.1f64..800.0,
    ) {
        let r = rollout(SPEC);
        let start = Weights { stable: total, canary: 0 };
        let timeline = plan::simulate(&r, start, 1, 900, traffic(rps, error, ms));
        for (s, actions) in &timeline {
            prop_assert_eq!(u16::from(s.weights.stable) + u16::from(s.weights.canary), u16::from(total));
            for a in actions {
                if let Action::SetWeights(w) = a {
                    prop_assert_eq!(u16::from(w.stable) + u16::from(w.canary), u16::from(total));
                }
            }
        }
        let end = last(&timeline);
        match end.phase {
            Phase::RolledBack | Phase::Aborted => prop_assert_eq!(end.weights.canary, 0),
            Phase::Succeeded => prop_assert_eq!(end.weights.stable, 0),
            Phase::Progressing | Phase::Paused => {}
        }
        let finals = timeline.iter().position(|(s, _)| s.phase.is_final());
        if let Some(i) = finals {
            prop_assert_eq!(i, timeline.len() - 1, "nothing happens after the end");
        }
    }
}

#[test]
fn rollouts_read_write_and_refuse_what_is_wrong() {
    let r = rollout(SPEC);
    let written = dsl::to_yaml(&[Artifact::Rollout(r.clone())]).unwrap();
    assert_eq!(rollout(&written), r, "{written}");
    refused(
        SPEC,
        &[
            (
                "weight: 50%",
                "weight: 150%",
                "RouteWeightError",
                "steps[2].weight",
            ),
            (
                "success-rate",
                "happiness",
                "UnsupportedRolloutMetric",
                "analysis.metrics[0].metric",
            ),
            (
                "shop/web/v2/http",
                "shop/web/v1/http",
                "InvalidRolloutError",
                "canary",
            ),
            (
                "interval: 10s",
                "interval: 0s",
                "InvalidRolloutError",
                "analysis.interval",
            ),
            (
                "{metric: latency-p99, max: 500ms}",
                "{metric: latency-p99, max: 500ms, min: 1ms}",
                "InvalidRolloutError",
                "analysis.metrics[1]",
            ),
        ],
    );
}

/// Each `(from, to, kind, at)`: `base` with `from` replaced by `to` is refused with error
/// `kind` at a path starting with `at`, on a line.
fn refused(base: &str, cases: &[(&str, &str, &str, &str)]) {
    for (from, to, kind, at) in cases {
        assert!(base.contains(from), "'{from}' is not in the base text");
        let err = dsl::read(&base.replace(from, to), None).unwrap_err();
        assert_eq!(err.kind.name(), *kind, "{err}");
        assert!(err.path.starts_with(at), "{} vs {at}", err.path);
        assert!(err.line > 0, "{err}");
    }
}

const WITH_PROVIDERS: &str = "kind: rollouts\nname: r\ngateway: shop/web/http\nstable: shop/web/v1/http\ncanary: shop/web/v2/http\nsteps:\n  - weight: 10%\n  - analysis: {}\nanalysis:\n  interval: 30s\n  consecutive_error_limit: 2\n  metrics:\n    - {metric: success-rate, min: 99%}\n    - {name: 5xx, provider: prometheus, url: \"http://127.0.0.1:9090\", query: \"sum(rate(vamp_route_errors_total{route=\\\"{{canary}}\\\"}[{{interval}}]))\", max: 0.01, critical: true}\n    - {provider: web, url: \"http://127.0.0.1:8080/score?route={{canary}}\", json_path: \"$.value\", min: 1, timeout: 5s}\nwebhooks:\n  - {type: pre-rollout, url: \"http://127.0.0.1:8080/pre\"}\n  - {type: confirm-promotion, url: \"https://gate.example/{{gateway}}\", timeout: 3s, retries: 0}\n  - {type: event, url: \"http://127.0.0.1:8080/chat\"}\n";

#[test]
fn providers_and_webhooks_read_write_and_refuse_what_is_wrong() {
    let r = rollout(WITH_PROVIDERS);
    assert_eq!(r.analysis.provider_checks().count(), 2);
    assert_eq!(r.webhooks.len(), 3);
    assert_eq!(r.analysis.consecutive_error_limit, 2);
    let written = dsl::to_yaml(&[Artifact::Rollout(r.clone())]).unwrap();
    assert_eq!(rollout(&written), r, "{written}");
    refused(
        WITH_PROVIDERS,
        &[
            (
                "provider: web",
                "provider: datadog",
                "UnsupportedRolloutMetric",
                "analysis.metrics[2].provider",
            ),
            (
                "{{interval}}",
                "{{window}}",
                "InvalidRolloutError",
                "analysis.metrics[1].query",
            ),
            (
                "http://127.0.0.1:9090",
                "127.0.0.1:9090",
                "InvalidRolloutError",
                "analysis.metrics[1].url",
            ),
            (
                "json_path: \"$.value\", ",
                "",
                "InvalidRolloutError",
                "analysis.metrics[2].json_path",
            ),
            (
                "max: 0.01",
                "max_ratio: 2",
                "InvalidRolloutError",
                "analysis.metrics[1].max_ratio",
            ),
            (
                "type: event",
                "type: chat",
                "InvalidRolloutError",
                "webhooks[2].type",
            ),
            (
                "retries: 0",
                "retries: 1000",
                "InvalidRolloutError",
                "webhooks[1].retries",
            ),
            (
                "timeout: 3s",
                "timeout: 1h",
                "InvalidRolloutError",
                "webhooks[1].timeout",
            ),
        ],
    );
}
