//! The engine on the in-memory driver: at scale, and its events.

use std::sync::Arc;

use vamp_core::memory::{MemoryDriver, MemoryPersistence, RecordingRouter};
use vamp_core::model::*;
use vamp_core::{Vamp, dsl};

/// A blueprint of `n` clusters, each one service of its own breed, a chain of dependencies
/// through every tenth cluster.
fn big(n: usize) -> (Vec<Artifact>, Blueprint) {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "---\nkind: breeds\nname: s{i}:1.0\ndeployable: img{i}\nports: {{web: 8080/http}}\n"
        ));
        if i % 10 != 0 {
            let dep = i - i % 10;
            text.push_str(&format!("environment_variables: {{UP: $dep.host:$dep.ports.web}}\ndependencies: {{dep: s{dep}:1.0}}\n"));
        }
    }
    let breeds = dsl::read(&text, None).unwrap();
    let clusters: String = (0..n).map(|i| format!("  c{i}: s{i}:1.0\n")).collect();
    let Artifact::Blueprint(bp) = dsl::read(
        &format!("kind: blueprints\nname: big\nclusters:\n{clusters}"),
        None,
    )
    .unwrap()
    .remove(0) else {
        panic!()
    };
    (breeds, bp)
}

#[tokio::test]
async fn hundreds_of_services_converge_without_stalling() {
    let driver = MemoryDriver::default();
    let router = RecordingRouter::default();
    let vamp = Vamp::builder()
        .persistence(Arc::new(MemoryPersistence::default()))
        .driver(Arc::new(driver.clone()))
        .router(Arc::new(router.clone()))
        .build()
        .unwrap();
    let (breeds, bp) = big(300);
    for b in breeds {
        vamp.put(b).await.unwrap();
    }
    vamp.deploy("big", &bp).await.unwrap();
    // Dependencies first: two passes per level of the chain, a bounded number in all.
    let mut passes = 0;
    loop {
        passes += 1;
        let report = vamp.reconcile().await.unwrap();
        if report.converged {
            break;
        }
        assert!(
            passes < 10,
            "not converged after {passes} passes: {report:?}"
        );
    }
    assert_eq!(driver.len(), 300);
    let d = vamp.deployment("big").await.unwrap().unwrap();
    assert!(
        d.clusters
            .values()
            .all(|c| c.services[0].status.phase.name == PhaseName::Done)
    );
    assert_eq!(router.current().len(), 300, "every internal gateway routed");
    // Everything is undeployed just as well.
    vamp.undeploy("big").await.unwrap();
    for _ in 0..5 {
        vamp.reconcile().await.unwrap();
    }
    assert!(driver.is_empty());
    assert!(vamp.deployment("big").await.unwrap().is_none());
    assert!(router.current().is_empty());
}

#[tokio::test]
async fn artifacts_are_validated_stored_and_archived() {
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .build()
        .unwrap();
    let mut events = vamp.subscribe().await.unwrap();
    let breed = dsl::read(
        "kind: breeds\nname: web:1\ndeployable: img\nports: {web: 80}\n",
        None,
    )
    .unwrap()
    .remove(0);
    vamp.put(breed.clone()).await.unwrap();
    assert_eq!(
        vamp.get(Kind::Breed, "web:1").await.unwrap(),
        Some(breed.clone())
    );
    // Invalid input is refused and changes nothing.
    let bad = dsl::read(
        "kind: breeds\nname: web:1\ndeployable: img\nenvironment_variables: {X: $nope.host}\n",
        None,
    )
    .unwrap()
    .remove(0);
    assert!(vamp.put(bad).await.is_err());
    assert_eq!(vamp.get(Kind::Breed, "web:1").await.unwrap(), Some(breed));
    // A blueprint's inline breeds are stored too.
    let bp = dsl::read(
        "kind: blueprints\nname: bp\nclusters:\n  c:\n    breed: {name: inline:1, deployable: x}\n",
        None,
    )
    .unwrap()
    .remove(0);
    let stored = vamp.put(bp).await.unwrap();
    assert_eq!(
        stored.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["inline:1", "bp"]
    );
    assert_eq!(
        vamp.list(Kind::Breed, vamp_core::traits::Page::ALL)
            .await
            .unwrap()
            .total,
        2
    );
    assert!(vamp.delete(Kind::Blueprint, "bp").await.unwrap());
    assert!(
        !vamp.delete(Kind::Blueprint, "bp").await.unwrap(),
        "delete is idempotent"
    );
    let mut archive = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        futures::StreamExt::next(&mut events),
    )
    .await
    {
        // `<kind>:<name>` and `archive:<what>`.
        let tags: Vec<&str> = e
            .event
            .tags
            .iter()
            .map(String::as_str)
            .filter(|t| t.contains(':'))
            .collect();
        archive.push(tags.join(" "));
    }
    assert_eq!(
        archive,
        [
            "breeds:web:1 archive:create",
            "breeds:inline:1 archive:create",
            "blueprints:bp archive:create",
            "blueprints:bp archive:delete"
        ]
    );
}

