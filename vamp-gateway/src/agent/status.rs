//! The agent's `GET /health` endpoint, served by hyper (HTTP/1.1, keep-alive).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::*;

/// Serves `GET /health` on `listener` until `shutdown`: `200` with the [`AgentStatus`] as JSON
/// while HAProxy runs, `503` before; `404` for anything else.
pub async fn serve_status(
    listener: tokio::net::TcpListener,
    status: watch::Receiver<AgentStatus>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let answer = answer(&request, &status.borrow());
                    async move { Ok::<_, Infallible>(answer) }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "status connection ended with an error");
            }
        });
    }
}

fn answer(request: &Request<hyper::body::Incoming>, status: &AgentStatus) -> Response<Full<Bytes>> {
    let (code, body) = if request.method() == Method::GET && request.uri().path() == "/health" {
        let code = if status.haproxy_running {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, serde_json::to_string(status).unwrap_or_default())
    } else {
        (
            StatusCode::NOT_FOUND,
            "{\"message\":\"try GET /health\"}".to_owned(),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
