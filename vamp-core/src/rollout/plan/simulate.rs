//! The planner on a virtual clock.

use chrono::{DateTime, Utc};

use super::*;

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
