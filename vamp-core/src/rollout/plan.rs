//! The rollout planner: pure — no I/O, no clock, no environment. `tick` takes the rollout,
//! its status, what the runtime observed and the time, and returns the next status and the
//! actions to apply; `command` does the same for promote, abort, pause, resume and retry. The
//! runtime (`Vamp::rollout_pass`) and the simulation (`simulate`) drive the same code, the
//! latter on a virtual clock.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::verdict::{self, Measured, Verdict};
use super::{
    Action, Counts, Evidence, Gate, GateAnswer, Interval, KEPT_INTERVALS, Measurement, Observation,
    Phase, RolloutStatus, VerdictCounts, Weights,
};
use crate::model::{Check, MetricBound, Rollout, RolloutStep, WebhookKind};

/// What a user asks of a rollout (`POST /api/v1/rollouts/{name}/{command}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Leave the current step (an analysis or a pause); `full` skips every remaining step.
    Promote {
        /// Skip to the end: the canary gets all of the traffic now.
        full: bool,
    },
    /// Stop; the stable route gets the traffic back.
    Abort,
    /// Hold where it is.
    Pause,
    /// Go on after a pause (taking the weights as they are now, after a hand edit).
    Resume,
    /// Start again from the first step.
    Retry,
}

impl Command {
    /// Reads `promote`, `abort`, `pause`, `resume`, `retry` (`full` for promote).
    pub fn parse(text: &str, full: bool) -> Option<Command> {
        Some(match text {
            "promote" => Command::Promote { full },
            "abort" => Command::Abort,
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "retry" => Command::Retry,
            _ => return None,
        })
    }
}

/// A command that does not fit the rollout's phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// What is wrong, and what would work.
    pub message: String,
}

fn refused(message: impl Into<String>) -> CommandError {
    CommandError {
        message: message.into(),
    }
}

/// A status for a rollout that begins at `now` with the gateway's weights as they are.
pub fn begin(weights: Weights, now: DateTime<Utc>) -> RolloutStatus {
    RolloutStatus {
        phase: Phase::Progressing,
        step: 0,
        step_since: now,
        weights,
        reason: None,
        evidence: Evidence::new(now),
        baseline: None,
        failures: 0,
        inconclusive: 0,
        errors: 0,
        gate: None,
        pre_rollout_passed: false,
        verdicts: VerdictCounts::default(),
        intervals: Vec::new(),
        started: now,
        updated: now,
    }
}

/// What the runtime has to ask outside before a tick: the metric providers, a gate's
/// webhooks, the `rollback` webhooks. The runtime asks without holding up other rollouts and
/// hands the answers to a later tick ([`Observation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wants {
    /// A verdict is due: ask the providers, for the round named (the evidence's
    /// `last_verdict`).
    pub measure: Option<DateTime<Utc>>,
    /// Ask this gate's webhooks.
    pub gate: Option<Gate>,
    /// Ask the `rollback` webhooks.
    pub rollback: bool,
}

/// What a tick at `now` would need asked (see [`Wants`]).
pub fn wants(rollout: &Rollout, status: Option<&RolloutStatus>, now: DateTime<Utc>) -> Wants {
    let rollback = rollout.has_webhook(WebhookKind::Rollback);
    let pre_rollout = rollout.has_webhook(WebhookKind::PreRollout);
    let Some(s) = status else {
        return Wants {
            measure: None,
            gate: pre_rollout.then_some(Gate::PreRollout),
            rollback,
        };
    };
    match s.phase {
        Phase::Succeeded | Phase::RolledBack | Phase::Aborted => Wants::default(),
        Phase::Paused => Wants {
            measure: None,
            gate: s.gate,
            rollback,
        },
        Phase::Progressing => {
            let interval = i64::try_from(rollout.analysis.interval.get()).unwrap_or(i64::MAX);
            let due = matches!(rollout.steps.get(s.step), Some(RolloutStep::Analysis))
                && (now - s.evidence.last_verdict).num_seconds() >= interval
                && rollout.analysis.provider_checks().next().is_some();
            Wants {
                measure: due.then_some(s.evidence.last_verdict),
                gate: (pre_rollout && !s.pre_rollout_passed).then_some(Gate::PreRollout),
                rollback,
            }
        }
    }
}

