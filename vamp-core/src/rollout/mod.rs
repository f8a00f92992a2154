//! Automated canary releases (issue 18, docs/rollouts.md).
//!
//! # Layout
//!
//! - this module: the values the planner and the runtime share — [`Counts`] (a route's
//!   traffic), [`RolloutStatus`] (what a rollout has done so far, persisted at every change),
//!   [`Observation`] (what the runtime saw), [`Action`] (what the planner wants done);
//! - [`plan`]: the pure planner, `(rollout, status, observation, now) → (status, actions)`, and
//!   the commands (promote, abort, pause, resume, retry);
//! - [`verdict`]: the sequential verdict of one metric check (and of a provider's number);
//! - [`sim`]: seeded simulated traffic for [`plan::simulate`];
//! - `runtime.rs`: [`crate::Vamp::rollout_pass`] — reads the router's counters and the
//!   gateway, feeds the planner, applies its actions through the router's weight path and the
//!   persistence;
//! - `calls/`: what the runtime asks outside (metric providers, webhooks), in the background.
//!
//! Over ~400 lines because it is mostly documentation: the values planner and runtime share,
//! each with the meaning of every field.

pub(crate) mod calls;
pub mod plan;
mod rules;
pub(crate) mod runtime;
pub mod sim;
pub mod verdict;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::traits::RouteStats;

pub use plan::{Command, CommandError, Wants, wants};
pub use runtime::{ROLLOUT_EVENT_TYPE, RolloutReport};
pub use verdict::{CheckResult, Measured, Verdict};

/// A route's traffic: requests, failed ones, and the response-time histogram (per-bucket
/// counts, the last bucket unbounded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests (HTTP) or connections (TCP).
    pub requests: u64,
    /// Failed ones (5xx or connection errors).
    pub errors: u64,
    /// Upper bounds of the latency buckets, ms (the last bucket, beyond them, has no bound).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<f64>,
    /// Requests per bucket: one more than `bounds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<u64>,
    /// Every response time added up, ms.
    #[serde(default)]
    pub sum_ms: f64,
}

impl Counts {
    /// A router's cumulative counters as counts.
    pub fn from_stats(stats: &RouteStats) -> Counts {
        let mut bounds = Vec::new();
        let mut buckets = Vec::new();
        let mut below = 0;
        for (bound, cumulative) in &stats.latency.buckets {
            if bound.is_finite() {
                bounds.push(*bound);
            }
            buckets.push(cumulative.saturating_sub(below));
            below = *cumulative;
        }
        if buckets.len() == bounds.len() && !bounds.is_empty() {
            buckets.push(0);
        }
        Counts {
            requests: stats.requests,
            errors: stats.errors,
            bounds,
            buckets,
            sum_ms: stats.latency.sum_ms,
        }
    }

    /// What was counted since `earlier`; `None` when the counters went back (the router
    /// restarted or reloaded without keeping them).
    pub fn since(&self, earlier: &Counts) -> Option<Counts> {
        if self.requests < earlier.requests || self.errors < earlier.errors {
            return None;
        }
        let buckets = if earlier.buckets.is_empty() {
            self.buckets.clone()
        } else if earlier.bounds == self.bounds && earlier.buckets.len() == self.buckets.len() {
            self.buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(a, b)| a.checked_sub(*b))
                .collect::<Option<Vec<_>>>()?
        } else {
            return None;
        };
        Some(Counts {
            requests: self.requests - earlier.requests,
            errors: self.errors - earlier.errors,
            bounds: self.bounds.clone(),
            buckets,
            sum_ms: (self.sum_ms - earlier.sum_ms).max(0.0),
        })
    }

    /// Adds `more` to these counts.
    pub fn add(&mut self, more: &Counts) {
        self.requests += more.requests;
        self.errors += more.errors;
        self.sum_ms += more.sum_ms;
        if self.buckets.is_empty() {
            self.bounds.clone_from(&more.bounds);
            self.buckets.clone_from(&more.buckets);
        } else if self.bounds == more.bounds && self.buckets.len() == more.buckets.len() {
            for (a, b) in self.buckets.iter_mut().zip(&more.buckets) {
                *a += b;
            }
        }
    }

    /// The mean response time, ms; `None` without requests.
    ///
    /// ```
    /// use vamp_core::rollout::Counts;
    /// let c = Counts { requests: 4, sum_ms: 100.0, ..Counts::default() };
    /// assert_eq!(c.mean_ms(), Some(25.0));
    /// assert_eq!(Counts::default().mean_ms(), None);
    /// ```
    #[expect(clippy::cast_precision_loss, reason = "request counts far below 2^52")]
    pub fn mean_ms(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.sum_ms / self.requests as f64)
    }

    /// The `q` quantile (0–1) of the response times, interpolated within its bucket; `None`
    /// without requests or a histogram.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let target = q * total as f64;
        let mut below = 0.0;
        let mut lower: f64 = 0.0;
        for (i, n) in self.buckets.iter().enumerate() {
            let n = *n as f64;
            let upper = self
                .bounds
                .get(i)
                .copied()
                // The unbounded bucket: assumed to reach twice its lower bound.
                .unwrap_or_else(|| (lower * 2.0).max(lower + 1.0));
            if below + n >= target && n > 0.0 {
                return Some(lower + (upper - lower) * ((target - below) / n));
            }
            below += n;
            lower = upper;
        }
        Some(lower)
    }

    /// How many requests took longer than `ms`, interpolated within its bucket.
    pub fn slower_than(&self, ms: f64) -> f64 {
        let mut lower = 0.0;
        let mut slower = 0.0;
        for (i, n) in self.buckets.iter().enumerate() {
            let n = *n as f64;
            match self.bounds.get(i).copied() {
                Some(upper) if upper <= ms => {}
                Some(upper) if lower < ms => slower += n * (upper - ms) / (upper - lower),
                // Wholly above `ms`, or the unbounded bucket beyond the last bound (counted
                // as slower: nothing tells how far beyond).
                _ => slower += n,
            }
            if let Some(upper) = self.bounds.get(i) {
                lower = *upper;
            }
        }
        slower
    }
}

