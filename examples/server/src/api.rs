//! The `/api/v1` REST API (spec §2): artifacts, deployments, gateways, events and their SSE
//! stream, info. JSON or YAML in (by `Content-Type`, JSON being YAML too) and out (by
//! `Accept`); errors as `{"message": …}`; lists paged with `X-Total-Count` and `Link`.

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
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use vamp_core::model::{Artifact, Blueprint, Event, Kind, Ref, WorkflowStatus};
use vamp_core::traits::kv::decode_segment;
use vamp_core::traits::{EventFilter, Page};
use vamp_core::{Error, Vamp, dsl};

use crate::config::ServerConfig;

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
    /// Turns `true` when the server shuts down: open event streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// API answers counted by status class (1xx … 5xx), for `/metrics`.
    pub answers: Arc<[std::sync::atomic::AtomicU64; 5]>,
}

/// The API as an axum router (state applied).
pub fn router(state: AppState) -> axum::Router {
    let api = axum::Router::new()
        .route(
            "/",
            axum::routing::post(root_put)
                .put(root_put)
                .delete(root_delete),
        )
        .route("/info", get(info))
        .route("/information", get(info))
        .route("/stats", get(stats))
        .route("/statistics", get(stats))
        .route("/config", get(config).put(set_config).post(set_config))
        .route(
            "/configuration",
            get(config).put(set_config).post(set_config),
        )
        .route("/health/{*path}", get(health))
        .route("/metrics/{*path}", get(metrics))
        .route("/events", get(events).post(publish))
        .route("/events/stream", get(stream))
        .route(
            "/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route(
            "/deployments/{name}",
            get(get_deployment)
                .put(put_deployment)
                .delete(delete_deployment),
        )
        .route(
            "/deployments/{name}/clusters/{cluster}/services/{service}/scale",
            get(get_scale).put(put_scale),
        )
        .route(
            "/deployments/{name}/clusters/{cluster}/sla",
            get(get_sla).post(put_sla).put(put_sla).delete(delete_sla),
        )
        .route(
            "/workflows/{name}/status",
            get(get_workflow_status).put(put_workflow_status),
        )
        .route("/openapi.json", get(openapi))
        .route("/docker-compose", axum::routing::post(docker_compose))
        .route("/gateways", get(list_gateways).post(create_gateway))
        .route(
            "/gateways/{*name}",
            get(get_gateway).put(put_gateway).delete(delete_gateway),
        )
        .route("/{kind}", get(list_artifacts).post(create_artifact))
        .route(
            "/{kind}/{*name}",
            get(get_artifact).put(put_artifact).delete(delete_artifact),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API path") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_body,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state.clone());
    axum::Router::new()
        .nest("/api/v1", api)
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .route("/metrics", get(prometheus))
        .with_state(state)
        .layer(axum::middleware::map_response(no_store))
        .layer(cors())
}

/// CORS as Vamp's (spec §2.1): any origin; GET, POST, HEAD, OPTIONS, DELETE, PUT; `Link` and
/// `X-Total-Count` readable by pages; preflights cached 1 800 s.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
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
        .max_age(Duration::from_secs(1800))
}

/// Counts every API answer by status class.
async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
    if let Some(counter) = state.answers.get(class) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    response
}

