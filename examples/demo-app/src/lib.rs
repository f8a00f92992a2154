//! The demo service: an HTTP server that names its version, for tests, benches and
//! `vamp-server --demo`.
//!
//! # Layout
//!
//! - [`DemoConfig`]: version, latency and error rate.
//! - [`serve`]: serves HTTP/1.1 and HTTP/2 on a bound listener until `shutdown` resolves.
//!
//! Every response (except `/health` and `/env/…`) carries the version on its first body line
//! and in an `x-version` header, plus the serving address in `x-instance`:
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | `200 ok` — never delayed or failed, for health checks |
//! | `GET /env/<NAME>` | `200` with the value of environment variable `NAME`, or `404` |
//! | anything else | after `latency`: `500` for the configured share of requests, else `200 <version>\n<method> <path>\n` |
//!
//! Errors are deterministic: with an error rate `r`, request `n` (counting from 1) fails
//! exactly when `floor(n·r)` grows, so any window of requests fails at the rate.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// How the demo service behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// The version it names, e.g. `1.0.0`.
    pub version: String,
    /// Extra time before every answer (not for `/health`).
    pub latency: Duration,
    /// Share of requests answered with `500`, from 0 to 1.
    pub error_rate: f64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            version: "1.0.0".into(),
            latency: Duration::ZERO,
            error_rate: 0.0,
        }
    }
}

/// A configuration value out of range.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl DemoConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(ConfigError(format!(
                "error rate {} is outside 0..1 (e.g. 0.1 for 10%)",
                self.error_rate
            )));
        }
        if self.version.trim().is_empty() || self.version.contains(['\r', '\n']) {
            return Err(ConfigError("the version must be one non-empty line".into()));
        }
        Ok(())
    }
}

struct State {
    config: DemoConfig,
    instance: String,
    requests: AtomicU64,
}

impl State {
    /// Request `n` fails when `floor(n·rate)` grows (deterministic, exact over any window).
    fn fails(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let rate = self.config.error_rate;
        rate > 0.0 && ((n as f64) * rate).floor() > (((n - 1) as f64) * rate).floor()
    }
}

fn text(status: StatusCode, body: String, state: &State) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(v) = state.config.version.parse() {
        headers.insert("x-version", v);
    }
    if let Ok(v) = state.instance.parse() {
        headers.insert("x-instance", v);
    }
    if let Ok(v) = "text/plain; charset=utf-8".parse() {
        headers.insert("content-type", v);
    }
    response
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if path == "/health" {
        return text(StatusCode::OK, "ok\n".into(), &state);
    }
    if let Some(name) = path.strip_prefix("/env/") {
        return match std::env::var(name) {
            Ok(value) => text(StatusCode::OK, format!("{value}\n"), &state),
            Err(_) => text(
                StatusCode::NOT_FOUND,
                format!("{name} is not set\n"),
                &state,
            ),
        };
    }
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
    let version = &state.config.version;
    if state.fails() {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{version}\nerror (injected)\n"),
            &state,
        );
    }
    text(
        StatusCode::OK,
        format!("{version}\n{} {path}\n", request.method()),
        &state,
    )
}

/// Serves HTTP/1.1 and HTTP/2 on `listener` until `shutdown` resolves. Connections already
/// open when it resolves are dropped.
pub async fn serve(
    listener: TcpListener,
    config: DemoConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    let state = Arc::new(State {
        config,
        instance: address.to_string(),
        requests: AtomicU64::new(0),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Running out of file descriptors is transient; do not spin on it.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(state, request).await) }
            });
            let result = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Resolves on SIGINT or SIGTERM.
pub use vamp_core::signal::shutdown as shutdown_signal;

/// The demo service's flags: `vamp-demo-app`'s, and `vamp-server demo-app`'s (what `--demo`
/// deploys).
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// The version to name.
    #[arg(long, env = "VAMP_DEMO_VERSION", default_value = "1.0.0")]
    pub app_version: String,
    /// Address to listen on.
    #[arg(long, env = "VAMP_DEMO_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0 = any free port); Vamp's process driver sets PORT.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Milliseconds to wait before every answer (not `/health`).
    #[arg(long, env = "VAMP_DEMO_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of answers that are `500`, from 0 to 1 (not `/health`).
    #[arg(long, env = "VAMP_DEMO_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
}

impl DemoArgs {
    /// What the service does.
    pub fn config(&self) -> DemoConfig {
        DemoConfig {
            version: self.app_version.clone(),
            latency: Duration::from_millis(self.latency_ms),
            error_rate: self.error_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(config: DemoConfig) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, config, async {
            let _ = rx.await;
        }));
        (address, tx)
    }

    /// One HTTP/1.1 request on a fresh connection: (status, headers, body).
    async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    #[tokio::test]
    async fn names_its_version_in_body_and_header() {
        let (address, _stop) = start(DemoConfig {
            version: "2.1.0".into(),
            ..DemoConfig::default()
        })
        .await;
        let (status, head, body) = get(address, "/some/path").await;
        assert_eq!(status, 200);
        assert_eq!(body.lines().next(), Some("2.1.0"));
        assert_eq!(body.lines().nth(1), Some("GET /some/path"));
        assert!(head.contains("x-version: 2.1.0"), "{head}");
        assert!(head.contains(&format!("x-instance: {address}")), "{head}");
    }

    #[tokio::test]
    async fn errors_at_exactly_the_configured_rate() {
        let (address, _stop) = start(DemoConfig {
            error_rate: 0.25,
            ..DemoConfig::default()
        })
        .await;
        let mut failed = 0;
        for _ in 0..40 {
            if get(address, "/").await.0 == 500 {
                failed += 1;
            }
        }
        assert_eq!(failed, 10);
        assert_eq!(get(address, "/health").await.0, 200, "health never fails");
    }

    #[tokio::test]
    async fn reports_environment_variables() {
        let (address, _stop) = start(DemoConfig::default()).await;
        let (status, _, body) = get(address, "/env/PATH").await;
        assert_eq!(status, 200);
        assert_eq!(body.trim_end(), std::env::var("PATH").unwrap());
        assert_eq!(get(address, "/env/VAMP_DEMO_SURELY_UNSET").await.0, 404);
    }

    #[tokio::test(start_paused = true)]
    async fn adds_latency_but_not_to_health() {
        let (address, _stop) = start(DemoConfig {
            latency: Duration::from_secs(3),
            ..DemoConfig::default()
        })
        .await;
        let started = tokio::time::Instant::now();
        get(address, "/health").await;
        assert!(started.elapsed() < Duration::from_secs(3));
        get(address, "/").await;
        assert!(started.elapsed() >= Duration::from_secs(3));
    }

    #[tokio::test]
    async fn stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = tokio::spawn(serve(listener, DemoConfig::default(), async {}));
        server.await.unwrap().unwrap();
    }

    #[test]
    fn bad_configuration_is_rejected() {
        let bad = DemoConfig {
            error_rate: 1.5,
            ..DemoConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("0..1"));
        let bad = DemoConfig {
            version: "a\nb".into(),
            ..DemoConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
