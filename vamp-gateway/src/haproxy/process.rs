//! Running HAProxy: master-worker start, config check, seamless reload, read-back.
//!
//! One [`Haproxy`] owns one master process started with `-W -S <master socket>`; the master
//! stays in the foreground, so its PID is the child's and survives reloads. A reload is
//! `reload` on the master CLI: the master re-executes, the new worker takes the listening
//! sockets over from the old one through the admin socket (`expose-fd listeners`), and the old
//! worker finishes its connections. Configs are checked with `haproxy -c` before they are
//! written, so an invalid one never replaces the running one.
//!
//! One file: HAProxy's process and its master socket are one resource with one lifecycle.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::runtime::{RuntimeApi, RuntimeError};

/// Running HAProxy failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The config does not pass `haproxy -c`; nothing was changed.
    #[error("HAProxy refuses the configuration:\n{output}")]
    InvalidConfig {
        /// HAProxy's own messages.
        output: String,
    },
    /// The binary could not be run.
    #[error("cannot run {}: {source}", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the instance could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// HAProxy exited or did not become ready in time.
    #[error("HAProxy {what}; its log ends with:\n{log}")]
    NotRunning {
        /// What happened.
        what: String,
        /// The last lines of its log.
        log: String,
    },
    /// The master refused or failed the reload; the old worker keeps serving.
    #[error(
        "HAProxy failed to reload (failed reloads: {failed}); the previous configuration keeps serving; log:\n{log}"
    )]
    ReloadFailed {
        /// HAProxy's failed-reload counter.
        failed: u32,
        /// The last lines of its log.
        log: String,
    },
    /// The master or admin socket failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// The files of one HAProxy instance, all under one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The directory.
    pub dir: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// The master CLI socket.
    pub master_socket: PathBuf,
    /// The admin socket (runtime API, listener hand-over).
    pub admin_socket: PathBuf,
    /// The server-state file written before each reload.
    pub state_file: PathBuf,
    /// The directory of route sockets.
    pub socket_dir: PathBuf,
    /// HAProxy's output.
    pub log: PathBuf,
}

impl Paths {
    /// The standard layout under `dir` (keep `dir` short: socket paths hold 107 bytes).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Paths {
            config: dir.join("haproxy.cfg"),
            master_socket: dir.join("master.sock"),
            admin_socket: dir.join("admin.sock"),
            state_file: dir.join("server-state"),
            socket_dir: dir.join("s"),
            log: dir.join("haproxy.log"),
            dir,
        }
    }
}

