//! The [`ContainerDriver`] conformance kit.
//!
//! The kit deploys the demo service (`vamp-demo-app`, which answers `GET /` with its version on
//! the first line and `GET /env/<NAME>` with a variable's value) through the driver under test,
//! then talks to every instance over HTTP. [`Fixtures`] tell it how this driver runs that
//! service, a deployable that cannot start, and one that exits at once.
//!
//! One file: a conformance kit is a list of independent checks of one trait's contract;
//! split, the contract would be scattered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::unique;
use crate::model::{
    Breed, Cpu, Deployable, HealthCheck, Instance, Map, Memory, Port, PortType, PortValue, Scale,
    Seconds,
};
use crate::traits::{ContainerDriver, ServiceKey, ServiceSpec, ServiceState};

/// How long the kit waits for a driver to converge (containers start slower than processes).
pub const CONVERGE: Duration = Duration::from_secs(60);

/// Reopens a driver over the same state (a restart of the process that hosts it).
pub type Reopen<'a> =
    &'a (dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn ContainerDriver>> + Send>> + Sync);

/// What the driver under test runs.
pub struct Fixtures {
    /// The demo service naming `version`, listening on its first breed port (`web`).
    pub demo: Box<dyn Fn(&str) -> Deployable + Send + Sync>,
    /// A deployable that cannot start (an image or command that does not exist).
    pub missing: Deployable,
    /// A deployable that starts and exits at once.
    pub exits: Deployable,
}

impl std::fmt::Debug for Fixtures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixtures").finish_non_exhaustive()
    }
}

/// Runs every check. Each deploys under its own deployment name and cleans up after itself.
pub async fn run_all(driver: &dyn ContainerDriver, fixtures: &Fixtures, reopen: Reopen<'_>) {
    deploy_scale_undeploy(driver, fixtures).await;
    versions_never_collide(driver, fixtures).await;
    a_new_environment_redeploys(driver, fixtures).await;
    a_missing_deployable_fails_with_a_reason(driver, fixtures).await;
    a_deployable_that_exits_fails_with_a_reason(driver, fixtures).await;
    undeploying_the_unknown_is_fine(driver).await;
    finds_its_services_after_a_restart(driver, fixtures, reopen).await;
}

/// A service spec for the demo: port `web`, `instances` instances, an HTTP health check.
pub fn demo_spec(
    fixtures: &Fixtures,
    deployment: &str,
    version: &str,
    instances: u32,
) -> ServiceSpec {
    spec(deployment, version, (fixtures.demo)(version), instances)
}

fn spec(deployment: &str, version: &str, deployable: Deployable, instances: u32) -> ServiceSpec {
    let breed = Breed {
        name: format!("demo:{version}"),
        deployable,
        ports: Map::from_iter([(
            "web".to_owned(),
            Port {
                value: PortValue::Number(8080),
                kind: PortType::Http,
            },
        )]),
        ..Breed::default()
    };
    ServiceSpec {
        key: ServiceKey {
            deployment: deployment.to_owned(),
            cluster: "demo".into(),
            service: breed.name.clone(),
        },
        breed,
        scale: Scale {
            cpu: Cpu::from_millis(100),
            memory: Memory::from_bytes(64_000_000),
            instances,
            ..Scale::default()
        },
        environment: Map::from_iter([
            ("VAMP_DEMO_VERSION".to_owned(), version.to_owned()),
            ("GREETING".to_owned(), "hello".to_owned()),
            // Tells this test's instances from those of tests running beside it.
            ("VAMP_DEMO_RUN".to_owned(), deployment.to_owned()),
        ]),
        arguments: Vec::new(),
        health_checks: vec![HealthCheck {
            path: "/health".into(),
            port: "web".into(),
            initial_delay: Seconds::new(0),
            timeout: Seconds::new(2),
            interval: Seconds::new(1),
            failures: 3,
            protocol: "HTTP".into(),
        }],
        network: None,
        dialect: None,
    }
}

/// The state of one service, if the driver lists it.
pub async fn state(driver: &dyn ContainerDriver, key: &ServiceKey) -> Option<ServiceState> {
    driver
        .services()
        .await
        .unwrap_or_else(|e| panic!("{}: services() failed: {e}", driver.backend()))
        .into_iter()
        .find(|s| s.key.as_ref() == Some(key))
}

