//! Working through a rollout's steps, and judging an analysis step's evidence.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;

/// Works through the steps from the current one until one has to wait.
pub(super) fn steps(
    rollout: &Rollout,
    s: &mut RolloutStatus,
    observed: &Observation,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    if !s.pre_rollout_passed && rollout.has_webhook(WebhookKind::PreRollout) {
        match &observed.gate {
            Some((Gate::PreRollout, answer)) if answer.open => {
                s.pre_rollout_passed = true;
                event(
                    actions,
                    s,
                    rollout,
                    "step",
                    "pre-rollout",
                    json!({"step": s.step, "answer": answer.detail}),
                );
            }
            Some((Gate::PreRollout, answer)) => {
                hold(
                    s,
                    rollout,
                    Gate::PreRollout,
                    gate_closed(Gate::PreRollout, answer),
                    now,
                    actions,
                );
                return;
            }
            _ => {
                let why = "waiting for the pre-rollout webhooks".to_owned();
                hold(s, rollout, Gate::PreRollout, why, now, actions);
                return;
            }
        }
    }
    // Bounded: each pass either advances a step or returns.
    for _ in 0..=rollout.steps.len() {
        let Some(step) = rollout.steps.get(s.step).copied() else {
            if rollout.has_webhook(WebhookKind::ConfirmPromotion) {
                let gate = Gate::ConfirmPromotion;
                let confirmed = match &observed.gate {
                    Some((g, answer)) if *g == gate => answer
                        .open
                        .then_some(())
                        .ok_or_else(|| gate_closed(gate, answer)),
                    _ => Err(
                        "every step done: waiting for the confirm-promotion webhooks".to_owned(),
                    ),
                };
                if let Err(why) = confirmed {
                    hold(s, rollout, gate, why, now, actions);
                    return;
                }
            }
            finish(
                s,
                rollout,
                Phase::Succeeded,
                "every step done: the canary has the traffic".into(),
                To::Canary,
                now,
                actions,
            );
            return;
        };
        match step {
            RolloutStep::Weight(w) => {
                let total = u16::from(s.weights.stable) + u16::from(s.weights.canary);
                let canary = u8::try_from((total * u16::from(w.get()) + 50) / 100).unwrap_or(100);
                let stable = u8::try_from(total).unwrap_or(100).saturating_sub(canary);
                let weights = Weights { stable, canary };
                if canary > 0 && s.weights.canary == 0 && !observed.canary_ready {
                    let why = "waiting for the canary's instances to be healthy".to_owned();
                    if s.reason.as_deref() != Some(why.as_str()) {
                        s.reason = Some(why);
                        s.updated = now;
                    }
                    return;
                }
                if weights != s.weights {
                    actions.push(Action::SetWeights(weights));
                    s.weights = weights;
                }
                event(
                    actions,
                    s,
                    rollout,
                    "step",
                    "weight",
                    json!({"step": s.step, "weights": weights}),
                );
                advance(s, now);
            }
            RolloutStep::Pause(Some(d)) => {
                let elapsed = (now - s.step_since).num_seconds();
                if elapsed < i64::try_from(d.get()).unwrap_or(i64::MAX) {
                    return;
                }
                event(
                    actions,
                    s,
                    rollout,
                    "step",
                    "pause",
                    json!({"step": s.step}),
                );
                advance(s, now);
            }
            RolloutStep::Pause(None) => {
                let why = format!("step {} is a pause: promote to go on", s.step + 1);
                pause(s, rollout, why, now, actions);
                return;
            }
            RolloutStep::Analysis => {
                let built_in = rollout
                    .analysis
                    .metrics
                    .iter()
                    .any(|c| matches!(c, Check::BuiltIn(_)));
                if observed.counts.is_none() && built_in {
                    let why = "the router does not count requests per route, which the analysis needs: use the embedded router or an HAProxy one".to_owned();
                    pause(s, rollout, why, now, actions);
                    return;
                }
                let interval = i64::try_from(rollout.analysis.interval.get()).unwrap_or(i64::MAX);
                if (now - s.evidence.last_verdict).num_seconds() < interval {
                    return;
                }
                if !analyse(rollout, s, observed, now, actions) {
                    return;
                }
            }
        }
    }
}

