use std::sync::Arc;

use proptest::prelude::*;
use vamp_core::testkit::driver::{self, Fixtures};
use vamp_core::testkit::services;
use vamp_core::traits::{ContainerDriver, ServiceKey};

use super::{SwarmDriver, service_name};
use crate::docker::DockerConfig;

/// The images scripts/images.sh builds FROM scratch (a one-node swarm needs no registry).
fn fixtures() -> Fixtures {
    crate::docker::tests::fixtures()
}

fn config(host: &str) -> DockerConfig {
    DockerConfig {
        stop_grace: std::time::Duration::from_secs(2),
        namespace: "kit-swarm".into(),
        // Apart from the Docker driver's test, which runs beside this one on the same host, and
        // below the kernel's ephemeral range (32768+), where other tests take free ports from.
        ports: 27000..=27999,
        ..DockerConfig::new(host)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_to_the_driver_kit() {
    let Some(host) = services::service("swarm") else {
        return;
    };
    let driver = SwarmDriver::connect(config(&host)).await.unwrap();
    let reopen = move || {
        let host = host.clone();
        Box::pin(async move {
            Arc::new(SwarmDriver::connect(config(&host)).await.unwrap()) as Arc<dyn ContainerDriver>
        }) as _
    };
    driver::run_all(&driver, &fixtures(), &reopen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_to_completion_per_the_driver_kit() {
    let Some(host) = services::service("swarm") else {
        return;
    };
    let driver = SwarmDriver::connect(DockerConfig {
        namespace: "kit-swarm-runs".into(),
        ..config(&host)
    })
    .await
    .unwrap();
    driver::runs_to_completion(&driver, &crate::docker::tests::run_fixtures()).await;
    // No run shows as a service.
    assert!(driver.services().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_manager_is_a_clear_error() {
    let e = SwarmDriver::connect(DockerConfig::new("unix:///nonexistent/swarm.sock"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("swarm") && text.contains("/nonexistent/swarm.sock"),
        "{text}"
    );
}

fn key(deployment: &str, cluster: &str, service: &str) -> ServiceKey {
    ServiceKey {
        deployment: deployment.into(),
        cluster: cluster.into(),
        service: service.into(),
    }
}

#[test]
fn service_names_are_readable() {
    let name = service_name("default", &key("sava", "frontend", "sava:1.0.0"), 2);
    let hash = name
        .strip_prefix("vamp-sava-frontend-sava-1-0-0-")
        .and_then(|rest| rest.strip_suffix("-2"))
        .unwrap_or_else(|| panic!("{name}"));
    assert_eq!(hash.len(), 8, "{name}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
}

#[test]
fn keys_that_clean_up_alike_get_different_names() {
    let a = service_name("default", &key("a.b", "c", "d:1"), 0);
    let b = service_name("default", &key("a-b", "c", "d:1"), 0);
    let c = service_name("other", &key("a.b", "c", "d:1"), 0);
    assert_ne!(a, b);
    assert_ne!(a, c);
}

proptest! {
    /// Whatever the names, the service name keeps Swarm's rule: letters, digits and `-`, a
    /// letter or digit first, at most 63 characters.
    #[test]
    fn service_names_keep_swarms_rule(
        deployment in "\\PC{0,80}",
        cluster in "\\PC{0,40}",
        service in "\\PC{0,40}",
        index in 0u32..100_000,
    ) {
        let name = service_name("default", &key(&deployment, &cluster, &service), index);
        prop_assert!(name.len() <= 63, "{name}");
        prop_assert!(name.starts_with("vamp-"));
        prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{name}");
        prop_assert!(name.ends_with(&format!("-{index}")), "{name}");
    }
}

/// The failure names what Swarm said: the image that is missing, the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_carry_swarms_reason() {
    let Some(host) = services::service("swarm") else {
        return;
    };
    let driver = SwarmDriver::connect(DockerConfig {
        namespace: "kit-swarm-failures".into(),
        ports: 28000..=28499,
        ..config(&host)
    })
    .await
    .unwrap();
    let fixtures = fixtures();
    for (deployable, expected) in [
        (fixtures.missing.clone(), "no-such-image"),
        (fixtures.exits.clone(), "non-zero exit (1)"),
    ] {
        let mut spec = driver::demo_spec(
            &fixtures,
            &vamp_core::testkit::unique("swarm-fail"),
            "0.0.0",
            1,
        );
        spec.breed.deployable = deployable;
        driver.deploy(&spec).await.unwrap();
        let s = driver::wait_for(&driver, &spec.key, "a failure", |s| {
            s.is_some_and(|s| s.failure.is_some())
        })
        .await
        .unwrap();
        let reason = s.failure.clone().unwrap_or_default();
        assert!(reason.contains(expected), "{reason}");
        assert!(s.instances.is_empty(), "{s:?}");
        driver.undeploy(&spec.key).await.unwrap();
        driver::wait_for(&driver, &spec.key, "gone", |s| s.is_none()).await;
    }
}
