//! Runs to completion (workflows, spec §5.6): the command split into argv without a shell, in
//! its own process group, with the run's environment and the host's `PATH` only — none of the
//! server's own environment (its token, its store credentials) reaches a workflow. Lines of
//! standard output and error go to the sink as they come (each cut at [`MAX_LINE`] bytes);
//! at the timeout the whole group is killed.

use std::process::Stdio;

use chrono::Utc;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use vamp_core::traits::{LineSink, LogLine, RunOutcome, RunSpec};
use vamp_core::{Error, Result};

use super::{ContainerDriver, ProcessDriver, command};
use crate::lines::Splitter;

/// The longest line kept, in bytes; the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;

impl ProcessDriver {
    pub(super) async fn run_command(
        &self,
        spec: &RunSpec,
        lines: LineSink<'_>,
    ) -> Result<RunOutcome> {
        self.check_deployable(&spec.breed.deployable)
            .map_err(|message| Error::Invalid {
                what: "deployable",
                message,
            })?;
        let argv =
            command::split(&spec.breed.deployable.definition).map_err(|e| Error::Invalid {
                what: "command",
                message: e.to_string(),
            })?;
        let Some((program, args)) = argv.split_first() else {
            return Err(Error::Invalid {
                what: "command",
                message: "the command is empty".into(),
            });
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(spec.environment.iter())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                return Ok(RunOutcome {
                    status: None,
                    failure: Some(format!("cannot start '{program}': {e}")),
                });
            }
        };
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let finished = async {
            tokio::join!(
                read_lines(stdout, false, lines),
                read_lines(stderr, true, lines)
            );
            child.wait().await
        };
        let outcome = match tokio::time::timeout(spec.timeout, finished).await {
            Ok(Ok(exit)) => match exit.code() {
                Some(0) => RunOutcome {
                    status: Some(0),
                    failure: None,
                },
                Some(code) => RunOutcome {
                    status: Some(code),
                    failure: Some(format!("exited with status {code}")),
                },
                None => RunOutcome {
                    status: None,
                    failure: Some(format!("ended by a signal ({exit})")),
                },
            },
            Ok(Err(e)) => RunOutcome {
                status: None,
                failure: Some(format!("cannot wait for '{program}': {e}")),
            },
            Err(_) => RunOutcome {
                status: None,
                failure: Some(format!("killed after its timeout of {:?}", spec.timeout)),
            },
        };
        // Whatever it started in its group goes with it.
        if let Some(group) = group {
            let _ = killpg(group, Signal::SIGKILL);
        }
        Ok(outcome)
    }
}

/// Sends each line of `from` to `sink`, cut at [`MAX_LINE`] bytes; a last line without an end
/// counts too.
async fn read_lines(from: Option<impl AsyncRead + Unpin>, stderr: bool, sink: LineSink<'_>) {
    let Some(mut from) = from else {
        return;
    };
    let mut lines = Splitter::with_limit(MAX_LINE);
    let emit = |text: String| {
        sink(LogLine {
            at: Utc::now(),
            stderr,
            text,
        });
    };
    let mut buf = vec![0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.push(&buf[..n]).into_iter().for_each(emit),
        }
    }
    lines.finish().into_iter().for_each(emit);
}
