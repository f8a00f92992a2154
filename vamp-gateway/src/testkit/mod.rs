//! Helpers for router tests and benches: tiny HTTP backends that answer with their name, a
//! keep-alive HTTP/1.1 client with no retries, free ports, and gateway builders.
//!
//! These helpers panic on setup failures (a port that cannot be bound): they are for tests.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use vamp_core::model::lookup::{gateway_lookup_name, route_lookup_name};
use vamp_core::model::{Percentage, PortType, Sticky};
use vamp_core::traits::{
    Balance, ResolvedCondition, ResolvedGateway, ResolvedRewrite, ResolvedRoute, RouteTarget,
};

pub use vamp_core::testkit::free_port;

/// The revision of the router's last write under `<root>/gateways` (the list is written last):
/// what an agent reports once it applied it. Not the store's revision, which the agents'
/// counters under `<root>/stats/` move too (feature `haproxy-kv`).
#[cfg(feature = "haproxy-kv")]
pub async fn published(store: &dyn vamp_core::traits::KeyValueStore, root: &str) -> u64 {
    store
        .list(&crate::wire::list_key(root))
        .await
        .expect("list")
        .entries
        .iter()
        .map(|e| e.revision)
        .max()
        .unwrap_or(0)
}

/// An HTTP/1.1 backend on a free port that answers every request with
/// `<name> <path>` and the header `x-backend: <name>`; keep-alive.
pub async fn backend(name: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let name = name.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let mut close = false;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if h.to_ascii_lowercase().starts_with("connection: close") {
                            close = true;
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let body = format!("{name} {path}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nx-backend: {name}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if reader.get_mut().write_all(resp.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of every `Set-Cookie`, joined for a `Cookie` header.
    pub fn cookies(&self) -> String {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The backend name (first word of the body).
    pub fn backend(&self) -> &str {
        self.body.split(' ').next().unwrap_or_default()
    }
}

/// A keep-alive HTTP/1.1 client of one address; reconnects only when the server closed the
/// connection after a complete response (never retries a request).
#[derive(Debug)]
pub struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
    /// Connections opened so far.
    pub connections: u32,
}

impl Client {
    /// A client of `127.0.0.1:port`; it connects on the first request.
    pub fn new(port: u16) -> Self {
        Client {
            port,
            conn: None,
            connections: 0,
        }
    }

    /// `GET path` with extra headers (a `host` among them replaces `localhost`); bounded by
    /// 10 s. Errors are described, never retried.
    ///
    /// # Errors
    /// The connection failed, closed before a response, or the response was malformed.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
        tokio::time::timeout(Duration::from_secs(10), self.get_inner(path, headers))
            .await
            .map_err(|_| "timeout".to_owned())?
    }

    async fn get_inner(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            s.set_nodelay(true).ok();
            self.conn = Some(BufReader::new(s));
            self.connections += 1;
        }
        let conn = self.conn.as_mut().ok_or("no connection")?;
        // `host: localhost` unless the caller names the host.
        let mut req = format!("GET {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str("host: localhost\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let r = async {
            conn.get_mut()
                .write_all(req.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut line = String::new();
            if conn
                .read_line(&mut line)
                .await
                .map_err(|e| format!("read: {e}"))?
                == 0
            {
                return Err("connection closed before the response".to_owned());
            }
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {line:?}"))?;
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                conn.read_line(&mut h)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            conn.read_exact(&mut body)
                .await
                .map_err(|e| format!("body: {e}"))?;
            Ok(Response {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        }
        .await;
        match &r {
            Ok(resp)
                if resp
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close")) =>
            {
                self.conn = None
            }
            Err(_) => self.conn = None,
            _ => {}
        }
        r
    }
}

/// A route to the given backends (target name = backend name).
pub fn route(gateway: &str, path: &str, weight: u8, targets: &[(&str, u16)]) -> ResolvedRoute {
    ResolvedRoute {
        path: path.to_owned(),
        lookup_name: route_lookup_name(gateway, path),
        weight: Percentage::new(weight).expect("weight"),
        condition: None,
        condition_strength: Percentage::FULL,
        rewrites: vec![],
        balance: Balance::RoundRobin,
        mirror: None,
        targets: targets
            .iter()
            .map(|(name, port)| RouteTarget {
                name: (*name).to_owned(),
                host: "127.0.0.1".into(),
                port: *port,
            })
            .collect(),
    }
}

/// The route with a condition of `strength` percent.
pub fn with_condition(mut r: ResolvedRoute, condition: &str, strength: u8) -> ResolvedRoute {
    r.condition = Some(ResolvedCondition::parse(condition));
    r.condition_strength = Percentage::new(strength).expect("strength");
    r
}

/// `r` rewriting the path to `path` where `condition` (an HAProxy ACL) holds.
pub fn with_rewrite(mut r: ResolvedRoute, path: &str, condition: &str) -> ResolvedRoute {
    r.rewrites = vec![ResolvedRewrite {
        path: path.into(),
        condition: condition.into(),
    }];
    r
}

/// An HTTP gateway.
pub fn gateway(name: &str, port: u16, routes: Vec<ResolvedRoute>) -> ResolvedGateway {
    ResolvedGateway {
        name: name.to_owned(),
        lookup_name: gateway_lookup_name(name),
        port,
        protocol: PortType::Http,
        sticky: None,
        virtual_hosts: vec![],
        routes,
    }
}

/// The gateway with sticky sessions.
pub fn sticky(mut g: ResolvedGateway, s: Sticky) -> ResolvedGateway {
    g.sticky = Some(s);
    g
}

/// Counts responses per backend over `n` requests.
pub async fn split(
    client: &mut Client,
    n: usize,
    headers: &[(&str, &str)],
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..n {
        let r = client
            .get("/", headers)
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        *counts.entry(r.backend().to_owned()).or_default() += 1;
    }
    counts
}

pub mod outage;
pub mod router;
