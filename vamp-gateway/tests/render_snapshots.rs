//! Rendered HAProxy configurations as snapshots (insta), each also checked by the real
//! `haproxy -c` (issue 20): a change to the renderer shows up as a reviewed diff, and a
//! snapshot that HAProxy would refuse cannot be accepted. Without HAProxy (not in CI) the
//! check is skipped loudly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use vamp_core::model::{PortType, Sticky};
use vamp_core::traits::ResolvedGateway;
use vamp_gateway::haproxy::process::check;
use vamp_gateway::haproxy::render::{RenderOptions, render};
use vamp_gateway::testkit::{gateway, route, sticky, with_condition, with_rewrite};

/// Renders `gateways`, asserts nothing failed, checks the text with `haproxy -c` when there is
/// one, and returns the text.
async fn rendered(gateways: &[ResolvedGateway], opts: &RenderOptions) -> String {
    let out = render(gateways, opts);
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let text = out.config.to_string();
    if let Some(binary) = vamp_core::testkit::services::service("haproxy") {
        let dir = tempfile::tempdir().expect("tempdir");
        check(&PathBuf::from(binary), dir.path(), &text, true)
            .await
            .unwrap_or_else(|e| panic!("haproxy -c refuses the snapshot: {e}\n{text}"));
    }
    text
}

#[tokio::test]
async fn a_weighted_split() {
    let g = gateway(
        "shop/web",
        9050,
        vec![
            route(
                "shop/web",
                "shop/web/app:1.0.0/web",
                80,
                &[("a1", 31001), ("a2", 31002)],
            ),
            route("shop/web", "shop/web/app:1.1.0/web", 20, &[("b1", 31003)]),
        ],
    );
    insta::assert_snapshot!(rendered(&[g], &RenderOptions::default()).await);
}

#[tokio::test]
async fn conditions_with_strength_and_a_rewrite() {
    let beta = with_rewrite(
        with_condition(
            route("shop/web", "shop/web/beta", 0, &[("beta", 31010)]),
            "has cookie group and cookie group has beta",
            100,
        ),
        "/beta%[path]",
        "path_beg /",
    );
    let mobile = with_condition(
        route("shop/web", "shop/web/mobile", 0, &[("mobile", 31011)]),
        "user-agent = Android or header x-client has mobile",
        50,
    );
    let stable = route("shop/web", "shop/web/stable", 100, &[("stable", 31012)]);
    let g = gateway("shop/web", 9051, vec![beta, mobile, stable]);
    insta::assert_snapshot!(rendered(&[g], &RenderOptions::default()).await);
}

#[tokio::test]
async fn sticky_sessions_tcp_and_virtual_hosts_without_health_checks() {
    let web = sticky(
        gateway(
            "shop/web",
            9052,
            vec![
                route("shop/web", "shop/web/a", 50, &[("a", 31020)]),
                route("shop/web", "shop/web/b", 50, &[("b", 31021)]),
            ],
        ),
        Sticky::Route,
    );
    let mut web = web;
    web.virtual_hosts = vec!["shop.example.com".into(), "www.shop.example.com".into()];
    let mut db = gateway(
        "shop/db",
        9053,
        vec![route("shop/db", "shop/db/pg", 100, &[("pg", 31022)])],
    );
    db.protocol = PortType::Tcp;
    let opts = RenderOptions {
        virtual_hosts: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9080)),
        health_checks: false,
        ..RenderOptions::default()
    };
    insta::assert_snapshot!(rendered(&[web, db], &opts).await);
}

/// From 512 gateways on, the render works on every core and the text is written in shares:
/// the result is exactly what one gateway at a time gives, and the text is the `Display`
/// one (written on one thread).
#[test]
fn many_gateways_render_as_one_at_a_time_does() {
    let gateways: Vec<_> = (0..700u16)
        .map(|i| {
            let name = format!("g{i:03}");
            let mut canary = route(&name, "v2", 10, &[("b", 9000 + i)]);
            if i % 3 == 0 {
                canary = with_condition(canary, "has cookie beta", 100);
            }
            gateway(
                &name,
                20_000 + i,
                vec![route(&name, "v1", 90, &[("a", 8000 + i)]), canary],
            )
        })
        .collect();
    let opts = RenderOptions::default();
    let all = render(&gateways, &opts);
    assert!(all.failed.is_empty(), "{:?}", all.failed);
    let mut frontends = Vec::new();
    let mut backends = Vec::new();
    for g in &gateways {
        let one = render(std::slice::from_ref(g), &opts);
        frontends.extend(one.config.frontends);
        backends.extend(one.config.backends);
    }
    assert!(all.config.frontends == frontends, "frontends differ");
    assert!(all.config.backends == backends, "backends differ");
    assert_eq!(all.config.text(), all.config.to_string());
}