/// The phase of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Moving through its steps.
    Progressing,
    /// Waiting: by request, at an open-ended pause step, for lack of evidence, or after a
    /// hand edit of the weights; `resume` or `promote` goes on.
    Paused,
    /// The canary holds the stable route's traffic.
    Succeeded,
    /// The canary failed; the stable route holds the traffic.
    RolledBack,
    /// Stopped by request, or because what it works on went away; the stable route holds the
    /// traffic when it still exists.
    Aborted,
}

impl Phase {
    /// The name as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Succeeded => "Succeeded",
            Phase::RolledBack => "RolledBack",
            Phase::Aborted => "Aborted",
        }
    }

    /// Whether nothing more happens.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Aborted)
    }

    /// A number for Prometheus `vamp_rollout_phase`: 0 progressing, 1 paused, 2 succeeded, 3
    /// rolled back, 4 aborted.
    pub fn number(self) -> u8 {
        match self {
            Phase::Progressing => 0,
            Phase::Paused => 1,
            Phase::Succeeded => 2,
            Phase::RolledBack => 3,
            Phase::Aborted => 4,
        }
    }
}

/// The weights of the two routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Weights {
    /// The stable route's, in per cent of the gateway.
    pub stable: u8,
    /// The canary route's.
    pub canary: u8,
}

impl Weights {
    /// The canary's share of what the two routes hold together, 0 to 1 (0 when they hold
    /// nothing).
    ///
    /// ```
    /// use vamp_core::rollout::Weights;
    /// assert_eq!(Weights { stable: 30, canary: 10 }.canary_share(), 0.25);
    /// assert_eq!(Weights { stable: 0, canary: 0 }.canary_share(), 0.0);
    /// ```
    pub fn canary_share(self) -> f64 {
        let total = f64::from(self.stable) + f64::from(self.canary);
        if total > 0.0 {
            f64::from(self.canary) / total
        } else {
            0.0
        }
    }
}

/// One analysis interval: the numbers and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// When it was judged.
    pub at: DateTime<Utc>,
    /// The step it belonged to (0-based).
    pub step: usize,
    /// Seconds of traffic it judged (since the analysis window began).
    pub seconds: f64,
    /// The canary's traffic in the window.
    pub canary: Counts,
    /// The stable route's.
    pub stable: Counts,
    /// The outcome: the worst of the checks.
    pub verdict: Verdict,
    /// Every check.
    pub checks: Vec<CheckResult>,
}

/// How many intervals a status keeps.
pub const KEPT_INTERVALS: usize = 20;