/// `/metrics`: Prometheus text format (no token: scrapers read it).
async fn prometheus(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering;
    let mut out = String::new();
    out.push_str("# HELP vamp_api_responses_total API answers by status class.\n");
    out.push_str("# TYPE vamp_api_responses_total counter\n");
    for (i, counter) in state.answers.iter().enumerate() {
        out.push_str(&format!(
            "vamp_api_responses_total{{code=\"{}xx\"}} {}\n",
            i + 1,
            counter.load(Ordering::Relaxed)
        ));
    }
    let deployments = state.vamp.deployments().await.map(|d| d.len());
    let gateways = state.vamp.gateways().await.map(|g| g.len());
    out.push_str("# HELP vamp_up Whether the store answered this scrape.\n# TYPE vamp_up gauge\n");
    out.push_str(&format!(
        "vamp_up {}\n",
        u8::from(deployments.is_ok() && gateways.is_ok())
    ));
    if let (Ok(d), Ok(g)) = (deployments, gateways) {
        out.push_str(
            "# HELP vamp_deployments Deployments stored.\n# TYPE vamp_deployments gauge\n",
        );
        out.push_str(&format!("vamp_deployments {d}\n"));
        out.push_str("# HELP vamp_gateways Gateways, the deployments' and standalone ones.\n# TYPE vamp_gateways gauge\n");
        out.push_str(&format!("vamp_gateways {g}\n"));
    }
    // Routers that cannot count (`none`, `haproxy-kv`: the agents' HAProxies count) add
    // nothing.
    if let Ok(routes) = state.vamp.route_stats().await {
        route_metrics(&mut out, &routes);
    }
    out.push_str("# HELP vamp_uptime_seconds Time since the server started.\n# TYPE vamp_uptime_seconds gauge\n");
    out.push_str(&format!(
        "vamp_uptime_seconds {}\n",
        state.started.elapsed().as_secs()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// A Prometheus label value: `\`, `"` and line feeds escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Per-route requests, errors and response times in Prometheus text format.
fn route_metrics(out: &mut String, routes: &[vamp_core::traits::RouteStats]) {
    use std::fmt::Write;
    let labels = |r: &vamp_core::traits::RouteStats| {
        format!(
            "gateway=\"{}\",route=\"{}\"",
            label(&r.gateway),
            label(&r.route)
        )
    };
    out.push_str("# HELP vamp_route_requests_total Requests (HTTP) or connections (TCP) a gateway route handled.\n# TYPE vamp_route_requests_total counter\n");
    for r in routes {
        let _ = writeln!(
            out,
            "vamp_route_requests_total{{{}}} {}",
            labels(r),
            r.requests
        );
    }
    out.push_str("# HELP vamp_route_errors_total Failed ones (5xx or connection errors).\n# TYPE vamp_route_errors_total counter\n");
    for r in routes {
        let _ = writeln!(out, "vamp_route_errors_total{{{}}} {}", labels(r), r.errors);
    }
    out.push_str("# HELP vamp_route_response_time_ms Response times of a route, milliseconds.\n# TYPE vamp_route_response_time_ms histogram\n");
    for r in routes {
        let mut count = 0;
        for (bound, n) in &r.latency.buckets {
            let le = if bound.is_infinite() {
                "+Inf".to_owned()
            } else {
                bound.to_string()
            };
            count = count.max(*n);
            let _ = writeln!(
                out,
                "vamp_route_response_time_ms_bucket{{{},le=\"{le}\"}} {n}",
                labels(r)
            );
        }
        if !r.latency.buckets.iter().any(|(b, _)| b.is_infinite()) {
            let _ = writeln!(
                out,
                "vamp_route_response_time_ms_bucket{{{},le=\"+Inf\"}} {count}",
                labels(r)
            );
        }
        let _ = writeln!(
            out,
            "vamp_route_response_time_ms_count{{{}}} {count}",
            labels(r)
        );
    }
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
            Error::Conflict { .. } => StatusCode::CONFLICT,
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

/// The gateway called `name` (a deployment's or a standalone one).
async fn find_gateway(state: &AppState, name: &str) -> Result<Option<Artifact>, ApiError> {
    let all = state.vamp.gateways().await?;
    Ok(all
        .into_iter()
        .find(|g| g.name == name)
        .map(Artifact::Gateway))
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

/// Requires `Authorization: Bearer <token>` when a token is configured.
async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.settings.current().server.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send 'Authorization: Bearer <server.token>'",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
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

/// The body as text: UTF-8, of an accepted media type, within the size limit, not empty.
fn body_text(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    optional_body(headers, body)?.ok_or_else(|| ApiError::bad_request("the request body is empty"))
}

/// Like [`body_text`], with `None` for an empty body.
fn optional_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<String>, ApiError> {
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
    if let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let ok = ["json", "yaml", "text/plain"]
            .iter()
            .any(|t| kind.contains(t));
        if !ok {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type '{kind}' is not supported: send application/json or application/x-yaml"
                ),
            ));
        }
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    Ok((!text.trim().is_empty()).then_some(text))
}

/// The one artifact of kind `kind` in `text`.
fn one_artifact(text: &str, kind: Kind) -> Result<Artifact, ApiError> {
    let mut read = dsl::read(text, Some(kind)).map_err(|e| ApiError::dsl(&e))?;
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

/// `?name=` of a compose import.
#[derive(Debug, Deserialize)]
struct ComposeName {
    name: Option<String>,
}

/// Converts a docker-compose file to a blueprint and stores it (spec §2.2): 201 with the
/// blueprint as YAML, preceded by `#` comments on what was ignored or adapted.
async fn docker_compose(
    State(state): State<AppState>,
    Query(query): Query<ComposeName>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = query.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("name the blueprint: POST /api/v1/docker-compose?name=<blueprint>")
    })?;
    let text = body_text(&headers, body)?;
    let import = vamp_core::compose::import(&text, &name).map_err(|e| ApiError::dsl(&e))?;
    let artifact = Artifact::Blueprint(import.blueprint);
    state.vamp.put(artifact.clone()).await?;
    let mut out = String::new();
    for note in &import.notes {
        out.push_str(&format!(
            "# line {}: {}: {}\n",
            note.line, note.path, note.message
        ));
    }
    out.push_str(
        &dsl::to_yaml_one(&artifact).map_err(|e| ApiError::from(Error::backend("yaml", e)))?,
    );
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/x-yaml")],
        out,
    )
        .into_response())
}

