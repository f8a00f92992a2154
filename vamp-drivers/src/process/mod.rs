//! [`ProcessDriver`]: runs `command` deployables as local processes — the embedded default
//! [`ContainerDriver`].
//!
//! - The command is split into argv without a shell ([`command::split`]); `$PORT`, `$PORT0…N`
//!   and `$PORT_<NAME>` in it are replaced by the instance's ports. Nothing else is expanded.
//! - Every instance gets one loopback port per breed port from [`ProcessConfig::ports`]
//!   (31000–32999, disjoint from the gateway range), passed as `PORT` (the first), `PORT0…N`
//!   and `PORT_<NAME>`, beside the service's environment (on top of Vamp's own).
//! - Output goes to a log file per instance; every instance runs in its own process group, so
//!   a Ctrl-C to Vamp does not stop the services.
//! - State (pid, kernel start time, ports, spec fingerprint) is kept in one file per service, so
//!   a restarted driver adopts the processes still running — a reused pid never matches — and
//!   starts no duplicates. An instance is recorded before it is spawned and carries
//!   `VAMP_INSTANCE=<id>` in its environment, so even a crash between the two leaves it
//!   findable (by `/proc/<pid>/environ`).
//! - An instance that exits within [`ProcessConfig::startup_window`] of its start (a command
//!   that fails at once) makes the service fail with the exit status and the last line it
//!   logged; one that exits later is simply gone, and the next deploy starts a new one.
//! - Undeploy sends SIGTERM to the instance's process group, then SIGKILL after
//!   [`ProcessConfig::stop_grace`].

mod state;

use crate::command;

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::sync::Mutex;
use vamp_core::model::{Instance, Map, ServiceHealth};
use vamp_core::traits::{ContainerDriver, ServiceKey, ServiceSpec, ServiceState};
use vamp_core::{Error, Result};

use state::{InstanceRecord, ServiceRecord};

mod driver;
mod run;

const BACKEND: &str = "process";

/// Settings of the [`ProcessDriver`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    /// Where state files (`services/`) and logs (`logs/`) go.
    pub state_dir: PathBuf,
    /// Ports handed to instances.
    pub ports: RangeInclusive<u16>,
    /// The address instances listen on and are reached at.
    pub host: String,
    /// Time between SIGTERM and SIGKILL when stopping an instance.
    pub stop_grace: Duration,
    /// An instance exiting this soon after its start fails the service.
    pub startup_window: Duration,
    /// Timeout of a health check that sets none.
    pub health_timeout: Duration,
    /// Whether new `command` instances may start. A `command` breed runs any program as this
    /// process's user, so an embedding server decides: `vamp-server` only where the process
    /// driver is chosen explicitly (or under `--demo`). Off, the driver still lists, adopts
    /// and stops what runs.
    pub run_commands: bool,
}

impl ProcessConfig {
    /// Defaults with state under `state_dir`: ports 31000–32999 on 127.0.0.1, 5 s grace, 3 s
    /// startup window, 2 s health-check timeout, commands run.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ProcessConfig {
            state_dir: state_dir.into(),
            ports: 31000..=32999,
            host: "127.0.0.1".into(),
            stop_grace: Duration::from_secs(5),
            startup_window: Duration::from_secs(3),
            health_timeout: Duration::from_secs(2),
            run_commands: true,
        }
    }
}

/// Runs services as local processes.
///
/// ```no_run
/// # fn demo() -> vamp_core::Result<()> {
/// use vamp_drivers::process::{ProcessConfig, ProcessDriver};
/// let driver = ProcessDriver::new(ProcessConfig::new("/var/lib/vamp/process"))?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessDriver {
    config: ProcessConfig,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Processes started by this driver (not adopted ones), to reap them and read exit codes.
    children: HashMap<u32, tokio::process::Child>,
    last_port: Option<u16>,
}

