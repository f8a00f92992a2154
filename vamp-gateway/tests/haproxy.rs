//! The HAProxy layers against a real HAProxy 2.6 (installed by scripts/test.sh; each test starts
//! its own master-worker instance on free ports through `haproxy::process`). Routing behaviour
//! itself is checked by the Router kit, through `haproxy-local` and the agent. Skipped when
//! `VAMP_TEST_SERVICES` does not list haproxy; fails when it does and HAProxy misbehaves.

mod common;

use std::path::PathBuf;

use common::*;
use proptest::prelude::*;
use vamp_core::model::Sticky;
use vamp_core::traits::ResolvedGateway;
use vamp_gateway::haproxy::config::Defaults;
use vamp_gateway::haproxy::process::{self, Haproxy, Paths, ProcessError};
use vamp_gateway::haproxy::render::{RenderOptions, render, runtime_weights};

fn binary() -> Option<PathBuf> {
    vamp_core::testkit::services::service("haproxy").map(PathBuf::from)
}

fn options(paths: &Paths) -> RenderOptions {
    RenderOptions {
        socket_dir: paths.socket_dir.clone(),
        admin_socket: Some(paths.admin_socket.clone()),
        server_state_file: Some(paths.state_file.clone()),
        defaults: Defaults::short(),
        ..RenderOptions::default()
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hx")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

fn text(gateways: &[ResolvedGateway], opts: &RenderOptions) -> String {
    let rendered = render(gateways, opts);
    assert!(rendered.failed.is_empty(), "{:?}", rendered.failed);
    rendered.config.to_string()
}

struct Instance {
    _dir: tempfile::TempDir,
    opts: RenderOptions,
    haproxy: Haproxy,
}

async fn start(binary: PathBuf, gateways: &[ResolvedGateway]) -> Instance {
    let dir = tempdir();
    let paths = Paths::new(dir.path());
    let opts = options(&paths);
    let haproxy = Haproxy::start(binary, paths, &text(gateways, &opts))
        .await
        .expect("haproxy starts");
    Instance {
        _dir: dir,
        opts,
        haproxy,
    }
}

/// A gateway with every feature the renderer has.
fn everything(ports: &[u16]) -> Vec<ResolvedGateway> {
    let g = "shop/web/port";
    let r1 = with_rewrite(
        route(
            g,
            "shop/web/v1/port",
            80,
            &[("web_1", ports[0]), ("web 1 (copy)", ports[0])],
        ),
        "/v1%[path]",
        "{ path_beg /api }",
    );
    let r2 = with_condition(
        route(g, "shop/web/v2/port", 20, &[("web_2", ports[1])]),
        "(user-agent = Safari or user-agent = IE) and has cookie beta and not host = 'old.example.com' \
         or header X-Canary has yes or misses header X-Stable or cookie group misses 'a b' or <path_beg /beta>",
        50,
    );
    let r3 = with_condition(
        route(g, "shop/web/v3/port", 0, &[]),
        "<hdr(x-version) -i v3 v3.1>",
        100,
    );
    let mut main = sticky(gateway(g, ports[2], vec![r1, r2, r3]), Sticky::Instance);
    main.virtual_hosts = vec!["shop.example.com".into(), "it's.example.com".into()];
    let mut tcp = gateway(
        "db/port",
        ports[3],
        vec![route("db/port", "db/pg/port", 100, &[("pg", ports[0])])],
    );
    tcp.protocol = vamp_core::model::PortType::Tcp;
    let plain = sticky(
        gateway(
            "other/port",
            ports[4],
            vec![route("other/port", "other/a/port", 100, &[("a", ports[1])])],
        ),
        Sticky::Route,
    );
    vec![main, tcp, plain]
}

#[tokio::test]
async fn every_feature_renders_to_a_config_haproxy_accepts() {
    let Some(binary) = binary() else { return };
    let dir = tempdir();
    let paths = Paths::new(dir.path());
    let mut opts = options(&paths);
    opts.server_state_file = None; // HAProxy warns about a state file that does not exist yet
    opts.virtual_hosts = Some(([127, 0, 0, 1], free_port()).into());
    let config = text(&everything(&[18001, 18002, 18003, 18004, 18005]), &opts);
    for needle in [
        "use_backend im_",
        "cookie o_",
        "http-request set-path '/v1%[path]' if { path_beg -- '/api' }",
        "-- 'it'\\''s.example.com'",
        "mode tcp",
        "balance leastconn",
        "server web_1 127.0.0.1:18001",
        "server web_1__copy_ 127.0.0.1:18001",
    ] {
        assert!(config.contains(needle), "missing {needle:?} in\n{config}");
    }
    process::check(&binary, dir.path(), &config, true)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
}

#[tokio::test]
async fn invalid_config_is_refused_with_haproxys_reason() {
    let Some(binary) = binary() else { return };
    let dir = tempdir();
    let err = process::check(
        &binary,
        dir.path(),
        "frontend x\n    bind 127.0.0.1:1\n    use_backend nowhere\n",
        false,
    )
    .await
    .unwrap_err();
    match err {
        ProcessError::InvalidConfig { output } => assert!(output.contains("nowhere"), "{output}"),
        e => panic!("{e}"),
    }
}

// Hostile input: names, values and literal ACLs built to break out of their quoting.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z][a-zA-Z0-9_.-]{0,8}",
        4 => "[a-zA-Z0-9 '\"#{}$\\\\;,()-]{0,12}",
        1 => Just("x\nbackend evil".to_owned()),
        1 => Just("' or always_true #".to_owned()),
        1 => Just("${HOME}".to_owned()),
        1 => Just("-f /etc/passwd".to_owned()),
        1 => Just("a\\".to_owned()),
        1 => Just("}".to_owned()),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    (hostile(), hostile(), 0usize..9).prop_map(|(a, b, k)| match k {
        0 => format!("host = {a:?}"),
        1 => format!("user-agent != '{}'", a.replace('\'', "''")),
        2 => format!("has cookie {a}"),
        3 => format!("misses header {a}"),
        4 => format!("cookie {a} has {b:?}"),
        5 => format!("header {a} misses '{}'", b.replace('\'', "''")),
        6 => format!("<{a}>"),
        7 => format!("<path_beg {a}> or not (host = x and <hdr(x-{b}) {a}>)"),
        _ => a,
    })
}

fn gateways() -> impl Strategy<Value = Vec<ResolvedGateway>> {
    let one = (
        hostile(),
        prop::collection::vec(
            (
                hostile(),
                0u8..=100,
                prop::option::of(condition()),
                hostile(),
                0u8..=100,
            ),
            1..4,
        ),
        0u8..3,
        prop::collection::vec(hostile(), 0..2),
    );
    prop::collection::vec(one, 1..3).prop_map(|gs| {
        gs.into_iter()
            .enumerate()
            .map(|(i, (name, routes, sticky_kind, vhosts))| {
                let gname = format!("{name}/{i}");
                let routes = routes
                    .into_iter()
                    .enumerate()
                    .map(|(j, (path, weight, cond, target, strength))| {
                        let mut r = route(
                            &gname,
                            &format!("{path}/{j}"),
                            weight,
                            &[(target.as_str(), 18000 + j as u16)],
                        );
                        if weight % 4 == 0 {
                            r = with_rewrite(r, &format!("/{path}"), &target);
                        }
                        match cond {
                            Some(c) => with_condition(r, &c, strength),
                            None => r,
                        }
                    })
                    .collect();
                let mut g = gateway(&gname, 19000 + i as u16, routes);
                g.sticky =
                    [None, Some(Sticky::Route), Some(Sticky::Instance)][usize::from(sticky_kind)];
                g.virtual_hosts = vhosts;
                g
            })
            .collect()
    })
}

const KEYWORDS: &[&str] = &[
    "#",
    "global",
    "defaults",
    "frontend ",
    "backend ",
    "master-worker",
    "maxconn ",
    "hard-stop-after ",
    "stats socket ",
    "server-state-file ",
    "mode ",
    "option ",
    "retries ",
    "timeout ",
    "default-server ",
    "load-server-state-from-file ",
    "bind ",
    "acl ",
    "use_backend ",
    "default_backend ",
    "balance ",
    "cookie ",
    "http-request ",
    "server ",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the input, the renderer either refuses a gateway (with a reason) or renders
    /// it into a config that real HAProxy accepts with the sections we rendered and no other.
    #[test]
    fn hostile_gateways_never_break_the_config(gs in gateways()) {
        let Some(binary) = binary() else { return Ok(()) };
        let dir = tempdir();
        let paths = Paths::new(dir.path());
        let mut opts = options(&paths);
        opts.server_state_file = None;
        opts.virtual_hosts = Some(([127, 0, 0, 1], 19999).into());
        let rendered = render(&gs, &opts);
        let config = rendered.config.to_string();
        for line in config.lines().filter(|l| !l.trim().is_empty()) {
            let l = line.trim_start();
            prop_assert!(KEYWORDS.iter().any(|k| l.starts_with(k)), "unexpected line {line:?}");
        }
        let sections = config.lines().filter(|l| l.starts_with("frontend ") || l.starts_with("backend ")).count();
        prop_assert_eq!(sections, rendered.config.frontends.len() + rendered.config.backends.len());
        for e in &rendered.failed {
            prop_assert!(!e.to_string().is_empty());
        }
        if std::env::var_os("VAMP_PRINT_ACCEPTANCE").is_some() {
            eprintln!("rendered {} of {}", gs.len() - rendered.failed.len(), gs.len());
            for e in &rendered.failed {
                eprintln!("refused: {e}");
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let checked = rt.block_on(process::check(&binary, dir.path(), &config, true));
        prop_assert!(checked.is_ok(), "{:?}\n{}", checked.err(), config);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_traffic_exactly_and_change_without_a_reload() {
    let Some(binary) = binary() else { return };
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port();
    let g = "split/port";
    let mut gw = gateway(
        g,
        port,
        vec![
            route(g, "split/a/port", 90, &[("a", a)]),
            route(g, "split/b/port", 10, &[("b", b)]),
        ],
    );
    let mut hx = start(binary, std::slice::from_ref(&gw)).await;
    let mut client = Client::new(port);

    let counts = split(&mut client, 10_000, &[]).await;
    let share_b = counts.get("b").copied().unwrap_or(0) as f64 / 100.0;
    assert!((share_b - 10.0).abs() <= 1.0, "90/10 gave {counts:?}");

    // 99/1 through the runtime API: no reload.
    let reloads = hx.haproxy.state().await.expect("state").reloads;
    gw.routes[0].weight = vamp_core::model::Percentage::new(99).expect("99");
    gw.routes[1].weight = vamp_core::model::Percentage::new(1).expect("1");
    let weights = runtime_weights(&gw);
    let weights: Vec<(&str, &str, u16)> = weights
        .iter()
        .map(|(b, s, w)| (b.as_str(), s.as_str(), *w))
        .collect();
    hx.haproxy
        .runtime()
        .set_weights(&weights)
        .await
        .expect("set weights");
    let counts = split(&mut client, 10_000, &[]).await;
    let share_b = counts.get("b").copied().unwrap_or(0) as f64 / 100.0;
    assert!((share_b - 1.0).abs() <= 1.0, "99/1 gave {counts:?}");
    assert_eq!(
        hx.haproxy.state().await.expect("state").reloads,
        reloads,
        "a weight change must not reload"
    );
    assert_eq!(client.connections, 1, "the keep-alive connection was kept");

    // A structural change reloads seamlessly; an invalid config changes nothing.
    let c = backend("c").await;
    gw.routes.push(route(g, "split/c/port", 0, &[("c", c)]));
    gw.routes[0].weight = vamp_core::model::Percentage::new(0).expect("0");
    gw.routes[1].weight = vamp_core::model::Percentage::new(0).expect("0");
    gw.routes[2].weight = vamp_core::model::Percentage::FULL;
    let state = hx
        .haproxy
        .reload(&text(std::slice::from_ref(&gw), &hx.opts))
        .await
        .expect("reload");
    assert_eq!(state.reloads, reloads + 1);
    let counts = split(&mut Client::new(port), 50, &[]).await;
    assert_eq!(counts.get("c"), Some(&50), "{counts:?}");

    let err = hx
        .haproxy
        .reload("global\n    nonsense-keyword\n")
        .await
        .unwrap_err();
    assert!(matches!(err, ProcessError::InvalidConfig { .. }), "{err}");
    let counts = split(&mut Client::new(port), 20, &[]).await;
    assert_eq!(
        counts.get("c"),
        Some(&20),
        "the last good config keeps serving"
    );
    hx.haproxy.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_drains_servers_and_reads_stats() {
    use vamp_gateway::haproxy::runtime::ServerState;
    let Some(binary) = binary() else { return };
    let (a1, a2) = (backend("a1").await, backend("a2").await);
    let port = free_port();
    let g = "rt/port";
    let gw = gateway(
        g,
        port,
        vec![route(g, "rt/a/port", 100, &[("a1", a1), ("a2", a2)])],
    );
    let hx = start(binary, std::slice::from_ref(&gw)).await;
    let mut client = Client::new(port);
    assert_eq!(
        split(&mut client, 100, &[]).await.len(),
        2,
        "both instances serve"
    );

    let backend_name = gw.routes[0].lookup_name.clone();
    let api = hx.haproxy.runtime();
    api.set_state(&backend_name, "a2", ServerState::Maint)
        .await
        .expect("maint");
    assert_eq!(
        split(&mut client, 50, &[]).await.get("a1"),
        Some(&50),
        "a2 in maintenance takes nothing"
    );
    api.set_state(&backend_name, "a2", ServerState::Ready)
        .await
        .expect("ready");
    assert_eq!(split(&mut client, 100, &[]).await.len(), 2, "a2 is back");
    assert_eq!(
        api.weight(&backend_name, "a1").await.expect("weight"),
        (100, 100)
    );
    assert!(
        api.set_weight(&backend_name, "nope", 1).await.is_err(),
        "an unknown server is refused"
    );
    assert!(
        api.set_weight("bad\nname", "a1", 1).await.is_err(),
        "a name that is not an HAProxy name"
    );

    let stats = api.stats().await.expect("show stat");
    let a1_row = stats
        .iter()
        .find(|r| r.proxy == backend_name && r.server == "a1")
        .expect("a1 row");
    assert!(a1_row.sessions_total > 0, "{a1_row:?}");
    assert_eq!(a1_row.status, "UP");
    assert!(
        api.servers_state()
            .await
            .expect("state")
            .contains(&backend_name)
    );
    hx.haproxy.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_route_by_host_header() {
    let Some(binary) = binary() else { return };
    let (a, b) = (backend("a").await, backend("b").await);
    let mut shop = gateway(
        "shop/port",
        free_port(),
        vec![route("shop/port", "shop/a/port", 100, &[("a", a)])],
    );
    shop.virtual_hosts = vec!["shop.example.com".into()];
    // No port of its own: reached through the virtual-host frontend only (issue 21).
    let mut blog = gateway(
        "blog",
        0,
        vec![route("blog", "blog/b/port", 100, &[("b", b)])],
    );
    blog.virtual_hosts = vec!["blog.example.com".into(), "www.blog.example.com".into()];
    let vh_port = free_port();
    let dir = tempdir();
    let paths = Paths::new(dir.path());
    let mut opts = options(&paths);
    let without = render(std::slice::from_ref(&blog), &opts);
    assert_eq!(
        without.failed.first().map(|f| &f.kind),
        Some(&vamp_gateway::haproxy::render::RenderErrorKind::NoListener),
        "without a virtual-host frontend a port-less gateway is refused"
    );
    opts.virtual_hosts = Some(([127, 0, 0, 1], vh_port).into());
    let hx = Haproxy::start(binary, paths, &text(&[shop, blog], &opts))
        .await
        .expect("start");
    // The test client always sends `host: localhost`: one raw request per Host instead.
    for (host, want) in [
        ("shop.example.com", "a"),
        ("SHOP.example.com:80", "a"),
        ("blog.example.com", "b"),
        ("www.blog.example.com", "b"),
    ] {
        let r = raw_get(vh_port, host).await;
        assert!(r.contains(&format!("x-backend: {want}")), "{host} → {r}");
    }
    assert!(
        raw_get(vh_port, "other.example.com")
            .await
            .starts_with("HTTP/1.1 503"),
        "an unknown host gets 503"
    );
    hx.stop().await.expect("stop");
}

/// One request with exactly this Host header; the raw response head.
async fn raw_get(port: u16, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_string(&mut out),
    )
    .await
    .expect("answer in time")
    .expect("read");
    out
}
