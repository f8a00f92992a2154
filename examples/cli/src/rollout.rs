//! `vamp rollout …` (issue 19): watch a rollout, command it, and simulate one offline.
//!
//! Exit codes of `status` and `simulate` tell the phase: 0 succeeded, 20 progressing, 21
//! paused, 22 rolled back, 23 aborted (and the usual 1 refused, 3 unreachable).

use std::fmt::Write as _;
use std::io::Write;

use serde_json::Value;
use vamp_core::model::Artifact;
use vamp_core::rollout::plan;
use vamp_core::rollout::sim::{TrafficModel, traffic};
use vamp_core::rollout::{Action, Phase, Weights};

use crate::online::{Client, EventStream, Failure, REFUSED, UNREACHABLE};

/// Exit code: progressing.
pub const PROGRESSING: i32 = 20;
/// Exit code: paused.
pub const PAUSED: i32 = 21;
/// Exit code: rolled back.
pub const ROLLED_BACK: i32 = 22;
/// Exit code: aborted.
pub const ABORTED: i32 = 23;

/// The exit code of a phase by name (0 for `Succeeded`).
pub fn phase_code(phase: &str) -> i32 {
    match phase {
        "Succeeded" => 0,
        "Paused" => PAUSED,
        "RolledBack" => ROLLED_BACK,
        "Aborted" => ABORTED,
        _ => PROGRESSING,
    }
}

fn is_final(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "RolledBack" | "Aborted")
}

/// What a step is, from the rollout as the API shows it (`weight 10%`, `analysis`, …).
fn step_text(step: &Value) -> String {
    match step.as_object().and_then(|m| m.iter().next()) {
        Some((k, v)) if k == "weight" => format!("weight {}", v.as_str().unwrap_or_default()),
        Some((k, v)) if k == "pause" => match v {
            Value::Object(m) if m.is_empty() => "pause until promoted".to_owned(),
            other => format!(
                "pause {}",
                other.as_str().map_or(other.to_string(), str::to_owned)
            ),
        },
        Some((k, _)) => k.clone(),
        None => "?".to_owned(),
    }
}

/// A rollout and its status as a few lines for people.
pub fn summary(r: &Value) -> String {
    let s = &r["status"];
    let name = r["name"].as_str().unwrap_or_default();
    let mut out = String::new();
    let Some(phase) = s["phase"].as_str() else {
        let _ = writeln!(out, "rollout {name}: not begun yet");
        return out;
    };
    let steps = r["steps"].as_array().map_or(&[][..], Vec::as_slice);
    let step = s["step"].as_u64().unwrap_or(0);
    let at = usize::try_from(step)
        .ok()
        .and_then(|i| steps.get(i))
        .map_or_else(|| "done".to_owned(), step_text);
    let _ = writeln!(
        out,
        "rollout {name}: {phase}, step {}/{} ({at})",
        (step + 1).min(steps.len() as u64),
        steps.len()
    );
    for (role, key) in [("stable", "stable"), ("canary", "canary")] {
        let _ = writeln!(
            out,
            "  {role}  {}  {}%",
            r[key].as_str().unwrap_or_default(),
            s["weights"][key].as_u64().unwrap_or(0)
        );
    }
    if let Some(reason) = s["reason"].as_str() {
        let _ = writeln!(out, "  reason  {reason}");
    }
    if let Some(last) = s["intervals"].as_array().and_then(|i| i.last()) {
        let reasons: Vec<&str> = last["checks"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|c| c["reason"].as_str())
            .collect();
        let _ = writeln!(
            out,
            "  last verdict  {} at {}: {}",
            last["verdict"].as_str().unwrap_or_default(),
            last["at"].as_str().unwrap_or_default(),
            reasons.join("; ")
        );
    }
    out
}

fn path(name: &str) -> String {
    format!("/rollouts/{}", vamp_core::traits::kv::encode_segment(name))
}