/// Checks config text with `haproxy -c`, through a scratch file in `dir`.
///
/// `strict` also fails on warnings (`-dW`), as the tests do.
///
/// # Errors
/// [`ProcessError::InvalidConfig`] with HAProxy's messages; [`ProcessError::Spawn`] or
/// [`ProcessError::Io`] if the check could not run.
pub async fn check(
    binary: &Path,
    dir: &Path,
    text: &str,
    strict: bool,
) -> Result<(), ProcessError> {
    let file = dir.join(format!(".check-{}-{}.cfg", std::process::id(), next_id()));
    write(&file, text).await?;
    let mut cmd = Command::new(binary);
    cmd.arg("-c");
    if strict {
        cmd.arg("-dW");
    }
    cmd.arg("-f")
        .arg(&file)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await;
    let _ = tokio::fs::remove_file(&file).await;
    let output = run
        .map_err(|_| ProcessError::NotRunning {
            what: "took more than 30 s to check a configuration".into(),
            log: String::new(),
        })?
        .map_err(|source| ProcessError::Spawn {
            binary: binary.to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(ProcessError::InvalidConfig {
            output: text.replace(&file.display().to_string(), "<config>"),
        })
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Writes a file through a temporary one and a rename, so readers never see half of it.
async fn write(path: &Path, text: &str) -> Result<(), ProcessError> {
    let io = |source| ProcessError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", next_id()));
    tokio::fs::write(&tmp, text).await.map_err(io)?;
    tokio::fs::rename(&tmp, path).await.map_err(io)
}

/// What the master reports (`show proc`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcState {
    /// The master's PID.
    pub master: u32,
    /// Reloads since start.
    pub reloads: u32,
    /// Failed reloads since start.
    pub failed_reloads: u32,
    /// Current worker PIDs.
    pub workers: Vec<u32>,
    /// Workers of earlier configs still finishing their connections.
    pub old_workers: Vec<u32>,
}

fn parse_proc(text: &str) -> Option<ProcState> {
    let mut state = ProcState::default();
    let mut section = "";
    let mut seen_master = false;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("# ") {
            section = title.trim();
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(pid), Some(kind)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        match (*kind, section) {
            ("master", _) => {
                state.master = pid;
                state.reloads = fields.get(2)?.parse().ok()?;
                state.failed_reloads = fields
                    .get(4)
                    .and_then(|f| f.trim_end_matches(']').parse().ok())
                    .unwrap_or(0);
                seen_master = true;
            }
            ("worker", "workers") => state.workers.push(pid),
            ("worker", _) => state.old_workers.push(pid),
            _ => {}
        }
    }
    seen_master.then_some(state)
}

/// One running HAProxy (master + workers). Dropping it kills the master (its workers follow);
/// [`stop`](Self::stop) stops it gracefully.
#[derive(Debug)]
pub struct Haproxy {
    binary: PathBuf,
    paths: Paths,
    child: Child,
    master: RuntimeApi,
    admin: RuntimeApi,
}

impl Haproxy {
    /// Checks `config`, writes it and starts HAProxy in master-worker mode; returns once a
    /// worker runs (at most 10 s). The config must declare `paths.admin_socket` as its admin
    /// socket for runtime changes and seamless reloads.
    ///
    /// # Errors
    /// [`ProcessError::InvalidConfig`], [`ProcessError::Spawn`], or
    /// [`ProcessError::NotRunning`] with the log if it exits or does not become ready.
    pub async fn start(
        binary: impl Into<PathBuf>,
        paths: Paths,
        config: &str,
    ) -> Result<Self, ProcessError> {
        let binary = binary.into();
        for dir in [&paths.dir, &paths.socket_dir] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| ProcessError::Io {
                    path: dir.clone(),
                    source,
                })?;
        }
        if tokio::fs::metadata(&paths.state_file).await.is_err() {
            // An absent state file is a warning; an empty one is "no state yet".
            write(&paths.state_file, "").await?;
        }
        check(&binary, &paths.dir, config, false).await?;
        write(&paths.config, config).await?;
        let _ = tokio::fs::remove_file(&paths.master_socket).await;
        let log = std::fs::File::create(&paths.log).map_err(|source| ProcessError::Io {
            path: paths.log.clone(),
            source,
        })?;
        let log2 = log.try_clone().map_err(|source| ProcessError::Io {
            path: paths.log.clone(),
            source,
        })?;
        let child = Command::new(&binary)
            .arg("-W")
            .arg("-S")
            .arg(format!("{},mode,600", paths.master_socket.display()))
            .arg("-f")
            .arg(&paths.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        let mut haproxy = Haproxy {
            master: RuntimeApi::new(&paths.master_socket).with_timeout(Duration::from_secs(3)),
            admin: RuntimeApi::new(&paths.admin_socket),
            binary,
            paths,
            child,
        };
        haproxy
            .wait_for(Duration::from_secs(10), |s| !s.workers.is_empty())
            .await
            .map_err(|e| match e {
                ProcessError::NotRunning { what, log } => ProcessError::NotRunning {
                    what: format!("did not start: {what}"),
                    log,
                },
                e => e,
            })?;
        tracing::info!(pid = haproxy.pid(), config = %haproxy.paths.config.display(), "haproxy started");
        Ok(haproxy)
    }

    /// Whether the master still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The master's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The instance's files.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The runtime API of the current worker.
    pub fn runtime(&self) -> &RuntimeApi {
        &self.admin
    }

    /// What the master reports now.
    ///
    /// # Errors
    /// The socket errors (the socket is briefly absent while the master re-executes).
    pub async fn state(&self) -> Result<ProcState, ProcessError> {
        let answer = self.master.command("show proc").await?;
        parse_proc(&answer).ok_or_else(|| {
            ProcessError::Runtime(RuntimeError::Unexpected {
                command: "show proc".into(),
                answer,
            })
        })
    }

    /// Replaces the running configuration with a seamless reload: checks `config` (an invalid
    /// one changes nothing), saves server states, writes the file, asks the master to reload
    /// and waits (at most 10 s) until the new worker runs.
    ///
    /// # Errors
    /// [`ProcessError::InvalidConfig`] (nothing changed), [`ProcessError::ReloadFailed`] (the
    /// previous config keeps serving), [`ProcessError::NotRunning`].
    pub async fn reload(&mut self, config: &str) -> Result<ProcState, ProcessError> {
        check(&self.binary, &self.paths.dir, config, false).await?;
        let before = self.state().await?;
        match self.admin.servers_state().await {
            Ok(states) => write(&self.paths.state_file, &states).await?,
            Err(e) => tracing::warn!(error = %e, "cannot save server states before the reload"),
        }
        let previous = tokio::fs::read_to_string(&self.paths.config).await.ok();
        write(&self.paths.config, config).await?;
        if let Err(e) = self.master.command("reload").await {
            if let Some(previous) = previous {
                write(&self.paths.config, &previous).await?;
            }
            return Err(e.into());
        }
        let failed_before = before.failed_reloads;
        let state = self
            .wait_for(Duration::from_secs(10), |s| {
                s.failed_reloads > failed_before
                    || (s.reloads > before.reloads
                        && s.workers.iter().any(|w| !before.workers.contains(w)))
            })
            .await?;
        if state.failed_reloads > failed_before {
            return Err(ProcessError::ReloadFailed {
                failed: state.failed_reloads,
                log: self.log_tail().await,
            });
        }
        tracing::info!(reloads = state.reloads, workers = ?state.workers, "haproxy reloaded");
        Ok(state)
    }

    /// Stops HAProxy (SIGTERM to the master, then SIGKILL after 10 s) and removes its sockets.
    ///
    /// # Errors
    /// [`ProcessError::Io`] if the process could not be signalled.
    pub async fn stop(mut self) -> Result<(), ProcessError> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.map_err(|source| ProcessError::Io {
                path: self.binary.clone(),
                source,
            })?;
        }
        let _ = tokio::fs::remove_file(&self.paths.master_socket).await;
        let _ = tokio::fs::remove_file(&self.paths.admin_socket).await;
        Ok(())
    }

    /// Polls `show proc` every 20 ms until `done` holds, the master exits, or `limit` passes.
    async fn wait_for(
        &mut self,
        limit: Duration,
        done: impl Fn(&ProcState) -> bool,
    ) -> Result<ProcState, ProcessError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ProcessError::NotRunning {
                    what: format!("exited ({status})"),
                    log: self.log_tail().await,
                });
            }
            // The master socket is briefly absent while the master re-executes.
            if let Ok(state) = self.state().await
                && done(&state)
            {
                return Ok(state);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProcessError::NotRunning {
                    what: format!("was not ready within {limit:?}"),
                    log: self.log_tail().await,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn log_tail(&self) -> String {
        let text = tokio::fs::read_to_string(&self.paths.log)
            .await
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_proc_is_read() {
        let text = "#<PID>          <type>          <reloads>       <uptime>        <version>\n\
            23024           master          1 [failed: 2]   0d00h00m00s     2.6.12\n\
            # workers\n\
            23036           worker          0               0d00h00m00s     2.6.12\n\
            # old workers\n\
            23027           worker          1               0d00h00m00s     2.6.12\n\
            # programs\n\n";
        let s = parse_proc(text).unwrap();
        assert_eq!((s.master, s.reloads, s.failed_reloads), (23024, 1, 2));
        assert_eq!(s.workers, vec![23036]);
        assert_eq!(s.old_workers, vec![23027]);
        assert!(parse_proc("Unknown command.\n").is_none());
    }
}