/// One tick: see the module docs. `status` is `None` for a rollout that has not begun.
pub fn tick(
    rollout: &Rollout,
    status: Option<&RolloutStatus>,
    observed: &Observation,
    now: DateTime<Utc>,
) -> (RolloutStatus, Vec<Action>) {
    let mut actions = Vec::new();
    let mut s = match status {
        Some(s) => s.clone(),
        None => {
            let mut s = begin(observed.weights.unwrap_or_default(), now);
            s.baseline.clone_from(&observed.counts);
            event(
                &mut actions,
                &s,
                rollout,
                "phase",
                "started",
                json!({"step": 0, "weights": s.weights}),
            );
            s
        }
    };
    if s.phase.is_final() {
        return (s, actions);
    }
    if let Some(why) = &observed.missing {
        finish(
            &mut s,
            rollout,
            Phase::Aborted,
            why.clone(),
            To::Keep,
            now,
            &mut actions,
        );
        return (s, actions);
    }
    let Some(current) = observed.weights else {
        let why = "the gateway or one of its routes is gone".to_owned();
        finish(
            &mut s,
            rollout,
            Phase::Aborted,
            why,
            To::Keep,
            now,
            &mut actions,
        );
        return (s, actions);
    };
    // Traffic since the last tick (none after a counter reset: the router restarted).
    let delta = match (&observed.counts, &s.baseline) {
        (Some((stable, canary)), Some((stable0, canary0))) => {
            stable.since(stable0).zip(canary.since(canary0))
        }
        _ => None,
    };
    s.baseline.clone_from(&observed.counts);
    if let Some(answer) = observed.rollback.as_ref().filter(|a| a.open) {
        finish(
            &mut s,
            rollout,
            Phase::RolledBack,
            format!("the rollback webhooks asked for it: {}", answer.detail),
            To::Stable,
            now,
            &mut actions,
        );
        return (s, actions);
    }
    if s.phase == Phase::Paused {
        let Some(gate) = s.gate else {
            return (s, actions);
        };
        match &observed.gate {
            Some((g, answer)) if *g == gate && answer.open => {
                s.gate = None;
                s.phase = Phase::Progressing;
                s.reason = None;
                s.updated = now;
                event(
                    &mut actions,
                    &s,
                    rollout,
                    "phase",
                    "Progressing",
                    json!({"step": s.step, "gate": gate, "answer": answer.detail}),
                );
                match gate {
                    Gate::PreRollout => s.pre_rollout_passed = true,
                    Gate::ConfirmPromotion => {
                        finish(
                            &mut s,
                            rollout,
                            Phase::Succeeded,
                            format!("every step done and promotion confirmed: {}", answer.detail),
                            To::Canary,
                            now,
                            &mut actions,
                        );
                        return (s, actions);
                    }
                }
            }
            Some((g, answer)) if *g == gate => {
                let why = gate_closed(gate, answer);
                if s.reason.as_deref() != Some(why.as_str()) {
                    s.reason = Some(why);
                    s.updated = now;
                }
                return (s, actions);
            }
            _ => return (s, actions),
        }
    }
    if current != s.weights {
        let why = format!(
            "the weights of {} and {} were changed by hand to {}%/{}% (the rollout had set {}%/{}%): resume to go on from them",
            rollout.stable,
            rollout.canary,
            current.stable,
            current.canary,
            s.weights.stable,
            s.weights.canary
        );
        pause(&mut s, rollout, why, now, &mut actions);
        return (s, actions);
    }
    if let Some((stable, canary)) = delta {
        s.evidence.stable.add(&stable);
        s.evidence.canary.add(&canary);
    }
    steps(rollout, &mut s, observed, now, &mut actions);
    (s, actions)
}

/// Works through the steps from the current one until one has to wait.
fn steps(
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

/// On to the next step with a fresh analysis window.
fn advance(s: &mut RolloutStatus, now: DateTime<Utc>) {
    s.step += 1;
    s.step_since = now;
    s.evidence = Evidence::new(now);
    s.inconclusive = 0;
    s.reason = None;
    s.updated = now;
}

/// Paused at a webhook gate, which the runtime asks again every interval.
fn hold(
    s: &mut RolloutStatus,
    rollout: &Rollout,
    gate: Gate,
    why: String,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    s.gate = Some(gate);
    pause(s, rollout, why, now, actions);
}

/// Why a gate holds, from its webhooks' answer.
fn gate_closed(gate: Gate, answer: &GateAnswer) -> String {
    format!(
        "the {} webhooks said no: {}; asked again every interval (promote to pass the gate)",
        gate.webhook().as_str(),
        answer.detail
    )
}

fn pause(
    s: &mut RolloutStatus,
    rollout: &Rollout,
    why: String,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    s.phase = Phase::Paused;
    let value = json!({"step": s.step, "reason": why, "weights": s.weights});
    s.reason = Some(why);
    s.updated = now;
    event(actions, s, rollout, "phase", "Paused", value);
}

/// Where [`finish`] sends the traffic of the two routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    /// Leave the weights as they are.
    Keep,
    /// All of it to the stable route.
    Stable,
    /// All of it to the canary.
    Canary,
}

