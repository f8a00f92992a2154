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

mod command;
mod simulate;
use walk::steps;
mod walk;

pub use command::{Command, CommandError, command};
pub use simulate::simulate;

/// A status for a rollout that begins at `now` with the gateway's weights as they are.
pub fn begin(weights: Weights, now: DateTime<Utc>) -> RolloutStatus {
    RolloutStatus {
        phase: Phase::Progressing,
        step: 0,
        step_since: now,
        weights,
        previous: None,
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
    // A leader stored this status and stopped before its weights were set (issue 24): the
    // gateway still holds the ones before. Set them now, rather than take the old ones for a
    // hand edit.
    if let Some(previous) = s.previous.take()
        && current == previous
        && current != s.weights
    {
        actions.push(Action::SetWeights(s.weights));
        return (s, actions);
    }
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
