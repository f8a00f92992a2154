//! Commands that talk to a `vamp-server` over its REST API (spec §7.2).
//!
//! Exit codes scripts can rely on: 0 done; 1 the server refused the request (its message is
//! printed); 3 the server could not be reached or failed (5xx); 4 a deployment waited for
//! failed; 5 waiting timed out. Usage errors exit 2 (clap).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod artifacts;
mod deployments;
mod events;

pub use artifacts::{create, delete, describe, generate, list, update_gateway};
pub use deployments::{Progress, deploy, deployment_progress, undeploy};
pub use events::{EventStream, emit, events};

/// Exit code: the server refused the request.
pub const REFUSED: i32 = 1;
/// Exit code: the server could not be reached, or failed.
pub const UNREACHABLE: i32 = 3;
/// Exit code: a deployment waited for failed.
pub const FAILED: i32 = 4;
/// Exit code: waiting timed out.
pub const TIMED_OUT: i32 = 5;

/// A failed command: its exit code and what to tell the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit code.
    pub code: i32,
    /// The message.
    pub message: String,
}

fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A table (lists) or YAML (one artifact).
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `host` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(host: &str, token: Option<String>) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| fail(UNREACHABLE, format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            base: format!("{}/api/v1", host.trim_end_matches('/')),
            token,
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends a request; the JSON answer (`Null` for none) or the server's message.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let response = request.timeout(timeout).send().await.map_err(|e| {
            fail(
                UNREACHABLE,
                format!(
                    "cannot reach vamp-server at {}: {e} (set --host or VAMP_HOST)",
                    self.base
                ),
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"].as_str().map_or_else(
            || {
                if status == 404 {
                    "not found".to_owned()
                } else {
                    text.clone()
                }
            },
            str::to_owned,
        );
        let code = if status.is_server_error() {
            UNREACHABLE
        } else {
            REFUSED
        };
        Err(fail(code, format!("{status}: {message}")))
    }

    /// `POST` with no body; the JSON answer.
    pub(crate) async fn post_empty(&self, path: &str) -> Result<Value, Failure> {
        self.send(
            self.request(reqwest::Method::POST, path),
            Duration::from_secs(30),
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(
            self.request(reqwest::Method::GET, path),
            Duration::from_secs(30),
        )
        .await
    }

    pub(crate) async fn with_body(
        &self,
        method: reqwest::Method,
        path: &str,
        yaml: &str,
    ) -> Result<Value, Failure> {
        let request = self
            .request(method, path)
            .header("Content-Type", "application/x-yaml")
            .body(yaml.to_owned());
        self.send(request, Duration::from_secs(30)).await
    }
}

pub(crate) fn segment(name: &str) -> String {
    vamp_core::traits::kv::encode_segment(name)
}

fn kind_path(kind: &str) -> Result<&'static str, Failure> {
    vamp_core::model::Kind::parse(kind)
        .map(|k| k.plural())
        .ok_or_else(|| fail(2, format!("'{kind}' is not an artifact kind (e.g. breeds, blueprints, deployments, gateways)")))
}

fn render(value: &Value, show: Show) -> String {
    match show {
        Show::Json => serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
        Show::Yaml | Show::Table => serde_saphyr::to_string(value).unwrap_or_default(),
    }
}
