//! The planner on a virtual clock: the schedules' promises, whatever the order of ticks, run
//! ends and events.

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::json;

use super::plan::{Action, QUEUE_LIMIT, Settings, State, finished, not_started, on_event, step};
use crate::model::{Schedule, Workflow, WorkflowStatus};

fn workflow(schedule: Schedule) -> Workflow {
    Workflow {
        name: "w".into(),
        schedule,
        ..Workflow::default()
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// Applies what the runtime would store: the status.
fn apply(w: &mut Workflow, actions: &[Action]) {
    for a in actions {
        if let Action::SetStatus(s) = a {
            w.status = *s;
        }
    }
}

fn runs(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Run { .. }))
        .count()
}

/// One thing that happens between two ticks.
#[derive(Debug, Clone)]
enum Happening {
    /// The clock moves on by this many seconds, then a tick.
    Tick(u16),
    /// The run in progress ends, then a tick.
    Finish,
    /// An event with these tags arrives.
    Event(bool),
}

fn happenings() -> impl Strategy<Value = Vec<Happening>> {
    prop::collection::vec(
        prop_oneof![
            (0u16..200).prop_map(Happening::Tick),
            Just(Happening::Finish),
            any::<bool>().prop_map(Happening::Event),
        ],
        0..200,
    )
}

/// Plays `happenings` against `w`: the times runs started, with their data.
fn play(
    w: &mut Workflow,
    settings: Settings,
    happenings: &[Happening],
) -> Vec<(DateTime<Utc>, Option<serde_json::Value>)> {
    let mut s = State::default();
    let mut now = t0();
    let mut started = Vec::new();
    let mut sent = 0;
    let mut tick = |w: &mut Workflow, s: &mut State, now| {
        let was_running = s.running;
        let (next, actions) = step(w, s, settings, now);
        let n = runs(&actions);
        assert!(n <= 1, "one run at a time: {actions:?}");
        assert!(n == 0 || !was_running, "a run started over one in progress");
        for a in &actions {
            if let Action::Run { data } = a {
                started.push((now, data.clone()));
            }
        }
        apply(w, &actions);
        *s = next;
    };
    tick(w, &mut s, now);
    for h in happenings {
        match h {
            Happening::Tick(secs) => now += TimeDelta::seconds(i64::from(*secs)),
            Happening::Finish => finished(&mut s),
            Happening::Event(matching) => {
                sent += 1;
                let tags = if *matching {
                    vec!["deploy".to_owned(), "x".to_owned()]
                } else {
                    vec!["x".to_owned()]
                };
                on_event(w, &mut s, &tags, json!({"n": sent}));
                continue;
            }
        }
        tick(w, &mut s, now);
    }
    started
}

/// True when each run started in a later period of `seconds` (from t0) than the one before.
fn distinct_slots(started: &[(DateTime<Utc>, Option<serde_json::Value>)], seconds: i64) -> bool {
    let slots: Vec<i64> = started
        .iter()
        .map(|(t, _)| (*t - t0()).num_seconds() / seconds)
        .collect();
    slots.windows(2).all(|p| p[1] > p[0])
}

proptest! {
    /// A daemon never overlaps itself and runs at most once in each period of its grid (a slot
    /// whose tick came late starts late; the next slot stays on the grid).
    #[test]
    fn a_daemon_runs_at_most_once_a_period_and_never_twice_at_once(h in happenings()) {
        let mut w = workflow(Schedule::Daemon);
        let settings = Settings { period: TimeDelta::seconds(60) };
        let started = play(&mut w, settings, &h);
        prop_assert!(!started.is_empty(), "the first run starts when scheduled");
        prop_assert!(distinct_slots(&started, 60), "{started:?}");
    }

    /// `time` with `repeat: n` starts at most n runs, at most one in each period.
    #[test]
    fn a_timed_workflow_runs_at_most_repeat_times(h in happenings(), repeat in 1u32..5) {
        let mut w = workflow(Schedule::Time { period: "PT30S".into(), start: None, repeat: Some(repeat) });
        let started = play(&mut w, Settings::default(), &h);
        prop_assert!(started.len() <= repeat as usize);
        prop_assert!(distinct_slots(&started, 30), "{started:?}");
    }

    /// An event workflow runs once per matching event, in order, with the event as data, and
    /// never for an event without its tags.
    #[test]
    fn an_event_workflow_runs_once_per_matching_event_in_order(h in happenings()) {
        let mut w = workflow(Schedule::Event(vec!["deploy".into()]));
        let started = play(&mut w, Settings::default(), &h);
        let mut sent = 0;
        let matching: Vec<serde_json::Value> = h.iter().filter_map(|x| match x {
            Happening::Event(m) => { sent += 1; m.then(|| json!({"n": sent})) }
            _ => None,
        }).collect();
        let data: Vec<serde_json::Value> = started.into_iter().map(|(_, d)| d.expect("data")).collect();
        prop_assert!(data.len() <= matching.len());
        prop_assert_eq!(&data[..], &matching[..data.len()]);
    }
}

