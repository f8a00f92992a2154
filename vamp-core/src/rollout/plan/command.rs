//! The user's commands: promote, abort, pause, resume, retry.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;

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
                go_on(rollout, &mut s, current, now, &mut actions);
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
                go_on(rollout, &mut s, current, now, &mut actions);
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
            only_when(
                &s,
                Phase::Progressing,
                "only a progressing one can be paused",
            )?;
            pause(
                &mut s,
                rollout,
                "paused by request".into(),
                now,
                &mut actions,
            );
        }
        Command::Resume => {
            only_when(&s, Phase::Paused, "only a paused one can be resumed")?;
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

/// Refuses a command unless the rollout is in `phase`; `why` says what the command needs.
fn only_when(s: &RolloutStatus, phase: Phase, why: &str) -> Result<(), CommandError> {
    if s.phase == phase {
        Ok(())
    } else {
        Err(refused(format!(
            "the rollout is {}: {why}",
            s.phase.as_str()
        )))
    }
}

/// Works through the steps from where a command left the rollout, as if the gateway had
/// `current` weights and no new traffic since the baseline.
fn go_on(
    rollout: &Rollout,
    s: &mut RolloutStatus,
    current: Option<Weights>,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    let observed = Observation {
        weights: current,
        counts: s.baseline.clone(),
        canary_ready: true,
        ..Observation::default()
    };
    steps(rollout, s, &observed, now, actions);
}
