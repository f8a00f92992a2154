//! The Router conformance kit: the same behaviour asked of every router (embedded,
//! haproxy-local, haproxy-kv + agent), through real traffic on loopback. Each check panics
//! with what it saw when the router misbehaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use vamp_core::model::{Percentage, Sticky};
use vamp_core::testkit::eventually;
use vamp_core::traits::{ResolvedGateway, Router};

use super::{
    Client, backend, free_port, gateway, route, split, sticky, with_condition, with_rewrite,
};

/// Polls (at most 10 s) until `port` answers `GET /` with 200.
pub async fn ready(port: u16) {
    eventually(&format!("port {port} to serve"), || async {
        Client::new(port)
            .get("/", &[])
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
}

/// Polls (at most 10 s) until `port` refuses connections.
pub async fn closed(port: u16) {
    eventually(&format!("port {port} to refuse connections"), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
}

async fn apply_ok(router: &impl Router, gateways: &[ResolvedGateway]) {
    let report = router.apply(gateways).await.expect("apply");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.applied.len(), gateways.len());
}

fn share(counts: &std::collections::BTreeMap<String, usize>, name: &str, n: usize) -> f64 {
    counts.get(name).copied().unwrap_or(0) as f64 * 100.0 / n as f64
}

/// 90/10 and then 99/1 over 10 000 requests each land within ±1 point, on one keep-alive
/// connection.
pub async fn weights_split_exactly(router: &impl Router) {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let g = "kit/split";
    let mut gw = gateway(
        g,
        port,
        vec![
            route(g, "kit/a", 90, &[("a", a)]),
            route(g, "kit/b", 10, &[("b", b)]),
        ],
    );
    apply_ok(router, std::slice::from_ref(&gw)).await;
    ready(port).await;
    let mut client = Client::new(port);
    let counts = split(&mut client, 10_000, &[]).await;
    assert!(
        (share(&counts, "b", 10_000) - 10.0).abs() <= 1.0,
        "90/10 gave {counts:?}"
    );
    gw.routes[0].weight = Percentage::new(99).expect("99");
    gw.routes[1].weight = Percentage::new(1).expect("1");
    apply_ok(router, std::slice::from_ref(&gw)).await;
    let counts = split(&mut client, 10_000, &[]).await;
    assert!(
        (share(&counts, "b", 10_000) - 1.0).abs() <= 1.0,
        "99/1 gave {counts:?}"
    );
    assert_eq!(
        client.connections, 1,
        "the keep-alive connection was kept across the change"
    );
    apply_ok(router, &[]).await;
}

/// Conditions route matching requests only, at their strength; rewrites change the path;
/// `sticky: route` and `sticky: instance` pin clients by cookie.
pub async fn conditions_strength_sticky_rewrites(router: &impl Router) {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let (a2, b2) = (backend("a2").await, backend("b2").await);
    let port = free_port();
    let g = "kit/cond";
    let beta = with_rewrite(
        with_condition(
            route(g, "kit/cond/b", 0, &[("b", b)]),
            "has cookie beta",
            100,
        ),
        "/beta%[path]",
        "path_beg /",
    );
    let half = with_condition(
        route(g, "kit/cond/c", 0, &[("c", c)]),
        "header X-Half has yes",
        50,
    );
    let gw = gateway(
        g,
        port,
        vec![route(g, "kit/cond/a", 100, &[("a", a)]), beta, half],
    );
    let sticky_port = free_port();
    let sg = "kit/sticky";
    let sticky_gw = sticky(
        gateway(
            sg,
            sticky_port,
            vec![
                route(sg, "kit/sticky/a", 50, &[("a", a), ("a2", a2)]),
                route(sg, "kit/sticky/b", 50, &[("b", b), ("b2", b2)]),
            ],
        ),
        Sticky::Instance,
    );
    apply_ok(router, &[gw, sticky_gw]).await;
    ready(port).await;
    ready(sticky_port).await;

    let mut client = Client::new(port);
    let r = client
        .get("/x", &[("cookie", "beta=1")])
        .await
        .expect("get");
    assert_eq!(r.body, "b /beta/x", "condition at 100 % with a rewrite");
    assert_eq!(
        split(&mut client, 100, &[("cookie", "beta=1")])
            .await
            .get("b"),
        Some(&100)
    );
    assert_eq!(
        split(&mut client, 100, &[("cookie", "other=1")])
            .await
            .get("a"),
        Some(&100)
    );
    let counts = split(&mut client, 1_000, &[("x-half", "yes")]).await;
    let to_c = counts.get("c").copied().unwrap_or(0);
    assert!((450..=550).contains(&to_c), "strength 50 % gave {counts:?}");
    assert_eq!(
        to_c + counts.get("a").copied().unwrap_or(0),
        1_000,
        "{counts:?}"
    );

    let mut sc = Client::new(sticky_port);
    let first = sc.get("/", &[]).await.expect("get");
    let cookies = first.cookies();
    assert_eq!(
        cookies.matches('=').count(),
        2,
        "route and instance cookies: {first:?}"
    );
    let pinned = split(&mut sc, 100, &[("cookie", cookies.as_str())]).await;
    assert_eq!(pinned.get(first.backend()), Some(&100), "{pinned:?}");
    let unpinned = split(&mut sc, 100, &[]).await;
    assert_eq!(
        unpinned.len(),
        4,
        "without cookies every instance serves: {unpinned:?}"
    );
    apply_ok(router, &[]).await;
}

/// `apply` takes the whole set: a gateway left out stops serving, the others carry on; the
/// same set again changes nothing.
pub async fn apply_replaces_the_whole_set(router: &impl Router) {
    let a = backend("a").await;
    let (p1, p2) = (free_port(), free_port());
    let g1 = gateway(
        "kit/one",
        p1,
        vec![route("kit/one", "kit/one/a", 100, &[("a", a)])],
    );
    let g2 = gateway(
        "kit/two",
        p2,
        vec![route("kit/two", "kit/two/a", 100, &[("a", a)])],
    );
    apply_ok(router, &[g1, g2.clone()]).await;
    ready(p1).await;
    ready(p2).await;
    apply_ok(router, std::slice::from_ref(&g2)).await;
    closed(p1).await;
    assert_eq!(
        Client::new(p2).get("/", &[]).await.expect("get").status,
        200
    );
    let again = router
        .apply(std::slice::from_ref(&g2))
        .await
        .expect("apply");
    assert_eq!(again.applied, vec!["kit/two".to_owned()]);
    apply_ok(router, &[]).await;
    closed(p2).await;
}

/// A gateway whose port is taken fails alone; the others are served.
pub async fn a_bad_gateway_fails_alone(router: &impl Router) {
    let a = backend("a").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let ok_port = free_port();
    let bad = gateway(
        "kit/bad",
        taken_port,
        vec![route("kit/bad", "kit/bad/a", 100, &[("a", a)])],
    );
    let good = gateway(
        "kit/good",
        ok_port,
        vec![route("kit/good", "kit/good/a", 100, &[("a", a)])],
    );
    let report = router.apply(&[bad, good]).await.expect("apply");
    assert_eq!(report.applied, vec!["kit/good".to_owned()]);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, "kit/bad");
    assert!(
        report.failed[0].1.contains(&taken_port.to_string()),
        "{report:?}"
    );
    ready(ok_port).await;
    drop(taken);
    apply_ok(router, &[]).await;
}

/// What a load run saw.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests sent.
    pub requests: u64,
    /// Requests that did not get a 200.
    pub failures: u64,
    /// What the first failure was.
    pub first_failure: Option<String>,
}

