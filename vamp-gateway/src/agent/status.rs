//! The agent's `GET /health` endpoint.

use super::*;

/// Serves `GET /health` on `listener` until `shutdown`: `200` with the [`AgentStatus`] as JSON
/// while HAProxy runs, `503` before. One request per connection.
pub async fn serve_status(
    listener: tokio::net::TcpListener,
    status: watch::Receiver<AgentStatus>,
    shutdown: impl Future<Output = ()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let status = status.borrow().clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return };
            let request = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
            let (code, body) = if !request.starts_with("GET /health ") {
                (
                    "404 Not Found",
                    "{\"message\":\"try GET /health\"}".to_owned(),
                )
            } else {
                let body = serde_json::to_string(&status).unwrap_or_default();
                (
                    if status.haproxy_running {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    },
                    body,
                )
            };
            let response = format!(
                "HTTP/1.1 {code}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
