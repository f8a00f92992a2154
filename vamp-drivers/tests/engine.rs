//! The engine end to end on both drivers — real processes of the demo service, and real
//! containers of its FROM-scratch image on the dockerd scripts/test.sh starts — with SQLite
//! persistence and a recording router.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use vamp_core::dsl::{self, ErrorKind};
use vamp_core::memory::RecordingRouter;
use vamp_core::model::{Artifact, Blueprint, Deployment, Intention, Kind, PhaseName};
use vamp_core::testkit::driver::http_get;
use vamp_core::testkit::{services, unique};
use vamp_core::traits::ContainerDriver;
use vamp_core::{Error, Vamp, VampConfig};
use vamp_drivers::docker::{DockerConfig, DockerDriver};
use vamp_drivers::process::{ProcessConfig, ProcessDriver};
use vamp_drivers::sqlite::SqlitePersistence;

#[derive(Clone, Copy, PartialEq)]
enum On {
    Processes,
    Docker,
}

/// How each driver runs the demo service, one that does not exist, and one that exits.
fn deployables(on: On) -> [String; 3] {
    match on {
        On::Processes => [
            format!(
                "{{type: command, definition: \"'{}'\"}}",
                vamp_core::testkit::demo_app().display()
            ),
            "{type: command, definition: /nonexistent/program}".into(),
            "{type: command, definition: /bin/false}".into(),
        ],
        On::Docker => [
            "vamp-test/demo-app:1".into(),
            "vamp-test/no-such-image:1".into(),
            "vamp-test/exits:1".into(),
        ],
    }
}

/// The breeds, each instance carrying `VAMP_DEMO_RUN: <run>` to tell this test's instances from
/// those of tests running beside it (which may get a port this test's instances gave back).
fn breeds(on: On, run: &str) -> String {
    let [demo, missing, exits] = deployables(on);
    let breed = |name: &str, version: &str, extra: &str| {
        format!(
            "---\nkind: breeds\nname: {name}:{version}\ndeployable: {demo}\nports:\n  web: 8080/http\n\
             health_checks:\n  path: /health\n  port: web\n  initial_delay: 0s\n  timeout: 2s\n  interval: 1s\n  failures: 3\n\
             environment_variables:\n  VAMP_DEMO_VERSION: {name}-{version}\n  VAMP_DEMO_RUN: {run}\n{extra}"
        )
    };
    let uses_backend = "  BACKEND_URL: http://$backend.host:$backend.ports.web/\ndependencies:\n  backend: backend:1.0\n";
    [
        breed("backend", "1.0", ""),
        breed("frontend", "1.0", uses_backend),
        breed("frontend", "2.0", uses_backend),
        format!("---\nkind: breeds\nname: missing:1\ndeployable: {missing}\nports: {{web: 80}}\n"),
        format!("---\nkind: breeds\nname: exits:1\ndeployable: {exits}\nports: {{web: 80}}\n"),
    ]
    .concat()
}

fn blueprint(yaml: &str) -> Blueprint {
    match dsl::read(&format!("kind: blueprints\n{yaml}"), None)
        .unwrap()
        .remove(0)
    {
        Artifact::Blueprint(b) => b,
        other => panic!("{other:?}"),
    }
}

/// Removes what a test started, even when it panics.
enum Cleanup {
    Processes(Arc<ProcessDriver>),
    Docker(String, Vec<String>),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Processes(driver) => driver.kill_all_now(),
            Cleanup::Docker(host, deployments) => {
                for d in deployments {
                    let ids = std::process::Command::new("docker")
                        .args([
                            "-H",
                            host,
                            "ps",
                            "-aq",
                            "--filter",
                            &format!("label=io.vamp.deployment={d}"),
                        ])
                        .output()
                        .map(|o| {
                            String::from_utf8_lossy(&o.stdout)
                                .split_whitespace()
                                .map(str::to_owned)
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    if !ids.is_empty() {
                        let _ = std::process::Command::new("docker")
                            .args(["-H", host, "rm", "-f"])
                            .args(&ids)
                            .output();
                    }
                }
            }
        }
    }
}

