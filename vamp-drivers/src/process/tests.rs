use std::sync::Arc;

use vamp_core::model::Deployable;
use vamp_core::testkit::driver::{self, Fixtures};
use vamp_core::traits::ContainerDriver;

use super::{ProcessConfig, ProcessDriver};

fn fixtures() -> Fixtures {
    let bin = vamp_core::testkit::demo_app().display().to_string();
    let exits = format!("{bin} --error-rate 9");
    Fixtures {
        demo: Box::new(move |version| Deployable {
            kind: "command".into(),
            definition: format!("'{bin}' --app-version {version} --port $PORT"),
        }),
        missing: Deployable {
            kind: "command".into(),
            definition: "/nonexistent/vamp-test-command --port $PORT".into(),
        },
        exits: Deployable {
            kind: "command".into(),
            definition: exits,
        },
    }
}

/// Kills whatever a test started, even when it panics.
struct Cleanup(ProcessDriver);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.kill_all_now();
    }
}

fn config(dir: &std::path::Path) -> ProcessConfig {
    ProcessConfig {
        stop_grace: std::time::Duration::from_secs(3),
        ..ProcessConfig::new(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_to_the_driver_kit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let driver = ProcessDriver::new(config(&path)).unwrap();
    let _cleanup = Cleanup(driver.clone());
    let reopen = move || {
        let path = path.clone();
        Box::pin(async move {
            Arc::new(ProcessDriver::new(config(&path)).unwrap()) as Arc<dyn ContainerDriver>
        }) as _
    };
    driver::run_all(&driver, &fixtures(), &reopen).await;
}

fn run_fixtures() -> driver::RunFixtures {
    let sh = |script: &str| Deployable {
        kind: "command".into(),
        definition: format!("/bin/sh -c '{script}'"),
    };
    driver::RunFixtures {
        prints: sh("echo \"$VAMP_KIT\"; echo to-stderr >&2"),
        fails: sh("exit 3"),
        sleeps: sh("sleep 60"),
        missing: Deployable {
            kind: "command".into(),
            definition: "/nonexistent/vamp-test-command".into(),
        },
        streams_apart: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_to_completion_per_the_driver_kit() {
    let dir = tempfile::tempdir().unwrap();
    let driver = ProcessDriver::new(config(dir.path())).unwrap();
    driver::runs_to_completion(&driver, &run_fixtures()).await;
}

/// A run sees its own environment and the host's PATH: nothing else of the server's.
#[tokio::test]
async fn a_run_gets_its_environment_and_nothing_of_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let driver = ProcessDriver::new(config(dir.path())).unwrap();
    let lines = std::sync::Mutex::new(Vec::new());
    let spec = vamp_core::traits::RunSpec {
        name: "env".into(),
        breed: vamp_core::model::Breed {
            name: "env:1".into(),
            deployable: Deployable {
                kind: "command".into(),
                definition: "env".into(),
            },
            ..Default::default()
        },
        environment: vamp_core::model::Map::from([("VAMP_URL".to_owned(), "http://x".to_owned())]),
        timeout: std::time::Duration::from_secs(30),
    };
    let outcome = driver
        .run_once(&spec, &|l| lines.lock().unwrap().push(l.text))
        .await
        .unwrap();
    assert_eq!(outcome.status, Some(0));
    let mut names: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    names.sort();
    assert_eq!(names, ["PATH", "VAMP_URL"]);
}

/// With commands off (the server did not choose the process driver), nothing runs.
#[tokio::test]
async fn runs_obey_the_run_commands_switch() {
    let dir = tempfile::tempdir().unwrap();
    let driver = ProcessDriver::new(ProcessConfig {
        run_commands: false,
        ..config(dir.path())
    })
    .unwrap();
    let spec = vamp_core::traits::RunSpec {
        name: "off".into(),
        breed: vamp_core::model::Breed {
            name: "off:1".into(),
            deployable: run_fixtures().prints,
            ..Default::default()
        },
        environment: vamp_core::model::Map::new(),
        timeout: std::time::Duration::from_secs(30),
    };
    let e = driver.run_once(&spec, &|_| {}).await.unwrap_err();
    assert!(e.to_string().contains("explicitly"), "{e}");
}

#[tokio::test]
async fn other_deployable_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let driver = ProcessDriver::new(config(dir.path())).unwrap();
    let mut spec = driver::demo_spec(&fixtures(), "refused", "1.0.0", 1);
    spec.breed.deployable.kind = "container/docker".into();
    let e = driver.deploy(&spec).await.unwrap_err();
    assert!(e.to_string().contains("container/docker"), "{e}");
}

#[tokio::test]
async fn an_unusable_state_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = ProcessDriver::new(ProcessConfig::new(&file)).unwrap_err();
    assert!(
        e.to_string().contains("process") && e.to_string().contains("file"),
        "{e}"
    );
}

/// A crash between recording an instance and recording its pid leaves a pending record; the
/// process is found by its marker and adopted, not started twice.
#[tokio::test]
async fn a_pending_instance_is_found_by_its_marker() {
    use super::state::{self, InstanceRecord, ServiceRecord};

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let driver = ProcessDriver::new(cfg.clone()).unwrap();
    let _cleanup = Cleanup(driver.clone());
    let spec = driver::demo_spec(&fixtures(), "pending", "1.0.0", 1);
    // What the crashed driver left: the record, and the process it had just spawned.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut orphan = std::process::Command::new(vamp_core::testkit::demo_app())
        .args(["--port", &port.to_string()])
        .env(state::MARKER, state::instance_id(&spec.key, 0))
        .spawn()
        .unwrap();
    state::save(
        &dir.path().join("services"),
        &ServiceRecord {
            key: (&spec.key).into(),
            fingerprint: spec.fingerprint(),
            health_checks: Vec::new(),
            instances: vec![InstanceRecord {
                index: 0,
                pid: 0,
                start_time: 0,
                started_at: chrono::Utc::now(),
                ports: vamp_core::model::Map::from_iter([("web".to_owned(), port)]),
                log: dir.path().join("x.log"),
            }],
            failure: None,
        },
    )
    .unwrap();
    // The process is visible with its environment in /proc a moment after it starts.
    vamp_core::testkit::eventually("the orphan to show in /proc", || async {
        state::find_by_marker(&state::instance_id(&spec.key, 0))
    })
    .await;
    driver.deploy(&spec).await.unwrap();
    let s = driver::state(&driver, &spec.key).await.unwrap();
    assert_eq!(s.instances.len(), 1, "adopted, not duplicated");
    assert_eq!(s.instances[0].ports["web"], port);
    driver.undeploy(&spec.key).await.unwrap();
    let exited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while orphan.try_wait().unwrap().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok();
    if !exited {
        let _ = orphan.kill();
        let _ = orphan.wait();
    }
    assert!(exited, "undeploy stopped the adopted process");
}
