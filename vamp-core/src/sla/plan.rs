//! The pure half of the SLA runtime: no I/O, no clock, no environment. What
//! [`runtime`](super::runtime) reads goes in; what it should publish or rescale comes out.

use std::collections::BTreeMap;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::model::{Cpu, Escalation, EscalationKind, Event, Memory, Ref, Scale, ScaleBy};

/// Which way an SLA event asks to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// More resources (the SLA is breached).
    Escalate,
    /// Fewer resources (well within the SLA).
    DeEscalate,
}

impl Direction {
    /// The event tag (spec §3.8): `sla:escalate` or `sla:deescalate`.
    ///
    /// ```
    /// use vamp_core::sla::Direction;
    /// assert_eq!(Direction::Escalate.tag(), "sla:escalate");
    /// assert_eq!(Direction::from_tags(&["sla".into(), "sla:deescalate".into()]), Some(Direction::DeEscalate));
    /// ```
    pub fn tag(self) -> &'static str {
        match self {
            Direction::Escalate => "sla:escalate",
            Direction::DeEscalate => "sla:deescalate",
        }
    }

    /// The direction an SLA event's tags name, if any.
    pub fn from_tags(tags: &[String]) -> Option<Direction> {
        tags.iter().find_map(|t| match t.as_str() {
            "sla:escalate" => Some(Direction::Escalate),
            "sla:deescalate" => Some(Direction::DeEscalate),
            _ => None,
        })
    }
}

/// Evaluates a response-time SLA: `means` holds the mean response time (ms) of each of the
/// cluster's gateways over the window; the worst one decides. No data decides nothing.
///
/// ```
/// use vamp_core::sla::{Direction, evaluate};
/// assert_eq!(evaluate(1000, 100, &[80.0, 1200.0]), Some(Direction::Escalate));
/// assert_eq!(evaluate(1000, 100, &[80.0, 90.0]), Some(Direction::DeEscalate));
/// assert_eq!(evaluate(1000, 100, &[500.0]), None);
/// assert_eq!(evaluate(1000, 100, &[]), None);
/// ```
pub fn evaluate(upper: u64, lower: u64, means: &[f64]) -> Option<Direction> {
    let worst = means
        .iter()
        .copied()
        .filter(|m| m.is_finite())
        .reduce(f64::max)?;
    #[allow(clippy::cast_precision_loss)]
    let (upper, lower) = (upper as f64, lower as f64);
    if worst > upper {
        Some(Direction::Escalate)
    } else if worst < lower {
        Some(Direction::DeEscalate)
    } else {
        None
    }
}

/// An escalation with its references resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `scale_instances`.
    Instances(ScaleBy<i64>),
    /// `scale_cpu` (cores).
    Cpu(ScaleBy<f64>),
    /// `scale_memory` (MB).
    Memory(ScaleBy<f64>),
    /// `to_all`: every member that can apply.
    All(Vec<Step>),
    /// `to_one`: the first member that can apply (from the tail when de-escalating).
    One(Vec<Step>),
    /// Any other type: stored, never applied (spec §1.10).
    Ignored(String),
}

/// The scales an escalation works on: each cluster's first service's scale.
pub type Scales = BTreeMap<String, Scale>;

/// Plans the escalation of `cluster`'s SLA: its `steps` as one `to_one` group, applied to
/// `scales` (each cluster's first service's scale). Returns the clusters whose scale changes,
/// with their new scale; empty when nothing can apply.
///
/// ```
/// use vamp_core::model::{Scale, ScaleBy};
/// use vamp_core::sla::{Direction, Scales, Step, plan};
/// let scales = Scales::from([("web".to_owned(), Scale { instances: 1, ..Scale::default() })]);
/// let steps = [Step::Instances(ScaleBy { minimum: 1, maximum: 3, scale_by: 1, target: None })];
/// let changed = plan(&steps, Direction::Escalate, "web", &scales);
/// assert_eq!(changed["web"].instances, 2);
/// assert!(plan(&steps, Direction::DeEscalate, "web", &scales).is_empty(), "1 is the minimum");
/// ```
pub fn plan(steps: &[Step], direction: Direction, cluster: &str, scales: &Scales) -> Scales {
    let mut working = scales.clone();
    if apply(&Step::One(steps.to_vec()), direction, cluster, &mut working) {
        working.retain(|c, s| scales.get(c) != Some(s));
        working
    } else {
        Scales::new()
    }
}

