//! Several `Vamp`s on one store (issue 24): one leads and acts, the others follow and route;
//! when the leader stops, another takes over in a larger term.

use std::sync::Arc;
use std::time::Duration;

use vamp_core::memory::{MemoryDriver, MemoryElection, MemoryPersistence, RecordingRouter};
use vamp_core::model::*;
use vamp_core::testkit::eventually;
use vamp_core::traits::{Candidate, EventFilter, Page};
use vamp_core::{Vamp, VampConfig, dsl};

#[tokio::test]
async fn the_memory_election_conforms() {
    let election = MemoryElection::default();
    vamp_core::testkit::election::conforms(
        || {
            let e = election.clone();
            async move { Box::new(e) as Box<dyn vamp_core::traits::LeaderElection> }
        },
        Duration::from_millis(300),
    )
    .await;
}

fn server(
    node: &str,
    db: &MemoryPersistence,
    driver: &MemoryDriver,
    election: &MemoryElection,
) -> (Vamp, RecordingRouter) {
    let router = RecordingRouter::default();
    let config = VampConfig {
        election_ttl: Duration::from_millis(600),
        resync: Duration::from_millis(100),
        ..VampConfig::default()
    };
    let vamp = Vamp::builder()
        .persistence(Arc::new(db.clone()))
        .driver(Arc::new(driver.clone()))
        .router(Arc::new(router.clone()))
        .election(
            Arc::new(election.clone()),
            Candidate {
                node: node.into(),
                url: format!("http://{node}/api/v1"),
            },
        )
        .config(config)
        .build()
        .expect("vamp");
    (vamp, router)
}

/// Two servers, `node-a` and `node-b`, sharing one store, driver and election.
fn two_servers() -> ((Vamp, RecordingRouter), (Vamp, RecordingRouter)) {
    let (db, driver, election) = (
        MemoryPersistence::default(),
        MemoryDriver::default(),
        MemoryElection::default(),
    );
    (
        server("node-a", &db, &driver, &election),
        server("node-b", &db, &driver, &election),
    )
}