/// The OpenAPI 3 document of this API.
async fn openapi() -> Response {
    let op = |summary: &str, ok: &str| json!({"summary": summary, "responses": {ok: {"description": "done"}, "400": {"description": "bad input: {\"message\": …}"}}});
    let paths = json!({
        "/api/v1": {
            "post": op("Store many documents of any kind; deployment documents are deployed (`?validate_only=true`: check only)", "202"),
            "put": op("Store many documents of any kind; deployment documents are deployed (`?validate_only=true`: check only)", "202"),
            "delete": op("Delete many documents; deployment documents remove the services they name", "202"),
        },
        "/api/v1/{kind}": {
            "get": op("A page of artifacts of a kind", "200"),
            "post": op("Create one artifact (workflows: 202; `?validate_only=true`: check only)", "201"),
        },
        "/api/v1/{kind}/{name}": {
            "get": op("One artifact", "200"),
            "put": op("Replace an artifact (names must match)", "200"),
            "delete": op("Delete an artifact (idempotent)", "204"),
        },
        "/api/v1/deployments": {
            "get": op("A page of deployments", "200"),
            "post": op("Deploy a blueprint", "202"),
        },
        "/api/v1/deployments/{name}": {
            "get": op("A deployment", "200"),
            "put": op("Create or merge a deployment", "202"),
            "delete": op("Remove the services the body names (empty body: no-op)", "202"),
        },
        "/api/v1/deployments/{name}/clusters/{cluster}/services/{service}/scale": {
            "get": op("A service's scale", "200"),
            "put": op("Set a service's scale (inline or a stored scale's name)", "202"),
        },
        "/api/v1/deployments/{name}/clusters/{cluster}/sla": {
            "get": op("A cluster's SLA", "200"),
            "post": op("Set a cluster's SLA (inline or a stored SLA's name)", "202"),
            "put": op("Set a cluster's SLA (inline or a stored SLA's name)", "202"),
            "delete": op("Remove a cluster's SLA", "204"),
        },
        "/api/v1/workflows/{name}/status": {
            "get": op("A workflow's status", "200"),
            "put": op("Set a workflow's status (body: e.g. suspended)", "202"),
        },
        "/api/v1/gateways": {
            "get": op("A page of gateways", "200"),
            "post": op("Store a standalone gateway", "202"),
        },
        "/api/v1/gateways/{name}": {
            "get": op("A gateway (the name may hold '/')", "200"),
            "put": op("Change a gateway's routes", "202"),
            "delete": op("Remove a standalone gateway (idempotent)", "202"),
        },
        "/api/v1/events": {
            "get": op("Events with all the `tag`s and the `type`, newest first", "200"),
            "post": op("Publish an event", "201"),
        },
        "/api/v1/events/stream": {"get": op("Server-Sent Events of matching events", "200")},
        "/api/v1/health/{path}": {"get": op("The newest health value of a gateway, route, deployment, cluster or service", "200")},
        "/api/v1/metrics/{path}": {"get": op("The newest value of a metric", "200")},
        "/api/v1/config": {
            "get": op("The configuration (`?type=applied|startup|dynamic`, `?flatten=true`)", "200"),
            "put": op("Change dynamic settings (server.body_limit, server.token)", "202"),
            "post": op("Change dynamic settings (server.body_limit, server.token)", "202"),
        },
        "/api/v1/info": {"get": op("Version, uptime and backends (also /information)", "200")},
        "/api/v1/stats": {"get": op("How many artifacts of each kind and events are stored (also /statistics)", "200")},
        "/api/v1/openapi.json": {"get": op("This document", "200")},
        "/api/v1/docker-compose": {"post": op("Convert a docker-compose file (`?name=` the blueprint) and store it", "201")},
        "/metrics": {"get": op("Prometheus text format", "200")},
    });
    axum::Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "Vamp", "version": env!("CARGO_PKG_VERSION"), "description": "The Vamp REST API (docs/server.md)"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }))
    .into_response()
}

async fn info(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let value = json!({
        "message": "Hi, I'm Vamp! How are you?",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": format!("{}s", state.started.elapsed().as_secs()),
        "persistence": {"type": state.config.persistence.kind},
        "key_value": {"type": state.config.key_value.kind},
        "container_driver": {"type": state.config.driver.kind},
        "gateway_driver": {"type": state.config.router.kind},
    });
    Ok(reply(StatusCode::OK, &headers, &value))
}

/// How many artifacts of each kind are stored, and how many events (spec §2.2 `/stats`).
async fn stats(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let mut out = serde_json::Map::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.is_stored()) {
        let total = state.vamp.list(kind, Page::new(1, 1)).await?.total;
        out.insert(kind.plural().to_owned(), json!(total));
    }
    let events = state
        .vamp
        .events(&EventFilter::default(), Page::new(1, 1))
        .await?
        .total;
    out.insert("events".into(), json!(events));
    Ok(reply(StatusCode::OK, &headers, &Value::Object(out)))
}

/// The configuration (spec §2.2): `?type=applied` (default: in force, secrets hidden),
/// `startup` (as started) or `dynamic` (the changes made through the API);
/// `?flatten=true` gives `section.key` keys.
async fn config(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let as_json = |config: &ServerConfig| -> Value {
        toml::from_str::<toml::Table>(&config.to_toml())
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Value::Null)
    };
    let value = match param("type").unwrap_or("applied") {
        "applied" => as_json(&state.settings.current()),
        "startup" => as_json(state.settings.start()),
        "dynamic" => {
            let mut changes = state.settings.changes();
            if let Some(token) = changes.get_mut("server.token") {
                *token = json!("<hidden>");
            }
            return Ok(reply(StatusCode::OK, &headers, &json!(changes)));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "type = '{other}': use applied, startup or dynamic"
            )));
        }
    };
    let value = if matches!(param("flatten"), Some("true" | "1" | "")) {
        let mut flat = serde_json::Map::new();
        if let Value::Object(sections) = value {
            for (section, keys) in sections {
                if let Value::Object(keys) = keys {
                    for (key, v) in keys {
                        flat.insert(format!("{section}.{key}"), v);
                    }
                }
            }
        }
        Value::Object(flat)
    } else {
        value
    };
    Ok(reply(StatusCode::OK, &headers, &value))
}

/// Changes dynamic settings (spec §2.2 `PUT /api/v1/config`): a map such as
/// `{"server.body_limit": 1048576}` (`null` drops a change). Applied at once and kept in the
/// key-value store; 202 with the dynamic changes in force.
async fn set_config(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let text = body_text(&headers, body)?;
    let value = match dsl::parse_documents(&text)
        .map_err(|e| ApiError::dsl(&e))?
        .as_slice()
    {
        [one] => one.to_json(),
        _ => return Err(ApiError::bad_request("send one map of settings")),
    };
    let mut changes = state.settings.change(&value).await.map_err(|e| match e {
        crate::dynamic::DynamicError::Invalid(e) => ApiError::bad_request(e.to_string()),
        crate::dynamic::DynamicError::Store(e) => ApiError::from(e),
    })?;
    if let Some(token) = changes.get_mut("server.token") {
        *token = json!("<hidden>");
    }
    Ok(reply(StatusCode::ACCEPTED, &headers, &json!(changes)))
}