struct Setup {
    vamp: Vamp,
    driver: Arc<dyn ContainerDriver>,
    router: RecordingRouter,
    _cleanup: Cleanup,
    _dir: tempfile::TempDir,
}

/// `None` when the test is not meant to run here (Docker not in VAMP_TEST_SERVICES).
async fn setup(on: On, deployments: &[&str]) -> Option<Setup> {
    let dir = tempfile::tempdir().unwrap();
    let (driver, cleanup): (Arc<dyn ContainerDriver>, Cleanup) = match on {
        On::Processes => {
            let d = Arc::new(
                ProcessDriver::new(ProcessConfig {
                    stop_grace: Duration::from_secs(3),
                    ..ProcessConfig::new(dir.path().join("process"))
                })
                .unwrap(),
            );
            (d.clone(), Cleanup::Processes(d))
        }
        On::Docker => {
            let host = services::service("docker")?;
            // A namespace of its own: other tests' containers on the same daemon are not its
            // business (its reconciler removes containers no deployment wants).
            let config = DockerConfig {
                stop_grace: Duration::from_secs(2),
                namespace: unique("e2e"),
                // Below the kernel's ephemeral range (32768+), where tests running beside this
                // one take free ports from.
                ports: 26000..=26999,
                ..DockerConfig::new(&host)
            };
            let d = DockerDriver::connect(config).await.unwrap();
            let names = deployments.iter().map(|d| (*d).to_owned()).collect();
            (Arc::new(d), Cleanup::Docker(host, names))
        }
    };
    let router = RecordingRouter::default();
    let vamp = Vamp::builder()
        .persistence(Arc::new(
            SqlitePersistence::open(dir.path().join("vamp.db"))
                .await
                .unwrap(),
        ))
        .driver(driver.clone())
        .router(Arc::new(router.clone()))
        .config(VampConfig {
            converging: Duration::from_millis(50),
            ..VampConfig::default()
        })
        .build()
        .unwrap();
    for artifact in dsl::read(
        &breeds(on, deployments.first().copied().unwrap_or("run")),
        None,
    )
    .unwrap()
    {
        vamp.put(artifact).await.unwrap();
    }
    Some(Setup {
        vamp,
        driver,
        router,
        _cleanup: cleanup,
        _dir: dir,
    })
}

/// Reconciles until `done` holds for the deployment (or its absence), at most 90 s.
async fn converge(
    vamp: &Vamp,
    name: &str,
    what: &str,
    done: impl Fn(Option<&Deployment>) -> bool,
) -> Option<Deployment> {
    vamp_core::testkit::eventually_within(what, Duration::from_secs(90), || async {
        vamp.reconcile().await.unwrap();
        let d = vamp.deployment(name).await.unwrap();
        if done(d.as_ref()) { Ok(d) } else { Err(d) }
    })
    .await
}

fn all_done(d: Option<&Deployment>) -> bool {
    d.is_some_and(|d| {
        d.clusters.values().flat_map(|c| &c.services).all(|s| {
            s.status.intention == Intention::Deployment && s.status.phase.name == PhaseName::Done
        })
    })
}

fn weights(d: &Deployment) -> Vec<(String, u8)> {
    d.clusters["frontend"].gateways["web"]
        .routes
        .iter()
        .map(|(k, r)| (k.clone(), r.inline().unwrap().weight.unwrap().get()))
        .collect()
}

