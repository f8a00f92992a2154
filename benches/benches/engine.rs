//! The engine: CPU time of one reconciliation pass, and the time from a deploy call until every
//! instance is healthy on the process driver (and on the Docker and Swarm drivers when the test
//! daemon runs: `source $VAMP_SVC_DIR/env` after `scripts/services.sh start`), and one pass of
//! the SLA runtime.
//!
//! Run with: `cargo build --release -p vamp-demo-app && cargo bench -p vamp-benches --bench engine`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use vamp_core::memory::{MemoryDriver, MemoryPersistence, RecordingRouter};
use vamp_core::model::{Artifact, Blueprint, Event, Intention, PhaseName};
use vamp_core::{Vamp, VampConfig, dsl};
use vamp_drivers::docker::{DockerConfig, DockerDriver};
use vamp_drivers::process::{ProcessConfig, ProcessDriver};
use vamp_drivers::sqlite::SqlitePersistence;
use vamp_drivers::swarm::SwarmDriver;

fn read(text: &str) -> Vec<Artifact> {
    dsl::read(text, None).expect("bench input reads")
}

fn blueprint(text: &str) -> Blueprint {
    match read(text).remove(0) {
        Artifact::Blueprint(b) => b,
        _ => unreachable!("a blueprint"),
    }
}

/// `n` clusters of one service each.
fn services(n: usize) -> (Vec<Artifact>, Blueprint) {
    let breeds: String = (0..n)
        .map(|i| {
            format!("---\nkind: breeds\nname: s{i}:1\ndeployable: img\nports: {{web: 8080/http}}\n")
        })
        .collect();
    let clusters: String = (0..n).map(|i| format!("  c{i}: s{i}:1\n")).collect();
    (
        read(&breeds),
        blueprint(&format!("kind: blueprints\nname: b\nclusters:\n{clusters}")),
    )
}

async fn converged(vamp: &Vamp, name: &str) -> bool {
    vamp.deployment(name).await.ok().flatten().is_some_and(|d| {
        d.clusters.values().flat_map(|c| &c.services).all(|s| {
            s.status.intention == Intention::Deployment && s.status.phase.name == PhaseName::Done
        })
    })
}

fn reconcile_pass(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("reconcile-pass");
    for n in [2, 300] {
        let vamp = rt.block_on(async {
            let vamp = Vamp::builder()
                .persistence(Arc::new(MemoryPersistence::default()))
                .driver(Arc::new(MemoryDriver::default()))
                .build()
                .expect("vamp");
            let (breeds, bp) = services(n);
            for b in breeds {
                vamp.put(b).await.expect("breed");
            }
            vamp.deploy("b", &bp).await.expect("deploy");
            while !converged(&vamp, "b").await {
                vamp.reconcile().await.expect("pass");
            }
            vamp
        });
        // A steady-state pass: read everything, compare, change nothing.
        group.bench_function(format!("{n}-services-steady"), |b| {
            b.iter(|| rt.block_on(vamp.reconcile()).expect("pass"));
        });
    }
    group.finish();
}

/// A Vamp over `driver` with the two-service blueprint's breeds stored; `deployable` gives a
/// breed's deployable (YAML) for its version name.
fn two_service_vamp(
    rt: &tokio::runtime::Runtime,
    driver: Arc<dyn vamp_core::traits::ContainerDriver>,
    deployable: &dyn Fn(&str) -> String,
) -> Vamp {
    let vamp = Vamp::builder()
        .persistence(Arc::new(MemoryPersistence::default()))
        .driver(driver)
        .config(VampConfig {
            converging: Duration::from_millis(10),
            ..VampConfig::default()
        })
        .build()
        .expect("vamp");
    let breed = |name: &str, extra: &str| {
        format!(
            "---\nkind: breeds\nname: {name}:1\ndeployable: {}\n\
             ports: {{web: 8080/http}}\nhealth_checks: {{port: web, path: /health, initial_delay: 0s, timeout: 1s, interval: 1s, failures: 1}}\n{extra}",
            deployable(name)
        )
    };
    rt.block_on(async {
        let text = breed("backend", "")
            + &breed(
                "frontend",
                "environment_variables: {UP: $b.host:$b.ports.web}\ndependencies: {b: backend:1}\n",
            );
        for a in read(&text) {
            vamp.put(a).await.expect("breed");
        }
    });
    vamp
}

/// Deploy the two services, reconcile until both are healthy (timed), undeploy (not timed).
fn bench_deploy(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    rt: &tokio::runtime::Runtime,
    vamp: &Vamp,
) {
    let bp = blueprint(
        "kind: blueprints\nname: two\nclusters:\n  backend: backend:1\n  frontend: frontend:1\n",
    );
    group.bench_function(label, |b| {
        b.iter_custom(|iterations| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    vamp.deploy("two", &bp).await.expect("deploy");
                    while !converged(vamp, "two").await {
                        vamp.reconcile().await.expect("pass");
                    }
                    total += started.elapsed();
                    vamp.undeploy("two").await.expect("undeploy");
                    while vamp.deployment("two").await.expect("read").is_some() {
                        vamp.reconcile().await.expect("pass");
                    }
                }
                black_box(total)
            })
        });
    });
}

