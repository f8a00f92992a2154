//! The Router conformance kit against `haproxy-local` (a real HAProxy per test).
#![cfg(feature = "haproxy-local")]

mod common;

use std::path::PathBuf;

use common::kit;
use vamp_gateway::haproxy::config::Defaults;
use vamp_gateway::haproxy::local::LocalRouter;
use vamp_gateway::haproxy::render::RenderOptions;

fn router() -> Option<(LocalRouter, tempfile::TempDir)> {
    let binary = vamp_core::testkit::services::service("haproxy").map(PathBuf::from)?;
    let dir = tempfile::Builder::new()
        .prefix("hl")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let options = RenderOptions {
        defaults: Defaults::short(),
        ..RenderOptions::default()
    };
    Some((LocalRouter::new(binary, dir.path(), options), dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_exactly() {
    let Some((router, _dir)) = router() else {
        return;
    };
    kit::weights_split_exactly(&router).await;
    router.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_strength_sticky_rewrites() {
    let Some((router, _dir)) = router() else {
        return;
    };
    kit::conditions_strength_sticky_rewrites(&router).await;
    router.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_replaces_the_whole_set() {
    let Some((router, _dir)) = router() else {
        return;
    };
    kit::apply_replaces_the_whole_set(&router).await;
    router.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_gateway_fails_alone() {
    let Some((router, _dir)) = router() else {
        return;
    };
    kit::a_bad_gateway_fails_alone(&router).await;
    router.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_gateway_relays_by_weight() {
    let Some((router, _dir)) = router() else {
        return;
    };
    kit::tcp_gateway_relays_by_weight(&router).await;
    router.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_under_load_drop_no_request_and_weights_never_reload() {
    let Some((router, _dir)) = router() else {
        return;
    };
    let result = kit::changes_under_load(&router, 4, 100, 20).await;
    eprintln!("haproxy-local under load: {result:?}");
    let reloads = router
        .haproxy_reloads()
        .await
        .expect("show proc")
        .expect("running");
    // 20 structural changes + the final apply of the empty set; weight changes add none.
    assert_eq!(reloads, 21, "HAProxy's reload counter");
    assert!(result.requests > 1_000, "{result:?}");
    assert_eq!(result.failures, 0, "{result:?}");
    router.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_requests_and_errors_per_route() {
    use vamp_core::traits::Router;
    let Some((router, _dir)) = router() else {
        return;
    };
    let a = common::backend("a").await;
    let (port, broken_port) = (common::free_port(), common::free_port());
    let ok = common::gateway(
        "st",
        port,
        vec![common::route("st", "st/a", 100, &[("a", a)])],
    );
    // A route whose only instance does not listen: every request is an error.
    let dead = common::free_port();
    let broken = common::gateway(
        "br",
        broken_port,
        vec![common::route("br", "br/x", 100, &[("x", dead)])],
    );
    router.apply(&[ok, broken]).await.expect("apply");
    kit::ready(port).await;
    common::split(&mut common::Client::new(port), 10, &[]).await;
    for _ in 0..3 {
        let r = common::Client::new(broken_port)
            .get("/", &[])
            .await
            .expect("an answer");
        assert!(r.status >= 500, "{r:?}");
    }
    let stats = router.stats().await.expect("stats");
    let a_stats = stats.iter().find(|s| s.route == "st/a").expect("route a");
    assert_eq!(
        (a_stats.requests, a_stats.errors),
        (11, 0),
        "10 + the readiness probe: {stats:?}"
    );
    let x = stats.iter().find(|s| s.route == "br/x").expect("route x");
    assert!(x.errors >= 3, "{stats:?}");
    router.stop().await.expect("stop");
}

/// Rollouts read counter deltas: a reload or a crashed HAProxy must not send them back to
/// zero (issue 18), or an interval's traffic would vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_survive_reloads_and_restarts() {
    use vamp_core::traits::Router;
    let Some((router, _dir)) = router() else {
        return;
    };
    let a = common::backend("a").await;
    let port = common::free_port();
    let st = common::gateway(
        "st",
        port,
        vec![common::route("st", "st/a", 100, &[("a", a)])],
    );
    let requests = |stats: &[vamp_core::traits::RouteStats]| {
        stats.iter().find(|s| s.route == "st/a").map(|s| s.requests)
    };
    router
        .apply(std::slice::from_ref(&st))
        .await
        .expect("apply");
    kit::ready(port).await;
    common::split(&mut common::Client::new(port), 10, &[]).await;
    let first = router.stats().await.expect("stats");
    assert_eq!(
        requests(&first),
        Some(11),
        "10 + the readiness probe: {first:?}"
    );

    // A structural change: HAProxy reloads (a new worker that counts from zero).
    let b = common::backend("b").await;
    let other = common::gateway(
        "ot",
        common::free_port(),
        vec![common::route("ot", "ot/b", 100, &[("b", b)])],
    );
    router.apply(&[st.clone(), other]).await.expect("apply");
    assert_eq!(router.reloads().await, 1, "a structural change reloads");
    common::split(&mut common::Client::new(port), 5, &[]).await;
    let reloaded = router.stats().await.expect("stats");
    assert_eq!(
        requests(&reloaded),
        Some(16),
        "kept across the reload: {reloaded:?}"
    );

    // HAProxy dies; the watchdog starts it again, and what it counted is kept.
    let pid = router.haproxy_pid().await.expect("HAProxy runs");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    vamp_core::testkit::eventually("the watchdog to notice HAProxy died", || async {
        router.ensure_running().await.expect("restart")
    })
    .await;
    kit::ready(port).await;
    common::split(&mut common::Client::new(port), 5, &[]).await;
    let restarted = router.stats().await.expect("stats");
    let total = requests(&restarted).expect("route a");
    assert!(
        (22..=30).contains(&total),
        "16 before + probes + 5 after the restart: {restarted:?}"
    );
    router.stop().await.expect("stop");
}
