//! `vamp workflow …` (issue 22): a workflow's status and runs, suspend and restart, and its
//! runs' output — once, or followed as new lines come.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::online::{Client, Failure, segment};

fn path(name: &str) -> String {
    format!("/workflows/{}", segment(name))
}

/// `vamp workflow status NAME`: the status, the schedule, the counts and the last runs.
///
/// # Errors
/// The server's refusal (an unknown workflow) or that it cannot be reached.
pub async fn status(client: &Client, name: &str) -> Result<String, Failure> {
    let w = client.get(&path(name)).await?;
    let e = client.get(&format!("{}/executions", path(name))).await?;
    let mut out = String::new();
    let schedule = match &w["schedule"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let _ = writeln!(
        out,
        "workflow {name}: {}  schedule {schedule}",
        w["status"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "runs: {} succeeded, {} failed{}{}",
        e["succeeded_total"],
        e["failed_total"],
        count_note(&e["skipped"], "periods skipped while a run went on"),
        count_note(&e["dropped_events"], "events dropped (100 waiting)"),
    );
    for run in e["last"].as_array().into_iter().flatten().take(5) {
        let _ = writeln!(out, "  {}", run_line(run));
    }
    Ok(out)
}

fn count_note(n: &Value, what: &str) -> String {
    match n.as_u64() {
        Some(n) if n > 0 => format!(", {n} {what}"),
        _ => String::new(),
    }
}

/// `#12 2026-12-07T10:00:00Z succeeded` (and the failure, when it failed).
fn run_line(run: &Value) -> String {
    let mut line = format!(
        "#{} {} {}",
        run["id"],
        run["started"].as_str().unwrap_or("?"),
        run["status"].as_str().unwrap_or("?")
    );
    if let Some(f) = run["failure"].as_str() {
        let _ = write!(line, ": {f}");
    }
    line
}

/// `vamp workflow suspend|restart NAME`: sets the status (`suspending`, `restarting`); the
/// runtime takes it from there.
///
/// # Errors
/// The server's refusal or that it cannot be reached.
pub async fn set_status(client: &Client, name: &str, status: &str) -> Result<String, Failure> {
    let w = client
        .with_body(
            reqwest::Method::PUT,
            &format!("{}/status", path(name)),
            status,
        )
        .await?;
    Ok(format!(
        "workflow {name}: {}\n",
        w["status"].as_str().unwrap_or(status)
    ))
}

/// `vamp workflow logs NAME [--follow]`: the output of the runs the server keeps, oldest
/// first, each run under a header; with `follow`, then every new line and run as it comes
/// (polled each second) until interrupted.
///
/// # Errors
/// The server's refusal or that it cannot be reached; writing to `out`.
pub async fn logs(
    client: &Client,
    name: &str,
    follow: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure {
        code: 1,
        message: format!("cannot write: {e}"),
    };
    // (run id, lines printed, finished) of what was printed.
    let mut printed: Vec<(u64, usize, bool)> = Vec::new();
    loop {
        let e = client.get(&format!("{}/executions", path(name))).await?;
        let mut runs: Vec<&Value> = e["last"].as_array().into_iter().flatten().collect();
        runs.reverse();
        for run in runs {
            let id = run["id"].as_u64().unwrap_or(0);
            let finished = run["finished"].is_string();
            let lines = run["log"].as_array().map_or(&[][..], Vec::as_slice);
            let seen = printed.iter_mut().find(|(i, _, _)| *i == id);
            let (from, was_finished) = match seen {
                Some((_, n, done)) => (*n, *done),
                None => {
                    writeln!(
                        out,
                        "== run #{id} {}",
                        run["started"].as_str().unwrap_or("?")
                    )
                    .map_err(io)?;
                    printed.push((id, 0, false));
                    (0, false)
                }
            };
            for line in lines.iter().skip(from) {
                let text = line["text"].as_str().unwrap_or_default();
                if line["stderr"] == true {
                    writeln!(out, "! {text}").map_err(io)?;
                } else {
                    writeln!(out, "  {text}").map_err(io)?;
                }
            }
            if finished && !was_finished {
                writeln!(out, "== {}", run_line(run)).map_err(io)?;
            }
            if let Some(p) = printed.iter_mut().find(|(i, _, _)| *i == id) {
                *p = (id, lines.len(), finished);
            }
        }
        out.flush().map_err(io)?;
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