// ---------------------------------------------------- health and metrics (§2.8)

/// The window of a health or metrics lookup (`?window=<seconds>`, default 120 s).
#[derive(Debug, Deserialize)]
struct Window {
    window: Option<u64>,
}

/// The tags a health (`metric = None`) or metrics lookup path stands for (spec §2.8), or
/// `None` for paths that never have a value (instances) or are not lookups.
fn lookup_tags(segments: &[String], metric: bool) -> Option<Vec<String>> {
    let mut parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let metric = if metric { Some(parts.pop()?) } else { None };
    let mut tags = Vec::new();
    match parts.as_slice() {
        ["gateways", g] => tags.push(format!("gateways:{g}")),
        ["gateways", g, "routes", r] => {
            tags.extend([format!("gateways:{g}"), format!("routes:{r}")]);
        }
        ["deployments", d] if metric.is_none() => tags.push(format!("deployments:{d}")),
        ["deployments", d, "clusters", c] if metric.is_none() => {
            tags.extend([format!("deployments:{d}"), format!("clusters:{c}")]);
        }
        ["deployments", d, "clusters", c, "services", s] if metric.is_none() => tags.extend([
            format!("deployments:{d}"),
            format!("clusters:{c}"),
            format!("services:{s}"),
        ]),
        // Cluster and service ports are measured on their gateways (spec §2.8, Q6).
        ["deployments", d, "clusters", c, "ports", p] => tags.push(format!("gateways:{d}/{c}/{p}")),
        ["deployments", d, "clusters", c, "services", s, "ports", p] => tags.extend([
            format!("gateways:{d}/{c}/{p}"),
            format!("routes:{d}/{c}/{s}"),
        ]),
        _ => return None,
    }
    tags.push(match metric {
        Some(m) => format!("metrics:{m}"),
        None => "health".to_owned(),
    });
    Some(tags)
}

/// The value of the newest event with `tags` within the window, as a JSON value; 404 if none.
async fn latest(
    state: &AppState,
    headers: &HeaderMap,
    tags: Option<Vec<String>>,
    window: Window,
) -> ApiResult {
    let tags = tags.ok_or_else(ApiError::not_found)?;
    let mut filter = EventFilter::tags(tags);
    let since = chrono::Utc::now()
        - chrono::Duration::seconds(i64::try_from(window.window.unwrap_or(120)).unwrap_or(120));
    filter.from = std::ops::Bound::Included(since);
    let found = state.vamp.events(&filter, Page::new(1, 1)).await?;
    match found.items.first() {
        Some(e) => Ok(reply(StatusCode::OK, headers, &e.event.value)),
        None => Err(ApiError::not_found()),
    }
}

/// The path segments after `/api/v1/<what>/`, each percent-decoded on its own: gateway names
/// hold `/`, so they arrive as one `%2F`-encoded segment (spec §2.8).
fn segments_after(uri: &axum::http::Uri, what: &str) -> Option<Vec<String>> {
    let marker = format!("/api/v1/{what}/");
    let raw = uri.path().split_once(&marker)?.1;
    raw.split('/').map(decode_segment).collect()
}

async fn health(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(window): Query<Window>,
    headers: HeaderMap,
) -> ApiResult {
    let tags = segments_after(&uri, "health").and_then(|s| lookup_tags(&s, false));
    latest(&state, &headers, tags, window).await
}

async fn metrics(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(window): Query<Window>,
    headers: HeaderMap,
) -> ApiResult {
    let tags = segments_after(&uri, "metrics").and_then(|s| lookup_tags(&s, true));
    latest(&state, &headers, tags, window).await
}

// --------------------------------------------------- the root: many kinds at once

/// Every document of a multi-document body with the kind it declares; deployment documents
/// read as the blueprints to deploy (spec §2.2 `/api/v1`).
fn documents(text: &str) -> Result<Vec<(Kind, Artifact)>, ApiError> {
    let read = dsl::read_deployable(text).map_err(|e| ApiError::dsl(&e))?;
    if read.is_empty() {
        return Err(ApiError::bad_request("the request body holds no document"));
    }
    Ok(read)
}

/// Stores every document (spec §2.2 `/api/v1`): 202 with what was stored. Deployment
/// documents are deployed (merged, like `PUT /api/v1/deployments/<name>`); they may refer to
/// breeds and blueprints of the same request. Everything is read and checked before anything
/// is stored, and if storing still fails, what this request stored is put back as it was, so
/// a rejected request changes nothing. `?validate_only=true` checks and stores nothing.
async fn root_put(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let check_only = validate_only(&query)?;
    let read = documents(&body_text(&headers, body)?)?;
    let mut statics = Vec::new();
    let mut deploys = Vec::new();
    for (kind, artifact) in read {
        match (kind, artifact) {
            (Kind::Deployment, Artifact::Blueprint(bp)) => deploys.push(bp),
            (Kind::Event | Kind::EventQuery, _) => {
                return Err(ApiError::bad_request(format!(
                    "an {} cannot be sent to /api/v1: POST events to /api/v1/events",
                    kind.singular()
                )));
            }
            (_, artifact) => statics.push(artifact),
        }
    }
    state.vamp.validate_all(&statics).await?;
    let mut previews = Vec::with_capacity(deploys.len());
    for bp in &deploys {
        previews.push(state.vamp.preview(&bp.name, bp, &statics).await?);
    }
    if check_only {
        let out = statics
            .into_iter()
            .chain(previews.into_iter().map(Artifact::Deployment))
            .map(|a| a.to_json())
            .collect();
        return Ok(reply(StatusCode::ACCEPTED, &headers, &Value::Array(out)));
    }
    let mut undo = Undo::default();
    match store_all(&state, &mut undo, statics, deploys).await {
        Ok(out) => Ok(reply(StatusCode::ACCEPTED, &headers, &Value::Array(out))),
        Err(e) => {
            undo.run(&state).await;
            Err(e)
        }
    }
}