#[tokio::test]
async fn scaling_a_service_redeploys_it() {
    let driver = MemoryDriver::default();
    let vamp = Vamp::builder()
        .driver(Arc::new(driver.clone()))
        .build()
        .unwrap();
    vamp.put(
        dsl::read(
            "kind: breeds\nname: web:1\ndeployable: img\nports: {web: 80}\n",
            None,
        )
        .unwrap()
        .remove(0),
    )
    .await
    .unwrap();
    let Artifact::Blueprint(bp) =
        dsl::read("kind: blueprints\nname: s\nclusters:\n  c: web:1\n", None)
            .unwrap()
            .remove(0)
    else {
        panic!()
    };
    vamp.deploy("s", &bp).await.unwrap();
    while !vamp.reconcile().await.unwrap().converged {}
    let instances = |vamp: &Vamp| {
        let vamp = vamp.clone();
        async move {
            vamp.deployment("s").await.unwrap().unwrap().clusters["c"].services[0]
                .instances
                .len()
        }
    };
    assert_eq!(instances(&vamp).await, 1);
    let scale = vamp_core::model::Scale {
        cpu: Cpu::from_millis(500),
        memory: Memory::from_bytes(128_000_000),
        instances: 3,
        ..Default::default()
    };
    vamp.scale("s", "c", "web:1", scale).await.unwrap();
    while !vamp.reconcile().await.unwrap().converged {}
    assert_eq!(instances(&vamp).await, 3);
    let missing = vamp
        .scale("s", "c", "nope:1", vamp_core::model::Scale::default())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("nope:1"), "{missing}");
}

fn one(text: &str) -> Artifact {
    dsl::read(text, None).unwrap().remove(0)
}