async fn deploy_merge_shift_slice_undeploy(on: On) {
    let name = unique("shop");
    // Bind the guards: dropping them ends the test's processes and files.
    let Some(Setup {
        vamp,
        driver,
        router,
        _cleanup,
        _dir,
    }) = setup(on, &[&name]).await
    else {
        return;
    };
    let mut events = vamp.subscribe().await.unwrap();

    // Deploy: the frontend waits for the backend, then gets its address through the
    // backend's internal gateway.
    let shop = blueprint(&format!(
        "name: {name}\nclusters:\n  frontend: frontend:1.0\n  backend: backend:1.0\n"
    ));
    vamp.deploy(&name, &shop).await.unwrap();
    let d = converge(&vamp, &name, "all deployed", all_done)
        .await
        .unwrap();
    let backend_port = d.ports["backend.web"].clone();
    let frontend = &d.clusters["frontend"].services[0].instances[0];
    let (_, url) = http_get(&frontend.host, frontend.ports["web"], "/env/BACKEND_URL")
        .await
        .unwrap();
    assert_eq!(url.trim(), format!("http://127.0.0.1:{backend_port}/"));
    let (_, body) = http_get(&frontend.host, frontend.ports["web"], "/")
        .await
        .unwrap();
    assert_eq!(body.lines().next(), Some("frontend-1.0"));

    // The router got the internal gateways with the instances as targets.
    let routed = router.current();
    let web = routed
        .iter()
        .find(|g| g.name == format!("{name}/frontend/web"))
        .expect("frontend gateway routed");
    assert_eq!(web.routes[0].targets[0].port, frontend.ports["web"]);

    // Merge v2: it joins at 0%.
    vamp.deploy(
        &name,
        &blueprint(&format!(
            "name: {name}\nclusters:\n  frontend: frontend:2.0\n"
        )),
    )
    .await
    .unwrap();
    let d = converge(&vamp, &name, "v2 deployed", all_done)
        .await
        .unwrap();
    assert_eq!(
        weights(&d),
        [("frontend:1.0".into(), 100), ("frontend:2.0".into(), 0)]
    );

    // Removing v1 is refused while v2 has no traffic.
    let v1 = blueprint(&format!(
        "name: {name}\nclusters:\n  frontend: frontend:1.0\n"
    ));
    match vamp.slice(&name, &v1).await {
        Err(Error::Dsl(e)) => assert_eq!(e.kind, ErrorKind::InvalidRouteWeight),
        other => panic!("expected InvalidRouteWeight, got {other:?}"),
    }

    // Shift the traffic, then remove v1.
    let shift = blueprint(&format!(
        "name: {name}\nclusters:\n  frontend:\n    gateways:\n      web:\n        routes:\n          frontend:1.0: {{weight: 0%}}\n          frontend:2.0: {{weight: 100%}}\n    services: [frontend:1.0, frontend:2.0]\n"
    ));
    vamp.deploy(&name, &shift).await.unwrap();
    let d = converge(&vamp, &name, "shifted", all_done).await.unwrap();
    assert_eq!(
        weights(&d),
        [("frontend:1.0".into(), 0), ("frontend:2.0".into(), 100)]
    );
    let old = d.clusters["frontend"].services[0].instances[0].clone();
    let (_, run) = http_get(&old.host, old.ports["web"], "/env/VAMP_DEMO_RUN")
        .await
        .unwrap();
    assert_eq!(run.trim(), name, "v1 answers as this run's instance");
    vamp.slice(&name, &v1).await.unwrap();
    let d = converge(&vamp, &name, "v1 removed", |d| {
        d.is_some_and(|d| d.clusters["frontend"].services.len() == 1)
    })
    .await
    .unwrap();
    assert_eq!(
        d.clusters["frontend"].services[0].breed.name,
        "frontend:2.0"
    );
    // The port may already serve another test's instance; it must not be this run's v1.
    if let Ok((_, run)) = http_get(&old.host, old.ports["web"], "/env/VAMP_DEMO_RUN").await {
        assert_ne!(run.trim(), name, "v1 is gone");
    }

    // Undeploy everything: the deployment disappears with its instances.
    vamp.undeploy(&name).await.unwrap();
    converge(&vamp, &name, "undeployed", |d| d.is_none()).await;
    let left: Vec<_> = driver
        .services()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.key.as_ref().is_some_and(|k| k.deployment == name))
        .collect();
    assert!(left.is_empty(), "instances left: {left:?}");
    assert!(vamp.get(Kind::Deployment, &name).await.unwrap().is_none());

    // The synchronization events, in order.
    let mut seen = Vec::new();
    while let Ok(Some(Ok(e))) =
        tokio::time::timeout(Duration::from_millis(200), events.next()).await
    {
        if e.event.kind == "synchronization" {
            let what = e
                .event
                .tags
                .iter()
                .find_map(|t| t.strip_prefix("synchronization:"))
                .unwrap()
                .to_owned();
            let service = e
                .event
                .tags
                .iter()
                .find_map(|t| t.strip_prefix("services:"))
                .unwrap()
                .to_owned();
            seen.push(format!("{what} {service}"));
        }
    }
    assert_eq!(
        seen,
        [
            "deployed backend:1.0",
            "deployed frontend:1.0",
            "deployed frontend:2.0",
            "undeployed frontend:1.0",
            "undeployed frontend:2.0",
            "undeployed backend:1.0",
        ]
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>(),
        "dependencies deploy first; undeployments follow the slices"
    );
}