fn io_error(config: &ProcessConfig, e: std::io::Error) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        address: config.state_dir.display().to_string(),
        message: e.to_string(),
        cause: Some(Box::new(e)),
    }
}

/// A port in `start..=end`, different from one driver to the next (std's per-process random
/// hash keys; no cryptographic quality needed).
fn random_in(start: u16, end: u16) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let span = u64::from(end.saturating_sub(start)) + 1;
    start.saturating_add(u16::try_from(h.finish() % span).unwrap_or(0))
}

/// The last non-empty line of a log, for failure reasons.
fn last_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.chars().take(300).collect()
}

impl ProcessDriver {
    /// A driver keeping its state under `config.state_dir` (created if needed).
    pub fn new(config: ProcessConfig) -> Result<Self> {
        for dir in ["services", "logs"] {
            std::fs::create_dir_all(config.state_dir.join(dir))
                .map_err(|e| io_error(&config, e))?;
        }
        Ok(ProcessDriver {
            config,
            inner: Arc::default(),
        })
    }

    /// Kills every instance the state records at once (SIGKILL, no grace), leaving the records
    /// as they are; processes whose pid was reused are left alone. For test harnesses (a guard
    /// that cleans up even when a test panics) and emergencies.
    pub fn kill_all_now(&self) {
        for record in self.load().unwrap_or_default() {
            for i in record.instances {
                if i.pid != 0 && state::alive(i.pid, i.start_time) {
                    let target = Pid::from_raw(i32::try_from(i.pid).unwrap_or(i32::MAX));
                    if killpg(target, Signal::SIGKILL).is_err() {
                        let _ = kill(target, Signal::SIGKILL);
                    }
                }
            }
        }
    }

    fn services_dir(&self) -> PathBuf {
        self.config.state_dir.join("services")
    }

    fn load(&self) -> Result<Vec<ServiceRecord>> {
        state::load_all(&self.services_dir()).map_err(|e| io_error(&self.config, e))
    }

    fn save(&self, record: &ServiceRecord) -> Result<()> {
        state::save(&self.services_dir(), record).map_err(|e| io_error(&self.config, e))
    }

    /// A free port: unused by any instance we know, and bindable right now.
    fn free_port(&self, inner: &mut Inner, used: &BTreeSet<u16>) -> Result<u16> {
        let (start, end) = (*self.config.ports.start(), *self.config.ports.end());
        // A fresh driver starts its search at a random point in the range, so that drivers
        // in other processes on this host rarely probe the same port at the same moment (each
        // port is only checked free; the instance binds it a moment later).
        let from = inner
            .last_port
            .filter(|p| (start..end).contains(p))
            .map_or_else(|| random_in(start, end), |p| p + 1);
        let port = (from..=end)
            .chain(start..from)
            .find(|p| {
                !used.contains(p)
                    && std::net::TcpListener::bind((self.config.host.as_str(), *p)).is_ok()
            })
            .ok_or_else(|| Error::Unavailable {
                backend: BACKEND,
                address: format!("{}:{start}-{end}", self.config.host),
                message: "no free port left for a service instance".into(),
                cause: None,
            })?;
        inner.last_port = Some(port);
        Ok(port)
    }

