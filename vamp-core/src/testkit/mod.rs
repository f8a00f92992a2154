//! Conformance kits: one suite per trait that every implementation runs in its own tests, so
//! all backends behave alike (the pattern of object_store's `integration.rs`).
//!
//! Each kit is a set of `pub async fn` checks taking `&dyn Trait`, plus `run_all`. A check
//! panics with a message naming the broken contract. Checks use unique keys and names, so they
//! can run against a shared real server; listings compare against a baseline taken first.
//! Where a backend returns [`Error::Unsupported`](crate::Error::Unsupported) for an optional
//! capability, the check accepts it and says so on stderr — never a silent skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    reason = "test kits report broken contracts by panicking, like assertions"
)]

pub mod child;
pub mod driver;
pub mod election;
pub mod kv;
pub mod outside;
pub mod persistence;
mod poll;
pub mod services;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a check waits for something that should happen (an event to arrive).
pub const WAIT: Duration = Duration::from_secs(10);

/// A gateway port range of 200 ports for this test process, `first-last`, within
/// 10000–19999: below the kernel's ephemeral ports (32768 and up, which any outgoing
/// connection may hold), the process driver's instance ports (31000–32999) and the ports
/// `scripts/services.sh` gives the real services (ZooKeeper 21810, Swarm 23770, etcd 23790 —
/// a server that took etcd's port on 127.0.0.2 once saw etcd answer on 127.0.0.1).
///
/// Test processes running side by side never get the same range: the range is claimed with
/// an exclusive lock on a file in the temporary directory (`vamp-test-ports/N.lock`), held
/// for the life of the process and released by the kernel when it ends, however it ends.
/// The engine's "skip a port that is taken" is not enough on its own: servers that bind
/// different addresses (127.0.0.1 and 127.0.0.2 in the HA tests) each see only their own
/// address free, and another test's listener on the other address would answer instead.
/// Where no lock can be taken (no writable temporary directory), the range falls back to one
/// chosen by process id.
///
/// ```
/// let range = vamp_core::testkit::gateway_ports();
/// let (first, last) = range.split_once('-').unwrap();
/// let (first, last) = (first.parse::<u16>().unwrap(), last.parse::<u16>().unwrap());
/// assert_eq!(last - first, 199);
/// assert!(first >= 10000 && last <= 19999);
/// ```
pub fn gateway_ports() -> String {
    static CLAIMED: std::sync::OnceLock<(u16, Option<std::fs::File>)> = std::sync::OnceLock::new();
    let (bucket, _lock) = CLAIMED.get_or_init(|| {
        let start = (std::process::id().wrapping_mul(7919) % 50) as u16;
        let dir = std::env::temp_dir().join("vamp-test-ports");
        let _ = std::fs::create_dir_all(&dir);
        for step in 0..50 {
            let bucket = (start + step) % 50;
            let Ok(file) = std::fs::File::create(dir.join(format!("{bucket}.lock"))) else {
                break;
            };
            if file.try_lock().is_ok() {
                return (bucket, Some(file));
            }
        }
        (start, None)
    });
    let first = 10000 + bucket * 200;
    format!("{first}-{}", first + 199)
}

/// A slice of 20 gateway ports of [`gateway_ports`], a different one on each of ten calls in
/// turn: servers started side by side in one test process (each allocating from the start of
/// its range) then rarely probe the same port at the same moment.
///
/// ```
/// let (a, b) = (vamp_core::testkit::gateway_port_slice(), vamp_core::testkit::gateway_port_slice());
/// assert_ne!(a, b);
/// ```
pub fn gateway_port_slice() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let range = gateway_ports();
    let first: u16 = range
        .split('-')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(10000);
    let slice = u16::try_from(NEXT.fetch_add(1, Ordering::Relaxed) % 10).unwrap_or(0);
    let start = first + slice * 20;
    format!("{start}-{}", start + 19)
}

/// A loopback port that was free a moment ago, and that this process has not been given
/// before: the kernel may hand a just-released port out again, and a test that picks two
/// ports before binding either (an agent's status port, then a gateway's) must not get the
/// same one twice.
///
/// # Panics
/// When no port can be bound, or 1 000 tries bring only ports given before.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let fresh = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port);
        if fresh {
            return port;
        }
    }
    panic!("1 000 tries at a free port brought only ports this process was given before")
}

/// The demo service's binary (`vamp-demo-app`), built in the same target directory as the
/// test running (`cargo build -p vamp-demo-app` first; scripts/test.sh does): test binaries
/// live in `<target>/<profile>/deps`, the demo in `<target>/<profile>`.
///
/// # Panics
/// When it is not built, saying how to build it.
pub fn demo_app() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap_or_else(|| std::path::Path::new("."))
        .join("vamp-demo-app");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p vamp-demo-app` first",
        bin.display()
    );
    bin
}

/// A string unique to this process run and call, for keys and names.
pub fn unique(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{tag}-{}-{nanos:x}-{n}", std::process::id())
}

/// Awaits `future` for at most [`WAIT`], panicking with `what` on timeout.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    within_limit(what, WAIT, future).await
}

/// Awaits `future` for at most `limit`, panicking with `what` on timeout: the guard of a call
/// that must answer (or fail) rather than hang — not a measurement, which is for benches.
pub async fn within_limit<T>(
    what: &str,
    limit: Duration,
    future: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

pub use poll::{Attempt, eventually, eventually_blocking, eventually_within};
