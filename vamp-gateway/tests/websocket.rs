//! WebSocket through the embedded router (issue 21): the handshake (an HTTP/1.1 upgrade)
//! follows the gateway's weights and conditions, frames are echoed end to end, and a
//! WebSocket held open survives table swaps. The instances are minimal WebSocket echo
//! servers written here (RFC 6455 handshake and unfragmented frames under 126 bytes).

use std::time::Duration;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use vamp_core::traits::Router;
use vamp_gateway::embedded::EmbeddedRouter;
use vamp_gateway::testkit::{free_port, gateway, route, with_condition};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const LIMIT: Duration = Duration::from_secs(10);

fn accept_of(key: &str) -> String {
    let digest = Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Reads an HTTP head (up to the blank line).
async fn head(s: &mut (impl AsyncRead + Unpin)) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(LIMIT, s.read(&mut byte))
            .await
            .expect("a head in time")
            .expect("read");
        assert!(
            n > 0,
            "closed in the head: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads one frame: (opcode, payload), unmasking a masked one.
async fn frame(s: &mut (impl AsyncRead + Unpin)) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    tokio::time::timeout(LIMIT, s.read_exact(&mut h))
        .await
        .expect("a frame in time")
        .expect("a frame");
    let masked = h[1] & 0x80 != 0;
    let len = usize::from(h[1] & 0x7f);
    assert!(len < 126, "small frames only");
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask).await.expect("mask");
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.expect("payload");
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    (h[0] & 0x0f, payload)
}

/// A WebSocket echo instance named `name`: it says its name in `X-Instance` on the handshake.
async fn echo_instance(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let request = head(&mut s).await;
                let key = header(&request, "sec-websocket-key").unwrap_or_default();
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nX-Instance: {name}\r\n\r\n",
                    accept_of(key)
                );
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    let (opcode, payload) = frame(&mut s).await;
                    // Unmasked, as a server sends.
                    let mut out = vec![0x80 | opcode, u8::try_from(payload.len()).unwrap_or(0)];
                    out.extend_from_slice(&payload);
                    if s.write_all(&out).await.is_err() || opcode == 0x8 {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A client's WebSocket through the gateway on `port`: the instance that took it.
async fn open(port: u16, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let hello = format!(
        "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    s.write_all(hello.as_bytes()).await.unwrap();
    let answer = head(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert_eq!(
        header(&answer, "sec-websocket-accept"),
        Some(accept_of(KEY).as_str())
    );
    let instance = header(&answer, "x-instance").unwrap_or_default().to_owned();
    (s, instance)
}

/// Sends a masked text frame and reads the echo.
async fn echo(s: &mut TcpStream, text: &str) -> String {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
    out.extend_from_slice(&mask);
    out.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&out).await.unwrap();
    let (opcode, payload) = frame(s).await;
    assert_eq!(opcode, 0x1);
    String::from_utf8(payload).unwrap()
}

fn split(port: u16, a: u16, b: u16, weight_a: u8) -> vamp_core::traits::ResolvedGateway {
    gateway(
        "ws/web",
        port,
        vec![
            route("ws/web", "ws/web/a", weight_a, &[("a", a)]),
            route("ws/web", "ws/web/b", 100 - weight_a, &[("b", b)]),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_follow_the_weights_and_echo() {
    let (a, b) = (echo_instance("a").await, echo_instance("b").await);
    let port = free_port();
    let router = EmbeddedRouter::new();
    assert!(
        router
            .apply(&[split(port, a, b, 75)])
            .await
            .unwrap()
            .failed
            .is_empty()
    );
    let mut taken = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..20 {
        let (mut s, instance) = open(port, "").await;
        assert_eq!(
            echo(&mut s, &format!("hello {i}")).await,
            format!("hello {i}")
        );
        *taken.entry(instance).or_default() += 1;
    }
    assert_eq!(
        taken,
        [("a".to_owned(), 15), ("b".to_owned(), 5)].into(),
        "75/25, exactly"
    );
    router.apply(&[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_sends_a_websocket_to_its_route() {
    let (a, b) = (echo_instance("a").await, echo_instance("b").await);
    let port = free_port();
    let g = gateway(
        "ws/web",
        port,
        vec![
            route("ws/web", "ws/web/a", 100, &[("a", a)]),
            with_condition(
                route("ws/web", "ws/web/b", 0, &[("b", b)]),
                "has header X-Canary",
                100,
            ),
        ],
    );
    let router = EmbeddedRouter::new();
    let report = router.apply(&[g]).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let (mut s, instance) = open(port, "X-Canary: yes\r\n").await;
    assert_eq!(instance, "b");
    assert_eq!(echo(&mut s, "canary").await, "canary");
    let (_, instance) = open(port, "").await;
    assert_eq!(instance, "a");
    router.apply(&[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_held_open_survives_twenty_table_swaps() {
    let (a, b) = (echo_instance("a").await, echo_instance("b").await);
    let port = free_port();
    let router = EmbeddedRouter::new();
    router.apply(&[split(port, a, b, 100)]).await.unwrap();
    let (mut s, instance) = open(port, "").await;
    assert_eq!(instance, "a");
    for i in 0..20u8 {
        // Weights flip between the routes: the table is swapped each time.
        let weight = if i % 2 == 0 { 0 } else { 100 };
        let report = router.apply(&[split(port, a, b, weight)]).await.unwrap();
        assert!(report.failed.is_empty());
        assert_eq!(
            echo(&mut s, &format!("still here {i}")).await,
            format!("still here {i}")
        );
    }
    router.apply(&[]).await.unwrap();
}