#[test]
fn time_with_repeat_three_runs_exactly_three_times() {
    let mut w = workflow(Schedule::Time {
        period: "PT30S".into(),
        start: None,
        repeat: Some(3),
    });
    let mut h = Vec::new();
    for _ in 0..10 {
        h.push(Happening::Finish);
        h.push(Happening::Tick(30));
    }
    let started = play(&mut w, Settings::default(), &h);
    let at: Vec<i64> = started
        .iter()
        .map(|(t, _)| (*t - t0()).num_seconds())
        .collect();
    assert_eq!(at, vec![0, 30, 60]);
}

#[test]
fn a_timed_workflow_waits_for_its_start_and_skips_missed_slots() {
    let start = t0() + TimeDelta::seconds(100);
    let mut w = workflow(Schedule::Time {
        period: "PT10S".into(),
        start: Some(start.to_rfc3339()),
        repeat: None,
    });
    let h = [
        Happening::Tick(99),
        Happening::Tick(1),
        Happening::Finish,
        // The server was away for 55 s: one run, not five.
        Happening::Tick(55),
        Happening::Finish,
        Happening::Tick(5),
    ];
    let started = play(&mut w, Settings::default(), &h);
    let at: Vec<i64> = started
        .iter()
        .map(|(t, _)| (*t - t0()).num_seconds())
        .collect();
    assert_eq!(at, vec![100, 155, 160]);
}

#[test]
fn a_daemon_skips_a_period_while_its_run_goes_on() {
    let mut w = workflow(Schedule::Daemon);
    let settings = Settings {
        period: TimeDelta::seconds(10),
    };
    let mut s = State::default();
    let (next, a) = step(&w, &s, settings, t0());
    apply(&mut w, &a);
    s = next;
    assert_eq!(runs(&a), 1);
    let (next, a) = step(&w, &s, settings, t0() + TimeDelta::seconds(10));
    assert_eq!(runs(&a), 0, "the first run still goes on");
    assert_eq!(next.skipped, 1);
    s = next;
    finished(&mut s);
    let (_, a) = step(&w, &s, settings, t0() + TimeDelta::seconds(15));
    assert_eq!(runs(&a), 0, "next slot at 20 s");
    let (_, a) = step(&w, &s, settings, t0() + TimeDelta::seconds(20));
    assert_eq!(runs(&a), 1);
}

#[test]
fn events_beyond_the_queue_limit_are_dropped_and_counted() {
    let w = workflow(Schedule::Event(vec!["e".into()]));
    let mut s = State {
        scheduled: true,
        ..State::default()
    };
    for n in 0..QUEUE_LIMIT + 5 {
        on_event(&w, &mut s, &["e".into()], json!(n));
    }
    assert_eq!(s.queue.len(), QUEUE_LIMIT);
    assert_eq!(s.dropped, 5);
    let unscheduled = &mut State::default();
    assert!(
        !on_event(&w, unscheduled, &["e".into()], json!(0)),
        "not scheduled: no run"
    );
}