fn blueprint() -> (Artifact, Blueprint) {
    let mut read = dsl::read(
        "---\nkind: breeds\nname: web:1.0\ndeployable: img\nports: {web: 8080/http}\n---\nkind: blueprints\nname: shop\nclusters:\n  front:\n    services:\n      - breed: web:1.0\n",
        None,
    )
    .expect("artifacts");
    let Artifact::Blueprint(bp) = read.remove(1) else {
        panic!("a blueprint")
    };
    (read.remove(0), bp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_another_takes_over_when_it_stops() {
    let (db, driver, election) = (
        MemoryPersistence::default(),
        MemoryDriver::default(),
        MemoryElection::default(),
    );
    let (a, a_router) = server("node-a", &db, &driver, &election);
    let (b, b_router) = server("node-b", &db, &driver, &election);
    // Nobody leads before the first campaign.
    assert!(!a.leads() && !b.leads());
    let a_running = a.start();
    eventually("node-a to lead", || async { a.leads() }).await;
    let b_running = b.start();
    let seen = eventually("node-b to see node-a lead", || async {
        let c = b.cluster();
        (c.leader_node.as_deref() == Some("node-a")).then_some(c)
    })
    .await;
    assert!(!seen.leader);
    assert_eq!(seen.leader_url.as_deref(), Some("http://node-a/api/v1"));
    let first_term = a.cluster().term;
    assert_eq!(seen.term, first_term);

    // A deployment written through the follower is carried out by the leader, once; both
    // servers route its gateway.
    let (breed, bp) = blueprint();
    b.put(breed).await.expect("breed");
    b.deploy("shop", &bp).await.expect("deploy");
    eventually("the leader to start the service", || async {
        driver.len() == 1
    })
    .await;
    eventually("both servers to route the gateway", || async {
        !a_router.current().is_empty() && a_router.current() == b_router.current()
    })
    .await;

    // The leader stops (and resigns): the follower takes over in a larger term and acts.
    a_running.stop().await;
    let taken = eventually("node-b to lead", || async {
        let c = b.cluster();
        c.leader.then_some(c)
    })
    .await;
    assert!(taken.term > first_term, "{taken:?}");
    b.scale(
        "shop",
        "front",
        "web:1.0",
        Scale {
            instances: 2,
            ..Scale::default()
        },
    )
    .await
    .expect("scale");
    eventually("the new leader to run two instances", || async {
        let d = b.deployment("shop").await.ok()??;
        let service = &d.clusters["front"].services[0];
        (service.instances.len() == 2 && service.status.phase.name == PhaseName::Done).then_some(())
    })
    .await;
    assert_eq!(driver.len(), 1, "one service, never started twice");
    // Each new leader said so.
    let events = b
        .events(&EventFilter::tags(["cluster:leader"]), Page::new(1, 30))
        .await
        .expect("events");
    let nodes: Vec<String> = events
        .items
        .iter()
        .filter_map(|e| e.event.value["node"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(nodes, ["node-b", "node-a"], "newest first");
    b_running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_another_server_claimed_is_not_handed_out_again() {
    let ((a, _), (b, _)) = two_servers();
    let (a_running, b_running) = (a.start(), b.start());
    let gateway = |name: &str, port: u16| {
        dsl::read(
            &format!("kind: gateways\nname: {name}\nport: {port}/http\nroutes:\n  '[127.0.0.1:9]': {{weight: 100%}}\n"),
            None,
        )
        .expect("gateway")
        .remove(0)
    };
    // a knows its ports (the index is built), then b claims one.
    a.put(gateway("first", 10901)).await.expect("a stores");
    b.put(gateway("second", 10902)).await.expect("b stores");
    // a learns it from b's event: the same port is refused, naming the gateway that has it.
    let third = gateway("third", 10902);
    let refused = eventually("a to refuse b's port", || async {
        a.validate(&third).await.err()
    })
    .await;
    let text = refused.to_string();
    assert!(text.contains("10902") && text.contains("second"), "{text}");
    a_running.stop().await;
    b_running.stop().await;
}

/// Two servers creating gateways at the same time never claim one port twice, with or
/// without a port of their own: the claim and the store happen under the lock all servers
/// share, after the claiming server has followed every write committed before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_creating_gateways_at_once_never_claim_one_port_twice() {
    let ((a, _), (b, _)) = two_servers();
    let (a_running, b_running) = (a.start(), b.start());
    // Both build their port index before the race starts.
    for v in [&a, &b] {
        v.validate(&gateway_without_port("warm-up"))
            .await
            .expect("valid");
    }
    let create = |v: Vamp, prefix: &'static str| {
        tokio::spawn(async move {
            for i in 0..12 {
                let stored = v.put(gateway_without_port(&format!("{prefix}-{i}"))).await;
                stored.expect("a free port is found");
            }
        })
    };
    let (ra, rb) = tokio::join!(create(a.clone(), "a"), create(b.clone(), "b"));
    ra.expect("a's creates");
    rb.expect("b's creates");
    let ports: Vec<u16> = a
        .list(Kind::Gateway, Page::ALL)
        .await
        .expect("list")
        .items
        .iter()
        .filter_map(|g| match g {
            Artifact::Gateway(g) => g.port.map(|p| p.number),
            _ => None,
        })
        .collect();
    let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(ports.len(), 24, "{ports:?}");
    assert_eq!(distinct.len(), 24, "a port claimed twice: {ports:?}");
    a_running.stop().await;
    b_running.stop().await;
}

fn gateway_without_port(name: &str) -> Artifact {
    dsl::read(
        &format!("kind: gateways\nname: {name}\nroutes:\n  '[127.0.0.1:9]': {{weight: 100%}}\n"),
        None,
    )
    .expect("gateway")
    .remove(0)
}

/// Every server routes, so every server's traffic counts: each one's `route_stats` adds the
/// counters the others published to its own router's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_stats_add_up_every_servers_router() {
    use vamp_core::traits::{LatencyHistogram, RouteStats};
    let ((a, a_router), (b, b_router)) = two_servers();
    let counted = |requests: u64, errors: u64| {
        vec![RouteStats {
            gateway: "shop".into(),
            route: "v2".into(),
            requests,
            errors,
            latency: LatencyHistogram {
                buckets: vec![(10.0, requests), (f64::INFINITY, requests)],
                sum_ms: 2.0,
            },
        }]
    };
    a_router.set_stats(counted(70, 1));
    b_router.set_stats(counted(30, 2));
    let (a_running, b_running) = (a.start(), b.start());
    for (v, who) in [(&a, "a"), (&b, "b")] {
        let total = eventually(&format!("{who} to count both servers"), || async {
            let stats = v.route_stats().await.ok()?;
            (stats.first()?.requests == 100).then_some(stats)
        })
        .await;
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].errors, 3);
        assert_eq!(
            total[0].latency.buckets,
            vec![(10.0, 100), (f64::INFINITY, 100)]
        );
        // Each server's own /metrics stays its own.
        let own = v.router_stats().await.expect("own");
        assert!(own[0].requests < 100);
    }
    a_running.stop().await;
    b_running.stop().await;
}