fn memory_vamp() -> Vamp {
    Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn workflows_are_replaced_only_while_suspended() {
    let vamp = memory_vamp();
    let text =
        "kind: workflows\nname: tick\nbreed: {name: tick:1, deployable: x}\nschedule: daemon\n";
    vamp.put(one(text)).await.unwrap();
    let err = vamp.put(one(text)).await.unwrap_err().to_string();
    assert!(
        err.contains("WorkflowUpdateError") || err.contains("suspended"),
        "{err}"
    );
    assert!(
        vamp.validate(&one(text)).await.is_err(),
        "validate says the same"
    );
    let w = vamp
        .set_workflow_status("tick", WorkflowStatus::Suspended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.status, WorkflowStatus::Suspended);
    assert_eq!(
        vamp.workflow("tick").await.unwrap().unwrap().status,
        WorkflowStatus::Suspended
    );
    vamp.validate(&one(text)).await.unwrap();
    vamp.put(one(text)).await.unwrap();
    assert_eq!(
        vamp.workflow("tick").await.unwrap().unwrap().status,
        WorkflowStatus::Starting,
        "the replacement's own status is stored"
    );
    assert!(
        vamp.set_workflow_status("nope", WorkflowStatus::Running)
            .await
            .unwrap()
            .is_none()
    );
    // Deployments and workflows share one name space.
    let Artifact::Blueprint(bp) = one(
        "kind: blueprints\nname: tick\nclusters:\n  c:\n    breed: {name: b:1, deployable: y}\n",
    ) else {
        panic!()
    };
    let err = vamp.deploy("tick", &bp).await.unwrap_err().to_string();
    assert!(err.contains("workflow"), "{err}");
}

#[tokio::test]
async fn a_preview_stores_nothing_and_restore_puts_back() {
    let vamp = memory_vamp();
    let Artifact::Blueprint(bp) = one(
        "kind: blueprints\nname: s\nclusters:\n  c:\n    breed: {name: web:1, deployable: x, ports: {web: 80}}\n",
    ) else {
        panic!()
    };
    let previewed = vamp.preview("s", &bp, &[]).await.unwrap();
    assert_eq!(previewed.clusters["c"].services.len(), 1);
    assert!(vamp.deployment("s").await.unwrap().is_none());
    assert!(vamp.get(Kind::Breed, "web:1").await.unwrap().is_none());
    let deployed = vamp.deploy("s", &bp).await.unwrap();
    assert_eq!(
        deployed.gateways, previewed.gateways,
        "the preview shows the ports a deploy gets"
    );
    // A preview resolves references against what is sent alongside.
    let api = one("kind: breeds\nname: api:1\ndeployable: y\nports: {web: 81}\n");
    let Artifact::Blueprint(t) = one("kind: blueprints\nname: t\nclusters:\n  a: api:1\n") else {
        panic!()
    };
    let err = vamp.preview("t", &t, &[]).await.unwrap_err().to_string();
    assert!(err.contains("api:1"), "{err}");
    vamp.preview("t", &t, std::slice::from_ref(&api))
        .await
        .unwrap();
    vamp.validate_all(&[api, Artifact::Blueprint(t)])
        .await
        .unwrap();
    assert!(vamp.deployment("t").await.unwrap().is_none());
    assert!(vamp.get(Kind::Breed, "api:1").await.unwrap().is_none());
    // Restore writes back exactly what was read, without the guards.
    let breed = vamp.get(Kind::Breed, "web:1").await.unwrap().unwrap();
    vamp.put(one(
        "kind: breeds\nname: web:1\ndeployable: other\nports: {web: 80}\n",
    ))
    .await
    .unwrap();
    vamp.restore(breed.clone()).await.unwrap();
    assert_eq!(vamp.get(Kind::Breed, "web:1").await.unwrap(), Some(breed));
}

#[tokio::test]
async fn a_cluster_sla_is_set_by_reference_or_inline_and_removed() {
    let vamp = memory_vamp();
    let Artifact::Blueprint(bp) = one(
        "kind: blueprints\nname: s\nclusters:\n  c:\n    breed: {name: web:1, deployable: x, ports: {web: 80}}\n",
    ) else {
        panic!()
    };
    vamp.deploy("s", &bp).await.unwrap();
    let sla_text = "kind: slas\nname: fast\ntype: response_time_sliding_window\nwindow: {interval: 60, cooldown: 60}\nthreshold: {upper: 1000, lower: 100}\n";
    let missing = vamp
        .set_cluster_sla("s", "c", Some(Ref::Reference("fast".into())))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("fast"), "{missing}");
    let Artifact::Sla(sla) = one(sla_text) else {
        panic!()
    };
    vamp.put(Artifact::Sla(sla.clone())).await.unwrap();
    let d = vamp
        .set_cluster_sla("s", "c", Some(Ref::Reference("fast".into())))
        .await
        .unwrap();
    assert_eq!(
        d.clusters["c"]
            .sla
            .as_ref()
            .and_then(|s| s.inline())
            .map(|s| (s.name.as_str(), &s.kind)),
        Some((
            "",
            &SlaKind::ResponseTimeSlidingWindow {
                upper: 1000,
                lower: 100,
                interval: 60,
                cooldown: 60
            }
        )),
        "stored inline and anonymous"
    );
    assert_eq!(vamp.deployment("s").await.unwrap().unwrap(), d);
    let err = vamp
        .set_cluster_sla("s", "nope", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let d = vamp.set_cluster_sla("s", "c", None).await.unwrap();
    assert!(d.clusters["c"].sla.is_none());
}

#[tokio::test]
async fn a_record_that_no_longer_reads_does_not_block_writes() {
    use vamp_core::traits::{Persistence, Precondition};
    let db = Arc::new(MemoryPersistence::default());
    db.put(
        Kind::Breed,
        "junk",
        &serde_json::json!({"v": 1}),
        Precondition::Any,
    )
    .await
    .unwrap();
    let vamp = Vamp::builder()
        .persistence(db)
        .driver(Arc::new(MemoryDriver::default()))
        .build()
        .unwrap();
    vamp.put(one("kind: breeds\nname: web:1\ndeployable: img\n"))
        .await
        .unwrap();
    // Reading the bad record itself still says what is wrong.
    let err = vamp.get(Kind::Breed, "junk").await.unwrap_err().to_string();
    assert!(err.contains("junk"), "{err}");
}

/// A persistence that counts full listings of a kind.
#[derive(Debug, Default)]
struct CountingLists {
    inner: MemoryPersistence,
    lists: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl vamp_core::traits::Persistence for CountingLists {
    fn backend(&self) -> &'static str {
        "counting"
    }
    async fn get(
        &self,
        kind: Kind,
        name: &str,
    ) -> vamp_core::Result<Option<vamp_core::traits::StoredArtifact>> {
        self.inner.get(kind, name).await
    }
    async fn put(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: vamp_core::traits::Precondition,
    ) -> vamp_core::Result<vamp_core::traits::StoredArtifact> {
        self.inner.put(kind, name, value, precondition).await
    }
    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        precondition: vamp_core::traits::Precondition,
    ) -> vamp_core::Result<Option<u64>> {
        self.inner.delete(kind, name, precondition).await
    }
    async fn list(
        &self,
        kind: Kind,
        page: vamp_core::traits::Page,
    ) -> vamp_core::Result<vamp_core::traits::Paged<vamp_core::traits::StoredArtifact>> {
        self.lists
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.list(kind, page).await
    }
    async fn history(
        &self,
        kind: Kind,
        name: &str,
    ) -> vamp_core::Result<Vec<vamp_core::traits::Revision>> {
        self.inner.history(kind, name).await
    }
    async fn append_event(
        &self,
        event: &Event,
    ) -> vamp_core::Result<vamp_core::traits::StoredEvent> {
        self.inner.append_event(event).await
    }
    async fn query_events(
        &self,
        filter: &vamp_core::traits::EventFilter,
        page: vamp_core::traits::Page,
    ) -> vamp_core::Result<vamp_core::traits::Paged<vamp_core::traits::StoredEvent>> {
        self.inner.query_events(filter, page).await
    }
    async fn subscribe(&self) -> vamp_core::Result<vamp_core::traits::EventStream> {
        self.inner.subscribe().await
    }
}

