//! The `/api/v1` REST API (spec §2). JSON or YAML in (by `Content-Type`, JSON being YAML
//! too) and out (by `Accept`); errors as `{"message": …}`; lists paged with `X-Total-Count`
//! and `Link`.
//!
//! # Layout
//!
//! - this module: the router, the state, errors, bodies, paging and the shared query options
//!   (`validate_only`, `expand_references`, `only_references`, `as_blueprint`);
//! - `artifacts`: static artifacts, workflows, the multi-document root, docker-compose;
//! - `deployments`: deployments and their scale and SLA sub-resources;
//! - `gateways`, `events` (with the SSE stream), `system` (info, stats, config, health and
//!   metrics lookups), `prometheus` (`GET /metrics`), `openapi`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vamp_core::model::{Artifact, Blueprint, Event, Kind, Ref, WorkflowStatus};
use vamp_core::traits::kv::decode_segment;
use vamp_core::traits::{EventFilter, Page};
use vamp_core::{Error, Vamp, dsl};

use crate::config::ServerConfig;

mod artifacts;
mod deployments;
mod events;
mod gateways;
mod guard;
mod openapi;
mod prometheus;
mod rollouts;
mod schemas;
mod system;

use artifacts::*;
use deployments::*;
use events::*;
use gateways::*;
use openapi::*;
pub use prometheus::Metrics;
use prometheus::*;
use rollouts::*;
use system::*;

/// Largest page (spec §2.1: `per_page` is clamped to 1..=30).
const MAX_PER_PAGE: u64 = 30;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The embedded Vamp.
    pub vamp: Vamp,
    /// The configuration the server started with.
    pub config: Arc<ServerConfig>,
    /// The configuration in force (with dynamic changes).
    pub settings: Arc<crate::dynamic::Settings>,
    /// When the server started.
    pub started: Instant,
    /// When the server started, on the wall clock (`running_since` in `/info`).
    pub running_since: chrono::DateTime<chrono::Utc>,
    /// This server process's id (`uuid` in `/info`), new at every start.
    pub uuid: String,
    /// Turns `true` when the server shuts down: open event streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// This server's metrics (`/metrics`).
    pub metrics: Arc<Metrics>,
}

/// The API as an axum router (state applied).
pub fn router(state: AppState) -> axum::Router {
    let (app, doc) = documented(&state).split_for_parts();
    let app = app
        .layer(axum::Extension(Arc::new(openapi::finish(doc))))
        .with_state(state.clone())
        .layer(axum::middleware::map_response(no_store));
    let app = match cors(&state.config.server.cors_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    // Outermost: a request from a foreign Host or Origin goes no further (not even a CORS
    // preflight answer).
    app.layer(axum::middleware::from_fn_with_state(
        state,
        guard::check_caller,
    ))
}

/// Every route with its OpenAPI operation (utoipa-axum): what is served is what is
/// documented. The `/api/v1` routes go through the token, `Accept` and body-size guards and
/// are counted for `/metrics`; `/metrics` itself is not.
fn documented(state: &AppState) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::<AppState>::new()
        .routes(routes!(root_put, root_delete))
        .routes(routes!(info))
        .routes(routes!(information))
        .routes(routes!(stats))
        .routes(routes!(statistics))
        .routes(routes!(config, set_config))
        .routes(routes!(configuration, set_configuration))
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(events, publish))
        .routes(routes!(stream))
        .routes(routes!(list_deployments, create_deployment))
        .routes(routes!(get_deployment, put_deployment, delete_deployment))
        .routes(routes!(get_scale, put_scale))
        .routes(routes!(get_sla, put_sla, delete_sla))
        .routes(routes!(get_workflow_status, put_workflow_status))
        .routes(routes!(openapi))
        .routes(routes!(docker_compose))
        .routes(routes!(list_rollouts, create_rollout))
        .routes(routes!(get_rollout, put_rollout, delete_rollout))
        .routes(routes!(rollout_command))
        .routes(routes!(list_gateways, create_gateway))
        .routes(routes!(get_gateway, put_gateway, delete_gateway))
        .routes(routes!(list_artifacts, create_artifact))
        .routes(routes!(get_artifact, put_artifact, delete_artifact))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API path") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::authorize,
        ))
        .layer(axum::middleware::from_fn(guard::check_accept))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_body,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable());
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .routes(routes!(prometheus))
}

/// CORS for the configured origins only (`server.cors_origins`; none by default, issue 15):
/// GET, POST, HEAD, OPTIONS, DELETE, PUT; `Link` and `X-Total-Count` readable by pages;
/// preflights cached 1 800 s (spec §2.1).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, Method};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::HEAD,
                Method::OPTIONS,
                Method::DELETE,
                Method::PUT,
            ])
            .allow_headers([header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION])
            .expose_headers([header::LINK, HeaderName::from_static("x-total-count")])
            .max_age(Duration::from_secs(1800)),
    )
}