/// What a rollout has done so far: persisted at every change, so a restarted server continues
/// with the same step and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The phase.
    pub phase: Phase,
    /// The step being worked on (0-based); the number of steps once done.
    pub step: usize,
    /// When that step began.
    pub step_since: DateTime<Utc>,
    /// The weights the rollout last set (or found when it began).
    pub weights: Weights,
    /// While `weights` are being set: the weights the gateway had before. A status is stored
    /// with this *before* its weights are set and without it after (issue 24), so a leader
    /// that takes over from one that stopped in between knows the gateway holds one or the
    /// other, and sets `weights` rather than take the old ones for a hand edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Weights>,
    /// Why it is paused, rolled back or aborted, or what it waits for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The traffic of the current analysis window.
    pub evidence: Evidence,
    /// The routes' cumulative counters at the last tick, to count on from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<(Counts, Counts)>,
    /// Failed verdicts so far.
    pub failures: u32,
    /// Intervals in a row without enough evidence.
    pub inconclusive: u32,
    /// Intervals in a row without a metric provider's answer.
    #[serde(default)]
    pub errors: u32,
    /// The webhook gate that holds it paused, asked again every interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// Whether the `pre-rollout` webhooks said yes (or were promoted past).
    #[serde(default)]
    pub pre_rollout_passed: bool,
    /// Verdicts so far by outcome (for Prometheus).
    pub verdicts: VerdictCounts,
    /// The last intervals, newest last.
    pub intervals: Vec<Interval>,
    /// When the rollout began.
    pub started: DateTime<Utc>,
    /// When the status last changed.
    pub updated: DateTime<Utc>,
}

/// The traffic counted since the analysis window began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// When the window began.
    pub since: DateTime<Utc>,
    /// When the last verdict was made (the next one is due an interval later).
    pub last_verdict: DateTime<Utc>,
    /// The canary's traffic.
    pub canary: Counts,
    /// The stable route's.
    pub stable: Counts,
}

impl Evidence {
    /// An empty window beginning at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Evidence {
            since: now,
            last_verdict: now,
            canary: Counts::default(),
            stable: Counts::default(),
        }
    }
}

/// Verdicts by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VerdictCounts {
    /// Passed intervals.
    pub pass: u64,
    /// Failed intervals.
    pub fail: u64,
    /// Inconclusive intervals.
    pub inconclusive: u64,
    /// Intervals without a provider's answer.
    #[serde(default)]
    pub error: u64,
}

/// A webhook gate: a rollout held paused until its webhooks answer 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// Before the first shift.
    PreRollout,
    /// Before the canary takes all of the traffic.
    ConfirmPromotion,
}

impl Gate {
    /// The webhook type that answers it.
    pub fn webhook(self) -> crate::model::WebhookKind {
        match self {
            Gate::PreRollout => crate::model::WebhookKind::PreRollout,
            Gate::ConfirmPromotion => crate::model::WebhookKind::ConfirmPromotion,
        }
    }
}

/// What the webhooks of one kind answered: open when every one answered 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GateAnswer {
    /// Every webhook answered 2xx.
    pub open: bool,
    /// What they answered, in words (`http://… answered 403`).
    pub detail: String,
}

/// The metric providers' answers for one verdict, one per provider check in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Measurement {
    /// The verdict they are for: the `last_verdict` of the evidence when they were asked.
    pub round: DateTime<Utc>,
    /// One per provider check, in the order of `analysis.metrics`.
    pub values: Vec<Measured>,
}

/// What the runtime saw this tick.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// The weights of the stable and canary routes in the gateway as stored; `None` when the
    /// gateway or one of the routes is gone (the reason in `missing`).
    pub weights: Option<Weights>,
    /// Why the rollout cannot go on: the gateway, deployment or a service is gone.
    pub missing: Option<String>,
    /// The router's cumulative counters of the stable and canary routes; `None` when the
    /// router cannot count.
    pub counts: Option<(Counts, Counts)>,
    /// Whether the canary's instances are deployed and healthy.
    pub canary_ready: bool,
    /// The metric providers' answers, when the runtime asked them ([`Wants::measure`]).
    pub measured: Option<Measurement>,
    /// A gate's webhooks' answer, when the runtime asked them ([`Wants::gate`]).
    pub gate: Option<(Gate, GateAnswer)>,
    /// The `rollback` webhooks' answer, when the runtime asked them ([`Wants::rollback`]).
    pub rollback: Option<GateAnswer>,
}

/// What the planner wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Set the two routes' weights (other routes of the gateway keep theirs).
    SetWeights(Weights),
    /// Publish an event with these tags (the rollout's own tags are added) and value.
    Event {
        /// Tags beyond `rollouts` and `rollouts:<name>`.
        tags: Vec<String>,
        /// The numbers.
        value: serde_json::Value,
    },
}
