//! The API in process: the router from `App::router`, called with tower's `oneshot` — no
//! socket, no reconciler.
#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses part of it"
)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use vamp_server::App;
use vamp_server::config::ServerConfig;

/// An app on the in-memory store.
pub(crate) struct Api {
    pub(crate) router: axum::Router,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Api {
    /// An app with `flags` over the in-memory store and a data directory of its own.
    pub(crate) async fn new(flags: &[(&str, &str)]) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut all = vec![
            (
                "server.data_dir".to_owned(),
                dir.path().display().to_string(),
            ),
            ("persistence.kind".to_owned(), "memory".to_owned()),
        ];
        all.extend(
            flags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = ServerConfig::load(None, [], all).expect("config");
        let app = App::build(config).await.expect("app");
        let (stop, stopping) = tokio::sync::watch::channel(false);
        Api {
            router: app.router(stopping),
            _stop: stop,
            _dir: dir,
        }
    }

    /// One request: a string body goes as YAML, any other value as JSON. The status, and the
    /// body unless it is an event stream.
    pub(crate) async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "127.0.0.1")
            .header("accept", "application/json");
        let body = match body {
            Some(Value::String(text)) => {
                request = request.header("content-type", "application/x-yaml");
                Body::from(text.clone())
            }
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        if uri.contains("/events/stream") {
            return (status, String::new());
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// [`call`](Self::call) with a YAML body, the answer read as JSON (or a JSON string when
    /// it is not JSON).
    pub(crate) async fn json(
        &self,
        method: &str,
        uri: &str,
        yaml: Option<&str>,
    ) -> (StatusCode, Value) {
        let body = yaml.map(|y| Value::String(y.to_owned()));
        let (status, text) = self.call(method, uri, body.as_ref()).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}