async fn bad_input_ends_in_a_clear_error_or_a_failed_phase(on: On) {
    let name = unique("broken");
    let Some(Setup {
        vamp,
        _cleanup,
        _dir,
        ..
    }) = setup(on, &[&name]).await
    else {
        return;
    };
    // An unknown breed and a dependency cycle: rejected before anything is stored.
    match vamp
        .deploy("x", &blueprint("name: x\nclusters:\n  a: nope:1.0\n"))
        .await
    {
        Err(Error::Dsl(e)) => assert_eq!(
            (e.kind, e.path.as_str()),
            (ErrorKind::ArtifactNotFound, "clusters.a.services[0].breed")
        ),
        other => panic!("{other:?}"),
    }
    // A dependency cycle between stored breeds is refused when the second breed is stored.
    let cycle = "---\nkind: breeds\nname: a:1\ndeployable: a\ndependencies: {b: b:1}\n---\nkind: breeds\nname: b:1\ndeployable: b\ndependencies: {a: a:1}\n";
    let mut cycle = dsl::read(cycle, None).unwrap();
    let second = cycle.pop().unwrap();
    vamp.put(cycle.pop().unwrap()).await.unwrap();
    match vamp.put(second).await {
        Err(Error::Dsl(e)) => assert_eq!(e.kind, ErrorKind::RecursiveDependenciesError),
        other => panic!("{other:?}"),
    }
    assert!(
        vamp.get(Kind::Breed, "b:1").await.unwrap().is_none(),
        "the refused breed is not stored"
    );
    assert!(
        vamp.deployment("x").await.unwrap().is_none(),
        "nothing stored"
    );

    // A deployable that does not exist, and one that exits at once: Failed with the reason.
    vamp.deploy(
        &name,
        &blueprint(&format!(
            "name: {name}\nclusters:\n  a: missing:1\n  b: exits:1\n"
        )),
    )
    .await
    .unwrap();
    let d = converge(&vamp, &name, "both failed", |d| {
        d.is_some_and(|d| {
            d.clusters
                .values()
                .all(|c| c.services[0].status.phase.name == PhaseName::Failed)
        })
    })
    .await
    .unwrap();
    let reason = |c: &str| {
        d.clusters[c].services[0]
            .status
            .phase
            .notification
            .clone()
            .unwrap_or_default()
    };
    let missing = if on == On::Docker {
        "no-such-image"
    } else {
        "/nonexistent/program"
    };
    assert!(reason("a").contains(missing), "{}", reason("a"));
    assert!(reason("b").contains("exited"), "{}", reason("b"));
    vamp.undeploy(&name).await.unwrap();
    converge(&vamp, &name, "gone", |d| d.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_deploy_merge_shift_slice_undeploy() {
    deploy_merge_shift_slice_undeploy(On::Processes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_deploy_merge_shift_slice_undeploy() {
    deploy_merge_shift_slice_undeploy(On::Docker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_bad_input_ends_in_a_clear_error_or_a_failed_phase() {
    bad_input_ends_in_a_clear_error_or_a_failed_phase(On::Processes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_bad_input_ends_in_a_clear_error_or_a_failed_phase() {
    bad_input_ends_in_a_clear_error_or_a_failed_phase(On::Docker).await;
}