/// Applies `step` to `scales` if it can; whether it did.
fn apply(step: &Step, direction: Direction, cluster: &str, scales: &mut Scales) -> bool {
    let sign = match direction {
        Direction::Escalate => 1.0,
        Direction::DeEscalate => -1.0,
    };
    let target = |t: &Option<String>| t.clone().unwrap_or_else(|| cluster.to_owned());
    match step {
        Step::Instances(by) => {
            let Some(scale) = scales.get_mut(&target(&by.target)) else {
                return false;
            };
            let next = i64::from(scale.instances).saturating_add(match direction {
                Direction::Escalate => by.scale_by,
                Direction::DeEscalate => by.scale_by.saturating_neg(),
            });
            match u32::try_from(next) {
                Ok(n) if by.scale_by != 0 && (by.minimum..=by.maximum).contains(&next) => {
                    scale.instances = n;
                    true
                }
                _ => false,
            }
        }
        Step::Cpu(by) => {
            let Some(scale) = scales.get_mut(&target(&by.target)) else {
                return false;
            };
            let next = scale.cpu.cores() + sign * by.scale_by;
            match Cpu::from_cores(next) {
                Ok(cpu) if by.scale_by != 0.0 && next >= by.minimum && next <= by.maximum => {
                    scale.cpu = cpu;
                    true
                }
                _ => false,
            }
        }
        Step::Memory(by) => {
            let Some(scale) = scales.get_mut(&target(&by.target)) else {
                return false;
            };
            let next = scale.memory.megabytes() + sign * by.scale_by;
            if by.scale_by == 0.0 || !(next >= by.minimum && next <= by.maximum) || next < 0.0 {
                return false;
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bytes = (next * 1.0e6).round() as u64;
            scale.memory = Memory::from_bytes(bytes);
            true
        }
        Step::All(members) => {
            // Every member, not just up to the first that applies.
            let mut applied = false;
            for m in members {
                applied |= apply(m, direction, cluster, scales);
            }
            applied
        }
        Step::One(members) => match direction {
            Direction::Escalate => members.iter().any(|m| apply(m, direction, cluster, scales)),
            Direction::DeEscalate => members
                .iter()
                .rev()
                .any(|m| apply(m, direction, cluster, scales)),
        },
        Step::Ignored(_) => false,
    }
}

/// The mean of a sliding window's values up to `now` (later ones are ignored); `None` when
/// there is none.
///
/// ```
/// use chrono::{Duration, Utc};
/// let now = Utc::now();
/// let series = [(now - Duration::seconds(2), 10.0), (now, 30.0), (now + Duration::seconds(1), 99.0)];
/// assert_eq!(vamp_core::sla::window_mean(series, now), Some(20.0));
/// assert_eq!(vamp_core::sla::window_mean([], now), None);
/// ```
pub fn window_mean(
    series: impl IntoIterator<Item = (DateTime<Utc>, f64)>,
    now: DateTime<Utc>,
) -> Option<f64> {
    let (sum, n) = series
        .into_iter()
        .filter(|(t, _)| *t <= now)
        .fold((0.0, 0u32), |(sum, n), (_, v)| (sum + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// The SLA event of a check (spec §3.8): tagged `sla`, `deployment:<d>`, `cluster:<c>` and
/// the direction, its value the worst mean and the thresholds; with that worst mean.
pub fn sla_event(
    deployment: &str,
    cluster: &str,
    direction: Direction,
    means: &[f64],
    (upper, lower): (u64, u64),
    now: DateTime<Utc>,
) -> (Event, f64) {
    let worst = means.iter().copied().fold(0.0, f64::max);
    let mut tags = sla_tags(deployment, cluster);
    tags.push(direction.tag().into());
    let event = Event {
        tags,
        value: serde_json::json!({"response_time": round(worst, 1), "upper": upper, "lower": lower}),
        kind: "event".into(),
        timestamp: now,
    };
    (event, worst)
}

/// The tags of a cluster's SLA events: `sla`, `deployment:<d>`, `cluster:<c>` (spec §3.8).
pub fn sla_tags(deployment: &str, cluster: &str) -> Vec<String> {
    vec![
        "sla".into(),
        format!("deployment:{deployment}"),
        format!("cluster:{cluster}"),
    ]
}

pub(crate) fn round(value: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (value * f).round() / f
}

/// An SLA's escalations as [`Step`]s, their references resolved against the stored ones; references to escalations that are not stored
/// (or nested deeper than 16) are ignored with a warning.
pub fn steps(
    refs: &[Ref<Escalation>],
    stored: &HashMap<String, Escalation>,
    depth: usize,
) -> Vec<Step> {
    refs.iter()
        .filter_map(|r| {
            let e = match r {
                Ref::Inline(e) => e,
                Ref::Reference(name) => match stored.get(name) {
                    Some(e) if depth < 16 => e,
                    _ => {
                        tracing::warn!(escalation = %name, "an SLA refers to an escalation that is not stored (or nests too deep); it is skipped");
                        return None;
                    }
                },
            };
            Some(match &e.kind {
                EscalationKind::ScaleInstances(by) => Step::Instances(by.clone()),
                EscalationKind::ScaleCpu(by) => Step::Cpu(by.clone()),
                EscalationKind::ScaleMemory(by) => Step::Memory(by.clone()),
                EscalationKind::ToAll(members) => Step::All(steps(members, stored, depth + 1)),
                EscalationKind::ToOne(members) => Step::One(steps(members, stored, depth + 1)),
                EscalationKind::Generic { kind, .. } => Step::Ignored(kind.clone()),
            })
        })
        .collect()
}