/// Spec §5.6's table, row by row.
#[test]
fn status_changes_follow_the_runtime_table() {
    let tags = |what: &str| Action::Event(vec!["workflows:w".into(), what.into()]);
    let mut w = workflow(Schedule::Event(vec!["e".into()]));
    let scheduled = State {
        scheduled: true,
        ..State::default()
    };
    let idle = State::default();
    let cases = [
        (
            WorkflowStatus::Starting,
            &idle,
            vec![
                Action::SetStatus(WorkflowStatus::Running),
                tags("scheduled"),
            ],
        ),
        (
            WorkflowStatus::Running,
            &idle,
            vec![
                Action::SetStatus(WorkflowStatus::Running),
                tags("scheduled"),
            ],
        ),
        (
            WorkflowStatus::Starting,
            &scheduled,
            vec![Action::SetStatus(WorkflowStatus::Running)],
        ),
        (WorkflowStatus::Running, &scheduled, vec![]),
        (
            WorkflowStatus::Suspending,
            &scheduled,
            vec![
                Action::SetStatus(WorkflowStatus::Suspended),
                tags("unscheduled"),
            ],
        ),
        (
            WorkflowStatus::Suspended,
            &scheduled,
            vec![tags("unscheduled")],
        ),
        (
            WorkflowStatus::Suspending,
            &idle,
            vec![
                Action::SetStatus(WorkflowStatus::Suspended),
                tags("unscheduled"),
            ],
        ),
        (WorkflowStatus::Suspended, &idle, vec![]),
        (WorkflowStatus::Stopping, &scheduled, vec![]),
        (
            WorkflowStatus::Stopping,
            &idle,
            vec![Action::Delete, tags("unscheduled")],
        ),
        (WorkflowStatus::Restarting, &scheduled, vec![]),
        (
            WorkflowStatus::Restarting,
            &idle,
            vec![Action::SetStatus(WorkflowStatus::Starting)],
        ),
    ];
    for (status, state, want) in cases {
        w.status = status;
        let (after, actions) = step(&w, state, Settings::default(), t0());
        assert_eq!(actions, want, "{status:?} scheduled={}", state.scheduled);
        let scheduled_after = matches!(status, WorkflowStatus::Starting | WorkflowStatus::Running);
        assert_eq!(after.scheduled, scheduled_after, "{status:?}");
    }
}

#[test]
fn a_run_in_progress_finishes_before_a_stopping_workflow_goes() {
    let w = Workflow {
        status: WorkflowStatus::Stopping,
        ..workflow(Schedule::Daemon)
    };
    let mut s = State {
        running: true,
        ..State::default()
    };
    let (_, actions) = step(&w, &s, Settings::default(), t0());
    assert!(actions.is_empty(), "{actions:?}");
    finished(&mut s);
    let (_, actions) = step(&w, &s, Settings::default(), t0());
    assert_eq!(actions.first(), Some(&Action::Delete));
}

/// The CI flake of the SLA test: the API suspended a workflow between a pass's plan (run it)
/// and its first step (store `running`), so the run was never started. Once the workflow is
/// back, it runs — it does not wait for the run that never began.
#[test]
fn a_planned_run_that_was_not_started_does_not_hold_the_workflow() {
    let mut w = workflow(Schedule::Daemon);
    let settings = Settings {
        period: TimeDelta::seconds(1),
    };
    let (mut s, actions) = step(&w, &State::default(), settings, t0());
    assert_eq!(runs(&actions), 1, "{actions:?}");
    // The status store was refused: the rest of the actions are dropped.
    not_started(&mut s, None);
    w.status = WorkflowStatus::Suspending;
    let (next, actions) = step(&w, &s, settings, t0());
    apply(&mut w, &actions);
    s = next;
    assert_eq!(w.status, WorkflowStatus::Suspended);
    // Replaced while suspended: it starts afresh and runs at once.
    w.status = WorkflowStatus::Starting;
    let (_, actions) = step(&w, &s, settings, t0() + TimeDelta::seconds(2));
    assert_eq!(runs(&actions), 1, "{actions:?}");
}

#[test]
fn an_event_whose_run_was_not_started_waits_at_the_head_of_the_queue() {
    let mut w = workflow(Schedule::Event(vec!["deploy".into()]));
    let (mut s, actions) = step(&w, &State::default(), Settings::default(), t0());
    apply(&mut w, &actions);
    assert!(on_event(&w, &mut s, &["deploy".into()], json!({"n": 1})));
    assert!(on_event(&w, &mut s, &["deploy".into()], json!({"n": 2})));
    let (mut next, actions) = step(&w, &s, Settings::default(), t0());
    assert_eq!(
        actions,
        vec![Action::Run {
            data: Some(json!({"n": 1}))
        }]
    );
    not_started(&mut next, Some(json!({"n": 1})));
    let (_, actions) = step(&w, &next, Settings::default(), t0());
    assert_eq!(
        actions,
        vec![Action::Run {
            data: Some(json!({"n": 1}))
        }]
    );
}
