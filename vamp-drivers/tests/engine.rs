//! The engine end to end on the drivers — real processes of the demo service, real
//! containers of its FROM-scratch image on the dockerd scripts/test.sh starts, and
//! Deployments on the fake Kubernetes API server whose kubelet runs the demo service as
//! processes — with SQLite persistence and a recording router.

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
    #[cfg_attr(
        not(all(feature = "kubernetes", feature = "fakes")),
        allow(dead_code, reason = "run with the kubernetes and fakes features")
    )]
    Kubernetes,
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
        On::Docker | On::Kubernetes => [
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
    /// The fake API server (its kubelet's processes end with it).
    #[cfg(all(feature = "kubernetes", feature = "fakes"))]
    Kubernetes(vamp_drivers::fakes::kubernetes::FakeKubernetes),
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Processes(driver) => driver.kill_all_now(),
            #[cfg(all(feature = "kubernetes", feature = "fakes"))]
            Cleanup::Kubernetes(_) => {}
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
        #[cfg(all(feature = "kubernetes", feature = "fakes"))]
        On::Kubernetes => kubernetes::start().await,
        #[cfg(not(all(feature = "kubernetes", feature = "fakes")))]
        On::Kubernetes => return None,
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

/// What the driver applied after each step of a test (on Kubernetes only: the fake's
/// Deployments and Services, without what the API server adds).
#[derive(Default)]
struct Steps(Vec<serde_json::Value>);

impl Steps {
    fn record(&mut self, what: &str, cleanup: &Cleanup) {
        #[cfg(all(feature = "kubernetes", feature = "fakes"))]
        if let Cleanup::Kubernetes(fake) = cleanup {
            self.0
                .push(serde_json::json!({"after": what, "objects": kubernetes::applied(fake)}));
        }
        let _ = (what, cleanup);
    }
}

async fn deploy_merge_shift_slice_undeploy(on: On) {
    // On the fake Kubernetes (a server of this test's own) the name is fixed, so the applied
    // manifests can be compared with a snapshot.
    let name = if on == On::Kubernetes {
        "shop".to_owned()
    } else {
        unique("shop")
    };
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
    let mut steps = Steps::default();
    #[cfg(all(feature = "kubernetes", feature = "fakes"))]
    let pods = match &_cleanup {
        Cleanup::Kubernetes(fake) => Some(kubernetes::PodWatch::start(fake)),
        _ => None,
    };

    // Deploy: the frontend waits for the backend, then gets its address through the
    // backend's internal gateway.
    let shop = blueprint(&format!(
        "name: {name}\nclusters:\n  frontend: frontend:1.0\n  backend: backend:1.0\n"
    ));
    vamp.deploy(&name, &shop).await.unwrap();
    let d = converge(&vamp, &name, "all deployed", all_done)
        .await
        .unwrap();
    steps.record("deploy", &_cleanup);
    let backend_port = d.ports["backend.web"].clone();
    let frontend = &d.clusters["frontend"].services[0].instances[0];
    let (_, url) = http_get(&frontend.host, frontend.ports["web"], "/env/BACKEND_URL")
        .await
        .unwrap();
    // Services reach a gateway where the driver published it: on Kubernetes, its Service.
    let gateway_host = match &_cleanup {
        #[cfg(all(feature = "kubernetes", feature = "fakes"))]
        Cleanup::Kubernetes(fake) => kubernetes::cluster_ip(fake, &format!("{name}/backend/web")),
        _ => "127.0.0.1".to_owned(),
    };
    assert_eq!(url.trim(), format!("http://{gateway_host}:{backend_port}/"));
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
    steps.record("merge frontend:2.0", &_cleanup);
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
    if on == On::Kubernetes {
        // Scaled: the Deployment's replicas follow, and both pods serve.
        let scaled = blueprint(&format!(
            "name: {name}\nclusters:\n  frontend:\n    services:\n      - breed: frontend:2.0\n        scale: {{cpu: 0.2, memory: 256MB, instances: 2}}\n"
        ));
        vamp.deploy(&name, &scaled).await.unwrap();
        converge(&vamp, &name, "frontend:2.0 on two instances", |d| {
            all_done(d)
                && d.is_some_and(|d| {
                    d.clusters["frontend"].services[1].instances.len() == 2
                        && d.clusters["frontend"].services[1]
                            .instances
                            .iter()
                            .all(|i| i.deployed)
                })
        })
        .await;
        steps.record("scale frontend:2.0 to 2", &_cleanup);
    }
    let d = vamp.deployment(&name).await.unwrap().unwrap();
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
    steps.record("slice frontend:1.0", &_cleanup);
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
    steps.record("undeploy", &_cleanup);
    if on == On::Kubernetes {
        insta::assert_json_snapshot!("kubernetes_applied_manifests", steps.0);
    }
    #[cfg(all(feature = "kubernetes", feature = "fakes"))]
    if let Some(pods) = pods {
        pods.check_every_pod_went_pending_ready_deleted().await;
    }

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
    let mut expected = vec![
        "deployed backend:1.0",
        "deployed frontend:1.0",
        "deployed frontend:2.0",
        "undeployed frontend:1.0",
        "undeployed frontend:2.0",
        "undeployed backend:1.0",
    ];
    if on == On::Kubernetes {
        // Scaled to two instances: deployed again.
        expected.insert(3, "deployed frontend:2.0");
    }
    assert_eq!(
        seen,
        expected.iter().map(ToString::to_string).collect::<Vec<_>>(),
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
    let missing = if on != On::Processes {
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

#[cfg(all(feature = "kubernetes", feature = "fakes"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_deploy_merge_scale_shift_slice_undeploy() {
    deploy_merge_shift_slice_undeploy(On::Kubernetes).await;
}

#[cfg(all(feature = "kubernetes", feature = "fakes"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_bad_input_ends_in_a_clear_error_or_a_failed_phase() {
    bad_input_ends_in_a_clear_error_or_a_failed_phase(On::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_bad_input_ends_in_a_clear_error_or_a_failed_phase() {
    bad_input_ends_in_a_clear_error_or_a_failed_phase(On::Processes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_bad_input_ends_in_a_clear_error_or_a_failed_phase() {
    bad_input_ends_in_a_clear_error_or_a_failed_phase(On::Docker).await;
}

/// The fake Kubernetes API server with a kubelet that runs the demo service (and a program
/// that exits) as local processes, and what the tests read from it.
#[cfg(all(feature = "kubernetes", feature = "fakes"))]
mod kubernetes {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher;
    use serde_json::Value;
    use vamp_core::traits::ContainerDriver;
    use vamp_drivers::fakes::kubernetes::FakeKubernetes;
    use vamp_drivers::kubernetes::{KubernetesConfig, KubernetesDriver};

    use super::Cleanup;

    pub(super) async fn start() -> (Arc<dyn ContainerDriver>, Cleanup) {
        let demo = vamp_core::testkit::demo_app().display().to_string();
        let fake = FakeKubernetes::start_with_kubelet(
            [
                ("vamp-test/demo-app:1".to_owned(), vec![demo.clone()]),
                (
                    "vamp-test/exits:1".to_owned(),
                    vec![demo, "--error-rate".into(), "9".into()],
                ),
            ],
            "VAMP_DEMO_HOST",
        )
        .await
        .unwrap();
        let config = KubernetesConfig {
            ready_timeout: std::time::Duration::from_secs(2),
            ..KubernetesConfig::new("default")
        };
        let driver = KubernetesDriver::with_client(fake.client().expect("client"), config)
            .await
            .unwrap();
        (Arc::new(driver), Cleanup::Kubernetes(fake))
    }

    /// The cluster IP of the Service of gateway `gateway`.
    pub(super) fn cluster_ip(fake: &FakeKubernetes, gateway: &str) -> String {
        fake.objects("v1", "Service", "default")
            .into_iter()
            .find(|s| s["metadata"]["annotations"]["io.vamp/gateway"] == gateway)
            .and_then(|s| s["spec"]["clusterIP"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no Service for gateway {gateway}"))
    }

    /// The Deployments and Services as the driver applied them: what the API server adds
    /// (uid, versions, timestamps, managed fields, status) left out.
    pub(super) fn applied(fake: &FakeKubernetes) -> Value {
        let strip = |mut o: Value| {
            if let Some(meta) = o["metadata"].as_object_mut() {
                for volatile in [
                    "uid",
                    "resourceVersion",
                    "creationTimestamp",
                    "managedFields",
                    "generation",
                ] {
                    meta.remove(volatile);
                }
            }
            if let Some(o) = o.as_object_mut() {
                o.remove("status");
            }
            o
        };
        let deployments: Vec<Value> = fake
            .objects("apps/v1", "Deployment", "default")
            .into_iter()
            .map(strip)
            .collect();
        let services: Vec<Value> = fake
            .objects("v1", "Service", "default")
            .into_iter()
            .map(strip)
            .collect();
        serde_json::json!({"deployments": deployments, "services": services})
    }

    /// Every pod's phases as a watch saw them, one entry per change of phase or readiness.
    pub(super) struct PodWatch {
        seen: Arc<Mutex<BTreeMap<String, Vec<&'static str>>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl PodWatch {
        pub(super) fn start(fake: &FakeKubernetes) -> PodWatch {
            let pods: kube::Api<Pod> =
                kube::Api::namespaced(fake.client().expect("client"), "default");
            let seen: Arc<Mutex<BTreeMap<String, Vec<&'static str>>>> = Arc::default();
            let record = seen.clone();
            let task = tokio::spawn(async move {
                let mut events = watcher(pods, watcher::Config::default()).boxed();
                while let Some(event) = events.next().await {
                    let (pod, state) = match event {
                        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                            let status = p.status.clone().unwrap_or_default();
                            let ready = status
                                .conditions
                                .iter()
                                .flatten()
                                .any(|c| c.type_ == "Ready" && c.status == "True");
                            let state = match (status.phase.as_deref(), ready) {
                                (Some("Running"), true) => "Ready",
                                (Some("Running"), false) => "Running",
                                (Some(other), _) if other != "Pending" => "Ended",
                                _ => "Pending",
                            };
                            (p, state)
                        }
                        Ok(watcher::Event::Delete(p)) => (p, "Deleted"),
                        _ => continue,
                    };
                    let name = pod.metadata.name.unwrap_or_default();
                    let mut seen = record.lock().unwrap();
                    let states = seen.entry(name).or_default();
                    if states.last() != Some(&state) {
                        states.push(state);
                    }
                }
            });
            PodWatch { seen, task }
        }

        /// Each pod was seen `Pending`, then `Ready`, then `Deleted` — in that order, each
        /// once (the kubelet's processes start, pass their probe and end with the pod).
        pub(super) async fn check_every_pod_went_pending_ready_deleted(self) {
            let seen = vamp_core::testkit::eventually("every pod's deletion watched", || async {
                let seen = self.seen.lock().unwrap().clone();
                let all = !seen.is_empty() && seen.values().all(|s| s.last() == Some(&"Deleted"));
                if all { Ok(seen) } else { Err(seen) }
            })
            .await;
            self.task.abort();
            for (pod, states) in &seen {
                let states: Vec<&str> =
                    states.iter().copied().filter(|s| *s != "Running").collect();
                assert_eq!(states, ["Pending", "Ready", "Deleted"], "pod {pod}");
            }
            // backend 1.0, frontend 1.0, frontend 2.0 and its second instance: scaling
            // added a pod and replaced none.
            assert_eq!(seen.len(), 4, "{seen:?}");
        }
    }
}
