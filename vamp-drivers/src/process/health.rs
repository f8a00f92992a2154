//! Health checks of process instances: an HTTP GET expecting 2xx/3xx, or a TCP connect.

use std::time::Duration;

use super::state::Check;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs one check against `host:port`; true when healthy.
pub(super) async fn check(check: &Check, host: &str, port: u16, default_timeout: Duration) -> bool {
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