/// What a multi-document write changed, to put back if a later document fails: each
/// artifact as it was before (`None`: it was new).
#[derive(Default)]
struct Undo(Vec<(Kind, String, Option<Artifact>)>);

impl Undo {
    async fn run(self, state: &AppState) {
        for (kind, name, previous) in self.0.into_iter().rev() {
            let restored = match (previous, kind) {
                (Some(a), _) => state.vamp.restore(a).await,
                (None, Kind::Deployment) => state.vamp.undeploy(&name).await.map(|_| ()),
                (None, _) => state.vamp.delete(kind, &name).await.map(|_| ()),
            };
            if let Err(e) = restored {
                tracing::error!(error = %e, %kind, %name, "could not undo a stored document");
            }
        }
    }
}

/// Stores `statics`, then deploys `deploys`, noting in `undo` what each write replaced.
async fn store_all(
    state: &AppState,
    undo: &mut Undo,
    statics: Vec<Artifact>,
    deploys: Vec<Blueprint>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for artifact in statics {
        let (kind, name) = (artifact.kind(), artifact.name().to_owned());
        let previous = state.vamp.get(kind, &name).await?;
        let stored = state.vamp.put(artifact).await?;
        for s in &stored {
            if (s.kind, s.name.as_str()) != (kind, name.as_str()) && s.revision == 1 {
                // Inline breeds of a blueprint: new ones go on failure.
                undo.0.push((s.kind, s.name.clone(), None));
            }
        }
        undo.0.push((kind, name.clone(), previous));
        if let Some(a) = state.vamp.get(kind, &name).await? {
            out.push(a.to_json());
        }
    }
    for bp in deploys {
        let previous = state.vamp.deployment(&bp.name).await?;
        let d = state.vamp.deploy(&bp.name, &bp).await?;
        undo.0.push((
            Kind::Deployment,
            bp.name.clone(),
            previous.map(Artifact::Deployment),
        ));
        out.push(Artifact::Deployment(d).to_json());
    }
    Ok(out)
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

/// Deletes every document's artifact: 202.
async fn root_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let all = documents(&body_text(&headers, body)?)?;
    if let Some((kind, _)) = all.iter().find(|(k, _)| !k.is_stored()) {
        return Err(ApiError::bad_request(format!(
            "an {} cannot be deleted through /api/v1",
            kind.singular()
        )));
    }
    for (kind, artifact) in all {
        match (kind, artifact) {
            // A deployment document removes the services it names (spec §3.4).
            (Kind::Deployment, Artifact::Blueprint(bp)) => {
                state.vamp.slice(&bp.name, &bp).await?;
            }
            (kind, artifact) => {
                state.vamp.delete(kind, artifact.name()).await?;
            }
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---------------------------------------------------------------- artifacts

async fn list_artifacts(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let view = View::of(&query)?;
    let page = paging_of(&query).page();
    let found = state.vamp.list(kind, page).await?;
    let items = view.show(&state, found.items).await?;
    let response = reply(StatusCode::OK, &headers, &Value::Array(items));
    Ok(paged(
        response,
        &format!("/api/v1/{}", kind.plural()),
        page,
        found.total,
    ))
}

/// The status of a write (spec §2.1): static artifacts answer 201 / 200 / 204, runtime ones
/// (workflows) 202 Accepted, as what they ask for happens later.
fn written(kind: Kind, status: StatusCode) -> StatusCode {
    if kind == Kind::Workflow {
        StatusCode::ACCEPTED
    } else {
        status
    }
}

async fn create_artifact(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let check_only = validate_only(&query)?;
    let text = body_text(&headers, body)?;
    let artifact = one_artifact(&text, kind)?;
    let status = written(kind, StatusCode::CREATED);
    store(&state, &headers, artifact, status, check_only).await
}

/// Stores one artifact (or only checks it, `check_only`) and answers with what was stored.
async fn store(
    state: &AppState,
    headers: &HeaderMap,
    artifact: Artifact,
    status: StatusCode,
    check_only: bool,
) -> ApiResult {
    if check_only {
        state.vamp.validate(&artifact).await?;
        return Ok(reply(status, headers, &artifact.to_json()));
    }
    let kind = artifact.kind();
    let name = artifact.name().to_owned();
    let stored = state.vamp.put(artifact).await?;
    // A blueprint with inline breeds stores those too: then every stored artifact is returned.
    let mut out = Vec::with_capacity(stored.len());
    for s in &stored {
        if let Some(a) = state.vamp.get(s.kind, &s.name).await? {
            out.push(a);
        }
    }
    let value = match out.as_slice() {
        [one] if one.kind() == kind && one.name() == name => one.to_json(),
        many => Value::Array(many.iter().map(Artifact::to_json).collect()),
    };
    Ok(reply(status, headers, &value))
}

async fn get_artifact(
    State(state): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let view = View::of(&query)?;
    let artifact = state.vamp.get(kind, &name).await?;
    view.one(&state, &headers, artifact).await
}

async fn put_artifact(
    State(state): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let check_only = validate_only(&query)?;
    let text = body_text(&headers, body)?;
    let artifact = one_artifact(&text, kind)?;
    if artifact.name() != name {
        return Err(ApiError::bad_request(format!(
            "InconsistentArtifactName: the body names '{}' but the path '{name}'; they must match",
            artifact.name()
        )));
    }
    let status = written(kind, StatusCode::OK);
    store(&state, &headers, artifact, status, check_only).await
}

/// Deletes an artifact (idempotent). A workflow goes at once: no workflow runtime runs its
/// instances yet, so there is nothing to stop first (spec §2.6 has it pass `stopping`).
async fn delete_artifact(
    State(state): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    state.vamp.delete(kind, &name).await?;
    Ok(written(kind, StatusCode::NO_CONTENT).into_response())
}

// -------------------------------------------------------------- deployments

async fn list_deployments(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let view = View::of(&query)?;
    let page = paging_of(&query).page();
    let all: Vec<Artifact> = state
        .vamp
        .deployments()
        .await?
        .into_iter()
        .map(Artifact::Deployment)
        .collect();
    let total = all.len() as u64;
    let start = usize::try_from((page.page - 1) * page.per_page).unwrap_or(usize::MAX);
    let per_page = usize::try_from(page.per_page).unwrap_or(usize::MAX);
    let shown = view
        .show(&state, all.into_iter().skip(start).take(per_page).collect())
        .await?;
    let response = reply(StatusCode::OK, &headers, &Value::Array(shown));
    Ok(paged(response, "/api/v1/deployments", page, total))
}

async fn get_deployment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let view = View::of(&query)?;
    let d = state.vamp.deployment(&name).await?;
    view.one(&state, &headers, d.map(Artifact::Deployment))
        .await
}

fn blueprint(text: &str) -> Result<Blueprint, ApiError> {
    match one_artifact(text, Kind::Blueprint)? {
        Artifact::Blueprint(b) => Ok(b),
        other => Err(ApiError::bad_request(format!(
            "expected a blueprint, got a {}",
            other.kind().singular()
        ))),
    }
}

async fn deploy(
    state: &AppState,
    headers: &HeaderMap,
    query: &[(String, String)],
    name: &str,
    blueprint: &Blueprint,
) -> ApiResult {
    let d = if validate_only(query)? {
        state.vamp.preview(name, blueprint, &[]).await?
    } else {
        state.vamp.deploy(name, blueprint).await?
    };
    Ok(reply(
        StatusCode::ACCEPTED,
        headers,
        &Artifact::Deployment(d).to_json(),
    ))
}

async fn create_deployment(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let blueprint = blueprint(&body_text(&headers, body)?)?;
    deploy(&state, &headers, &query, &blueprint.name, &blueprint).await
}

async fn put_deployment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let blueprint = blueprint(&body_text(&headers, body)?)?;
    deploy(&state, &headers, &query, &name, &blueprint).await
}

async fn delete_deployment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    // An empty body is a no-op returning the deployment (spec §2.2).
    let d = match optional_body(&headers, body)? {
        None => state.vamp.deployment(&name).await?,
        Some(text) => state.vamp.slice(&name, &blueprint(&text)?).await?,
    };
    found(StatusCode::ACCEPTED, &headers, d.map(Artifact::Deployment))
}

