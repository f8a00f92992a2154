use std::sync::Arc;

use vamp_core::model::Deployable;
use vamp_core::testkit::driver::{self, Fixtures};
use vamp_core::testkit::services;
use vamp_core::traits::ContainerDriver;

use super::{DockerConfig, DockerDriver};

/// The images scripts/images.sh builds FROM scratch.
pub(crate) fn fixtures() -> Fixtures {
    Fixtures {
        demo: Box::new(|_version| Deployable {
            kind: "container/docker".into(),
            definition: "vamp-test/demo-app:1".into(),
        }),
        missing: Deployable {
            kind: "container/docker".into(),
            definition: "vamp-test/no-such-image:1".into(),
        },
        exits: Deployable {
            kind: "container/docker".into(),
            definition: "vamp-test/exits:1".into(),
        },
    }
}

fn config(host: &str) -> DockerConfig {
    DockerConfig {
        stop_grace: std::time::Duration::from_secs(2),
        namespace: "kit".into(),
        // Below the kernel's ephemeral range (32768+), where tests running beside this one
        // take free ports from.
        ports: 25000..=25999,
        ..DockerConfig::new(host)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_to_the_driver_kit() {
    let Some(host) = services::service("docker") else {
        return;
    };
    let driver = DockerDriver::connect(config(&host)).await.unwrap();
    let reopen = move || {
        let host = host.clone();
        Box::pin(async move {
            Arc::new(DockerDriver::connect(config(&host)).await.unwrap())
                as Arc<dyn ContainerDriver>
        }) as _
    };
    driver::run_all(&driver, &fixtures(), &reopen).await;
}

/// Images scripts/images.sh builds FROM scratch with busybox-static, one per case of the kit.
pub(crate) fn run_fixtures() -> driver::RunFixtures {
    let image = |name: &str| Deployable {
        kind: "container/docker".into(),
        definition: format!("vamp-test/{name}:1"),
    };
    driver::RunFixtures {
        prints: image("run-prints"),
        fails: image("run-fails"),
        sleeps: image("run-sleeps"),
        missing: image("no-such-image"),
        streams_apart: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_to_completion_per_the_driver_kit() {
    let Some(host) = services::service("docker") else {
        return;
    };
    // A namespace of its own: the kit's services run beside it in `kit`.
    let driver = DockerDriver::connect(DockerConfig {
        namespace: "kit-runs".into(),
        ..config(&host)
    })
    .await
    .unwrap();
    driver::runs_to_completion(&driver, &run_fixtures()).await;
    // No run shows as a service.
    assert!(driver.services().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_daemon_is_a_clear_error() {
    let e = DockerDriver::connect(DockerConfig::new("unix:///nonexistent/docker.sock"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("docker") && text.contains("/nonexistent/docker.sock"),
        "{text}"
    );
}

#[test]
fn the_dialect_adds_labels_but_cannot_replace_the_drivers_own() {
    let mut spec = driver::demo_spec(&fixtures(), "d", "1.0.0", 1);
    spec.dialect = Some(serde_json::json!({
        "labels": {"team": "payments", "io.vamp.deployment": "other", "io.vamp": "x", "n": 3}
    }));
    let labels = super::common::labels("ns", &spec, 0, &Default::default());
    assert_eq!(labels["team"], "payments");
    assert_eq!(labels["n"], "3");
    assert_eq!(labels["io.vamp.deployment"], "d");
    assert_eq!(labels["io.vamp"], "deployment-service");
    let read = super::common::Described::read(&labels).expect("reads back");
    assert_eq!(read.key, spec.key);
}
