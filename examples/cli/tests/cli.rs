//! The `vamp` binary on the DSL fixtures: every valid one passes, every invalid one fails with
//! the documented kind at the documented line and column.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../vamp-core/tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn vamp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vamp"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn header(path: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(&format!("# {name}:"))
                .map(|v| v.trim().to_owned())
        })
}

#[test]
fn valid_fixtures_pass() {
    for path in fixtures("valid") {
        let file = path.to_str().unwrap();
        let (code, out, err) = vamp(&["validate", file]);
        assert_eq!(code, 0, "{file}: {err}");
        assert!(out.contains(": valid ("), "{out}");
    }
}

#[test]
fn invalid_fixtures_fail_at_the_documented_place() {
    for path in fixtures("invalid") {
        let file = path.to_str().unwrap();
        let expect = header(&path, "expect").unwrap();
        let (kind, at) = expect.split_once(" at ").unwrap();
        // --strict: an unresolved import is an error too, as the reader reports it.
        let mut args = vec!["validate", "--strict"];
        let kind_arg = header(&path, "kind");
        if let Some(k) = &kind_arg {
            args.extend(["--kind", k.as_str()]);
        }
        args.push(file);
        let (code, _, err) = vamp(&args);
        assert_eq!(code, 1, "{file} must be rejected");
        let first = err.lines().next().unwrap_or_default();
        let want = format!("{file}:{at}: error[{kind}]: ");
        assert!(
            first.starts_with(&want),
            "{file}\n  want: {want}\n  got:  {first}"
        );
    }
}

#[test]
fn all_files_at_once_and_the_exit_code_of_a_mix() {
    let mut args = vec!["validate".to_owned()];
    args.extend(fixtures("valid").iter().map(|p| p.display().to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(vamp(&refs).0, 0);
    args.push(fixtures("invalid")[0].display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(vamp(&refs).0, 1, "one invalid file makes the run fail");
}

#[test]
fn fmt_prints_what_validate_accepts() {
    let file = fixtures("valid")
        .into_iter()
        .find(|p| p.ends_with("blueprint-full.yml"))
        .unwrap();
    let (code, yaml, err) = vamp(&["fmt", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("normalized.yml");
    std::fs::write(&tmp, &yaml).unwrap();
    let (code, again, _) = vamp(&["fmt", tmp.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(again, yaml, "fmt is idempotent");
    let (code, json, _) = vamp(&["fmt", "-o", "json", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["kind"], "blueprints");
}

#[test]
fn bad_flags_are_usage_errors() {
    let (code, _, err) = vamp(&["validate", "--kind", "widget", "x.yml"]);
    assert_eq!(code, 2, "clap reports usage errors with 2");
    assert!(err.contains("unknown kind 'widget'"), "{err}");
    assert_eq!(vamp(&["validate"]).0, 2, "files are required");
}

#[test]
fn a_missing_file_fails_with_its_name() {
    let (code, _, err) = vamp(&["validate", "/nonexistent/blueprint.yml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/blueprint.yml"), "{err}");
}

/// Issue 17: offline, an import of a template that is not among the files is a warning (the
/// template may be stored on the server), unless `--strict`.
#[test]
fn an_unresolved_import_is_a_warning_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("breed.yml");
    std::fs::write(
        &file,
        "kind: breeds\nname: web:1\nimport: base\ndeployable: web:1\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (code, out, err) = vamp(&["validate", file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid (breeds/web:1)"), "{out}");
    assert!(
        err.contains("warning") && err.contains("template 'base'"),
        "{err}"
    );
    let (code, _, err) = vamp(&["validate", "--strict", file]);
    assert_eq!(code, 1);
    assert!(err.contains("ImportReferenceError"), "{err}");
    // A field the template would give is a warning too, not an error.
    std::fs::write(
        dir.path().join("breed.yml"),
        "kind: breeds\nname: web:1\nimport: base\n",
    )
    .unwrap();
    let (code, _, err) = vamp(&["validate", file]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("may provide it"), "{err}");
}

/// Issue 17: an SLA given as a stored SLA's name with escalations of its own, as Vamp's reader
/// takes it.
#[test]
fn an_sla_reference_may_carry_escalations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bp.yml");
    std::fs::write(
        &file,
        "kind: blueprints\nname: shop\nclusters:\n  web:\n    breed: web:1\n    sla:\n      reference: strict-sla\n      escalations:\n        - {type: scale_instances, minimum: 1, maximum: 3, scale_by: 1}\n",
    )
    .unwrap();
    let (code, out, err) = vamp(&["validate", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
}

#[test]
fn rollout_simulate_prints_one_timeline_per_seed_and_exits_with_the_phase() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rollout.yml");
    std::fs::write(
        &file,
        "kind: rollouts\nname: r\ngateway: shop/web/http\nstable: shop/web/v1/http\ncanary: shop/web/v2/http\nsteps:\n  - weight: 10%\n  - analysis: {}\n  - weight: 50%\n  - analysis: {}\nanalysis:\n  interval: 10s\n  min_requests: 50\n  metrics:\n    - {metric: success-rate, min: 99%, critical: true}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let args = [
        "rollout",
        "simulate",
        path,
        "--rps",
        "200",
        "--canary-error-rate",
        "5%",
        "--seed",
        "7",
    ];
    let (code, first, err) = vamp(&args);
    let (_, second, _) = vamp(&args);
    assert_eq!(first, second, "one seed, one timeline");
    assert_eq!(code, 22, "rolled back: {first}{err}");
    assert!(
        first.contains("verdict fail") && first.contains("outcome: RolledBack"),
        "{first}"
    );
    let (code, healthy, _) = vamp(&["rollout", "simulate", path, "--seed", "7"]);
    assert_eq!(code, 0, "{healthy}");
    let (code, _, err) = vamp(&["rollout", "simulate", path, "--canary-error-rate", "150%"]);
    assert_eq!(code, 2, "a usage error: {err}");
    let (code, _, err) = vamp(&["rollout", "simulate", "/nonexistent.yml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent.yml"), "{err}");
}
