//! The pure workflow planner: the status machine of spec §5.6 and the schedule of each
//! scheduled workflow, on whatever clock the caller passes. No I/O, no clock of its own: the
//! runtime feeds it the workflow, its [`Schedule`](State) state, events and run ends, and does
//! what it answers.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::Period;
use crate::model::{Schedule, Workflow, WorkflowStatus};

/// How many event-triggered runs wait at most per workflow; more are dropped and counted.
pub const QUEUE_LIMIT: usize = 100;

/// What the runtime keeps of one workflow between ticks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    /// The workflow is scheduled: it runs on its schedule (Vamp: it has instances).
    pub scheduled: bool,
    /// A run is in progress (never two at once).
    pub running: bool,
    /// Runs started since the workflow was scheduled (`time` with `repeat` stops at it).
    pub runs: u64,
    /// When the next `daemon` or `time` run is due.
    pub due: Option<DateTime<Utc>>,
    /// Where a `time` schedule's slots are counted from.
    pub anchor: Option<DateTime<Utc>>,
    /// Events waiting to start a run each (`event` schedules), oldest first.
    pub queue: VecDeque<serde_json::Value>,
    /// Events dropped because [`QUEUE_LIMIT`] were waiting.
    pub dropped: u64,
    /// Due runs skipped because a run was still in progress (`daemon`).
    pub skipped: u64,
}

/// What the runtime does for a workflow.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a run, with `data` (the triggering event) for `event` schedules.
    Run {
        /// The triggering event, as `VAMP_WORKFLOW_DATA` carries it.
        data: Option<serde_json::Value>,
    },
    /// Store the workflow with this status.
    SetStatus(WorkflowStatus),
    /// Delete the workflow (it was stopping and nothing runs).
    Delete,
    /// Publish an event with these tags (spec §5.6: `workflows:<name>` with `scheduled` or
    /// `unscheduled`).
    Event(Vec<String>),
}

/// The workflow's settings the planner needs besides its artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// A `daemon` workflow's execution period (`VAMP_WORKFLOW_EXECUTION_PERIOD`).
    pub period: TimeDelta,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: TimeDelta::seconds(60),
        }
    }
}

fn event(w: &Workflow, what: &str) -> Action {
    Action::Event(vec![format!("workflows:{}", w.name), what.to_owned()])
}

/// One step of the status machine of spec §5.6, and — for a scheduled workflow — of its
/// schedule: what to do now, and the state after it.
///
/// | status | not scheduled | scheduled |
/// |---|---|---|
/// | starting / running | schedule it, set `running` (+ `scheduled`) | its schedule |
/// | suspending / suspended | set `suspended` (+ `unscheduled`) | unschedule, set `suspended` (+ `unscheduled`) |
/// | stopping | delete (+ `unscheduled`) | unschedule |
/// | restarting | set `starting` | unschedule |
///
/// Unscheduling lets a run in progress finish; nothing new starts.
///
/// ```
/// use chrono::{DateTime, Utc};
/// use vamp_core::model::{Workflow, WorkflowStatus};
/// use vamp_core::workflow::plan::{step, Action, Settings, State};
/// let w = Workflow { name: "tick".into(), ..Workflow::default() }; // a daemon, starting
/// let now = DateTime::<Utc>::UNIX_EPOCH;
/// let (s, actions) = step(&w, &State::default(), Settings::default(), now);
/// assert!(s.scheduled && s.running);
/// assert!(actions.contains(&Action::SetStatus(WorkflowStatus::Running)));
/// assert!(actions.contains(&Action::Run { data: None }));
/// ```
pub fn step(
    w: &Workflow,
    state: &State,
    settings: Settings,
    now: DateTime<Utc>,
) -> (State, Vec<Action>) {
    let mut s = state.clone();
    let mut actions = Vec::new();
    match (w.status, s.scheduled) {
        (WorkflowStatus::Starting | WorkflowStatus::Running, false) => {
            s = State {
                scheduled: true,
                running: s.running,
                anchor: Some(now),
                ..State::default()
            };
            if let Schedule::Time {
                start: Some(start), ..
            } = &w.schedule
                && let Ok(at) = DateTime::parse_from_rfc3339(start)
            {
                s.anchor = Some(at.with_timezone(&Utc));
            }
            s.due = match w.schedule {
                Schedule::Event(_) => None,
                _ => s.anchor,
            };
            actions.push(Action::SetStatus(WorkflowStatus::Running));
            actions.push(event(w, "scheduled"));
            schedule(w, &mut s, settings, now, &mut actions);
        }
        (WorkflowStatus::Starting, true) => {
            actions.push(Action::SetStatus(WorkflowStatus::Running));
            schedule(w, &mut s, settings, now, &mut actions);
        }
        (WorkflowStatus::Running, true) => schedule(w, &mut s, settings, now, &mut actions),
        (WorkflowStatus::Suspending | WorkflowStatus::Suspended, true) => {
            s = State {
                running: s.running,
                ..State::default()
            };
            if w.status == WorkflowStatus::Suspending {
                actions.push(Action::SetStatus(WorkflowStatus::Suspended));
            }
            actions.push(event(w, "unscheduled"));
        }
        (WorkflowStatus::Stopping | WorkflowStatus::Restarting, true) => {
            s = State {
                running: s.running,
                ..State::default()
            };
        }
        (WorkflowStatus::Suspending, false) => {
            actions.push(Action::SetStatus(WorkflowStatus::Suspended));
            actions.push(event(w, "unscheduled"));
        }
        // A run in progress finishes first: the workflow goes when nothing runs.
        (WorkflowStatus::Stopping, false) if !s.running => {
            actions.push(Action::Delete);
            actions.push(event(w, "unscheduled"));
        }
        (WorkflowStatus::Restarting, false) if !s.running => {
            actions.push(Action::SetStatus(WorkflowStatus::Starting));
        }
        // Suspended and idle; or a run still finishing.
        (
            WorkflowStatus::Suspended | WorkflowStatus::Stopping | WorkflowStatus::Restarting,
            false,
        ) => {}
    }
    (s, actions)
}