/// The scale a service runs at (its own, or the default the planner gave it).
async fn get_scale(
    State(state): State<AppState>,
    Path((name, cluster, service)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let d = state
        .vamp
        .deployment(&name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let s = d
        .clusters
        .get(&cluster)
        .and_then(|c| c.services.iter().find(|s| s.breed.name == service))
        .ok_or_else(ApiError::not_found)?;
    let scale = s.scale.clone().unwrap_or_default();
    Ok(reply(
        StatusCode::OK,
        &headers,
        &Artifact::Scale(scale).to_json(),
    ))
}

/// A sub-resource body (a service's scale, a cluster's SLA): a bare name refers to a stored
/// artifact; anything else is read as an inline one of `kind`, its name optional.
enum Given {
    Name(String),
    Inline(Box<Artifact>),
}

fn given(text: &str, kind: Kind) -> Result<Given, ApiError> {
    // A bare name (one line, not a mapping) refers to a stored artifact.
    let reference = text.trim().trim_matches('"');
    let is_name =
        !reference.contains(": ") && !reference.contains('\n') && !reference.starts_with('{');
    if is_name {
        return Ok(Given::Name(reference.to_owned()));
    }
    // An inline definition needs no name: give it one for the reader (what it is set on
    // keeps none).
    let named = match text.trim_start().strip_prefix('{') {
        Some(rest) if !text.contains("\"name\"") => format!("{{\"name\": \"inline\", {rest}"),
        // Appended, so the lines of errors stay those of the body.
        None if !text.lines().any(|l| l.starts_with("name:")) => {
            format!("{}\nname: inline\n", text.trim_end())
        }
        _ => text.to_owned(),
    };
    one_artifact(&named, kind).map(|a| Given::Inline(Box::new(a)))
}

/// Sets a service's scale (inline, or the name of a stored scale): it redeploys. 202.
async fn put_scale(
    State(state): State<AppState>,
    Path((name, cluster, service)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let text = body_text(&headers, body)?;
    let scale = match given(&text, Kind::Scale)? {
        Given::Name(reference) => match state.vamp.get(Kind::Scale, &reference).await? {
            Some(Artifact::Scale(s)) => s,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "no stored scale '{reference}': send one inline (cpu, memory, instances)"
                )));
            }
        },
        Given::Inline(a) => match *a {
            Artifact::Scale(s) => s,
            _ => return Err(ApiError::bad_request("expected a scale")),
        },
    };
    let d = state.vamp.scale(&name, &cluster, &service, scale).await?;
    Ok(reply(
        StatusCode::ACCEPTED,
        &headers,
        &Artifact::Deployment(d).to_json(),
    ))
}

