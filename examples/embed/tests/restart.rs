//! kill -9 of a program hosting the engine mid-deploy; restarted on the same data it converges
//! with no duplicate process and nothing lost.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use vamp_core::traits::ContainerDriver;
use vamp_drivers::process::{ProcessConfig, ProcessDriver};

fn demo_app() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_embed-deploy")).with_file_name("vamp-demo-app");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p vamp-demo-app` first",
        bin.display()
    );
    bin
}

/// A backend and a frontend that depends on it, three instances each; the marker version
/// lets the test find exactly its own processes.
fn shop(marker: &str) -> String {
    let bin = demo_app().display().to_string();
    let breed = |name: &str, extra: &str| {
        format!(
            "---\nkind: breeds\nname: {name}:1.0\ndeployable:\n  type: command\n  definition: \"'{bin}' --app-version {marker}-{name}\"\n\
             ports:\n  web: 8080/http\nhealth_checks:\n  path: /health\n  port: web\n  initial_delay: 0s\n  timeout: 2s\n  interval: 1s\n  failures: 3\n{extra}"
        )
    };
    format!(
        "{}{}---\nkind: blueprints\nname: shop\nclusters:\n  backend:\n    breed: backend:1.0\n    scale: {{cpu: 0.1, memory: 64MB, instances: 3}}\n  \
         frontend:\n    breed: frontend:1.0\n    scale: {{cpu: 0.1, memory: 64MB, instances: 3}}\n",
        breed("backend", ""),
        breed(
            "frontend",
            "environment_variables:\n  UP: $backend.host:$backend.ports.web\ndependencies:\n  backend: backend:1.0\n"
        ),
    )
}

/// Pids of running processes whose command line carries the marker.
fn processes(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(marker) {
            out.push(pid);
        }
    }
    out
}

fn engine(data: &Path, files: &[&Path]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_embed-deploy"))
        .arg("--data")
        .arg(data)
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_deploy_then_restart_converges_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("restart-{}", std::process::id());
    let file = dir.path().join("shop.yml");
    std::fs::write(&file, shop(&marker)).unwrap();
    let data = dir.path().join("data");

    // Start, and kill -9 as soon as the first instance runs: mid-deploy.
    let mut first = engine(&data, &[&file]);
    vamp_core::testkit::eventually_within(
        "the first instance",
        Duration::from_secs(60),
        || async { !processes(&marker).is_empty() },
    )
    .await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(first.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    first.wait().await.unwrap();
    let running_at_kill = processes(&marker).len();
    assert!(
        running_at_kill < 6,
        "killed too late to be mid-deploy ({running_at_kill} running)"
    );

    // Restart on the same data — without the files: everything must come from what was
    // stored before the kill — and wait until it says everything converged.
    let mut second = engine(&data, &[]);
    let mut lines = BufReader::new(second.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let converged = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line == "converged" {
                return true;
            }
            seen.push(line);
        }
        false
    })
    .await;
    if converged != Ok(true) {
        let driver = ProcessDriver::new(ProcessConfig::new(data.join("process"))).unwrap();
        panic!(
            "not converged within 60 s ({converged:?}); the engine said:\n{}\nthe driver sees: {:?}",
            seen.join("\n"),
            driver.services().await
        );
    }

    // Exactly the six instances, each tracked once, no orphan.
    let driver = ProcessDriver::new(ProcessConfig::new(data.join("process"))).unwrap();
    let services = driver.services().await.unwrap();
    let tracked: Vec<usize> = services.iter().map(|s| s.instances.len()).collect();
    assert_eq!(tracked, [3, 3], "{services:?}");
    assert_eq!(
        processes(&marker).len(),
        6,
        "no duplicate or untracked process"
    );

    // Stop the engine; nothing stored was lost: the breeds and the deployment are all there.
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let db = vamp_drivers::sqlite::SqlitePersistence::open(data.join("vamp.db"))
        .await
        .unwrap();
    use vamp_core::model::Kind;
    use vamp_core::traits::{Page, Persistence};
    let names = |kind| {
        let db = &db;
        async move {
            db.list(kind, Page::ALL)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(Kind::Breed).await, ["backend:1.0", "frontend:1.0"]);
    assert_eq!(names(Kind::Deployment).await, ["shop"]);
    for s in services {
        driver.undeploy(s.key.as_ref().unwrap()).await.unwrap();
    }
    assert!(processes(&marker).is_empty(), "cleanup left processes");
}