/// `vamp rollout status NAME [--watch]`: the rollout's phase, step, weights and last verdict
/// with its numbers. With `watch`, redrawn on every event of the rollout (the SSE stream) until
/// a final phase, each phase change kept on screen; `terminal` clears the screen between
/// draws. Returns the phase's exit code.
///
/// # Errors
/// The server's refusal (an unknown rollout), or that it cannot be reached.
pub async fn status(
    client: &Client,
    name: &str,
    watch: bool,
    terminal: bool,
    out: &mut dyn Write,
) -> Result<i32, Failure> {
    let write = |out: &mut dyn Write, text: &str| {
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    };
    // Subscribed before the first look, so no change falls between the two.
    let mut stream = if watch {
        Some(EventStream::open(client, &[format!("rollouts:{name}")], None).await?)
    } else {
        None
    };
    let mut r = client.get(&path(name)).await?;
    let mut changes: Vec<String> = Vec::new();
    let mut last_drawn = String::new();
    loop {
        let phase = r["status"]["phase"]
            .as_str()
            .unwrap_or("Progressing")
            .to_owned();
        let mut screen = summary(&r);
        if watch && !changes.is_empty() {
            screen.push_str("changes:\n");
            for c in &changes {
                let _ = writeln!(screen, "  {c}");
            }
        }
        if screen != last_drawn {
            if terminal {
                write(out, &format!("\x1b[2J\x1b[H{screen}"));
            } else {
                write(out, &format!("{screen}\n"));
            }
            last_drawn = screen;
        }
        let Some(events) = stream.as_mut() else {
            return Ok(phase_code(&phase));
        };
        if is_final(&phase) {
            return Ok(phase_code(&phase));
        }
        let Some(data) = events.next().await? else {
            return Err(Failure {
                code: UNREACHABLE,
                message: "the server ended the event stream".into(),
            });
        };
        let event: Value = serde_json::from_str(&data).unwrap_or_default();
        let tags: Vec<&str> = event["tags"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if tags.contains(&"phase") || tags.contains(&"warning") {
            let when = event["timestamp"].as_str().unwrap_or_default();
            let time = when.get(11..19).unwrap_or(when);
            changes.push(format!(
                "{time}  {}",
                event["value"]["text"].as_str().unwrap_or_default()
            ));
        }
        r = client.get(&path(name)).await?;
    }
}

/// `vamp rollout promote|abort|pause|resume|retry NAME` (`--full` for promote): the status
/// after it.
///
/// # Errors
/// The server's refusal (a command that does not fit the phase), or that it cannot be reached.
pub async fn command(
    client: &Client,
    name: &str,
    command: &str,
    full: bool,
) -> Result<String, Failure> {
    let query = if full { "?full=true" } else { "" };
    let status = client
        .post_empty(&format!("{}/{command}{query}", path(name)))
        .await?;
    let mut r = client.get(&path(name)).await?;
    if r["status"].is_null() {
        r["status"] = status["status"].clone();
    }
    Ok(summary(&r))
}

/// `vamp rollout simulate FILE`: the rollout's planner on a virtual clock, ticking every
/// second against simulated traffic; the timeline (every step, verdict and phase change) and
/// the phase's exit code. Provider checks answer within their bounds and webhooks say yes:
/// the simulation is about the built-in metrics.
///
/// # Errors
/// When the file is not one rollout.
pub fn simulate(
    text: &str,
    model: TrafficModel,
    seed: u64,
    seconds: i64,
) -> Result<(String, i32), Failure> {
    let refused = |message: String| Failure {
        code: REFUSED,
        message,
    };
    let artifacts = vamp_core::dsl::read(text, Some(vamp_core::model::Kind::Rollout))
        .map_err(|e| refused(e.to_string()))?;
    let [Artifact::Rollout(rollout)] = artifacts.as_slice() else {
        return Err(refused("the file must hold exactly one rollout".into()));
    };
    let start = Weights {
        stable: 100,
        canary: 0,
    };
    let timeline = plan::simulate(rollout, start, 1, seconds, traffic(model, seed, 1));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "simulating rollout {} at {} requests/s: stable {}% errors, {} ms; canary {}% errors, {} ms; seed {seed}",
        rollout.name,
        model.rps,
        model.stable_error_rate * 100.0,
        model.stable_ms,
        model.canary_error_rate * 100.0,
        model.canary_ms
    );
    for (i, (_, actions)) in timeline.iter().enumerate() {
        for action in actions {
            if let Action::Event { value, .. } = action {
                let _ = writeln!(
                    out,
                    "{i:>6}s  {}",
                    value["text"].as_str().unwrap_or_default()
                );
            }
        }
    }
    let Some((end, _)) = timeline.last() else {
        return Err(refused("nothing was simulated".into()));
    };
    let v = &end.verdicts;
    let _ = writeln!(
        out,
        "outcome: {} after {} s ({} verdicts: {} pass, {} fail, {} inconclusive)",
        end.phase.as_str(),
        timeline.len().saturating_sub(1),
        v.pass + v.fail + v.inconclusive + v.error,
        v.pass,
        v.fail,
        v.inconclusive
    );
    if end.phase == Phase::Progressing {
        let _ = writeln!(
            out,
            "(still progressing after {seconds} s: raise --duration)"
        );
    }
    Ok((out, phase_code(end.phase.as_str())))
}

