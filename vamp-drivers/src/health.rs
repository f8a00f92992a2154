//! Health checks of instances that run on this host: an HTTP GET expecting 2xx/3xx, or a TCP
//! connect. Shared by the process and Docker drivers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vamp_core::model::{HealthCheck, Map};

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
    let probe = async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        if check.protocol.eq_ignore_ascii_case("TCP") {
            return Some(true);
        }
        let path = if check.path.starts_with('/') {
            check.path.clone()
        } else {
            format!("/{}", check.path)
        };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let status: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some((200..400).contains(&status))
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(true)))
}
