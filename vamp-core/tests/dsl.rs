//! DSL fixtures: every construct of spec §1 reads, validates and round-trips; every error kind
//! of the §1.15 catalogue is reported with the documented kind, line and column.

use std::path::{Path, PathBuf};

use vamp_core::dsl::{self, ErrorKind};
use vamp_core::model::{Artifact, Kind};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "json")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", root.display());
    files
}

/// `# name: value` header lines.
fn header(text: &str, name: &str) -> Option<String> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(&format!("# {name}:"))
                .map(|v| v.trim().to_owned())
        })
}

fn expected_kind(text: &str) -> Option<Kind> {
    header(text, "kind").map(|k| Kind::parse(&k).expect("header kind"))
}

#[test]
fn valid_fixtures_load_and_round_trip() {
    for path in fixtures("valid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display();
        let artifacts = dsl::load(&text, expected_kind(&text), None)
            .unwrap_or_else(|e| panic!("{name}: {}", e[0].display_with_file("")));
        assert!(!artifacts.is_empty(), "{name}: no artifacts");

        let yaml = dsl::to_yaml(&artifacts).unwrap();
        let again = dsl::load(&yaml, None, None).unwrap_or_else(|e| {
            panic!(
                "{name}: normalized YAML does not read back: {:?}\n{yaml}",
                e[0]
            )
        });
        assert_eq!(again, artifacts, "{name}: YAML round trip\n{yaml}");

        let json = serde_json::to_string(&dsl::to_json(&artifacts)).unwrap();
        let again = dsl::load(&json, None, None)
            .unwrap_or_else(|e| panic!("{name}: normalized JSON does not read back: {:?}", e[0]));
        assert_eq!(again, artifacts, "{name}: JSON round trip");

        // Writing is deterministic: the normalized form is a fixed point.
        assert_eq!(
            dsl::to_yaml(&again).unwrap(),
            yaml,
            "{name}: normalized form is stable"
        );
    }
}

#[test]
fn invalid_fixtures_report_kind_line_and_column() {
    for path in fixtures("invalid") {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display();
        let expect =
            header(&text, "expect").unwrap_or_else(|| panic!("{name}: no '# expect:' header"));
        let (kind, at) = expect
            .split_once(" at ")
            .unwrap_or_else(|| panic!("{name}: bad header"));
        let Err(errors) = dsl::load(&text, expected_kind(&text), None) else {
            panic!("{name}: expected {expect}, but it is valid")
        };
        let first = &errors[0];
        assert_eq!(
            first.kind.name(),
            kind,
            "{name}: {}",
            first.display_with_file("")
        );
        assert_eq!(
            format!("{}:{}", first.line, first.column),
            at,
            "{name}: position of {}",
            first.display_with_file("")
        );
        assert!(!first.hint.is_empty(), "{name}: every error has a fix hint");
    }
}

/// Kinds produced outside the model layer, each with where its test lives.
const NOT_MODEL_LEVEL: &[(ErrorKind, &str)] = &[
    (
        ErrorKind::InconsistentArtifactName,
        "API: URL name vs body (tests/dsl.rs: names_must_match)",
    ),
    (
        ErrorKind::ArtifactNotFound,
        "strict expansion (tests/dsl.rs: expansion_reports_missing)",
    ),
    (
        ErrorKind::UnsupportedComposeFeature,
        "docker-compose import (src/compose.rs tests)",
    ),
    (
        ErrorKind::UnsupportedProtocolError,
        "docker-compose import (src/compose.rs tests)",
    ),
    (
        ErrorKind::UnresolvedDependencyError,
        "engine: merge (spec §3.3)",
    ),
    (ErrorKind::UnsupportedRouteWeight, "engine"),
    (ErrorKind::InvalidRouteWeight, "engine: slice (spec §3.4)"),
    (ErrorKind::NoAvailablePortError, "engine: port allocation"),
    (
        ErrorKind::InternalGatewayCreateError,
        "engine: gateways API",
    ),
    (
        ErrorKind::InternalGatewayUpdateError,
        "engine: gateways API",
    ),
    (
        ErrorKind::InternalGatewayRemoveError,
        "engine: gateways API",
    ),
    (ErrorKind::DeploymentServiceError, "engine: reconciler"),
    (ErrorKind::WorkflowUpdateError, "engine: workflows API"),
    (ErrorKind::InvalidConfigurationError, "server configuration"),
    (
        ErrorKind::LimitExceededError,
        "engine: limits (tests/engine.rs: limits_refuse_what_a_request_cannot_have)",
    ),
    (
        ErrorKind::UnsupportedDeployableError,
        "engine: the driver (tests/security.rs in vamp-server: what_cannot_be_served_or_is_too_big_is_refused_when_validated)",
    ),
    (
        ErrorKind::UnsupportedConditionError,
        "engine: the router (tests/security.rs in vamp-server: what_cannot_be_served_or_is_too_big_is_refused_when_validated)",
    ),
    (
        ErrorKind::UnresolvedRolloutRouteError,
        "engine: the stored gateway (tests/rollouts.rs in vamp-server: bad_rollouts_are_refused_naming_the_field_and_nothing_is_stored)",
    ),
    (
        ErrorKind::RolloutConflictError,
        "engine: the stored rollouts (tests/rollouts.rs in vamp-server: bad_rollouts_are_refused_naming_the_field_and_nothing_is_stored)",
    ),
];

