//! The DSL's written form and its error messages as snapshots (issue 20): a change to the
//! writer or to what a user is told shows up as a reviewed diff.

use std::path::Path;

use vamp_core::dsl;

fn fixture(dir: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name);
    std::fs::read_to_string(path).expect("fixture")
}

/// Every valid fixture, read and written back: the normalized form of each kind and form.
#[test]
fn every_valid_fixture_written_back() {
    let mut out = String::new();
    for name in [
        "breed-forms.yml",
        "gateway-forms.yml",
        "blueprint-cluster-forms.yml",
        "sla-escalation-scale.yml",
        "multi-kind.yml",
        "workflow.yml",
    ] {
        let artifacts = dsl::load(&fixture("valid", name), None, None)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        out.push_str(&format!("# {name}\n"));
        out.push_str(&dsl::to_yaml(&artifacts).expect("written"));
    }
    insta::assert_snapshot!(out);
}

/// A rollout with every kind of step, check and webhook, written back.
#[test]
fn a_rollout_written_back() {
    let text = "kind: rollouts\nname: sava-release\ngateway: sava/sava/webport\nstable: sava/sava/sava:1.0.0/webport\ncanary: sava/sava/sava:1.1.0/webport\nsteps:\n  - weight: 10%\n  - analysis: {}\n  - pause: 30s\n  - pause: {}\n  - weight: 50%\nanalysis:\n  interval: 10s\n  min_requests: 50\n  metrics:\n    - {metric: success-rate, min: 99%, critical: true}\n    - {metric: latency-p99, max: 500ms}\n    - {metric: latency-mean, max_ratio: 1.5}\n";
    let artifacts = dsl::read(text, None).expect("a rollout");
    insta::assert_snapshot!(dsl::to_yaml(&artifacts).expect("written"));
}

/// What a user is told for each invalid fixture: the file, line and column, the error's name,
/// the path, and the hint.
#[test]
fn every_invalid_fixture_explained() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let text = fixture("invalid", &name);
        match dsl::load(&text, None, None) {
            Ok(_) => panic!("{name} is accepted"),
            Err(errors) => {
                for e in errors {
                    out.push_str(&format!("{}\n", e.display_with_file(&name)));
                }
            }
        }
    }
    insta::assert_snapshot!(out);
}