#[tokio::test]
async fn a_write_reads_what_it_refers_to_not_the_whole_store() {
    let db = Arc::new(CountingLists::default());
    let vamp = Vamp::builder()
        .persistence(db.clone())
        .driver(Arc::new(MemoryDriver::default()))
        .build()
        .unwrap();
    for i in 0..50 {
        vamp.put(one(&format!(
            "kind: breeds\nname: b{i}:1\ndeployable: img\nports: {{web: 80}}\n"
        )))
        .await
        .unwrap();
    }
    vamp.put(one("kind: breeds\nname: up:1\ndeployable: img\nports: {web: 80}\nenvironment_variables: {UP: $dep.host}\ndependencies: {dep: b7:1}\n"))
        .await
        .unwrap();
    assert_eq!(
        db.lists.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "breeds are checked against the breeds they name, not a listing"
    );
    // A gateway's port is checked against every gateway: that needs the listings.
    vamp.put(one(
        "kind: gateways\nname: edge\nport: 9000\nroutes: [a/b/c]\n",
    ))
    .await
    .unwrap();
    let err = vamp
        .put(one(
            "kind: gateways\nname: other\nport: 9000\nroutes: [a/b/c]\n",
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("9000") && err.contains("edge"), "{err}");
    assert!(db.lists.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn gateway_ports_another_program_holds_are_skipped() {
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .router(Arc::new(HeldPorts {
            listening: vec![40000, 40001],
            ..HeldPorts::default()
        }))
        .build()
        .unwrap();
    let Artifact::Blueprint(bp) = one(
        "kind: blueprints\nname: s\nclusters:\n  c:\n    breed: {name: web:1, deployable: x, ports: {web: 80, admin: 81}}\n",
    ) else {
        panic!()
    };
    let d = vamp.deploy("s", &bp).await.unwrap();
    let mut ports: Vec<&str> = d.ports.values().map(String::as_str).collect();
    ports.sort_unstable();
    assert_eq!(ports, ["40002", "40003"], "{:?}", d.ports);
}

/// Issue 16: whatever changes routing reaches the router at once, whichever `Vamp` call made
/// it — with the resync an hour away, so no periodic pass can be what applied it.
#[tokio::test]
async fn routing_changes_reach_the_router_without_waiting_for_the_resync() {
    use vamp_core::testkit::eventually;
    let router = RecordingRouter::default();
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .router(Arc::new(router.clone()))
        .config(vamp_core::VampConfig {
            resync: std::time::Duration::from_secs(3600),
            ..vamp_core::VampConfig::default()
        })
        .build()
        .unwrap();
    let running = vamp.start();
    let weights = |router: &RecordingRouter, gateway: &str| -> Option<Vec<(String, u8)>> {
        router
            .current()
            .into_iter()
            .find(|g| g.name == gateway)
            .map(|g| {
                g.routes
                    .iter()
                    .map(|r| (r.path.clone(), r.weight.get()))
                    .collect()
            })
    };
    // A standalone gateway: stored, then changed, then removed.
    let gateway = |a: u8| {
        one(&format!(
            "kind: gateways\nname: edge\nport: 9999/http\nroutes:\n  '[127.0.0.1:1]': {{weight: {a}%}}\n  '[127.0.0.1:2]': {{weight: {}%}}\n",
            100 - a
        ))
    };
    vamp.put(gateway(90)).await.unwrap();
    eventually("the new gateway routed", || {
        let w = weights(&router, "edge");
        async move { w.filter(|w| w[0].1 == 90) }
    })
    .await;
    vamp.put(gateway(10)).await.unwrap();
    eventually("the changed weights routed", || {
        let w = weights(&router, "edge");
        async move { w.filter(|w| w[0].1 == 10) }
    })
    .await;
    vamp.delete(Kind::Gateway, "edge").await.unwrap();
    eventually("the removed gateway gone", || {
        let w = weights(&router, "edge");
        async move { w.is_none().then_some(()) }
    })
    .await;
    // A deployment's gateway: a merge that only moves weights.
    vamp.put(one(
        "kind: breeds\nname: a:1\ndeployable: img\nports: {web: 80/http}\n",
    ))
    .await
    .unwrap();
    vamp.put(one(
        "kind: breeds\nname: a:2\ndeployable: img\nports: {web: 80/http}\n",
    ))
    .await
    .unwrap();
    let shift = |w1: u8| {
        let Artifact::Blueprint(bp) = one(&format!(
            "kind: blueprints\nname: d\nclusters:\n  c:\n    services: [a:1, a:2]\n    gateways:\n      web:\n        routes:\n          a:1: {{weight: {w1}%}}\n          a:2: {{weight: {}%}}\n",
            100 - w1
        )) else {
            panic!()
        };
        bp
    };
    vamp.deploy("d", &shift(100)).await.unwrap();
    eventually("the deployment's gateway routed", || {
        let w = weights(&router, "d/c/web");
        async move { w.filter(|w| w.iter().any(|(p, v)| p.ends_with("a:1/web") && *v == 100)) }
    })
    .await;
    vamp.deploy("d", &shift(0)).await.unwrap();
    eventually("the shifted weights routed", || {
        let w = weights(&router, "d/c/web");
        async move { w.filter(|w| w.iter().any(|(p, v)| p.ends_with("a:2/web") && *v == 100)) }
    })
    .await;
    running.stop().await;
}

/// Issue 15, point 4: a scale-up that fails half-way shows the instances that run, not none.
#[tokio::test]
async fn a_failed_scale_up_shows_the_instances_that_run() {
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::with_capacity(3)))
        .build()
        .unwrap();
    vamp.put(one(
        "kind: breeds\nname: web:1\ndeployable: img\nports: {web: 80}\n",
    ))
    .await
    .unwrap();
    let Artifact::Blueprint(bp) = one(
        "kind: blueprints\nname: s\nclusters:\n  c:\n    breed: web:1\n    scale: {instances: 10, cpu: 0.1, memory: 64MB}\n",
    ) else {
        panic!()
    };
    vamp.deploy("s", &bp).await.unwrap();
    for _ in 0..3 {
        vamp.reconcile().await.unwrap();
    }
    let d = vamp.deployment("s").await.unwrap().unwrap();
    let s = &d.clusters["c"].services[0];
    assert_eq!(s.status.phase.name, PhaseName::Failed, "{:?}", s.status);
    assert!(
        s.status
            .phase
            .notification
            .as_deref()
            .is_some_and(|n| n.contains("3 of 10")),
        "{:?}",
        s.status
    );
    assert_eq!(s.instances.len(), 3, "what runs is shown");
}

/// Issue 15, point 4: limits are checked before anything is stored, for a deploy and for a
/// scale.
#[tokio::test]
async fn limits_refuse_what_a_request_cannot_have() {
    let vamp = memory_vamp();
    vamp.put(one(
        "kind: breeds\nname: web:1\ndeployable: img\nports: {web: 80}\n",
    ))
    .await
    .unwrap();
    let deploy = |scale: &str| {
        let Artifact::Blueprint(bp) = one(&format!(
            "kind: blueprints\nname: s\nclusters:\n  c:\n    breed: web:1\n    scale: {scale}\n"
        )) else {
            panic!()
        };
        bp
    };
    for (scale, field) in [
        ("{instances: 1000000, cpu: 0.1, memory: 64MB}", "instances"),
        ("{instances: 1, cpu: 1000000000, memory: 64MB}", "cpu"),
        ("{instances: 1, cpu: 1, memory: 100TB}", "memory"),
    ] {
        let err = vamp.deploy("s", &deploy(scale)).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("LimitExceededError") || text.contains(field),
            "{text}"
        );
        assert!(text.contains(field), "{text}");
        assert!(vamp.deployment("s").await.unwrap().is_none());
    }
    vamp.deploy("s", &deploy("{instances: 1, cpu: 0.1, memory: 64MB}"))
        .await
        .unwrap();
    let huge = vamp_core::model::Scale {
        instances: 5000,
        ..Default::default()
    };
    let err = vamp.scale("s", "c", "web:1", huge).await.unwrap_err();
    assert!(err.to_string().contains("scale.instances"), "{err}");
    let d = vamp.deployment("s").await.unwrap().unwrap();
    assert_eq!(
        d.clusters["c"].services[0]
            .scale
            .as_ref()
            .map(|s| s.instances),
        Some(1),
        "nothing changed"
    );
}