/// A cluster's SLA as its deployment holds it; 404 when the deployment, the cluster or the
/// SLA is missing.
async fn get_sla(
    State(state): State<AppState>,
    Path((name, cluster)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let d = state
        .vamp
        .deployment(&name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let sla = d
        .clusters
        .get(&cluster)
        .and_then(|c| c.sla.as_ref())
        .ok_or_else(ApiError::not_found)?;
    let value = serde_json::to_value(sla).map_err(|e| Error::backend("json", e))?;
    Ok(reply(StatusCode::OK, &headers, &value))
}

/// Sets a cluster's SLA (spec §2.2): inline, or the name of a stored SLA. 202 with the
/// deployment.
async fn put_sla(
    State(state): State<AppState>,
    Path((name, cluster)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let text = body_text(&headers, body)?;
    let sla = match given(&text, Kind::Sla)? {
        Given::Name(reference) => Ref::Reference(reference),
        Given::Inline(a) => match *a {
            Artifact::Sla(s) => Ref::Inline(s),
            _ => return Err(ApiError::bad_request("expected an SLA")),
        },
    };
    let d = state
        .vamp
        .set_cluster_sla(&name, &cluster, Some(sla))
        .await?;
    Ok(reply(
        StatusCode::ACCEPTED,
        &headers,
        &Artifact::Deployment(d).to_json(),
    ))
}

/// Removes a cluster's SLA: 204 (also when it had none); 404 for a missing deployment or
/// cluster.
async fn delete_sla(
    State(state): State<AppState>,
    Path((name, cluster)): Path<(String, String)>,
) -> ApiResult {
    let d = state.vamp.deployment(&name).await?;
    if !d.is_some_and(|d| d.clusters.contains_key(&cluster)) {
        return Err(ApiError::not_found());
    }
    state.vamp.set_cluster_sla(&name, &cluster, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------- workflows

/// A workflow's status as a string (spec §2.6).
async fn get_workflow_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let w = state
        .vamp
        .workflow(&name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(reply(StatusCode::OK, &headers, &json!(w.status.as_str())))
}

/// Sets a workflow's status; the body is the status, as plain text or a JSON/YAML string
/// (`suspended`, `"restarting"`). 202 with the workflow.
async fn put_workflow_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let text = body_text(&headers, body)?;
    let wanted = text.trim().trim_matches('"');
    let status = WorkflowStatus::parse(wanted).ok_or_else(|| {
        let all: Vec<&str> = WorkflowStatus::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::bad_request(format!(
            "error[IllegalWorkflowStatus]: '{wanted}' is not a workflow status (send one of: {})",
            all.join(", ")
        ))
    })?;
    let w = state
        .vamp
        .set_workflow_status(&name, status)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(reply(
        StatusCode::ACCEPTED,
        &headers,
        &Artifact::Workflow(w).to_json(),
    ))
}

// ----------------------------------------------------------------- gateways

async fn list_gateways(
    State(state): State<AppState>,
    Query(paging): Query<Paging>,
    headers: HeaderMap,
) -> ApiResult {
    let mut all = state.vamp.gateways().await?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let all = all.into_iter().map(|g| Artifact::Gateway(g).to_json());
    Ok(page_of(&headers, "/api/v1/gateways", paging.page(), all))
}

async fn get_gateway(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    found(StatusCode::OK, &headers, find_gateway(&state, &name).await?)
}

/// Stores a standalone gateway (spec §2.5): validated, weights defaulted, its port checked
/// against every other gateway's (`?validate_only=true`: checked only). 202 with the gateway.
/// A deployment's gateways (names with `/`) change through their deployment.
async fn create_gateway(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let check_only = validate_only(&query)?;
    let text = body_text(&headers, body)?;
    let gateway = one_artifact(&text, Kind::Gateway)?;
    let name = gateway.name().to_owned();
    if name.contains('/') {
        return Err(ApiError::bad_request(format!(
            "'{name}' names a deployment's gateway: change it with PUT /api/v1/gateways/<name> or in its deployment; a standalone gateway's name has no '/'"
        )));
    }
    if check_only {
        state.vamp.validate(&gateway).await?;
        return Ok(reply(StatusCode::ACCEPTED, &headers, &gateway.to_json()));
    }
    state.vamp.put(gateway).await?;
    found(
        StatusCode::ACCEPTED,
        &headers,
        find_gateway(&state, &name).await?,
    )
}

/// Removes a standalone gateway (idempotent): 202. A deployment's gateway goes with its
/// deployment (spec §2.5): refused while the deployment exists.
async fn delete_gateway(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    match name.split_once('/') {
        None => {
            state.vamp.delete(Kind::Gateway, &name).await?;
        }
        Some((deployment, _)) => {
            if state.vamp.deployment(deployment).await?.is_some() {
                return Err(ApiError::bad_request(format!(
                    "'{name}' belongs to deployment '{deployment}': it goes when its services do (DELETE /api/v1/deployments/{deployment} with them)"
                )));
            }
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Changes a gateway (spec §2.5): a cluster gateway `<deployment>/<cluster>/<port>` through a
/// merge into its deployment (route weights, conditions, strengths; the services stay), a
/// standalone one by storing it. 202 with the gateway.
async fn put_gateway(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let text = body_text(&headers, body)?;
    let Artifact::Gateway(gateway) = one_artifact(&text, Kind::Gateway)? else {
        return Err(ApiError::bad_request("expected a gateway"));
    };
    if !gateway.name.is_empty() && gateway.name != name {
        return Err(ApiError::bad_request(format!(
            "InconsistentArtifactName: the body names '{}' but the path '{name}'; they must match",
            gateway.name
        )));
    }
    match name.split('/').collect::<Vec<_>>().as_slice() {
        [deployment, cluster, port] => {
            let current = state
                .vamp
                .deployment(deployment)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let services: Vec<String> = current
                .clusters
                .get(*cluster)
                .ok_or_else(ApiError::not_found)?
                .services
                .iter()
                .map(|s| s.breed.name.clone())
                .collect();
            // Routes are named by their service (a full `d/c/s/p` path names it third).
            let mut routes = serde_json::Map::new();
            for (key, route) in &gateway.routes {
                let service = match key.split('/').collect::<Vec<_>>().as_slice() {
                    [_, _, service, _] => (*service).to_owned(),
                    _ => key.clone(),
                };
                routes.insert(service, serde_json::to_value(route).unwrap_or(Value::Null));
            }
            let merge = json!({
                "name": deployment,
                "clusters": {*cluster: {"gateways": {*port: {"routes": routes}}, "services": services}},
            });
            let blueprint = blueprint(&merge.to_string())?;
            state.vamp.deploy(deployment, &blueprint).await?;
        }
        [_] => {
            let mut gateway = gateway;
            gateway.name.clone_from(&name);
            state.vamp.put(Artifact::Gateway(gateway)).await?;
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "'{name}' is a deployment's own gateway: change it in its deployment's blueprint"
            )));
        }
    }
    found(
        StatusCode::ACCEPTED,
        &headers,
        find_gateway(&state, &name).await?,
    )
}

// ------------------------------------------------------------------- events

/// `tag` (repeated) and `type`.
fn event_filter(query: &[(String, String)]) -> EventFilter {
    let mut filter = EventFilter::tags(
        query
            .iter()
            .filter(|(k, _)| k == "tag")
            .map(|(_, v)| v.clone()),
    );
    filter.kind = query
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.clone());
    filter
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

fn event_json(id: u64, event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), json!(id.to_string()));
    }
    value
}

async fn events(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let filter = event_filter(&query);
    let page = paging_of(&query).page();
    let found = state.vamp.events(&filter, page).await?;
    let items: Vec<Value> = found
        .items
        .iter()
        .map(|e| event_json(e.id, &e.event))
        .collect();
    let response = reply(StatusCode::OK, &headers, &Value::Array(items));
    Ok(paged(response, "/api/v1/events", page, found.total))
}

async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let text = body_text(&headers, body)?;
    let event = match one_artifact(&text, Kind::Event)? {
        Artifact::Event(e) => e,
        other => {
            return Err(ApiError::bad_request(format!(
                "expected an event, got a {}",
                other.kind().singular()
            )));
        }
    };
    let stored = state.vamp.publish(&event).await?;
    Ok(reply(
        StatusCode::CREATED,
        &headers,
        &event_json(stored.id, &stored.event),
    ))
}

