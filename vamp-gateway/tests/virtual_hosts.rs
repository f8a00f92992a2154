//! The embedded router's shared virtual-host listener (issue 21): every HTTP gateway with
//! virtual hosts is served on one listener by its `Host`, as well as on its own port; a
//! gateway without a port of its own is served there only.

use vamp_core::traits::Router;
use vamp_gateway::embedded::EmbeddedRouter;
use vamp_gateway::testkit::{Client, backend, free_port, gateway, route, split};

fn with_hosts(
    mut g: vamp_core::traits::ResolvedGateway,
    hosts: &[&str],
) -> vamp_core::traits::ResolvedGateway {
    g.virtual_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_are_served_by_host_on_one_listener() {
    let (a1, a2, b) = (backend("a1").await, backend("a2").await, backend("b").await);
    let shared = free_port();
    let own = free_port();
    let router =
        EmbeddedRouter::new().with_shared_listener(format!("127.0.0.1:{shared}").parse().unwrap());
    let a = with_hosts(
        gateway(
            "a",
            0,
            vec![
                route("a", "a1", 90, &[("a1", a1)]),
                route("a", "a2", 10, &[("a2", a2)]),
            ],
        ),
        &["a.example", "www.a.example"],
    );
    let b_gateway = with_hosts(
        gateway("b", own, vec![route("b", "b", 100, &[("b", b)])]),
        &["B.Example"],
    );
    let report = router.apply(&[a.clone(), b_gateway.clone()]).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.applied.len(), 2);

    // One keep-alive connection, several hosts: each by its gateway's weights.
    let mut client = Client::new(shared);
    let counts = split(&mut client, 20, &[("host", "a.example")]).await;
    assert_eq!(counts.get("a1"), Some(&18), "{counts:?}");
    assert_eq!(counts.get("a2"), Some(&2), "{counts:?}");
    let counts = split(&mut client, 3, &[("host", "b.example:8080")]).await;
    assert_eq!(
        counts.get("b"),
        Some(&3),
        "case and port do not matter: {counts:?}"
    );
    let counts = split(&mut client, 2, &[("host", "www.a.example.")]).await;
    assert_eq!(counts.values().sum::<usize>(), 2, "{counts:?}");
    assert_eq!(client.connections, 1);
    let unknown = client
        .get("/", &[("host", "c.example")])
        .await
        .expect("an answer");
    assert_eq!(unknown.status, 404, "{unknown:?}");

    // `b` keeps its own port; `a` has none.
    let counts = split(&mut Client::new(own), 2, &[]).await;
    assert_eq!(counts.get("b"), Some(&2), "{counts:?}");
    assert_eq!(router.ports().await.len(), 1);

    // A gateway that goes loses its hosts, on the open connection too.
    router.apply(&[b_gateway]).await.unwrap();
    let gone = client
        .get("/", &[("host", "a.example")])
        .await
        .expect("an answer");
    assert_eq!(gone.status, 404, "{gone:?}");
    let counts = split(&mut client, 1, &[("host", "b.example")]).await;
    assert_eq!(counts.get("b"), Some(&1));
    router.apply(&[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_listener_a_portless_gateway_fails_with_the_reason() {
    let b = backend("b").await;
    let router = EmbeddedRouter::new();
    let g = with_hosts(
        gateway("a", 0, vec![route("a", "b", 100, &[("b", b)])]),
        &["a.example"],
    );
    let report = router.apply(&[g]).await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].1.contains("gateways.vhost_listen"),
        "{report:?}"
    );
}

/// 10 000 gateways without ports of their own on one listener, on workers of the router's
/// own: the first and the last host are both served (their rates: `scripts/vhosts-bench.sh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hosts_share_one_listener() {
    let b = backend("b").await;
    let shared = free_port();
    let router = EmbeddedRouter::new()
        .with_workers(2)
        .unwrap()
        .with_shared_listener(format!("127.0.0.1:{shared}").parse().unwrap());
    let gateways: Vec<_> = (0..10_000)
        .map(|i| {
            let name = format!("g{i}");
            with_hosts(
                gateway(&name, 0, vec![route(&name, "b", 100, &[("b", b)])]),
                &[&format!("host{i}.example")],
            )
        })
        .collect();
    let report = router.apply(&gateways).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed.first());
    assert_eq!(report.applied.len(), 10_000);
    let mut client = Client::new(shared);
    for host in ["host0.example", "host9999.example", "host5000.example"] {
        let counts = split(&mut client, 2, &[("host", host)]).await;
        assert_eq!(counts.get("b"), Some(&2), "{host}: {counts:?}");
    }
    router.apply(&[]).await.unwrap();
}