/// A router that notes, at each `apply`, whether the stored deployment already said Done.
#[derive(Debug)]
struct Observing {
    store: Arc<MemoryPersistence>,
    /// (targets handed to the router, the stored services all Done) per apply.
    seen: std::sync::Mutex<Vec<(usize, bool)>>,
}

#[async_trait::async_trait]
impl vamp_core::traits::Router for Observing {
    fn backend(&self) -> &'static str {
        "observing"
    }

    async fn apply(
        &self,
        gateways: &[vamp_core::traits::ResolvedGateway],
    ) -> vamp_core::Result<vamp_core::traits::ApplyReport> {
        use vamp_core::traits::Persistence as _;
        let targets = gateways
            .iter()
            .flat_map(|g| &g.routes)
            .map(|r| r.targets.len())
            .sum();
        let done = match self.store.get(Kind::Deployment, "shop").await? {
            Some(stored) => stored.value["clusters"]["web"]["services"]
                .as_array()
                .is_some_and(|s| {
                    !s.is_empty() && s.iter().all(|s| s["status"]["phase"]["name"] == "Done")
                }),
            None => false,
        };
        self.seen.lock().unwrap().push((targets, done));
        Ok(vamp_core::traits::ApplyReport {
            applied: gateways.iter().map(|g| g.name.clone()).collect(),
            failed: Vec::new(),
        })
    }

    async fn stats(&self) -> vamp_core::Result<Vec<vamp_core::traits::RouteStats>> {
        Ok(Vec::new())
    }
}