/// Polls until `done` holds for the service's state (or its absence), at most [`CONVERGE`].
pub async fn wait_for(
    driver: &dyn ContainerDriver,
    key: &ServiceKey,
    what: &str,
    done: impl Fn(Option<&ServiceState>) -> bool,
) -> Option<ServiceState> {
    let what = format!("{}: {key} to reach '{what}'", driver.backend());
    super::eventually_within(&what, CONVERGE, || async {
        let s = state(driver, key).await;
        if done(s.as_ref()) { Ok(s) } else { Err(s) }
    })
    .await
}

/// True when `n` instances run the spec and all are healthy.
fn converged(s: Option<&ServiceState>, spec: &ServiceSpec, n: usize) -> bool {
    s.is_some_and(|s| {
        s.fingerprint.as_deref() == Some(spec.fingerprint().as_str())
            && s.instances.len() == n
            && s.instances.iter().all(|i| i.deployed)
            && s.health.is_some_and(|h| h.healthy as usize == n)
    })
}

/// One HTTP/1.1 GET: (status, body).
pub async fn http_get(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let run = async {
        let mut stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").ok_or("no HTTP header")?;
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or("no HTTP status")?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .map_err(|_| format!("GET {host}:{port}{path} timed out"))?
}

/// Every instance answers with `version`.
async fn answers(state: &ServiceState, version: &str) {
    for i in &state.instances {
        let port = i.ports["web"];
        let (status, body) = http_get(&i.host, port, "/").await.unwrap();
        assert_eq!(status, 200, "instance {} at {}:{port}", i.name, i.host);
        assert_eq!(
            body.lines().next(),
            Some(version),
            "instance {} runs the wrong version",
            i.name
        );
        if let Some(key) = &state.key {
            let (_, run) = http_get(&i.host, port, "/env/VAMP_DEMO_RUN").await.unwrap();
            assert_eq!(
                run.trim(),
                key.deployment,
                "instance {} of another run",
                i.name
            );
        }
    }
}

/// Whether `instance` of the deployment `run` is gone: its port is closed, or serves another
/// test's instance (tests running beside this one may be given a port it gave back).
async fn gone(instance: &Instance, run: &str) -> bool {
    match http_get(&instance.host, instance.ports["web"], "/env/VAMP_DEMO_RUN").await {
        Err(_) => true,
        Ok((_, answer)) => answer.trim() != run,
    }
}

/// Deploy two instances, scale to three and to one, undeploy.
pub async fn deploy_scale_undeploy(driver: &dyn ContainerDriver, fixtures: &Fixtures) {
    let deployment = unique("kit-scale");
    let mut spec = demo_spec(fixtures, &deployment, "1.0.0", 2);
    driver.deploy(&spec).await.unwrap();
    let s = wait_for(driver, &spec.key, "2 healthy instances", |s| {
        converged(s, &spec, 2)
    })
    .await
    .unwrap();
    answers(&s, "1.0.0").await;
    let i = &s.instances[0];
    let (_, body) = http_get(&i.host, i.ports["web"], "/env/GREETING")
        .await
        .unwrap();
    assert_eq!(
        body.trim(),
        "hello",
        "the environment reaches the instances"
    );
    // Their own endpoints: a port each on one host (processes, Docker), or an address each
    // (Kubernetes pods, all on the container's port).
    let mut endpoints: Vec<(&str, u16)> = s
        .instances
        .iter()
        .map(|i| (i.host.as_str(), i.ports["web"]))
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    assert_eq!(endpoints.len(), 2, "instances get their own endpoints");

    spec.scale.instances = 3;
    driver.deploy(&spec).await.unwrap();
    let s = wait_for(driver, &spec.key, "3 healthy instances", |s| {
        converged(s, &spec, 3)
    })
    .await
    .unwrap();
    answers(&s, "1.0.0").await;

    spec.scale.instances = 1;
    driver.deploy(&spec).await.unwrap();
    wait_for(driver, &spec.key, "1 instance", |s| converged(s, &spec, 1)).await;

    driver.undeploy(&spec.key).await.unwrap();
    wait_for(driver, &spec.key, "gone", |s| {
        s.is_none_or(|s| s.instances.is_empty())
    })
    .await;
    for i in &s.instances {
        assert!(
            gone(i, &deployment).await,
            "an undeployed instance still answers on {}",
            i.ports["web"]
        );
    }
}

/// Two versions of one cluster run side by side without sharing a port.
pub async fn versions_never_collide(driver: &dyn ContainerDriver, fixtures: &Fixtures) {
    let deployment = unique("kit-versions");
    let v1 = demo_spec(fixtures, &deployment, "1.0.0", 2);
    let v2 = demo_spec(fixtures, &deployment, "2.0.0", 2);
    driver.deploy(&v1).await.unwrap();
    driver.deploy(&v2).await.unwrap();
    let s1 = wait_for(driver, &v1.key, "v1 up", |s| converged(s, &v1, 2))
        .await
        .unwrap();
    let s2 = wait_for(driver, &v2.key, "v2 up", |s| converged(s, &v2, 2))
        .await
        .unwrap();
    answers(&s1, "1.0.0").await;
    answers(&s2, "2.0.0").await;
    let mut endpoints: Vec<(&str, u16)> = s1
        .instances
        .iter()
        .chain(&s2.instances)
        .map(|i| (i.host.as_str(), i.ports["web"]))
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    assert_eq!(
        endpoints.len(),
        4,
        "every instance of every version has its own endpoint"
    );
    driver.undeploy(&v1.key).await.unwrap();
    driver.undeploy(&v2.key).await.unwrap();
    wait_for(driver, &v1.key, "v1 gone", |s| s.is_none()).await;
    wait_for(driver, &v2.key, "v2 gone", |s| s.is_none()).await;
}

/// A changed environment redeploys every instance.
pub async fn a_new_environment_redeploys(driver: &dyn ContainerDriver, fixtures: &Fixtures) {
    let deployment = unique("kit-env");
    let mut spec = demo_spec(fixtures, &deployment, "1.0.0", 2);
    driver.deploy(&spec).await.unwrap();
    wait_for(driver, &spec.key, "up", |s| converged(s, &spec, 2)).await;
    spec.environment.insert("GREETING".into(), "goodbye".into());
    driver.deploy(&spec).await.unwrap();
    let s = wait_for(driver, &spec.key, "redeployed", |s| converged(s, &spec, 2))
        .await
        .unwrap();
    for i in &s.instances {
        let (_, body) = http_get(&i.host, i.ports["web"], "/env/GREETING")
            .await
            .unwrap();
        assert_eq!(
            body.trim(),
            "goodbye",
            "instance {} kept the old environment",
            i.name
        );
    }
    driver.undeploy(&spec.key).await.unwrap();
    wait_for(driver, &spec.key, "gone", |s| s.is_none()).await;
}

/// A deployable that does not exist is reported as a failure with a reason.
pub async fn a_missing_deployable_fails_with_a_reason(
    driver: &dyn ContainerDriver,
    fixtures: &Fixtures,
) {
    let deployment = unique("kit-missing");
    let spec = spec(&deployment, "0.0.0", fixtures.missing.clone(), 1);
    // Either deploy says so at once, or the state does.
    if let Err(e) = driver.deploy(&spec).await {
        assert!(!e.to_string().is_empty());
        return;
    }
    let s = wait_for(driver, &spec.key, "a failure", |s| {
        s.is_some_and(|s| s.failure.is_some())
    })
    .await
    .unwrap();
    let reason = s.failure.unwrap_or_default();
    assert!(!reason.trim().is_empty(), "the failure names a reason");
    driver.undeploy(&spec.key).await.unwrap();
}

/// A deployable that exits at once is reported as a failure with a reason.
pub async fn a_deployable_that_exits_fails_with_a_reason(
    driver: &dyn ContainerDriver,
    fixtures: &Fixtures,
) {
    let deployment = unique("kit-exits");
    let spec = spec(&deployment, "0.0.0", fixtures.exits.clone(), 1);
    driver.deploy(&spec).await.unwrap();
    let s = wait_for(driver, &spec.key, "a failure", |s| {
        s.is_some_and(|s| s.failure.is_some())
    })
    .await
    .unwrap();
    assert!(!s.failure.unwrap_or_default().trim().is_empty());
    driver.undeploy(&spec.key).await.unwrap();
    wait_for(driver, &spec.key, "gone", |s| s.is_none()).await;
}

/// Undeploying a service that does not run is not an error.
pub async fn undeploying_the_unknown_is_fine(driver: &dyn ContainerDriver) {
    let key = ServiceKey {
        deployment: unique("kit-unknown"),
        cluster: "c".into(),
        service: "s:1".into(),
    };
    driver.undeploy(&key).await.unwrap();
}

/// A driver reopened over the same state finds the running service again — same instances, no
/// duplicates after deploying the same spec — and can undeploy it.
pub async fn finds_its_services_after_a_restart(
    driver: &dyn ContainerDriver,
    fixtures: &Fixtures,
    reopen: Reopen<'_>,
) {
    let deployment = unique("kit-restart");
    let spec = demo_spec(fixtures, &deployment, "1.0.0", 2);
    driver.deploy(&spec).await.unwrap();
    let before = wait_for(driver, &spec.key, "up", |s| converged(s, &spec, 2))
        .await
        .unwrap();
    let again = reopen().await;
    let found = wait_for(&*again, &spec.key, "found again", |s| {
        converged(s, &spec, 2)
    })
    .await
    .unwrap();
    let names = |s: &ServiceState| {
        let mut n: Vec<(String, u16)> = s
            .instances
            .iter()
            .map(|i| (i.name.clone(), i.ports["web"]))
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&found),
        names(&before),
        "the reopened driver sees the same instances"
    );
    again.deploy(&spec).await.unwrap();
    let after = wait_for(&*again, &spec.key, "unchanged", |s| converged(s, &spec, 2))
        .await
        .unwrap();
    assert_eq!(
        names(&after),
        names(&before),
        "deploying the same spec again starts nothing new"
    );
    again.undeploy(&spec.key).await.unwrap();
    wait_for(&*again, &spec.key, "gone", |s| s.is_none()).await;
    for i in &before.instances {
        assert!(gone(i, &deployment).await, "instance {} survived", i.name);
    }
}

