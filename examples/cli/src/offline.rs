//! `vamp validate` and `vamp fmt`: read artifact files, report problems, print normalized YAML.
//!
//! One file: `validate` and `fmt` share the reading of files and the report, which are most of
//! it.

use std::io::{Read, Write};

use vamp_core::compose;
use vamp_core::dsl::{self, DslError, ErrorKind, Mark};
use vamp_core::model::{Artifact, Kind};

/// What `--kind` names: an artifact kind, or a docker-compose file to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// One of the artifact kinds.
    Artifact(Kind),
    /// A docker-compose file, read as the blueprint it converts to.
    DockerCompose,
}

impl InputKind {
    /// Reads `breed`, `breeds`, `event-query`, `docker-compose`, … (singular or plural).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        if matches!(t.as_str(), "docker-compose" | "docker-composes" | "compose") {
            return Ok(InputKind::DockerCompose);
        }
        Kind::parse(&t).map(InputKind::Artifact).ok_or_else(|| {
            format!(
                "unknown kind '{text}'; use one of breed, blueprint, deployment, gateway, route, \
                 condition, rewrite, scale, sla, escalation, workflow, event, event-query, \
                 template, docker-compose (plural forms too)"
            )
        })
    }
}

/// Output format of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Lines for people; errors as `file:line:column: error[Kind]: message` on stderr.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// One input file read into memory (`-` is standard input).
#[derive(Debug, Clone)]
pub struct Input {
    /// The name used in messages.
    pub name: String,
    /// The text, or why it could not be read.
    pub text: Result<String, String>,
}

impl Input {
    /// Reads a path, or standard input for `-`.
    pub fn read(path: &str) -> Self {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map(|_| s)
                .map_err(|e| e.to_string())
        } else {
            std::fs::read_to_string(path).map_err(|e| e.to_string())
        };
        Input {
            name: if path == "-" {
                "<stdin>".into()
            } else {
                path.into()
            },
            text,
        }
    }
}

/// The outcome for one file.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The file.
    pub name: String,
    /// Its artifacts, when valid.
    pub artifacts: Vec<Artifact>,
    /// Its problems; empty when valid.
    pub errors: Vec<DslError>,
    /// Notes from a docker-compose conversion (ignored fields).
    pub notes: Vec<compose::Note>,
}

