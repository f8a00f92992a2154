//! Traffic mirroring through the embedded router (issue 21): copies of a share of a route's
//! requests reach the mirror — heads and small bodies — while the client only ever gets the
//! instance's answers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use vamp_core::model::Percentage;
use vamp_core::traits::{ResolvedMirror, Router};
use vamp_gateway::embedded::EmbeddedRouter;
use vamp_gateway::testkit::{Client, free_port, gateway, route};

/// An HTTP/1.1 server answering `<name> <method> <path> <body>` (header `x-backend: <name>`);
/// each request it saw goes to the channel as that same line.
async fn recording(name: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let (head, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let line = format!(
                                "{name} {} {} {}",
                                head.method,
                                head.uri.path(),
                                String::from_utf8_lossy(&body)
                            );
                            let _ = seen.send(line.clone());
                            let mut answer = hyper::Response::new(Full::new(Bytes::from(line)));
                            answer
                                .headers_mut()
                                .insert("x-backend", hyper::header::HeaderValue::from_static(name));
                            Ok::<_, hyper::Error>(answer)
                        }
                    },
                );
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, rx)
}

/// The next `n` lines the mirror saw (bounded: 10 s).
async fn lines(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the mirror saw the copies in time")
            .expect("the mirror runs");
        out.push(line);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_of_the_requests_is_copied_and_no_copy_answers_the_client() {
    let (instance, _) = recording("instance").await;
    let (mirror, mut copies) = recording("mirror").await;
    let port = free_port();
    let mut r = route("shop", "web", 100, &[("instance", instance)]);
    r.mirror = Some(ResolvedMirror {
        host: "127.0.0.1".into(),
        port: mirror,
        percentage: Percentage::new(50).unwrap(),
    });
    let router = EmbeddedRouter::new();
    let report = router
        .apply(&[gateway("shop", port, vec![r])])
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{report:?}");

    let mut client = Client::new(port);
    for i in 0..20 {
        let answer = client.get(&format!("/item/{i}"), &[]).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.backend(), "instance", "request {i}: {answer:?}");
        assert!(answer.body.starts_with("instance GET /item/"), "{answer:?}");
    }
    // Exactly half, every other request.
    let seen = lines(&mut copies, 10).await;
    assert!(
        seen.iter().all(|l| l.starts_with("mirror GET /item/")),
        "{seen:?}"
    );
    vamp_core::testkit::eventually("the copies are counted", || async {
        router.mirrored().sent == 10
    })
    .await;
    assert!(copies.try_recv().is_err(), "no eleventh copy");
    assert_eq!(router.mirrored().dropped, 0);
    router.apply(&[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_bodies_are_copied_and_the_instance_gets_the_same_bytes() {
    let (instance, mut served) = recording("instance").await;
    let (mirror, mut copies) = recording("mirror").await;
    let port = free_port();
    let mut r = route("api", "v1", 100, &[("instance", instance)]);
    r.mirror = Some(ResolvedMirror {
        host: "127.0.0.1".into(),
        port: mirror,
        percentage: Percentage::FULL,
    });
    let router = EmbeddedRouter::new();
    router
        .apply(&[gateway("api", port, vec![r])])
        .await
        .unwrap();

    let http = reqwest_like_post(port, "/orders", "{\"id\": 7}").await;
    assert!(http.contains("x-backend: instance"), "{http}");
    assert!(
        http.ends_with("instance POST /orders {\"id\": 7}"),
        "{http}"
    );
    assert_eq!(
        lines(&mut served, 1).await,
        ["instance POST /orders {\"id\": 7}"]
    );
    assert_eq!(
        lines(&mut copies, 1).await,
        ["mirror POST /orders {\"id\": 7}"]
    );

    // A body beyond the limit goes to the instance only.
    let big = "x".repeat(usize::try_from(vamp_gateway::embedded::MIRROR_BODY_LIMIT).unwrap() + 1);
    let http = reqwest_like_post(port, "/big", &big).await;
    assert!(
        http.starts_with("HTTP/1.1 200"),
        "{}",
        &http[..40.min(http.len())]
    );
    assert_eq!(
        lines(&mut served, 1).await[0].len(),
        "instance POST /big ".len() + big.len()
    );
    vamp_core::testkit::eventually("the long body is counted as skipped", || async {
        router.mirrored().skipped == 1
    })
    .await;
    assert!(copies.try_recv().is_err(), "the long body was not copied");
    router.apply(&[]).await.unwrap();
}

/// One `POST` with a body and `connection: close`; the raw answer.
async fn reqwest_like_post(port: u16, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    out
}
