//! The Router conformance kit against the embedded router.

mod common;

use common::kit;
use vamp_core::traits::Router;
use vamp_gateway::embedded::EmbeddedRouter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_exactly() {
    kit::weights_split_exactly(&EmbeddedRouter::new()).await;
}

/// On threads of its own (`with_workers`), from a caller on a one-thread runtime: the kit's
/// HTTP and TCP cases hold, and stopping a gateway frees its port.
#[tokio::test]
async fn on_workers_of_its_own_the_kit_holds() {
    let router = EmbeddedRouter::new().with_workers(2).unwrap();
    kit::weights_split_exactly(&router).await;
    kit::conditions_strength_sticky_rewrites(&router).await;
    kit::apply_replaces_the_whole_set(&router).await;
    kit::tcp_gateway_relays_by_weight(&router).await;
    router.apply(&[]).await.unwrap();
    drop(router);
}

/// With several threads, each new connection goes to the thread serving the fewest: eight
/// keep-alive connections opened one after another are served four and four (the kernel's
/// `SO_REUSEPORT` hash, used before, split them as it happened to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_spread_evenly_over_the_threads() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let router = EmbeddedRouter::new().with_workers(2).unwrap();
    let a = common::backend("a").await;
    let port = common::free_port();
    let g = common::gateway(
        "even",
        port,
        vec![common::route("even", "even/a", 100, &[("a", a)])],
    );
    router.apply(&[g]).await.expect("apply");
    kit::ready(port).await;
    let mut open = Vec::new();
    for _ in 0..8 {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut stream = tokio::io::BufReader::new(stream);
        stream
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: even\r\n\r\n")
            .await
            .expect("write");
        let mut status = String::new();
        stream.read_line(&mut status).await.expect("read");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        open.push(stream);
    }
    assert_eq!(router.worker_connections(), [4, 4]);
    drop(open);
    vamp_core::testkit::eventually("the closed connections to be counted out", || async {
        router.worker_connections() == [0, 0]
    })
    .await;
    router.apply(&[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_strength_sticky_rewrites() {
    kit::conditions_strength_sticky_rewrites(&EmbeddedRouter::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_replaces_the_whole_set() {
    kit::apply_replaces_the_whole_set(&EmbeddedRouter::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_gateway_fails_alone() {
    kit::a_bad_gateway_fails_alone(&EmbeddedRouter::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_gateway_relays_by_weight() {
    kit::tcp_gateway_relays_by_weight(&EmbeddedRouter::new()).await;
}

/// HTTP/2 with prior knowledge: many requests on one connection, split exactly, and a
/// condition on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served_and_split() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let router = EmbeddedRouter::new();
    let (a, b) = (common::backend("a").await, common::backend("b").await);
    let port = common::free_port();
    let g = common::gateway(
        "h2",
        port,
        vec![
            common::route("h2", "h2/a", 90, &[("a", a)]),
            common::route("h2", "h2/b", 10, &[("b", b)]),
        ],
    );
    router.apply(&[g]).await.expect("apply");
    kit::ready(port).await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..100 {
        let req = hyper::Request::get(format!("http://127.0.0.1:{port}/"))
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("h2 response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let backend = resp
            .headers()
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        *counts.entry(backend).or_default() += 1;
    }
    assert_eq!(
        (counts.get("a"), counts.get("b")),
        (Some(&90), Some(&10)),
        "{counts:?}"
    );

    // A condition on the same connection: requests with the header go to b, whatever the
    // weights.
    let g = common::gateway(
        "h2",
        port,
        vec![
            common::route("h2", "h2/a", 100, &[("a", a)]),
            vamp_gateway::testkit::with_condition(
                common::route("h2", "h2/b", 0, &[("b", b)]),
                "has header X-Canary",
                100,
            ),
        ],
    );
    router.apply(&[g]).await.expect("apply");
    for (header, want) in [(Some("yes"), "b"), (None, "a"), (Some("1"), "b")] {
        let mut req = hyper::Request::get(format!("http://127.0.0.1:{port}/"));
        if let Some(v) = header {
            req = req.header("x-canary", v);
        }
        let resp = sender
            .send_request(req.body(Empty::<bytes::Bytes>::new()).expect("request"))
            .await
            .expect("h2 response");
        assert_eq!(resp.headers()["x-backend"], want, "{header:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_under_load_drop_no_request() {
    let router = EmbeddedRouter::new();
    let result = kit::changes_under_load(&router, 4, 100, 20).await;
    eprintln!("embedded under load: {result:?}");
    assert!(result.requests > 1_000, "{result:?}");
    assert_eq!(result.failures, 0, "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_requests_per_route() {
    let router = EmbeddedRouter::new();
    kit::weights_split_exactly(&router).await;
    // The gateway is gone after the kit; its counters went with its listener.
    assert!(router.stats().await.expect("stats").is_empty());
    let a = common::backend("a").await;
    let port = common::free_port();
    let g = common::gateway(
        "s",
        port,
        vec![
            common::route("s", "s/a", 100, &[("a", a)]),
            common::route("s", "s/none", 0, &[]),
        ],
    );
    router.apply(&[g]).await.expect("apply");
    kit::ready(port).await;
    let mut client = common::Client::new(port);
    common::split(&mut client, 10, &[]).await;
    let stats = router.stats().await.expect("stats");
    let a_stats = stats.iter().find(|s| s.route == "s/a").expect("route a");
    assert_eq!((a_stats.requests, a_stats.errors), (11, 0)); // + the readiness probe
    assert_eq!(a_stats.latency.buckets.last().map(|b| b.1), Some(11));
}

/// An instance that never answers: the client gets a 504 after the upstream timeout, counted
/// as an error; the connection to the router stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_instance_times_out_with_504() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    // Accept and hold connections without ever answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let router = EmbeddedRouter::new().with_upstream_timeout(std::time::Duration::from_millis(300));
    let port = common::free_port();
    let g = common::gateway(
        "slow",
        port,
        vec![common::route("slow", "slow/x", 100, &[("x", silent_port)])],
    );
    router.apply(&[g]).await.expect("apply");
    let mut client = common::Client::new(port);
    // The 300 ms upstream timeout answers 504: a bound, not a measurement.
    let r = vamp_core::testkit::within_limit(
        "a 504 from the upstream timeout",
        std::time::Duration::from_secs(5),
        client.get("/", &[]),
    )
    .await
    .expect("an answer");
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(
        client
            .get("/", &[])
            .await
            .expect("the same connection")
            .status,
        504
    );
    assert_eq!(client.connections, 1);
    let stats = router.stats().await.expect("stats");
    assert_eq!((stats[0].requests, stats[0].errors), (2, 2));
}

/// An instance that closes each connection right after its answer (without saying so): the
/// next request of the same client finds its upstream connection gone, and goes again on a
/// new one — the client never sees a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_closing_idle_connections_costs_no_request() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap().port();
    let (closed, mut closings) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                drop(s);
                let _ = closed.send(());
            });
        }
    });
    let port = vamp_gateway::testkit::free_port();
    let router = EmbeddedRouter::new();
    let g = vamp_gateway::testkit::gateway(
        "close/web",
        port,
        vec![vamp_gateway::testkit::route(
            "close/web",
            "close/web/a",
            100,
            &[("a", backend)],
        )],
    );
    assert!(router.apply(&[g]).await.unwrap().failed.is_empty());
    let mut client = vamp_gateway::testkit::Client::new(port);
    for i in 0..5 {
        let r = client.get("/", &[]).await.unwrap();
        assert_eq!(r.status, 200, "request {i}");
        // The instance has closed the connection it answered on.
        tokio::time::timeout(std::time::Duration::from_secs(5), closings.recv())
            .await
            .unwrap();
    }
    router.apply(&[]).await.unwrap();
}

/// What crosses the router as a proxy must send it (RFC 9110 §7.6.1): the hop-by-hop headers
/// — `Connection`, those it lists, `Keep-Alive` — stop at the router both ways, and the
/// client's address is appended to `X-Forwarded-For` (or starts it).
#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_router_and_the_client_is_forwarded_for() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    // An instance that hands over each request head it reads and answers with hop-by-hop
    // headers of its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let instance = listener.local_addr().expect("addr").port();
    let (heads, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line.to_ascii_lowercase());
                    }
                    let _ = heads.send(head);
                    let answer = "HTTP/1.1 200 OK\r\nconnection: keep-alive, x-secret-hop\r\n\
                                  keep-alive: timeout=5\r\nx-secret-hop: 1\r\nx-end-to-end: 1\r\n\
                                  content-length: 2\r\n\r\nok";
                    if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let router = EmbeddedRouter::new();
    let port = common::free_port();
    let g = common::gateway(
        "hops",
        port,
        vec![common::route("hops", "hops/a", 100, &[("a", instance)])],
    );
    router.apply(&[g]).await.expect("apply");
    kit::ready(port).await;
    let _ = received.try_recv(); // the readiness probe's request, if it reached the instance
    while received.try_recv().is_ok() {}

    let client = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut client = tokio::io::BufReader::new(client);
    let mut exchange = async |request: &str| {
        client
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("write");
        let mut head = String::new();
        loop {
            let mut line = String::new();
            client.read_line(&mut line).await.expect("read");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let mut body = [0u8; 2];
        client.read_exact(&mut body).await.expect("body");
        head
    };
    let answer = exchange(
        "GET /a HTTP/1.1\r\nHost: hops\r\nConnection: keep-alive, X-Private\r\n\
         X-Private: secret\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 10.1.1.1\r\n\
         X-End-To-End: 1\r\n\r\n",
    )
    .await;
    let head = received.recv().await.expect("the instance got the request");
    assert!(head.starts_with("get /a http/1.1\r\n"), "{head}");
    assert!(head.contains("x-end-to-end: 1\r\n"), "{head}");
    assert!(
        !head.contains("x-private"),
        "a header Connection lists: {head}"
    );
    assert!(!head.contains("keep-alive:"), "{head}");
    assert!(
        head.contains("x-forwarded-for: 10.1.1.1, 127.0.0.1\r\n"),
        "appended to the client's list: {head}"
    );
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("x-end-to-end: 1\r\n"), "{answer}");
    assert!(!answer.contains("x-secret-hop"), "{answer}");
    assert!(!answer.contains("keep-alive:"), "{answer}");

    // The same connection, no list of its own: the client's address starts one.
    exchange("GET /b HTTP/1.1\r\nHost: hops\r\n\r\n").await;
    let head = received.recv().await.expect("the second request");
    assert!(head.starts_with("get /b http/1.1\r\n"), "{head}");
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    router.apply(&[]).await.expect("stop");
}

/// A gateway whose port another program holds is not served, and is served at the first
/// routing pass after the port is free again — the router is handed it again rather than
/// taken to have it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_is_served_once_its_port_is_free() {
    use vamp_core::Vamp;
    use vamp_core::memory::MemoryDriver;
    let backend = common::backend("a").await;
    let port = common::free_port();
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold the port");
    let router = std::sync::Arc::new(EmbeddedRouter::new());
    let vamp = Vamp::builder()
        .driver(std::sync::Arc::new(MemoryDriver::default()))
        .router(router.clone())
        .build()
        .expect("vamp");
    let gateway = vamp_core::dsl::read(
        &format!(
            "kind: gateways\nname: held\nport: {port}/http\nroutes:\n  '[127.0.0.1:{backend}]': {{weight: 100%}}\n"
        ),
        None,
    )
    .expect("gateway")
    .remove(0);
    vamp.put(gateway).await.expect("stored");
    vamp.route_now().await.expect("a pass");
    assert!(
        !router.ports().await.contains_key("held"),
        "nothing is served on the held port"
    );

    drop(holder);
    vamp.route_now().await.expect("the next pass");
    let mut client = common::Client::new(port);
    let answer = client
        .get("/", &[("host", "held")])
        .await
        .expect("served now");
    assert_eq!(answer.backend(), "a");
}