    /// Starts one instance. The record is saved before the process is spawned (with pid 0,
    /// "pending") and again after, so a crash in between leaves a marker to find it by.
    async fn start(
        &self,
        inner: &mut Inner,
        record: &mut ServiceRecord,
        spec: &ServiceSpec,
        argv: &[String],
        index: u32,
        used: &mut BTreeSet<u16>,
    ) -> std::result::Result<(), String> {
        let mut ports = Map::new();
        for name in spec.breed.ports.keys() {
            let port = self.free_port(inner, used).map_err(|e| e.to_string())?;
            used.insert(port);
            ports.insert(name.clone(), port);
        }
        let vars = crate::command::port_variables(&ports);
        let argv: Vec<String> = argv.iter().map(|w| command::substitute(w, &vars)).collect();
        let log = self
            .config
            .state_dir
            .join("logs")
            .join(format!("{}-{index}.log", state::file_name(&spec.key)));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
        let err_file = file.try_clone().map_err(|e| e.to_string())?;
        let id = state::instance_id(&spec.key, index);
        record.instances.push(InstanceRecord {
            index,
            pid: 0,
            start_time: 0,
            started_at: Utc::now(),
            ports: ports.clone(),
            log,
        });
        self.save(record).map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .envs(spec.environment.iter())
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(state::MARKER, &id)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .process_group(0)
            .kill_on_drop(false);
        let spawned = command.spawn();
        let pending = record
            .instances
            .iter()
            .position(|i| i.index == index && i.pid == 0);
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                if let Some(p) = pending {
                    record.instances.remove(p);
                }
                return Err(format!("cannot start '{}': {e}", argv[0]));
            }
        };
        let pid = child.id().unwrap_or(0);
        let start_time = state::start_time(pid).unwrap_or(0);
        inner.children.insert(pid, child);
        if let Some(p) = pending {
            record.instances[p].pid = pid;
            record.instances[p].start_time = start_time;
        }
        self.save(record).map_err(|e| e.to_string())?;
        tracing::info!(service = %spec.key, index, pid, ?ports, "started instance");
        Ok(())
    }

    /// Completes instances recorded as pending (pid 0) by a driver that died right after
    /// spawning them: adopted when their marker is found, dropped otherwise.
    fn recover_pending(record: &mut ServiceRecord) -> bool {
        let key = ServiceKey::from(&record.key);
        let mut changed = false;
        record.instances.retain_mut(|i| {
            if i.pid != 0 {
                return true;
            }
            changed = true;
            match state::find_by_marker(&state::instance_id(&key, i.index)) {
                Some((pid, started)) => {
                    tracing::info!(service = %key, index = i.index, pid, "adopted an instance started before a crash");
                    i.pid = pid;
                    i.start_time = started;
                    true
                }
                None => false,
            }
        });
        changed
    }

    /// SIGTERM to the instance's process group, SIGKILL after the grace period; only if the
    /// pid still is the process we started.
    async fn stop(&self, inner: &mut Inner, instance: &InstanceRecord) {
        let pid = instance.pid;
        if !state::alive(pid, instance.start_time) {
            inner.children.remove(&pid);
            return;
        }
        let target = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        // Our instances lead their own process group (children included); an adopted process
        // that does not gets the signal alone.
        let send = |signal| {
            if killpg(target, signal).is_err() {
                let _ = kill(target, signal);
            }
        };
        send(Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + self.config.stop_grace;
        loop {
            if let Some(child) = inner.children.get_mut(&pid) {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
            } else if !state::alive(pid, instance.start_time) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                send(Signal::SIGKILL);
                if let Some(child) = inner.children.get_mut(&pid) {
                    let _ = child.wait().await;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        inner.children.remove(&pid);
        tracing::info!(pid, "stopped instance");
    }

    /// Drops instances that are gone; returns a failure reason if one exited during startup.
    fn reap(&self, inner: &mut Inner, record: &mut ServiceRecord) -> Option<String> {
        let mut failure = None;
        let window = chrono::Duration::from_std(self.config.startup_window).unwrap_or_default();
        record.instances.retain(|i| {
            let status = inner
                .children
                .get_mut(&i.pid)
                .and_then(|c| c.try_wait().ok().flatten());
            if status.is_none() && state::alive(i.pid, i.start_time) {
                return true;
            }
            inner.children.remove(&i.pid);
            if Utc::now() - i.started_at <= window {
                let status =
                    status.map_or_else(|| "exited".to_owned(), |s| format!("exited with {s}"));
                failure = Some(format!(
                    "instance {} {status} right after starting; last output: {}",
                    i.index,
                    last_line(&i.log)
                ));
            }
            false
        });
        failure
    }
}

#[cfg(test)]
mod tests;
