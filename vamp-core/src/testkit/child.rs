//! A program a test runs: killed (and reaped) when dropped, so a failing test leaves nothing
//! behind, with its standard output as lines on a channel.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running child process and its stdout lines.
#[derive(Debug)]
pub struct Running {
    /// The process (its stdout is taken; stderr goes to the test's).
    pub child: Child,
    /// Its stdout, line by line, as it writes them.
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `command` with its stdout captured line by line.
    ///
    /// # Panics
    /// When the program cannot start: a test cannot go on then.
    pub fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the program under test");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The first line starting with `start` within `limit` (earlier lines are skipped).
    ///
    /// # Panics
    /// When none comes in time, or the program closed its stdout; the message ends with the
    /// last lines skipped, to say where the program got to.
    pub fn wait_for_line(&self, start: &str, limit: Duration) -> String {
        const KEPT: usize = 20;
        let deadline = Instant::now() + limit;
        let mut skipped = std::collections::VecDeque::with_capacity(KEPT);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(start) => return line,
                Ok(line) => {
                    if skipped.len() == KEPT {
                        skipped.pop_front();
                    }
                    skipped.push_back(line);
                }
                Err(e) => panic!(
                    "no line starting with '{start}' within {limit:?}: {e}; the last lines:\n{}",
                    Vec::from(skipped).join("\n")
                ),
            }
        }
    }
}

/// Dropped while it runs (a test that panicked): asked to stop with SIGTERM first, so a
/// server stops what it started (the demo's services) instead of leaving them orphaned, and
/// killed if it has not stopped within 20 s (a bounded poll).
impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let asked = std::process::Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while asked
                && matches!(self.child.try_wait(), Ok(None))
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