/// Ends the rollout in `phase`, moving the traffic `to` first (in the same tick as the
/// verdict that decided it).
fn finish(
    s: &mut RolloutStatus,
    rollout: &Rollout,
    phase: Phase,
    why: String,
    to: To,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    let total = s.weights.stable.saturating_add(s.weights.canary);
    let weights = match to {
        To::Keep => s.weights,
        To::Stable => Weights {
            stable: total,
            canary: 0,
        },
        To::Canary => Weights {
            stable: 0,
            canary: total,
        },
    };
    if weights != s.weights {
        actions.push(Action::SetWeights(weights));
        s.weights = weights;
    }
    s.phase = phase;
    if phase == Phase::Succeeded {
        s.step = rollout.steps.len();
    }
    let value = json!({"step": s.step, "reason": why, "weights": s.weights});
    s.reason = Some(why);
    s.updated = now;
    event(actions, s, rollout, "phase", phase.as_str(), value);
}

/// An event of `group` (`phase`, `step`, `verdict`) with its value `what`.
fn event(
    actions: &mut Vec<Action>,
    s: &RolloutStatus,
    rollout: &Rollout,
    group: &str,
    what: &str,
    mut value: serde_json::Value,
) {
    if let Some(m) = value.as_object_mut() {
        m.insert("phase".into(), json!(s.phase.as_str()));
        m.insert("gateway".into(), json!(rollout.gateway));
        m.insert("text".into(), json!(text(rollout, s, group, what)));
    }
    actions.push(Action::Event {
        tags: vec![group.to_owned(), format!("{group}:{what}")],
        value,
    });
}