/// Whoever reads a deployment's service as Done can send it traffic: the router has the
/// instances before Done is stored (a `deploy --wait` followed by a request found none).
#[tokio::test]
async fn done_is_stored_only_once_the_router_has_the_instances() {
    let store = Arc::new(MemoryPersistence::default());
    let router = Arc::new(Observing {
        store: store.clone(),
        seen: std::sync::Mutex::default(),
    });
    let vamp = Vamp::builder()
        .persistence(store)
        .driver(Arc::new(MemoryDriver::default()))
        .router(router.clone())
        .build()
        .unwrap();
    for a in dsl::read(
        "kind: breeds\nname: web:1\ndeployable: img\nports: {web: 8080/http}\n",
        None,
    )
    .unwrap()
    {
        vamp.put(a).await.unwrap();
    }
    let Artifact::Blueprint(bp) =
        one("kind: blueprints\nname: shop\ngateways: {9080: web/web}\nclusters:\n  web: web:1\n")
    else {
        panic!("a blueprint")
    };
    vamp.deploy("shop", &bp).await.unwrap();
    while !vamp.reconcile().await.unwrap().converged {}
    let d = vamp.deployment("shop").await.unwrap().unwrap();
    assert_eq!(
        d.clusters["web"].services[0].status.phase.name,
        PhaseName::Done
    );
    let seen = router.seen.lock().unwrap().clone();
    let first = seen
        .iter()
        .find(|(targets, _)| *targets > 0)
        .unwrap_or_else(|| panic!("the router never got the instances: {seen:?}"));
    assert!(
        !first.1,
        "Done was stored before the router had the instances: {seen:?}"
    );
}