async fn stream(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let filter = event_filter(&query);
    let events = state.vamp.subscribe().await?;
    // A stream never ends by itself: it ends when the server shuts down, so a graceful
    // shutdown does not wait for its clients.
    let mut stopping = state.stopping.clone();
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let stream = events.take_until(stop).filter_map(move |item| {
        let out = match item {
            Ok(stored) if filter.matches(&stored.event) => Some(Ok(SseEvent::default()
                .event(stored.event.kind.clone())
                .id(stored.id.to_string())
                .data(event_json(stored.id, &stored.event).to_string()))),
            Ok(_) => None,
            // A subscriber that fell behind is told so and goes on with newer events.
            Err(e) => Some(Ok(
                SseEvent::default().comment(format!("missed events: {e}"))
            )),
        };
        std::future::ready(out)
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use vamp_core::traits::{LatencyHistogram, RouteStats};

    #[test]
    fn route_metrics_escape_labels_and_close_histograms() {
        let mut out = String::new();
        super::route_metrics(
            &mut out,
            &[RouteStats {
                gateway: "shop/web".into(),
                route: "a\"b\\c".into(),
                requests: 7,
                errors: 1,
                latency: LatencyHistogram {
                    buckets: vec![(5.0, 3), (50.0, 7)],
                },
            }],
        );
        let labels = r#"gateway="shop/web",route="a\"b\\c""#;
        for line in [
            format!("vamp_route_requests_total{{{labels}}} 7"),
            format!("vamp_route_errors_total{{{labels}}} 1"),
            format!("vamp_route_response_time_ms_bucket{{{labels},le=\"5\"}} 3"),
            format!("vamp_route_response_time_ms_bucket{{{labels},le=\"+Inf\"}} 7"),
            format!("vamp_route_response_time_ms_count{{{labels}}} 7"),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in:\n{out}");
        }
    }
}