/// A one-line summary of an event, for people and chat.
fn text(rollout: &Rollout, s: &RolloutStatus, group: &str, what: &str) -> String {
    let weights = format!(
        "{} {}% / {} {}%",
        rollout.stable, s.weights.stable, rollout.canary, s.weights.canary
    );
    match group {
        "verdict" => {
            let last = s.intervals.last();
            format!(
                "rollout {}: verdict {what} at step {} ({weights}){}",
                rollout.name,
                s.step + 1,
                last.map(|i| {
                    let reasons: Vec<&str> = i.checks.iter().map(|c| c.reason.as_str()).collect();
                    format!(": {}", reasons.join("; "))
                })
                .unwrap_or_default()
            )
        }
        "step" => format!(
            "rollout {}: step {} ({what}) done, {weights}",
            rollout.name,
            s.step + 1
        ),
        _ => format!(
            "rollout {}: {what}{} ({weights})",
            rollout.name,
            s.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
    }
}

/// Applies a user's command. `current` is the gateway's weights of the two routes now.
///
/// # Errors
/// A [`CommandError`] when the command does not fit the phase (promoting a finished rollout,
/// resuming one that is not paused, …).
pub fn command(
    rollout: &Rollout,
    status: Option<&RolloutStatus>,
    command: Command,
    current: Option<Weights>,
    now: DateTime<Utc>,
) -> Result<(RolloutStatus, Vec<Action>), CommandError> {
    let mut actions = Vec::new();
    let mut s = match status {
        Some(s) => s.clone(),
        None if command == Command::Retry => begin(current.unwrap_or_default(), now),
        None => {
            return Err(refused(
                "the rollout has not begun yet: wait a moment and try again",
            ));
        }
    };
    let finished = |s: &RolloutStatus, what: &str| {
        refused(format!(
            "the rollout is {}: it cannot {what}; retry starts it again",
            s.phase.as_str()
        ))
    };
    match command {
        Command::Promote { full } => {
            if s.phase.is_final() {
                return Err(finished(&s, "be promoted"));
            }
            s.phase = Phase::Progressing;
            let gate = s.gate.take();
            if gate == Some(Gate::PreRollout) && !full {
                // Past the gate, not past a step: the first step begins now.
                s.pre_rollout_passed = true;
                s.reason = None;
                s.updated = now;
                event(
                    &mut actions,
                    &s,
                    rollout,
                    "step",
                    "pre-rollout",
                    json!({"step": s.step, "promoted": true}),
                );
                let observed = Observation {
                    weights: current,
                    counts: s.baseline.clone(),
                    canary_ready: true,
                    ..Observation::default()
                };
                steps(rollout, &mut s, &observed, now, &mut actions);
                return Ok((s, actions));
            }
            if full || gate == Some(Gate::ConfirmPromotion) {
                finish(
                    &mut s,
                    rollout,
                    Phase::Succeeded,
                    "promoted in full by request".into(),
                    To::Canary,
                    now,
                    &mut actions,
                );
            } else {
                event(
                    &mut actions,
                    &s,
                    rollout,
                    "step",
                    "promoted",
                    json!({"step": s.step}),
                );
                advance(&mut s, now);
                if let Some(w) = current {
                    s.weights = w;
                }
                let observed = Observation {
                    weights: current,
                    counts: s.baseline.clone(),
                    canary_ready: true,
                    ..Observation::default()
                };
                steps(rollout, &mut s, &observed, now, &mut actions);
            }
        }
        Command::Abort => {
            if s.phase.is_final() {
                return Err(finished(&s, "be aborted"));
            }
            finish(
                &mut s,
                rollout,
                Phase::Aborted,
                "aborted by request".into(),
                To::Stable,
                now,
                &mut actions,
            );
        }
        Command::Pause => {
            if s.phase != Phase::Progressing {
                return Err(refused(format!(
                    "the rollout is {}: only a progressing one can be paused",
                    s.phase.as_str()
                )));
            }
            pause(
                &mut s,
                rollout,
                "paused by request".into(),
                now,
                &mut actions,
            );
        }
        Command::Resume => {
            if s.phase != Phase::Paused {
                return Err(refused(format!(
                    "the rollout is {}: only a paused one can be resumed",
                    s.phase.as_str()
                )));
            }
            if let Some(w) = current {
                s.weights = w;
            }
            s.phase = Phase::Progressing;
            s.reason = None;
            s.inconclusive = 0;
            s.errors = 0;
            // A gate is asked again on the next tick.
            let gated = s.gate.take().is_some();
            // A pause step that paused it is done with.
            if !gated && matches!(rollout.steps.get(s.step), Some(RolloutStep::Pause(None))) {
                advance(&mut s, now);
            }
            s.evidence.last_verdict = now;
            s.updated = now;
            event(
                &mut actions,
                &s,
                rollout,
                "phase",
                "Progressing",
                json!({"step": s.step, "resumed": true}),
            );
        }
        Command::Retry => {
            if s.phase == Phase::Progressing && status.is_some() {
                return Err(refused(
                    "the rollout is progressing: abort or pause it before a retry",
                ));
            }
            let weights = current.unwrap_or(s.weights);
            let baseline = s.baseline.clone();
            s = begin(weights, now);
            s.baseline = baseline;
            event(
                &mut actions,
                &s,
                rollout,
                "phase",
                "started",
                json!({"step": 0, "retry": true, "weights": weights}),
            );
        }
    }
    Ok((s, actions))
}

/// The planner on a virtual clock: a rollout from `start` with per-tick counts from
/// `traffic(now, weights) → (stable, canary)` (what each route served since the last tick),
/// ticking every `tick` seconds for at most `seconds`, or until it ends or pauses. Returns every
/// status after a tick with its actions — the timeline `vamp rollout simulate` prints and the benches measure.
pub fn simulate(
    rollout: &Rollout,
    start: Weights,
    every: i64,
    seconds: i64,
    mut traffic: impl FnMut(DateTime<Utc>, Weights) -> (Counts, Counts),
) -> Vec<(RolloutStatus, Vec<Action>)> {
    let t0 = DateTime::<Utc>::UNIX_EPOCH;
    let mut out: Vec<(RolloutStatus, Vec<Action>)> = Vec::new();
    let (mut stable_total, mut canary_total) = (Counts::default(), Counts::default());
    let mut weights = start;
    let mut status: Option<RolloutStatus> = None;
    let mut now = t0;
    while (now - t0).num_seconds() <= seconds {
        if now > t0 {
            let (s, c) = traffic(now, weights);
            stable_total.add(&s);
            canary_total.add(&c);
        }
        // Providers answer within their bounds and webhooks say yes: the simulation is about
        // the built-in metrics.
        let wanted = wants(rollout, status.as_ref(), now);
        let observed = Observation {
            weights: Some(weights),
            counts: Some((stable_total.clone(), canary_total.clone())),
            canary_ready: true,
            measured: wanted.measure.map(|round| Measurement {
                round,
                values: rollout
                    .analysis
                    .provider_checks()
                    .map(|p| match p.bound {
                        MetricBound::Min(b)
                        | MetricBound::Max(b)
                        | MetricBound::MinRatio(b)
                        | MetricBound::MaxRatio(b) => Measured::Value(b),
                    })
                    .collect(),
            }),
            gate: wanted.gate.map(|g| {
                (
                    g,
                    GateAnswer {
                        open: true,
                        detail: "simulated".into(),
                    },
                )
            }),
            ..Observation::default()
        };
        let (next, actions) = tick(rollout, status.as_ref(), &observed, now);
        for a in &actions {
            if let Action::SetWeights(w) = a {
                weights = *w;
            }
        }
        // Nobody resumes a simulated pause (a gate's pause resumes: simulated gates say yes).
        let done = next.phase.is_final() || (next.phase == Phase::Paused && next.gate.is_none());
        status = Some(next.clone());
        out.push((next, actions));
        if done {
            break;
        }
        now += chrono::Duration::seconds(every);
    }
    out
}