/// What the driver under test runs to completion ([`ContainerDriver::run_once`]).
#[derive(Debug, Clone)]
pub struct RunFixtures {
    /// Writes the value of `VAMP_KIT` as a line to standard output, `to-stderr` to standard
    /// error, and exits 0.
    pub prints: Deployable,
    /// Exits with status 3.
    pub fails: Deployable,
    /// Runs for a minute.
    pub sleeps: Deployable,
    /// Cannot start (an image or command that does not exist).
    pub missing: Deployable,
    /// Whether the driver tells standard error from standard output. Kubernetes' log API
    /// gives both as one stream: there every line is standard output, and the kit checks only
    /// that the line is there.
    pub streams_apart: bool,
}

fn run_spec(name: &str, deployable: &Deployable, timeout: Duration) -> crate::traits::RunSpec {
    crate::traits::RunSpec {
        name: name.into(),
        breed: Breed {
            name: format!("{name}:1"),
            deployable: deployable.clone(),
            ..Breed::default()
        },
        environment: Map::from([("VAMP_KIT".to_owned(), "kit value".to_owned())]),
        timeout,
    }
}

/// Runs to completion: the output with its stream, the exit status, the timeout, a deployable
/// that cannot start — each an outcome, never an error.
pub async fn runs_to_completion(driver: &dyn ContainerDriver, fixtures: &RunFixtures) {
    let lines = std::sync::Mutex::new(Vec::new());
    let sink = |l: crate::traits::LogLine| lines.lock().expect("lines").push(l);
    let name = unique("kit-run");
    let outcome = driver
        .run_once(&run_spec(&name, &fixtures.prints, CONVERGE), &sink)
        .await
        .expect("runs");
    assert_eq!(outcome.status, Some(0), "{outcome:?}");
    assert_eq!(outcome.failure, None);
    let got: Vec<(bool, String)> = std::mem::take(&mut *lines.lock().expect("lines"))
        .into_iter()
        .map(|l| (l.stderr, l.text))
        .collect();
    assert!(got.contains(&(false, "kit value".into())), "{got:?}");
    if fixtures.streams_apart {
        assert!(got.contains(&(true, "to-stderr".into())), "{got:?}");
    } else {
        assert!(got.iter().any(|(_, text)| text == "to-stderr"), "{got:?}");
    }

    let outcome = driver
        .run_once(&run_spec(&name, &fixtures.fails, CONVERGE), &sink)
        .await
        .expect("runs");
    assert_eq!(outcome.status, Some(3), "{outcome:?}");
    assert!(outcome.failure.is_some_and(|f| f.contains('3')));

    let outcome = driver
        .run_once(
            &run_spec(&name, &fixtures.sleeps, Duration::from_secs(1)),
            &sink,
        )
        .await
        .expect("runs");
    assert_eq!(outcome.status, None, "{outcome:?}");
    assert!(
        outcome
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("timeout")),
        "{outcome:?}"
    );

    let outcome = driver
        .run_once(&run_spec(&name, &fixtures.missing, CONVERGE), &sink)
        .await
        .expect("an outcome, not an error");
    assert_ne!(outcome.status, Some(0), "{outcome:?}");
    assert!(outcome.failure.is_some(), "{outcome:?}");
}
