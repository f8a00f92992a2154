//! What the process driver remembers about its services, on disk, so a restarted driver finds
//! its running processes again instead of starting duplicates.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vamp_core::model::Map;
use vamp_core::traits::ServiceKey;

/// One service: its spec's fingerprint, health checks and instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ServiceRecord {
    pub(super) key: Key,
    pub(super) fingerprint: String,
    pub(super) health_checks: Vec<crate::health::Check>,
    pub(super) instances: Vec<InstanceRecord>,
    pub(super) failure: Option<String>,
}

/// [`ServiceKey`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Key {
    pub(super) deployment: String,
    pub(super) cluster: String,
    pub(super) service: String,
}

impl From<&ServiceKey> for Key {
    fn from(k: &ServiceKey) -> Self {
        Key {
            deployment: k.deployment.clone(),
            cluster: k.cluster.clone(),
            service: k.service.clone(),
        }
    }
}

impl From<&Key> for ServiceKey {
    fn from(k: &Key) -> Self {
        ServiceKey {
            deployment: k.deployment.clone(),
            cluster: k.cluster.clone(),
            service: k.service.clone(),
        }
    }
}

/// One running process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct InstanceRecord {
    pub(super) index: u32,
    pub(super) pid: u32,
    /// The kernel's start time of `pid` (clock ticks since boot): a reused pid has another.
    pub(super) start_time: u64,
    pub(super) started_at: DateTime<Utc>,
    pub(super) ports: Map<u16>,
    pub(super) log: PathBuf,
}

/// The marker every instance carries in its environment (`VAMP_INSTANCE=<id>`), by which a
/// restarted driver finds an instance whose pid it never got to record.
pub(super) const MARKER: &str = "VAMP_INSTANCE";

/// The instance id: unique per service and index.
pub(super) fn instance_id(key: &ServiceKey, index: u32) -> String {
    format!("{}-{index}", file_name(key))
}

/// The process whose environment carries `VAMP_INSTANCE=<id>`, with its start time.
pub(super) fn find_by_marker(id: &str) -> Option<(u32, u64)> {
    let needle = format!("{MARKER}={id}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
            && let Some(started) = start_time(pid)
            && alive(pid, started)
        {
            return Some((pid, started));
        }
    }
    None
}

/// `a/b c` → `a%2Fb%20c`: file names that cannot collide.
pub(super) fn encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn file_name(key: &ServiceKey) -> String {
    format!(
        "{}+{}+{}",
        encode(&key.deployment),
        encode(&key.cluster),
        encode(&key.service)
    )
}

/// The kernel start time of a process (field 22 of `/proc/<pid>/stat`), if it exists.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` still runs the process we started (and is not a zombie).
pub(super) fn alive(pid: u32, started: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    fields.first().is_some_and(|s| *s != "Z")
        && fields.get(19).and_then(|t| t.parse().ok()) == Some(started)
}

pub(super) fn load_all(dir: &Path) -> std::io::Result<Vec<ServiceRecord>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        match serde_json::from_str(&text) {
            Ok(record) => out.push(record),
            // A torn write from a crash: the temp file never replaced it, so this is rare;
            // skip it rather than fail every listing.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable process state")
            }
        }
    }
    Ok(out)
}

/// Writes atomically: a temporary file renamed over the old one.
pub(super) fn save(dir: &Path, record: &ServiceRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = file_name(&(&record.key).into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let text = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(format!("{name}.json")))
}

pub(super) fn remove(dir: &Path, key: &ServiceKey) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(format!("{}.json", file_name(key)))) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
