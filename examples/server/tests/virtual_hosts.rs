//! Gateways on the shared virtual-host listener (`gateways.vhost_listen`, issue 21): a
//! standalone gateway written with virtual hosts and no port has no port of its own and is
//! served there by its `Host`; one with a port is served on both; and they page.

mod common;

use common::{Server, get, parse, post, put, send};
use vamp_core::testkit::{eventually, free_port};
use vamp_gateway::testkit::{Client, backend, split};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_without_ports_are_served_by_host() {
    let shared = free_port();
    let listen = format!("127.0.0.1:{shared}");
    let server = Server::start(&[("gateways.vhost_listen", listen.as_str())]).await;
    let u = &server.url;
    let (a, b) = (backend("a").await, backend("b").await);

    let body = post(
        202,
        &format!("{u}/gateways"),
        &format!(
            "name: shop\nvirtual_hosts: [shop.example.com]\nroutes:\n  '[127.0.0.1:{a}]': {{weight: 80%}}\n  '[127.0.0.1:{b}]': {{weight: 20%}}\n"
        ),
    )
    .await;
    let stored = parse(&body);
    assert!(stored.get("port").is_none(), "no port of its own: {body}");
    let own = free_port();
    post(
        202,
        &format!("{u}/gateways"),
        &format!(
            "name: blog\nport: {own}/http\nvirtual_hosts: [blog.example.com]\nroutes:\n  '[127.0.0.1:{b}]': {{weight: 100%}}\n"
        ),
    )
    .await;

    // Served once the routing pass after the API's answer ran (asynchronous: issue 16, p99
    // well under a millisecond); blog was stored last, so a pass that serves it serves shop.
    let serves = |host: &'static str, from: &'static str| async move {
        let reply = Client::new(shared).get("/", &[("host", host)]).await.ok()?;
        (reply.status == 200 && (from.is_empty() || reply.backend() == from)).then_some(())
    };
    eventually("blog.example.com to be served", || {
        serves("blog.example.com", "")
    })
    .await;
    let mut client = Client::new(shared);
    let counts = split(&mut client, 10, &[("host", "shop.example.com")]).await;
    assert_eq!(
        (counts.get("a"), counts.get("b")),
        (Some(&8), Some(&2)),
        "{counts:?}"
    );
    let counts = split(&mut client, 2, &[("host", "blog.example.com")]).await;
    assert_eq!(counts.get("b"), Some(&2), "{counts:?}");
    // The generated host `<name>.vamp` (spec §2.5) is served too.
    let counts = split(&mut client, 1, &[("host", "shop.vamp")]).await;
    assert_eq!(counts.values().sum::<usize>(), 1, "{counts:?}");
    let counts = split(&mut Client::new(own), 1, &[]).await;
    assert_eq!(counts.get("b"), Some(&1), "{counts:?}");

    // A weight change reaches the shared listener at once.
    put(
        202,
        &format!("{u}/gateways/shop"),
        &format!(
            "name: shop\nvirtual_hosts: [shop.example.com]\nroutes:\n  '[127.0.0.1:{a}]': {{weight: 0%}}\n  '[127.0.0.1:{b}]': {{weight: 100%}}\n"
        ),
    )
    .await;
    eventually("the new weights on the shared listener", || {
        serves("shop.example.com", "b")
    })
    .await;
    let counts = split(&mut client, 4, &[("host", "shop.example.com")]).await;
    assert_eq!(counts.get("b"), Some(&4), "{counts:?}");
    let stored = parse(&get(200, &format!("{u}/gateways/shop")).await);
    assert!(stored.get("port").is_none(), "still none: {stored}");

    // Paging: one gateway a page.
    let (status, headers, body) = send(
        reqwest::Method::GET,
        &format!("{u}/gateways?page=2&per_page=1"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(parse(&body).as_array().map(Vec::len), Some(1), "{body}");
    assert!(headers.get("x-total-count").is_some(), "{headers:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_vhost_listen_is_refused_naming_the_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vamp-server"))
        .arg("--print-config")
        .env("VAMP_GATEWAYS__VHOST_LISTEN", "localhost")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("gateways.vhost_listen"), "{err}");
}