/// A router on a host where other programs listen on `listening` (its probe says so), and
/// that cannot serve any gateway while `busy` is set (a port taken between the probe and the
/// bind, say); it keeps the names of the gateways it serves.
#[derive(Debug, Default)]
struct HeldPorts {
    listening: Vec<u16>,
    busy: std::sync::atomic::AtomicBool,
    served: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl vamp_core::traits::Router for HeldPorts {
    fn backend(&self) -> &'static str {
        "held"
    }

    async fn apply(
        &self,
        gateways: &[vamp_core::traits::ResolvedGateway],
    ) -> vamp_core::Result<vamp_core::traits::ApplyReport> {
        let names = gateways.iter().map(|g| g.name.clone());
        if self.busy.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(vamp_core::traits::ApplyReport {
                applied: Vec::new(),
                failed: names
                    .map(|n| (n, "port 10950 is in use".to_owned()))
                    .collect(),
            });
        }
        let applied: Vec<String> = names.collect();
        *self.served.lock().unwrap() = applied.clone();
        Ok(vamp_core::traits::ApplyReport {
            applied,
            failed: Vec::new(),
        })
    }

    fn can_listen(&self, port: u16) -> bool {
        !self.listening.contains(&port)
    }
}

/// A gateway the router could not serve is handed to it again at the next pass (the port
/// may be free by then), and is announced `deployed` once it is served — not before.
#[tokio::test]
async fn a_gateway_the_router_could_not_serve_is_tried_again() {
    let router = Arc::new(HeldPorts::default());
    router.busy.store(true, std::sync::atomic::Ordering::SeqCst);
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .router(router.clone())
        .build()
        .unwrap();
    vamp.put(one(
        "kind: gateways\nname: held\nport: 10950/http\nroutes:\n  '[127.0.0.1:9]': {weight: 100%}\n",
    ))
    .await
    .unwrap();
    let deployed = async || {
        vamp.events(
            &vamp_core::traits::EventFilter::tags(["gateways:held", "deployed"]),
            vamp_core::traits::Page::new(1, 10),
        )
        .await
        .unwrap()
        .total
    };
    vamp.route_now().await.unwrap();
    assert!(router.served.lock().unwrap().is_empty());
    assert_eq!(deployed().await, 0, "not served, not deployed");
    vamp.route_now().await.unwrap();
    assert_eq!(deployed().await, 0, "still not served");

    // The port is free again: the next pass serves it, and says so once.
    router
        .busy
        .store(false, std::sync::atomic::Ordering::SeqCst);
    vamp.route_now().await.unwrap();
    assert_eq!(*router.served.lock().unwrap(), ["held"]);
    assert_eq!(deployed().await, 1);
    vamp.route_now().await.unwrap();
    assert_eq!(deployed().await, 1, "announced once");
}