#[test]
fn every_model_error_kind_has_an_invalid_fixture() {
    let covered: Vec<String> = fixtures("invalid")
        .iter()
        .filter_map(|p| header(&std::fs::read_to_string(p).unwrap(), "expect"))
        .map(|e| e.split(' ').next().unwrap().to_owned())
        .collect();
    let missing: Vec<&str> = ErrorKind::ALL
        .iter()
        .filter(|k| !NOT_MODEL_LEVEL.iter().any(|(n, _)| n == *k))
        .map(|k| k.name())
        .filter(|k| !covered.iter().any(|c| c == k))
        .collect();
    assert!(
        missing.is_empty(),
        "error kinds without a fixture: {missing:?}"
    );
}

#[test]
fn names_must_match() {
    let docs = dsl::read("kind: breeds\nname: a\ndeployable: x\n", None).unwrap();
    assert!(dsl::expect_name(&docs[0], "a").is_ok());
    let err = dsl::expect_name(&docs[0], "b").unwrap_err();
    assert_eq!(err.kind, ErrorKind::InconsistentArtifactName);
}

#[test]
fn expansion_reports_missing() {
    let text =
        "kind: blueprints\nname: bp\nclusters:\n  c:\n    breed: missing:1\n    scale: big\n";
    let bp = dsl::read(text, None).unwrap();
    let err = dsl::expand(&bp[0], &Vec::<Artifact>::new()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ArtifactNotFound);
    assert_eq!(err.path, "clusters.c.services[0].breed");
    // The lenient form keeps unknown references.
    assert_eq!(
        dsl::expand_available(&bp[0], &Vec::<Artifact>::new()).unwrap(),
        bp[0]
    );
}

#[test]
fn expansion_inlines_everything() {
    let store = dsl::read(
        "---\nkind: breeds\nname: b:1\ndeployable: x\ndependencies: {d: d:1}\n\
         ---\nkind: breeds\nname: d:1\ndeployable: y\n\
         ---\nkind: scales\nname: s\ncpu: 1\nmemory: 1GB\n\
         ---\nkind: conditions\nname: ff\ncondition: has cookie x\n\
         ---\nkind: routes\nname: r\nweight: 10%\ncondition: {ref: ff}\n",
        None,
    )
    .unwrap();
    let text = "---\nkind: blueprints\nname: bp\nclusters:\n  c:\n    breed: b:1\n    scale: s\n\
                ---\nkind: gateways\nname: g\nroutes:\n  x: r\n  y: {weight: 90%}\n";
    let input = dsl::read(text, None).unwrap();
    let Artifact::Blueprint(bp) = dsl::expand(&input[0], &store).unwrap() else {
        panic!()
    };
    let service = &bp.clusters["c"].services[0];
    let breed = service.breed.inline().unwrap();
    assert!(
        breed.dependencies["d"].inline().is_some(),
        "dependencies are expanded too"
    );
    assert_eq!(
        service.scale.as_ref().unwrap().inline().unwrap().instances,
        1
    );
    let Artifact::Gateway(g) = dsl::expand(&input[1], &store).unwrap() else {
        panic!()
    };
    let route = g.routes["x"].inline().unwrap();
    assert!(route.condition.as_ref().unwrap().inline().is_some());
}

#[test]
fn kind_is_required_without_an_expected_kind() {
    let err = dsl::read("name: a\ndeployable: x\n", None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::MissingPathValueError);
    assert!(err.hint.contains("--kind"), "{}", err.hint);
    // With an expected kind the field is optional.
    assert!(dsl::read("name: a\ndeployable: x\n", Some(Kind::Breed)).is_ok());
}

#[test]
fn singular_and_plural_kinds_are_accepted() {
    for kind in ["breed", "breeds", "Breeds"] {
        let text = format!("kind: {kind}\nname: a\ndeployable: x\n");
        assert_eq!(
            dsl::read(&text, Some(Kind::Breed)).unwrap()[0].kind(),
            Kind::Breed
        );
    }
}

#[test]
fn empty_input_has_no_artifacts() {
    assert!(dsl::read("", None).unwrap().is_empty());
    assert!(dsl::read("# only a comment\n", None).unwrap().is_empty());
}

/// The normalized form, reviewed like code: a writer change shows up in the diff.
#[test]
fn normalized_form_snapshot() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/blueprint-full.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let artifacts = dsl::load(&text, None, None).unwrap();
    insta::assert_snapshot!(dsl::to_yaml(&artifacts).unwrap());
}

/// Issue 17: `sla: {reference: x, escalations: […]}` expands to the stored SLA with both its
/// own escalations and the reference's.
#[test]
fn an_sla_reference_with_escalations_expands_to_both() {
    use vamp_core::model::{EscalationKind, Ref};
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/valid/sla-reference-escalations.yml");
    let all = dsl::read(&std::fs::read_to_string(path).unwrap(), None).unwrap();
    let Artifact::Blueprint(bp) = dsl::expand(&all[1], &all).unwrap() else {
        panic!()
    };
    let Some(Ref::Inline(sla)) = &bp.clusters["web"].sla else {
        panic!("expanded inline: {:?}", bp.clusters["web"].sla)
    };
    assert!(matches!(
        sla.kind,
        vamp_core::model::SlaKind::ResponseTimeSlidingWindow { upper: 1000, .. }
    ));
    let [Ref::Inline(group)] = sla.escalations.as_slice() else {
        panic!("{:?}", sla.escalations)
    };
    let EscalationKind::ToAll(both) = &group.kind else {
        panic!("{group:?}")
    };
    assert_eq!(
        both.len(),
        2,
        "the stored SLA's escalation and the reference's"
    );
}
