//! Workflows (issue 22): what starting a JavaScript run costs (p50/p99 of a trivial script,
//! run to completion in a fresh sandbox), and what 100 daemon workflows at a 1 s period cost
//! a server: CPU time and resident memory of this process over a bounded window, with the
//! runs counted so the figures are for work really done.
//!
//! `cargo bench -p vamp-benches --bench workflows` (results: docs/performance.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use vamp_core::memory::MemoryDriver;
use vamp_core::traits::{ScriptHost, ScriptRun, ScriptRuntime};
use vamp_core::workflow::{WorkflowConfig, WorkflowHost};
use vamp_core::{Vamp, VampConfig};
use vamp_drivers::javascript::QuickJs;
use vamp_drivers::sqlite::SqlitePersistence;

/// This process's CPU time (user + system) so far, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and
    // 13th of them, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resident memory now, MiB, from `/proc/self/status`.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let rt = vamp_benches::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let db = SqlitePersistence::open(dir.path().join("vamp.db"))
            .await
            .expect("sqlite");
        let vamp = Vamp::builder()
            .driver(Arc::new(MemoryDriver::default()))
            .persistence(Arc::new(db))
            .scripts(Arc::new(QuickJs))
            .config(VampConfig {
                workflows: WorkflowConfig {
                    period: Some(Duration::from_millis(100)),
                    ..WorkflowConfig::default()
                },
                ..VampConfig::default()
            })
            .build()
            .expect("vamp");

        // 1. A trivial script, start to end, in a fresh sandbox each time.
        let host: Arc<dyn ScriptHost> = Arc::new(WorkflowHost::new(vamp.clone(), "bench"));
        let run = ScriptRun {
            name: "bench".into(),
            source: "console.log(process.env.N)".into(),
            environment: [("N".to_owned(), "1".to_owned())].into(),
            timeout: Duration::from_secs(10),
            memory_limit: 64 << 20,
            cancel: None,
        };
        let mut times = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            let outcome = QuickJs.run(&run, host.clone(), &|_| {}).await.expect("runs");
            times.push(t.elapsed());
            assert_eq!(outcome.status, Some(0));
        }
        times.sort();
        println!(
            "JavaScript run, start to end (console.log of an env var), 1000 runs: p50 {:?}, p99 {:?}",
            pct(&times, 0.50),
            pct(&times, 0.99)
        );
        // The same with one in-process `vamp` call that stores an event.
        let run = ScriptRun {
            source: "vamp.event(['bench'], 1).then((e) => console.log(e.id))".into(),
            ..run
        };
        let mut times = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            QuickJs.run(&run, host.clone(), &|_| {}).await.expect("runs");
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "JavaScript run with one vamp.event call (SQLite), 1000 runs: p50 {:?}, p99 {:?}",
            pct(&times, 0.50),
            pct(&times, 0.99)
        );

        // 2. 100 daemon workflows at a 1 s period, each storing an event per run.
        let running = vamp.start();
        let idle_rss = rss_mib();
        for i in 0..100 {
            let yaml = format!(
                "name: w{i}\nbreed:\n  name: w{i}:1\n  deployable: {{type: application/javascript, definition: \"vamp.event(['tick', 'w:{i}'], {i})\"}}\n  environment_variables: {{VAMP_WORKFLOW_EXECUTION_PERIOD: \"1\"}}\nschedule: daemon\n"
            );
            for a in vamp
                .read(&yaml, Some(vamp_core::model::Kind::Workflow))
                .await
                .expect("reads")
            {
                vamp.put(a).await.expect("stores");
            }
        }
        let runs = |vamp: &Vamp| -> (u64, u64) {
            vamp.workflow_run_counts()
                .iter()
                .fold((0, 0), |(s, f), (_, ok, failed)| (s + ok, f + failed))
        };
        // Warm up for 5 s, then measure 30 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (cpu0, runs0, t0) = (cpu_time(), runs(&vamp), Instant::now());
        let mut peak = rss_mib();
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            peak = peak.max(rss_mib());
        }
        let (cpu1, runs1, elapsed) = (cpu_time(), runs(&vamp), t0.elapsed());
        running.stop().await;
        let done = runs1.0 - runs0.0;
        println!(
            "100 daemon workflows at 1 s (each run stores an event), {:.0} s: {done} runs ({:.1}/s), {} failed, CPU {:.1}% of one core, RSS {idle_rss:.0} MiB before the workflows, {peak:.0} MiB at most",
            elapsed.as_secs_f64(),
            done as f64 / elapsed.as_secs_f64(),
            runs1.1 - runs0.1,
            (cpu1 - cpu0).as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
        );
    });
}