/// An API error: a status and `{"message": …}` (404 bodies are empty, as Vamp's).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// A DSL error's kind, path, line, column and hint, for programs.
    details: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    /// A DSL error: 400 with where it is (line and column of the request body) and the fix.
    fn dsl(e: &dsl::DslError) -> Self {
        let message = if e.line > 0 {
            format!(
                "request body, line {}, column {}: error[{}]: {e}",
                e.line, e.column, e.kind
            )
        } else {
            format!("error[{}]: {e}", e.kind)
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            details: Some(e.to_json()),
        }
    }

    fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "")
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        if let Error::Dsl(d) = &e {
            return ApiError::dsl(d);
        }
        let status = match &e {
            Error::Dsl(_) | Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Conflict { .. } | Error::Refused { .. } => StatusCode::CONFLICT,
            Error::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable { .. } | Error::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
            return ApiError::new(status, "Internal server error.");
        }
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_FOUND && self.message.is_empty() {
            return self.status.into_response();
        }
        let body = match self.details {
            Some(details) => json!({"message": self.message, "error": details}),
            None => json!({"message": self.message}),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// An artifact with `status`, or 404 (with an empty body) when there is none.
fn found(status: StatusCode, headers: &HeaderMap, artifact: Option<Artifact>) -> ApiResult {
    match artifact {
        Some(a) => Ok(reply(status, headers, &a.to_json())),
        None => Err(ApiError::not_found()),
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` on every answer (spec §2.1).
async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Bounds request bodies by `server.body_limit` as it is now (a dynamic setting): reading
/// more fails, which the body extractors answer with 413.
async fn limit_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.settings.current().server.body_limit;
    let request =
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

/// Whether the client asked for YAML.
fn wants_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("yaml") && !a.contains("json"))
}

/// A JSON value as the client wants it.
fn reply(status: StatusCode, headers: &HeaderMap, value: &Value) -> Response {
    if wants_yaml(headers) {
        match serde_saphyr::to_string(value) {
            Ok(text) => {
                (status, [(header::CONTENT_TYPE, "application/x-yaml")], text).into_response()
            }
            Err(e) => ApiError::from(Error::backend("yaml", e)).into_response(),
        }
    } else {
        (status, axum::Json(value.clone())).into_response()
    }
}

/// What a request body may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    /// JSON or YAML (every artifact, spec §2.1).
    Dsl,
    /// `application/javascript` (a JavaScript breed, spec §2.2).
    JavaScript,
    /// `text/plain` (a workflow status, spec §2.6).
    Text,
}

impl Media {
    fn of(content_type: &str) -> Option<Media> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/javascript" | "text/javascript" => Some(Media::JavaScript),
            "text/plain" => Some(Media::Text),
            m if m.ends_with("json") || m.ends_with("yaml") => Some(Media::Dsl),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Media::Dsl => "application/json or application/x-yaml",
            Media::JavaScript => "application/javascript",
            Media::Text => "text/plain",
        }
    }
}

/// The body as JSON or YAML text: UTF-8, within the size limit, not empty.
fn body_text(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    optional_body(headers, body)?.ok_or_else(|| ApiError::bad_request("the request body is empty"))
}

/// Like [`body_text`], with `None` for an empty body.
fn optional_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<String>, ApiError> {
    Ok(body_as(headers, body, &[Media::Dsl])?.map(|(_, text)| text))
}

/// The body as text of one of the `allowed` media types (by `Content-Type`, which a body
/// must have: a page's form post or a `text/plain` body is refused, issue 15), with the type
/// it was sent as; `None` for an empty body.
pub(super) fn body_as(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    allowed: &[Media],
) -> Result<Option<(Media, String)>, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the server accepts (server.body_limit)",
            )
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let supported = || {
        allowed
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", or ")
    };
    let media = match headers.get(header::CONTENT_TYPE) {
        None => {
            return Err(ApiError::bad_request(format!(
                "the request has a body but no Content-Type: send it as {}",
                supported()
            )));
        }
        Some(v) => {
            let given = String::from_utf8_lossy(v.as_bytes()).into_owned();
            Media::of(&given)
                .filter(|m| allowed.contains(m))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Only the following media types are supported here: {} (Content-Type: {given})",
                        supported()
                    ))
                })?
        }
    };
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    Ok(Some((media, text)))
}

/// The one artifact of kind `kind` in `text` (imports resolve against stored artifacts too).
async fn one_artifact(state: &AppState, text: &str, kind: Kind) -> Result<Artifact, ApiError> {
    let mut read = state.vamp.read(text, Some(kind)).await?;
    match read.len() {
        1 => Ok(read.remove(0)),
        n => Err(ApiError::bad_request(format!(
            "expected one {} document, got {n}: send several to POST /api/v1",
            kind.singular()
        ))),
    }
}

fn static_kind(text: &str) -> Result<Kind, ApiError> {
    match Kind::parse(text).ok_or_else(ApiError::not_found)? {
        Kind::Deployment | Kind::Gateway | Kind::Event | Kind::EventQuery => {
            Err(ApiError::not_found())
        }
        kind => Ok(kind),
    }
}

/// `page` and `per_page` (spec §2.1: defaults 1 and 30, clamped).
#[derive(Debug, Deserialize)]
struct Paging {
    page: Option<i64>,
    per_page: Option<i64>,
}

impl Paging {
    fn page(&self) -> Page {
        let page = u64::try_from(self.page.unwrap_or(1).max(1)).unwrap_or(1);
        let per_page = u64::try_from(self.per_page.unwrap_or(30).clamp(1, 30)).unwrap_or(30);
        Page::new(page, per_page.min(MAX_PER_PAGE))
    }
}

/// `X-Total-Count` and `Link` (first, prev, next, last; prev/next clamped).
fn paged(mut response: Response, path: &str, page: Page, total: u64) -> Response {
    let last = total.div_ceil(page.per_page).max(1);
    let link = |p: u64| format!("<{path}?page={p}&per_page={}>", page.per_page);
    let links = format!(
        "{}; rel=first, {}; rel=prev, {}; rel=next, {}; rel=last",
        link(1),
        link(page.page.saturating_sub(1).clamp(1, last)),
        link((page.page + 1).clamp(1, last)),
        link(last)
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        headers.insert("X-Total-Count", v);
    }
    if let Ok(v) = HeaderValue::from_str(&links) {
        headers.insert(header::LINK, v);
    }
    response
}

/// One page of `all`, with the paging headers.
fn page_of(
    headers: &HeaderMap,
    path: &str,
    page: Page,
    all: impl ExactSizeIterator<Item = Value>,
) -> Response {
    let found = vamp_core::traits::Paged::of(all, page);
    let response = reply(StatusCode::OK, headers, &Value::Array(found.items));
    paged(response, path, page, found.total)
}

/// A boolean query parameter: absent is false; `true`/`1`/empty or `false`/`0`.
fn flag(query: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    let given = query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    match given {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} = '{other}': use {name}=true or {name}=false"
        ))),
    }
}

/// `?validate_only=true` (spec §2.1): check, store nothing.
/// A write request as most write handlers take it: `?validate_only` (spec §2.1), the headers,
/// and the body as DSL text (JSON or YAML by `Content-Type`; an empty body is a 400).
pub(super) struct Write {
    /// `?validate_only=true`: check, store nothing.
    pub check_only: bool,
    /// The body.
    pub text: String,
    /// The headers (what the answer may be: JSON or YAML).
    pub headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Write {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::FromRequestParts as _;
        let (mut parts, body) = request.into_parts();
        let Query(query) = Query::<Vec<(String, String)>>::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let check_only = validate_only(&query)?;
        let headers = parts.headers.clone();
        let bytes = <Bytes as axum::extract::FromRequest<S>>::from_request(
            axum::extract::Request::from_parts(parts, body),
            state,
        )
        .await;
        let text = body_text(&headers, bytes)?;
        Ok(Write {
            check_only,
            text,
            headers,
        })
    }
}

fn validate_only(query: &[(String, String)]) -> Result<bool, ApiError> {
    flag(query, "validate_only")
}

/// How artifacts are shown (spec §2.1): `?expand_references=true` inlines references to
/// stored artifacts, `?only_references=true` turns a blueprint's named inline breeds, scales
/// and SLAs into references, `?as_blueprint=true` shows a deployment as the blueprint that
/// makes it.
#[derive(Debug, Clone, Copy)]
struct View {
    expand: bool,
    only_references: bool,
    as_blueprint: bool,
}

impl View {
    fn of(query: &[(String, String)]) -> Result<View, ApiError> {
        let view = View {
            expand: flag(query, "expand_references")?,
            only_references: flag(query, "only_references")?,
            as_blueprint: flag(query, "as_blueprint")?,
        };
        if view.expand && view.only_references {
            return Err(ApiError::bad_request(
                "expand_references and only_references ask for opposite things: use one",
            ));
        }
        Ok(view)
    }

    async fn show(
        self,
        state: &AppState,
        artifacts: Vec<Artifact>,
    ) -> Result<Vec<Value>, ApiError> {
        let artifacts: Vec<Artifact> = artifacts
            .into_iter()
            .map(|a| match a {
                Artifact::Deployment(d) if self.as_blueprint => {
                    Artifact::Blueprint(d.as_blueprint())
                }
                a => a,
            })
            .collect();
        let artifacts = if self.expand {
            state.vamp.expand(artifacts).await?
        } else {
            artifacts
        };
        Ok(artifacts
            .into_iter()
            .map(|a| match a {
                Artifact::Blueprint(bp) if self.only_references => {
                    Artifact::Blueprint(bp.only_references())
                }
                a => a,
            })
            .map(|a| a.to_json())
            .collect())
    }

    /// One artifact shown, or 404.
    async fn one(
        self,
        state: &AppState,
        headers: &HeaderMap,
        artifact: Option<Artifact>,
    ) -> ApiResult {
        let artifact = artifact.ok_or_else(ApiError::not_found)?;
        let value = self
            .show(state, vec![artifact])
            .await?
            .pop()
            .unwrap_or(Value::Null);
        Ok(reply(StatusCode::OK, headers, &value))
    }
}

fn paging_of(query: &[(String, String)]) -> Paging {
    let number = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    };
    Paging {
        page: number("page"),
        per_page: number("per_page"),
    }
}