/// A scheduled workflow's schedule: at most one run starts, and only when none is in progress.
fn schedule(
    w: &Workflow,
    s: &mut State,
    settings: Settings,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    match &w.schedule {
        Schedule::Daemon => {
            let Some(due) = s.due.filter(|due| *due <= now) else {
                return;
            };
            let period = settings.period.max(TimeDelta::milliseconds(1));
            if s.running {
                // Vamp's agent skips a tick while a run is active.
                s.skipped += 1;
            } else {
                start(s, None, actions);
            }
            // The next slot after now, on the period's grid from the last due time.
            let behind = (now - due).num_milliseconds() / period.num_milliseconds().max(1);
            s.due = i32::try_from(behind + 1)
                .ok()
                .and_then(|n| period.checked_mul(n))
                .and_then(|d| due.checked_add_signed(d));
        }
        Schedule::Time { period, repeat, .. } => {
            if repeat.is_some_and(|n| s.runs >= u64::from(n)) || s.running {
                return;
            }
            let (Some(due), Some(period)) = (s.due, Period::parse(period)) else {
                return;
            };
            if due > now {
                return;
            }
            start(s, None, actions);
            // The first slot after now: missed slots are not made up for (a server that was
            // down does not run a burst), and `repeat` counts runs, not slots.
            let mut next = Some(due);
            while let Some(at) = next.filter(|at| *at <= now) {
                next = period.after(at);
            }
            s.due = next;
        }
        Schedule::Event(_) => {
            if !s.running
                && let Some(data) = s.queue.pop_front()
            {
                start(s, Some(data), actions);
            }
        }
    }
}

fn start(s: &mut State, data: Option<serde_json::Value>, actions: &mut Vec<Action>) {
    s.running = true;
    s.runs += 1;
    actions.push(Action::Run { data });
}

/// An event arrived: an `event` workflow that is scheduled and whose tags it carries queues a
/// run with it (at most [`QUEUE_LIMIT`] wait; more are dropped and counted). True when queued.
///
/// ```
/// use vamp_core::model::{Schedule, Workflow};
/// use vamp_core::workflow::plan::{on_event, State};
/// let w = Workflow { schedule: Schedule::Event(vec!["deploy".into()]), ..Workflow::default() };
/// let mut s = State { scheduled: true, ..State::default() };
/// assert!(on_event(&w, &mut s, &["deploy".into(), "shop".into()], serde_json::json!({"id": 1})));
/// assert!(!on_event(&w, &mut s, &["other".into()], serde_json::json!({"id": 2})));
/// assert_eq!(s.queue.len(), 1);
/// ```
pub fn on_event(w: &Workflow, s: &mut State, tags: &[String], data: serde_json::Value) -> bool {
    let Schedule::Event(wanted) = &w.schedule else {
        return false;
    };
    if !s.scheduled || !wanted.iter().all(|t| tags.contains(t)) {
        return false;
    }
    if s.queue.len() >= QUEUE_LIMIT {
        s.dropped += 1;
        return false;
    }
    s.queue.push_back(data);
    true
}

/// A run ended: the next may start.
pub fn finished(s: &mut State) {
    s.running = false;
}

/// A run [`step`] planned was not started after all (the workflow's status changed before the
/// runtime got to it): the state is as if it had not been planned, its event back at the head
/// of the queue. Without this the workflow would wait forever for a run that never began.
///
/// ```
/// use chrono::{DateTime, Utc};
/// use vamp_core::model::Workflow;
/// use vamp_core::workflow::plan::{not_started, step, Settings, State};
/// let w = Workflow { name: "tick".into(), ..Workflow::default() };
/// let (mut s, _) = step(&w, &State::default(), Settings::default(), DateTime::<Utc>::UNIX_EPOCH);
/// assert!(s.running);
/// not_started(&mut s, None);
/// assert!(!s.running && s.runs == 0);
/// ```
pub fn not_started(s: &mut State, data: Option<serde_json::Value>) {
    s.running = false;
    s.runs = s.runs.saturating_sub(1);
    if let Some(data) = data {
        s.queue.push_front(data);
    }
}