/// The time from a deploy call until every instance is healthy: on the process driver always;
/// on the Docker and Swarm drivers when `VAMP_TEST_DOCKER` / `VAMP_TEST_SWARM` name a daemon
/// with the test images (`scripts/services.sh start`, `scripts/images.sh`).
fn deploy_to_healthy(c: &mut Criterion) {
    let demo = std::env::current_exe()
        .ok()
        .and_then(|e| {
            e.parent()
                .and_then(|d| d.parent())
                .map(|d| d.join("vamp-demo-app"))
        })
        .filter(|p| p.exists())
        .expect("build the demo app first: cargo build --release -p vamp-demo-app");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let process = Arc::new(
        ProcessDriver::new(ProcessConfig::new(dir.path().join("process"))).expect("driver"),
    );
    let bin = demo.display();
    let command =
        |name: &str| format!("{{type: command, definition: \"'{bin}' --app-version {name}\"}}");
    let image = |_: &str| "vamp-test/demo-app:1".to_owned();
    let mut group = c.benchmark_group("deploy-to-healthy");
    group.sample_size(10);
    let vamp = two_service_vamp(&rt, process.clone(), &command);
    bench_deploy(&mut group, "process-driver/2-services", &rt, &vamp);
    let daemon = |host: String, namespace: &str| DockerConfig {
        namespace: namespace.into(),
        stop_grace: Duration::from_secs(2),
        ..DockerConfig::new(host)
    };
    if let Ok(host) = std::env::var("VAMP_TEST_DOCKER") {
        let docker = rt
            .block_on(DockerDriver::connect(daemon(host, "bench")))
            .expect("docker driver");
        let vamp = two_service_vamp(&rt, Arc::new(docker), &image);
        bench_deploy(&mut group, "docker-driver/2-services", &rt, &vamp);
    }
    if let Ok(host) = std::env::var("VAMP_TEST_SWARM") {
        let swarm = rt
            .block_on(SwarmDriver::connect(daemon(host, "bench-swarm")))
            .expect("swarm driver");
        let vamp = two_service_vamp(&rt, Arc::new(swarm), &image);
        bench_deploy(&mut group, "swarm-driver/2-services", &rt, &vamp);
    }
    group.finish();
    process.kill_all_now();
}

/// One SLA pass (checks, escalations) over `n` deployments whose cluster has a response-time
/// SLA, on SQLite. Before each pass (untimed) every watched gateway gets a
/// `metrics:responseTime` event 10 s after the previous one, as the stock `metrics` workflow
/// publishes them, so the event log grows as it would; thresholds are set so nothing
/// escalates.
fn sla_pass(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("sla-pass");
    group.sample_size(20);
    for n in [10, 100] {
        let dir = tempfile::tempdir().expect("temp dir");
        let router = RecordingRouter::default();
        let vamp = rt.block_on(async {
            let db = SqlitePersistence::open(dir.path().join("sla.db"))
                .await
                .expect("sqlite");
            let vamp = Vamp::builder()
                .persistence(Arc::new(db))
                .driver(Arc::new(MemoryDriver::default()))
                .router(Arc::new(router.clone()))
                .build()
                .expect("vamp");
            for a in read("kind: breeds\nname: web:1\ndeployable: img\nports: {web: 8080/http}\n") {
                vamp.put(a).await.expect("breed");
            }
            for i in 0..n {
                let bp = blueprint(&format!(
                    "kind: blueprints\nname: d{i}\nclusters:\n  c:\n    breed: web:1\n    sla:\n      \
                     type: response_time_sliding_window\n      threshold: {{upper: 100000, lower: 0}}\n      \
                     window: {{interval: 60, cooldown: 0}}\n      escalations: [{{type: scale_instances, minimum: 1, maximum: 2, scale_by: 1}}]\n"
                ));
                vamp.deploy(&format!("d{i}"), &bp).await.expect("deploy");
            }
            while !vamp.reconcile().await.expect("pass").converged {}
            vamp
        });
        let mut now = chrono::Utc::now();
        group.bench_function(format!("{n}-deployments"), |b| {
            b.iter_custom(|iterations| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        now += chrono::Duration::seconds(10);
                        for i in 0..n {
                            let mut e = Event::new(
                                [
                                    format!("gateways:d{i}/c/web"),
                                    "gateway".into(),
                                    "metrics:responseTime".into(),
                                ],
                                serde_json::json!(20.0),
                            );
                            e.kind = "metrics".into();
                            e.timestamp = now;
                            vamp.publish(&e).await.expect("metrics event");
                        }
                        let started = Instant::now();
                        let report = vamp.sla_pass_at(now).await.expect("sla pass");
                        total += started.elapsed();
                        black_box(report);
                    }
                    total
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, reconcile_pass, deploy_to_healthy, sla_pass);
criterion_main!(benches);
