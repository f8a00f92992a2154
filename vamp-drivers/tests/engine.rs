//! The engine end to end on the process driver: real processes of the demo service, SQLite
//! persistence, a recording router.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use vamp_core::dsl::{self, ErrorKind};
use vamp_core::memory::RecordingRouter;
use vamp_core::model::{Artifact, Blueprint, Deployment, Intention, Kind, PhaseName};
use vamp_core::testkit::driver::http_get;
use vamp_core::traits::ContainerDriver;
use vamp_core::{Error, Vamp, VampConfig};
use vamp_drivers::process::{ProcessConfig, ProcessDriver};
use vamp_drivers::sqlite::SqlitePersistence;

fn demo_app() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("vamp-demo-app");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p vamp-demo-app` first",
        bin.display()
    );
    bin
}

fn breeds() -> String {
    let bin = demo_app().display().to_string();
    let breed = |name: &str, version: &str, extra: &str| {
        format!(
            "---\nkind: breeds\nname: {name}:{version}\ndeployable:\n  type: command\n  definition: \"'{bin}' --app-version {name}-{version}\"\n\
             ports:\n  web: 8080/http\nhealth_checks:\n  path: /health\n  port: web\n  initial_delay: 0s\n  timeout: 2s\n  interval: 1s\n  failures: 3\n{extra}"
        )
    };
    let uses_backend = "environment_variables:\n  BACKEND_URL: http://$backend.host:$backend.ports.web/\ndependencies:\n  backend: backend:1.0\n";
    [
        breed("backend", "1.0", ""),
        breed("frontend", "1.0", uses_backend),
        breed("frontend", "2.0", uses_backend),
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

struct Setup {
    vamp: Vamp,
    driver: Arc<ProcessDriver>,
    router: RecordingRouter,
    _dir: Cleanup,
}

/// Kills whatever a test started, even when it panics, then removes its directory.
struct Cleanup(
    Arc<ProcessDriver>,
    #[allow(dead_code, reason = "held for its Drop")] tempfile::TempDir,
);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.kill_all_now();
    }
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let driver = Arc::new(
        ProcessDriver::new(ProcessConfig {
            stop_grace: Duration::from_secs(3),
            ..ProcessConfig::new(dir.path().join("process"))
        })
        .unwrap(),
    );
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
    for artifact in dsl::read(&breeds(), None).unwrap() {
        vamp.put(artifact).await.unwrap();
    }
    Setup {
        vamp,
        driver: driver.clone(),
        router,
        _dir: Cleanup(driver, dir),
    }
}

/// Reconciles until `done` holds for the deployment (or its absence), at most 60 s.
async fn converge(
    vamp: &Vamp,
    name: &str,
    what: &str,
    done: impl Fn(Option<&Deployment>) -> bool,
) -> Option<Deployment> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        vamp.reconcile().await.unwrap();
        let d = vamp.deployment(name).await.unwrap();
        if done(d.as_ref()) {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "'{what}' not reached; deployment: {d:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_merge_shift_slice_undeploy() {
    let Setup {
        vamp,
        driver,
        router,
        _dir,
    } = setup().await;
    let mut events = vamp.subscribe().await.unwrap();

    // Deploy: the frontend waits for the backend, then gets its address through the
    // backend's internal gateway.
    let shop =
        blueprint("name: shop\nclusters:\n  frontend: frontend:1.0\n  backend: backend:1.0\n");
    vamp.deploy("shop", &shop).await.unwrap();
    let d = converge(&vamp, "shop", "all deployed", all_done)
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
        .find(|g| g.name == "shop/frontend/web")
        .expect("frontend gateway routed");
    assert_eq!(web.routes[0].targets[0].port, frontend.ports["web"]);

    // Merge v2: it joins at 0%.
    vamp.deploy(
        "shop",
        &blueprint("name: shop\nclusters:\n  frontend: frontend:2.0\n"),
    )
    .await
    .unwrap();
    let d = converge(&vamp, "shop", "v2 deployed", all_done)
        .await
        .unwrap();
    assert_eq!(
        weights(&d),
        [("frontend:1.0".into(), 100), ("frontend:2.0".into(), 0)]
    );

    // Removing v1 is refused while v2 has no traffic.
    let v1 = blueprint("name: shop\nclusters:\n  frontend: frontend:1.0\n");
    match vamp.slice("shop", &v1).await {
        Err(Error::Dsl(e)) => assert_eq!(e.kind, ErrorKind::InvalidRouteWeight),
        other => panic!("expected InvalidRouteWeight, got {other:?}"),
    }

    // Shift the traffic, then remove v1.
    let shift = blueprint(
        "name: shop\nclusters:\n  frontend:\n    gateways:\n      web:\n        routes:\n          frontend:1.0: {weight: 0%}\n          frontend:2.0: {weight: 100%}\n    services: [frontend:1.0, frontend:2.0]\n",
    );
    vamp.deploy("shop", &shift).await.unwrap();
    let d = converge(&vamp, "shop", "shifted", all_done).await.unwrap();
    assert_eq!(
        weights(&d),
        [("frontend:1.0".into(), 0), ("frontend:2.0".into(), 100)]
    );
    let old = d.clusters["frontend"].services[0].instances[0].clone();
    vamp.slice("shop", &v1).await.unwrap();
    let d = converge(&vamp, "shop", "v1 removed", |d| {
        d.is_some_and(|d| d.clusters["frontend"].services.len() == 1)
    })
    .await
    .unwrap();
    assert_eq!(
        d.clusters["frontend"].services[0].breed.name,
        "frontend:2.0"
    );
    assert!(
        http_get(&old.host, old.ports["web"], "/").await.is_err(),
        "v1's process is gone"
    );

    // Undeploy everything: the deployment disappears with its processes.
    vamp.undeploy("shop").await.unwrap();
    converge(&vamp, "shop", "undeployed", |d| d.is_none()).await;
    assert!(
        driver.services().await.unwrap().is_empty(),
        "no process left"
    );
    assert!(vamp.get(Kind::Deployment, "shop").await.unwrap().is_none());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_ends_in_a_clear_error_or_a_failed_phase() {
    let Setup { vamp, _dir, .. } = setup().await;
    // An unknown breed: rejected before anything is stored.
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
    assert!(
        vamp.deployment("x").await.unwrap().is_none(),
        "nothing stored"
    );

    // A command that does not exist, and one that exits at once: Failed with the reason.
    let broken = "---\nkind: breeds\nname: missing:1\ndeployable: {type: command, definition: /nonexistent/program}\nports: {web: 80}\n\
                  ---\nkind: breeds\nname: exits:1\ndeployable: {type: command, definition: \"/bin/false\"}\nports: {web: 80}\n";
    for a in dsl::read(broken, None).unwrap() {
        vamp.put(a).await.unwrap();
    }
    vamp.deploy(
        "broken",
        &blueprint("name: broken\nclusters:\n  a: missing:1\n  b: exits:1\n"),
    )
    .await
    .unwrap();
    let d = converge(&vamp, "broken", "both failed", |d| {
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
    assert!(
        reason("a").contains("/nonexistent/program"),
        "{}",
        reason("a")
    );
    assert!(reason("b").contains("exited"), "{}", reason("b"));
    vamp.undeploy("broken").await.unwrap();
    converge(&vamp, "broken", "gone", |d| d.is_none()).await;
}