/// `clients` keep-alive clients send requests with no retries while the gateway gets
/// `weight_changes` weight-only changes and `structural_changes` route additions/removals;
/// stops when the changes are done (and at most after 30 s).
pub async fn changes_under_load(
    router: &impl Router,
    clients: usize,
    weight_changes: usize,
    structural_changes: usize,
) -> LoadResult {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let port = free_port();
    let g = "kit/load";
    let base = vec![
        route(g, "kit/load/a", 50, &[("a", a)]),
        route(g, "kit/load/b", 50, &[("b", b)]),
    ];
    apply_ok(router, &[gateway(g, port, base.clone())]).await;
    ready(port).await;

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (stop, requests, failures, first_failure) = (
            stop.clone(),
            requests.clone(),
            failures.clone(),
            first_failure.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(port);
            while !stop.load(Ordering::Relaxed) {
                match client.get("/", &[]).await {
                    Ok(r) if r.status == 200 => {}
                    other => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        let mut f = first_failure
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        f.get_or_insert_with(|| format!("{other:?}"));
                    }
                }
                requests.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let total = weight_changes + structural_changes;
    let every = total.checked_div(structural_changes).unwrap_or(usize::MAX);
    let mut with_c = false;
    for i in 0..total {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let mut routes = base.clone();
        if (i + 1) % every == 0 {
            with_c = !with_c;
        }
        if with_c {
            routes.push(route(g, "kit/load/c", 0, &[("c", c)]));
        }
        let w = u8::try_from(i % 101).unwrap_or(50);
        routes[0].weight = Percentage::new(w).expect("weight");
        routes[1].weight = Percentage::new(100 - w).expect("weight");
        apply_ok(router, &[gateway(g, port, routes)]).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    apply_ok(router, &[]).await;
    let first_failure = first_failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    LoadResult {
        requests: requests.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
        first_failure,
    }
}

/// A TCP gateway relays connections by weight: 100/0 sends every connection to the first
/// route; 50/50 lets both serve.
pub async fn tcp_gateway_relays_by_weight(router: &impl Router) {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let g = "kit/tcp";
    let mut gw = gateway(
        g,
        port,
        vec![
            route(g, "kit/tcp/a", 100, &[("a", a)]),
            route(g, "kit/tcp/b", 0, &[("b", b)]),
        ],
    );
    gw.protocol = vamp_core::model::PortType::Tcp;
    apply_ok(router, std::slice::from_ref(&gw)).await;
    ready(port).await;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..20 {
        let r = Client::new(port)
            .get("/", &[])
            .await
            .expect("request over tcp");
        *counts.entry(r.backend().to_owned()).or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&20), "100/0 over tcp gave {counts:?}");
    gw.routes[0].weight = Percentage::new(50).expect("50");
    gw.routes[1].weight = Percentage::new(50).expect("50");
    apply_ok(router, std::slice::from_ref(&gw)).await;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..40 {
        let r = Client::new(port)
            .get("/", &[])
            .await
            .expect("request over tcp");
        *counts.entry(r.backend().to_owned()).or_default() += 1;
    }
    assert!(
        counts.get("a").is_some_and(|n| *n >= 10) && counts.get("b").is_some_and(|n| *n >= 10),
        "50/50 over tcp gave {counts:?}"
    );
    apply_ok(router, &[]).await;
}