/// Reads a rate written as a fraction (`0.05`) or a percentage (`5%`).
///
/// # Errors
/// A message naming the value, for clap.
pub fn rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("'{text}' is not a rate: write 0.05 or 5%"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{text}' is not between 0 and 1 (0% and 100%)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "kind: rollouts\nname: r\ngateway: shop/web/http\nstable: shop/web/v1/http\ncanary: shop/web/v2/http\nsteps:\n  - weight: 10%\n  - analysis: {}\n  - weight: 50%\n  - analysis: {}\nanalysis:\n  interval: 10s\n  min_requests: 50\n  metrics:\n    - {metric: success-rate, min: 99%, critical: true}\n";

    #[test]
    fn a_seed_gives_one_timeline() {
        let model = TrafficModel {
            canary_error_rate: 0.2,
            ..TrafficModel::default()
        };
        let (a, code) = simulate(SPEC, model, 42, 3_600).unwrap();
        let (b, _) = simulate(SPEC, model, 42, 3_600).unwrap();
        assert_eq!(a, b);
        assert_eq!(code, ROLLED_BACK, "{a}");
        assert!(
            a.contains("verdict fail") && a.contains("RolledBack"),
            "{a}"
        );
        let (healthy, code) = simulate(SPEC, TrafficModel::default(), 42, 3_600).unwrap();
        assert_eq!(code, 0, "{healthy}");
        assert!(healthy.contains("outcome: Succeeded"), "{healthy}");
    }

    #[test]
    fn rates_read_as_fractions_or_percentages() {
        assert_eq!(rate("0.05"), Ok(0.05));
        assert_eq!(rate("5%"), Ok(0.05));
        assert!(rate("150%").is_err());
        assert!(rate("much").unwrap_err().contains("much"));
    }

    #[test]
    fn a_summary_names_phase_step_weights_and_verdict() {
        let r = serde_json::json!({
            "name": "r", "stable": "a", "canary": "b",
            "steps": [{"weight": "10%"}, {"analysis": {}}],
            "status": {"phase": "Paused", "step": 1, "weights": {"stable": 90, "canary": 10},
                       "reason": "3 intervals without enough evidence",
                       "intervals": [{"verdict": "inconclusive", "at": "t", "checks": [{"reason": "12 canary requests in 30 s, 50 needed"}]}]}
        });
        let text = summary(&r);
        for want in [
            "Paused, step 2/2 (analysis)",
            "canary  b  10%",
            "12 canary requests",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }
}
