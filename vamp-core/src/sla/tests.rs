use proptest::prelude::*;

use super::*;
use crate::model::{Cpu, Memory, Scale, ScaleBy};

fn scale(instances: u32, cpu_millis: u64, memory_mb: u64) -> Scale {
    Scale {
        instances,
        cpu: Cpu::from_millis(cpu_millis),
        memory: Memory::from_bytes(memory_mb * 1_000_000),
        ..Scale::default()
    }
}

fn instances(minimum: i64, maximum: i64, scale_by: i64, target: Option<&str>) -> Step {
    Step::Instances(ScaleBy {
        minimum,
        maximum,
        scale_by,
        target: target.map(str::to_owned),
    })
}

fn scales(list: &[(&str, Scale)]) -> Scales {
    list.iter()
        .map(|(c, s)| ((*c).to_owned(), s.clone()))
        .collect()
}

#[test]
fn the_bounds_themselves_decide_nothing() {
    assert_eq!(evaluate(1000, 100, &[1000.0]), None);
    assert_eq!(evaluate(1000, 100, &[100.0]), None);
    assert_eq!(evaluate(1000, 100, &[1000.1]), Some(Direction::Escalate));
    assert_eq!(evaluate(1000, 100, &[f64::NAN]), None);
}

#[test]
fn to_one_escalates_from_the_head_and_deescalates_from_the_tail() {
    let steps = [
        instances(1, 3, 1, None),
        Step::Cpu(ScaleBy {
            minimum: 0.5,
            maximum: 2.0,
            scale_by: 0.5,
            target: None,
        }),
    ];
    let now = scales(&[("web", scale(2, 1000, 256))]);
    let up = plan(&steps, Direction::Escalate, "web", &now);
    assert_eq!(up["web"], scale(3, 1000, 256), "instances first");
    let down = plan(&steps, Direction::DeEscalate, "web", &now);
    assert_eq!(down["web"], scale(2, 500, 256), "cpu first when going down");
    // At the instance maximum, escalating falls through to cpu.
    let full = scales(&[("web", scale(3, 1000, 256))]);
    assert_eq!(
        plan(&steps, Direction::Escalate, "web", &full)["web"],
        scale(3, 1500, 256)
    );
}

#[test]
fn to_all_keeps_what_applied_when_a_later_member_cannot() {
    // Vamp lost the first change when the second could not apply (spec §10 Q8).
    let steps = [Step::All(vec![
        instances(1, 5, 1, None),
        Step::Memory(ScaleBy {
            minimum: 128.0,
            maximum: 256.0,
            scale_by: 128.0,
            target: None,
        }),
    ])];
    let now = scales(&[("web", scale(1, 1000, 256))]);
    assert_eq!(
        plan(&steps, Direction::Escalate, "web", &now)["web"],
        scale(2, 1000, 256)
    );
    let both = plan(
        &steps,
        Direction::DeEscalate,
        "web",
        &scales(&[("web", scale(2, 1000, 256))]),
    );
    assert_eq!(both["web"], scale(1, 1000, 128));
}

#[test]
fn a_target_scales_another_cluster_and_a_missing_one_applies_nowhere() {
    let now = scales(&[("web", scale(1, 1000, 256)), ("db", scale(1, 1000, 256))]);
    let changed = plan(
        &[instances(1, 4, 2, Some("db"))],
        Direction::Escalate,
        "web",
        &now,
    );
    assert_eq!(changed.len(), 1);
    assert_eq!(changed["db"].instances, 3);
    assert!(
        plan(
            &[instances(1, 4, 2, Some("cache"))],
            Direction::Escalate,
            "web",
            &now
        )
        .is_empty()
    );
    assert!(
        plan(
            &[Step::Ignored("notify".into())],
            Direction::Escalate,
            "web",
            &now
        )
        .is_empty()
    );
}

proptest! {
    /// A scale escalation leaves the instances within its bounds, changes only its target,
    /// and going up then down comes back to the start.
    #[test]
    fn instance_escalations_stay_within_bounds(
        current in 0u32..20,
        minimum in 0i64..10,
        span in 0i64..10,
        by in -3i64..5,
        up in any::<bool>(),
    ) {
        let maximum = minimum + span;
        let steps = [instances(minimum, maximum, by, None)];
        let now = scales(&[("web", scale(current, 100, 64)), ("other", scale(1, 100, 64))]);
        let direction = if up { Direction::Escalate } else { Direction::DeEscalate };
        let changed = plan(&steps, direction, "web", &now);
        prop_assert!(!changed.contains_key("other"));
        if let Some(s) = changed.get("web") {
            prop_assert!((minimum..=maximum).contains(&i64::from(s.instances)));
            prop_assume!((minimum..=maximum).contains(&i64::from(current)));
            let back = if up { Direction::DeEscalate } else { Direction::Escalate };
            let returned = plan(&steps, back, "web", &changed);
            prop_assert_eq!(returned.get("web").map(|s| s.instances), Some(current));
        }
    }

    /// Whatever the escalation tree, no cluster outside the scales appears and nothing that
    /// did not change is reported.
    #[test]
    fn plans_report_only_changes(
        tree in prop::collection::vec((0i64..4, 0i64..4, -2i64..3, any::<bool>()), 0..6),
        nested_all in any::<bool>(),
        up in any::<bool>(),
    ) {
        let members: Vec<Step> = tree
            .iter()
            .map(|(min, span, by, other)| {
                instances(*min, min + span, *by, other.then_some("db"))
            })
            .collect();
        let steps = if nested_all { vec![Step::All(members)] } else { members };
        let now = scales(&[("web", scale(2, 100, 64)), ("db", scale(1, 100, 64))]);
        let direction = if up { Direction::Escalate } else { Direction::DeEscalate };
        for (cluster, s) in plan(&steps, direction, "web", &now) {
            prop_assert!(now.contains_key(&cluster));
            prop_assert_ne!(now.get(&cluster), Some(&s));
        }
    }
}