/// A driver whose scheduler cannot be reached for publishing gateways (the Kubernetes API
/// down, say); everything else goes to the memory driver.
#[derive(Debug, Default)]
struct CannotPublish(MemoryDriver);

#[async_trait::async_trait]
impl vamp_core::traits::ContainerDriver for CannotPublish {
    fn backend(&self) -> &'static str {
        "cannot-publish"
    }

    fn supports(&self, deployable_type: &str) -> bool {
        self.0.supports(deployable_type)
    }

    async fn deploy(&self, spec: &vamp_core::traits::ServiceSpec) -> vamp_core::Result<()> {
        self.0.deploy(spec).await
    }

    async fn undeploy(&self, key: &vamp_core::traits::ServiceKey) -> vamp_core::Result<()> {
        self.0.undeploy(key).await
    }

    async fn services(&self) -> vamp_core::Result<Vec<vamp_core::traits::ServiceState>> {
        self.0.services().await
    }

    async fn publish_gateways(
        &self,
        _gateways: &[vamp_core::traits::GatewayEndpoint],
    ) -> vamp_core::Result<Vec<vamp_core::traits::GatewayEndpoint>> {
        Err(vamp_core::Error::backend(
            "cannot-publish",
            "the API server does not answer",
        ))
    }
}

/// Routing does not wait for the scheduler: with gateways that cannot be published, a
/// weight change still reaches the router.
#[tokio::test]
async fn weights_move_while_the_driver_cannot_publish_gateways() {
    let router = Arc::new(RecordingRouter::default());
    let vamp = Vamp::builder()
        .driver(Arc::new(CannotPublish::default()))
        .router(router.clone())
        .build()
        .unwrap();
    let gateway = |weights: (u8, u8)| {
        one(&format!(
            "kind: gateways\nname: g\nport: 10960/http\nroutes:\n  '[127.0.0.1:9]': {{weight: {}%}}\n  '[127.0.0.1:10]': {{weight: {}%}}\n",
            weights.0, weights.1
        ))
    };
    let weights = |router: &RecordingRouter| -> Vec<u8> {
        router
            .applied()
            .pop()
            .and_then(|gs| gs.into_iter().find(|g| g.name == "g"))
            .map(|g| g.routes.iter().map(|r| r.weight.get()).collect())
            .unwrap_or_default()
    };
    vamp.put(gateway((90, 10))).await.unwrap();
    vamp.route_now().await.expect("routing goes on");
    assert_eq!(weights(&router), [90, 10]);
    vamp.put(gateway((50, 50))).await.unwrap();
    vamp.route_now().await.expect("routing goes on");
    assert_eq!(weights(&router), [50, 50]);
}
