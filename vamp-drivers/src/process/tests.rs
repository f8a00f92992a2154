use std::path::PathBuf;
use std::sync::Arc;

use vamp_core::model::Deployable;
use vamp_core::testkit::driver::{self, Fixtures};
use vamp_core::traits::ContainerDriver;

use super::{ProcessConfig, ProcessDriver};

/// The demo service's binary, built beside this test (cargo builds every workspace binary for
/// `cargo test --workspace`; scripts/test.sh builds it first).
fn demo_app() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("vamp-demo-app");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p vamp-demo-app` first",
        bin.display()
    );
    bin
}

fn fixtures() -> Fixtures {
    let bin = demo_app().display().to_string();
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
    let reopen = move || {
        let path = path.clone();
        Box::pin(async move {
            Arc::new(ProcessDriver::new(config(&path)).unwrap()) as Arc<dyn ContainerDriver>
        }) as _
    };
    driver::run_all(&driver, &fixtures(), &reopen).await;
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
