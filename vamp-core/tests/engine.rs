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