impl Checked {
    /// True when the file has no problems.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

fn read_error(message: &str) -> DslError {
    DslError::new(
        ErrorKind::YamlParsingError,
        "",
        Mark::default(),
        format!("cannot read the file: {message}"),
        "check the path and permissions",
    )
}

/// Reads and validates every input. References are resolved against the artifacts of all
/// inputs together, so `vamp validate breeds.yml blueprint.yml` checks the blueprint against
/// those breeds; references to artifacts not given stay unchecked (the server may have them).
///
/// Without `strict`, an `import` of a template that is not among the inputs is a warning (it
/// may be stored on the server) and the document is checked without it; with `strict` it is
/// an error.
pub fn check(inputs: &[Input], kind: Option<InputKind>, strict: bool) -> Vec<Checked> {
    // First pass: everything that reads, as the reference source for the second.
    let mut known: Vec<Artifact> = Vec::new();
    for input in inputs {
        if let Ok(text) = &input.text
            && let Ok(Some(artifacts)) =
                read_artifacts(text, &input.name, kind).map(|(a, _)| Some(a))
        {
            known.extend(artifacts);
        }
    }
    inputs
        .iter()
        .map(|input| {
            let name = input.name.clone();
            let text = match &input.text {
                Ok(t) => t,
                Err(e) => {
                    return Checked {
                        name,
                        artifacts: Vec::new(),
                        errors: vec![read_error(e)],
                        notes: Vec::new(),
                    };
                }
            };
            match kind {
                Some(InputKind::DockerCompose) => check_compose(name, text, &known),
                Some(InputKind::Artifact(k)) => check_text(name, text, Some(k), &known, strict),
                None => check_text(name, text, None, &known, strict),
            }
        })
        .collect()
}

fn read_artifacts(
    text: &str,
    name: &str,
    kind: Option<InputKind>,
) -> Result<(Vec<Artifact>, Vec<compose::Note>), DslError> {
    match kind {
        Some(InputKind::DockerCompose) => {
            let import = compose::import(text, &blueprint_name(name))?;
            Ok((vec![Artifact::Blueprint(import.blueprint)], import.notes))
        }
        Some(InputKind::Artifact(k)) => Ok((dsl::read(text, Some(k))?, Vec::new())),
        None => Ok((dsl::read(text, None)?, Vec::new())),
    }
}

/// A blueprint name from a compose file name: `docker-compose.yml` in `shop/` → `shop`.
fn blueprint_name(file: &str) -> String {
    let path = std::path::Path::new(file);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("compose");
    let name = if matches!(stem, "docker-compose" | "compose" | "<stdin>") {
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .unwrap_or("compose")
    } else {
        stem
    };
    name.chars()
        .map(|c| {
            if c.is_whitespace() || "/[]".contains(c) {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// The artifacts of the given files, and an empty template for every template they import
/// that is not among them (noted): offline, such a template may well be stored on the server.
struct Lenient<'a> {
    known: &'a dyn dsl::ArtifactSource,
    missing: std::cell::RefCell<Vec<String>>,
}

impl dsl::ArtifactSource for Lenient<'_> {
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact> {
        self.known.artifact(kind, name).or_else(|| {
            (kind == Kind::Template).then(|| {
                self.missing.borrow_mut().push(name.to_owned());
                Artifact::Template(vamp_core::model::Template {
                    name: name.to_owned(),
                    ..Default::default()
                })
            })
        })
    }

    fn artifacts(&self, kind: Kind) -> Vec<Artifact> {
        self.known.artifacts(kind)
    }
}

fn check_text(
    name: String,
    text: &str,
    kind: Option<Kind>,
    known: &dyn dsl::ArtifactSource,
    strict: bool,
) -> Checked {
    let errors = match dsl::load(text, kind, Some(known)) {
        Ok(artifacts) => {
            return Checked {
                name,
                artifacts,
                errors: Vec::new(),
                notes: Vec::new(),
            };
        }
        Err(errors) => errors,
    };
    let unresolved = errors
        .iter()
        .find(|e| e.kind == ErrorKind::ImportReferenceError)
        .cloned();
    let Some(first) = unresolved.filter(|_| !strict) else {
        return Checked {
            name,
            artifacts: Vec::new(),
            errors,
            notes: Vec::new(),
        };
    };
    // Not strict: an import of a template that is not among the files is a warning, and the
    // document is checked without it; a field it lacks may come from that template.
    let lenient = Lenient {
        known,
        missing: std::cell::RefCell::default(),
    };
    let result = dsl::load(text, kind, Some(&lenient));
    let mut missing = lenient.missing.take();
    missing.dedup();
    let mut notes: Vec<compose::Note> = missing
        .iter()
        .map(|t| compose::Note {
            path: "import".into(),
            line: first.line,
            message: format!(
                "template '{t}' is not among the given files (it may be stored on the server): checked without it; --strict makes this an error"
            ),
        })
        .collect();
    match result {
        Ok(artifacts) => Checked {
            name,
            artifacts,
            errors: Vec::new(),
            notes,
        },
        Err(errors) => {
            let (maybe_from_template, errors): (Vec<_>, Vec<_>) = errors
                .into_iter()
                .partition(|e| e.kind == ErrorKind::MissingPathValueError);
            notes.extend(maybe_from_template.into_iter().map(|e| compose::Note {
                path: e.path.clone(),
                line: e.line,
                message: format!("{} (the imported template may provide it)", e.message),
            }));
            Checked {
                name,
                artifacts: Vec::new(),
                errors,
                notes,
            }
        }
    }
}

fn check_compose(name: String, text: &str, known: &dyn dsl::ArtifactSource) -> Checked {
    let import = match compose::import(text, &blueprint_name(&name)) {
        Ok(i) => i,
        Err(e) => {
            return Checked {
                name,
                artifacts: Vec::new(),
                errors: vec![e],
                notes: Vec::new(),
            };
        }
    };
    let artifact = Artifact::Blueprint(import.blueprint);
    // The converted blueprint has no source positions; its problems are reported by path.
    let errors = match dsl::expand_available(&artifact, known) {
        Ok(expanded) => dsl::validate::artifact(&expanded),
        Err(e) => vec![e],
    };
    Checked {
        name,
        artifacts: if errors.is_empty() {
            vec![artifact]
        } else {
            Vec::new()
        },
        errors,
        notes: import.notes,
    }
}

/// `vamp validate`: returns the exit code (0 all valid, 1 otherwise).
pub fn validate(
    inputs: &[Input],
    kind: Option<InputKind>,
    strict: bool,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<i32> {
    let checked = check(inputs, kind, strict);
    let valid = checked.iter().all(Checked::is_valid);
    match output {
        Output::Text => {
            for c in &checked {
                for e in &c.errors {
                    writeln!(err, "{}", e.display_with_file(&c.name))?;
                }
                for n in &c.notes {
                    writeln!(
                        err,
                        "{}:{}: warning: {}: {}",
                        c.name, n.line, n.path, n.message
                    )?;
                }
                if c.is_valid() {
                    let names: Vec<String> = c.artifacts.iter().map(describe).collect();
                    writeln!(out, "{}: valid ({})", c.name, names.join(", "))?;
                }
            }
        }
        Output::Json => {
            let report: Vec<serde_json::Value> = checked
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "file": c.name,
                        "valid": c.is_valid(),
                        "artifacts": c.artifacts.iter().map(|a| serde_json::json!({
                            "kind": a.kind().plural(), "name": a.name()
                        })).collect::<Vec<_>>(),
                        "errors": c.errors.iter().map(DslError::to_json).collect::<Vec<_>>(),
                        "notes": c.notes.iter().map(|n| serde_json::json!({
                            "path": n.path, "line": n.line, "message": n.message
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
    }
    Ok(i32::from(!valid))
}

fn describe(a: &Artifact) -> String {
    if a.name().is_empty() {
        a.kind().plural().to_owned()
    } else {
        format!("{}/{}", a.kind().plural(), a.name())
    }
}

/// Output format of `fmt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Normalized YAML documents.
    #[default]
    Yaml,
    /// Normalized JSON (an object, or an array for several artifacts).
    Json,
}

/// `vamp fmt`: prints the normalized form of every input; returns the exit code.
pub fn fmt(
    inputs: &[Input],
    kind: Option<InputKind>,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<i32> {
    let checked = check(inputs, kind, true);
    if checked.iter().any(|c| !c.is_valid()) {
        for c in &checked {
            for e in &c.errors {
                writeln!(err, "{}", e.display_with_file(&c.name))?;
            }
        }
        return Ok(1);
    }
    let artifacts: Vec<Artifact> = checked.iter().flat_map(|c| c.artifacts.clone()).collect();
    match format {
        Format::Yaml => {
            for c in &checked {
                for n in &c.notes {
                    writeln!(out, "# {}:{}: {}: {}", c.name, n.line, n.path, n.message)?;
                }
            }
            let yaml =
                dsl::to_yaml(&artifacts).map_err(|e| std::io::Error::other(e.to_string()))?;
            out.write_all(yaml.as_bytes())?;
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &dsl::to_json(&artifacts))?;
            writeln!(out)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, text: &str) -> Input {
        Input {
            name: name.into(),
            text: Ok(text.into()),
        }
    }

    fn run(inputs: &[Input], kind: Option<InputKind>) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = validate(inputs, kind, true, Output::Text, &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn kinds_parse_singular_and_plural() {
        assert_eq!(
            InputKind::parse("breeds"),
            Ok(InputKind::Artifact(Kind::Breed))
        );
        assert_eq!(
            InputKind::parse("event-query"),
            Ok(InputKind::Artifact(Kind::EventQuery))
        );
        assert_eq!(
            InputKind::parse("docker-compose"),
            Ok(InputKind::DockerCompose)
        );
        assert!(InputKind::parse("widget").unwrap_err().contains("breed"));
    }

    #[test]
    fn references_resolve_across_files() {
        let breeds = input(
            "b.yml",
            "kind: breeds\nname: web:1\ndeployable: x\nports: {http: 80}\n",
        );
        let bp = input(
            "bp.yml",
            "kind: blueprints\nname: bp\ngateways: {9050: web/admin}\nclusters: {web: web:1}\n",
        );
        let (code, _, err) = run(std::slice::from_ref(&bp), None);
        assert_eq!(code, 0, "alone, the reference cannot be checked: {err}");
        let (code, _, err) = run(&[breeds, bp], None);
        assert_eq!(code, 1);
        assert!(
            err.starts_with("bp.yml:3:18: error[UnresolvedGatewayPortError]"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_kind_names_the_flag() {
        let (code, _, err) = run(&[input("x.yml", "name: a\n")], None);
        assert_eq!(code, 1);
        assert!(err.contains("--kind"), "{err}");
        let (code, _, _) = run(
            &[input("x.yml", "name: a\ndeployable: b\n")],
            Some(InputKind::parse("breed").unwrap()),
        );
        assert_eq!(code, 0);
    }

    #[test]
    fn a_kind_mismatch_is_an_error() {
        let (code, _, err) = run(
            &[input("x.yml", "kind: breeds\nname: a\ndeployable: b\n")],
            Some(InputKind::parse("blueprint").unwrap()),
        );
        assert_eq!(code, 1);
        assert!(err.contains("error[InconsistentArtifactKind]"), "{err}");
    }

    #[test]
    fn unreadable_files_fail() {
        let missing = Input {
            name: "nope.yml".into(),
            text: Err("No such file or directory".into()),
        };
        let (code, _, err) = run(&[missing], None);
        assert_eq!(code, 1);
        assert!(
            err.contains("nope.yml") && err.contains("No such file"),
            "{err}"
        );
    }

    #[test]
    fn compose_files_validate_as_blueprints() {
        let text = "services:\n  web:\n    image: nginx\n    ports: ['80']\n    volumes: [a:/b]\n";
        let (code, out, err) = run(
            &[input("shop/docker-compose.yml", text)],
            Some(InputKind::DockerCompose),
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("blueprints/shop"), "{out}");
        assert!(err.contains("warning: services.web.volumes"), "{err}");
        let mut out = Vec::new();
        fmt(
            &[input("c.yml", text)],
            Some(InputKind::DockerCompose),
            Format::Yaml,
            &mut out,
            &mut Vec::new(),
        )
        .unwrap();
        let yaml = String::from_utf8(out).unwrap();
        assert!(
            yaml.starts_with("# c.yml:5: services.web.volumes"),
            "{yaml}"
        );
        assert!(
            dsl::load(&yaml, None, None).is_ok(),
            "fmt output reads back"
        );
    }

    #[test]
    fn json_report() {
        let mut out = Vec::new();
        let code = validate(
            &[input("a.yml", "kind: breeds\nname: a\n")],
            None,
            true,
            Output::Json,
            &mut out,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(code, 1);
        let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(report[0]["valid"], false);
        assert_eq!(report[0]["errors"][0]["kind"], "MissingPathValueError");
        assert_eq!(report[0]["errors"][0]["path"], "deployable");
    }
}