/// Judges the evidence of the current analysis step; true when the step passed (the next
/// step may begin at once).
fn analyse(
    rollout: &Rollout,
    s: &mut RolloutStatus,
    observed: &Observation,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) -> bool {
    let a = &rollout.analysis;
    // Provider checks are judged on the answers to this round; until they are in, wait.
    let providers = a.provider_checks().count();
    let answers: &[Measured] = if providers == 0 {
        &[]
    } else {
        match &observed.measured {
            Some(m) if m.round == s.evidence.last_verdict && m.values.len() == providers => {
                &m.values
            }
            _ => return false,
        }
    };
    let seconds = (now - s.evidence.since).num_milliseconds().max(0) as f64 / 1000.0;
    let canary_requests = observed.counts.as_ref().map(|_| s.evidence.canary.requests);
    let mut answers = answers.iter();
    let mut checks = Vec::with_capacity(a.metrics.len());
    for check in &a.metrics {
        checks.push(match check {
            Check::BuiltIn(m) => verdict::judge(
                m,
                &s.evidence.canary,
                &s.evidence.stable,
                seconds,
                a.min_requests,
            ),
            Check::Provider(p) => {
                let missing = Measured::Failed("no answer".into());
                let answer = answers.next().unwrap_or(&missing);
                verdict::judge_provider(p, answer, canary_requests, seconds, a.min_requests)
            }
        });
    }
    let critical = checks
        .iter()
        .any(|c| c.verdict == Verdict::Fail && c.critical);
    let any = |v: Verdict| checks.iter().any(|c| c.verdict == v);
    let outcome = if any(Verdict::Fail) {
        Verdict::Fail
    } else if any(Verdict::Error) {
        Verdict::Error
    } else if checks.iter().all(|c| c.verdict == Verdict::Pass) {
        Verdict::Pass
    } else {
        Verdict::Inconclusive
    };
    let reasons = |wanted: Verdict| {
        checks
            .iter()
            .filter(|c| c.verdict == wanted)
            .map(|c| c.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (failed_reasons, inconclusive_reasons, error_reasons) = (
        reasons(Verdict::Fail),
        reasons(Verdict::Inconclusive),
        reasons(Verdict::Error),
    );
    if outcome != Verdict::Error {
        s.errors = 0;
    }
    let numbers = json!({
        "step": s.step,
        "seconds": seconds,
        "canary": {"requests": s.evidence.canary.requests, "errors": s.evidence.canary.errors},
        "stable": {"requests": s.evidence.stable.requests, "errors": s.evidence.stable.errors},
        "checks": &checks,
    });
    if s.intervals.len() >= KEPT_INTERVALS {
        s.intervals.remove(0);
    }
    s.intervals.push(Interval {
        at: now,
        step: s.step,
        seconds,
        canary: s.evidence.canary.clone(),
        stable: s.evidence.stable.clone(),
        verdict: outcome,
        checks,
    });
    s.evidence.last_verdict = now;
    s.updated = now;
    event(actions, s, rollout, "verdict", outcome.as_str(), numbers);
    match outcome {
        Verdict::Fail => {
            s.verdicts.fail += 1;
            s.failures += 1;
            s.inconclusive = 0;
            if critical || s.failures > a.failure_limit {
                let why = if critical {
                    format!("a critical check failed: {failed_reasons}")
                } else {
                    format!(
                        "{} failed verdicts, {} tolerated: {failed_reasons}",
                        s.failures, a.failure_limit
                    )
                };
                finish(s, rollout, Phase::RolledBack, why, To::Stable, now, actions);
            } else {
                // Judged again on fresh evidence.
                let last = s.evidence.last_verdict;
                s.evidence = Evidence::new(now);
                s.evidence.last_verdict = last;
            }
            false
        }
        Verdict::Pass => {
            s.verdicts.pass += 1;
            advance(s, now);
            true
        }
        Verdict::Error => {
            // The providers could not say: no verdict on the canary, the window goes on.
            s.verdicts.error += 1;
            s.errors += 1;
            if s.errors > a.consecutive_error_limit {
                let why = format!(
                    "{} intervals in a row without an answer from the metric providers ({} tolerated): {error_reasons}",
                    s.errors, a.consecutive_error_limit
                );
                pause(s, rollout, why, now, actions);
            }
            false
        }
        Verdict::Inconclusive => {
            s.verdicts.inconclusive += 1;
            s.inconclusive += 1;
            if s.inconclusive >= a.inconclusive_limit {
                let why = format!(
                    "{} intervals without enough evidence: {inconclusive_reasons}",
                    s.inconclusive
                );
                pause(s, rollout, why, now, actions);
            }
            false
        }
    }
}
