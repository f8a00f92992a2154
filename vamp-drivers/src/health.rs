//! Health checks of instances that run on this host: an HTTP GET of the check's path
//! expecting 2xx/3xx (the drivers' HTTP client, [`crate::http`]), or a TCP connect. Shared by
//! the process and Docker drivers.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use vamp_core::model::{HealthCheck, Map};

use crate::http::Http;

/// A health check as a driver keeps it: what it needs to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Check {
    pub(crate) path: String,
    pub(crate) port: String,
    pub(crate) protocol: String,
    pub(crate) timeout_seconds: u64,
}

impl From<&HealthCheck> for Check {
    fn from(c: &HealthCheck) -> Self {
        Check {
            path: c.path.clone(),
            port: c.port.clone(),
            protocol: c.protocol.clone(),
            timeout_seconds: c.timeout.get(),
        }
    }
}

/// True when every check whose port the instance has passes.
pub(crate) async fn all_pass(
    checks: &[Check],
    host: &str,
    ports: &Map<u16>,
    default_timeout: Duration,
) -> bool {
    for c in checks {
        if let Some(port) = ports.get(&c.port)
            && !check(c, host, *port, default_timeout).await
        {
            return false;
        }
    }
    true
}

/// Runs one check against `host:port`; true when healthy.
pub(crate) async fn check(check: &Check, host: &str, port: u16, default_timeout: Duration) -> bool {
    let timeout = if check.timeout_seconds > 0 {
        Duration::from_secs(check.timeout_seconds)
    } else {
        default_timeout
    };
    if check.protocol.eq_ignore_ascii_case("TCP") {
        let connect = TcpStream::connect((host, port));
        return matches!(tokio::time::timeout(timeout, connect).await, Ok(Ok(_)));
    }
    let path = if check.path.starts_with('/') {
        check.path.clone()
    } else {
        format!("/{}", check.path)
    };
    let url = format!("http://{}:{port}{path}", bracketed(host));
    static HTTP: std::sync::OnceLock<Http<HttpConnector>> = std::sync::OnceLock::new();
    let http = HTTP.get_or_init(Http::plain);
    match http.request(hyper::Method::GET, &url, None, timeout).await {
        Ok((status, _)) => (200..400).contains(&status.as_u16()),
        Err(e) => {
            tracing::debug!(%url, error = %e, "health check failed");
            false
        }
    }
}

/// A host as it goes in a URL: IPv6 addresses in brackets.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: the probe asks for the configured path — a server healthy at `/` but not at
    /// `/health` fails a check on `/health`.
    #[tokio::test]
    async fn the_configured_path_is_what_is_checked() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if head.starts_with("GET /health ") {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let check = |path: &str| Check {
            path: path.into(),
            port: "web".into(),
            protocol: "HTTP".into(),
            timeout_seconds: 5,
        };
        let wait = Duration::from_secs(5);
        assert!(
            super::check(&check("/"), "127.0.0.1", port, wait).await,
            "/ answers 200"
        );
        assert!(
            super::check(&check("ping"), "127.0.0.1", port, wait).await,
            "a path without its slash"
        );
        assert!(
            !super::check(&check("/health"), "127.0.0.1", port, wait).await,
            "/health answers 503"
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(
            !super::check(&check("/"), "127.0.0.1", dead, wait).await,
            "nothing listens"
        );
        let mut tcp = check("/");
        tcp.protocol = "TCP".into();
        assert!(super::check(&tcp, "127.0.0.1", port, wait).await);
        assert!(!super::check(&tcp, "127.0.0.1", dead, wait).await);
    }
}
