//! The `/api/v1` REST API (spec §2). JSON or YAML in (by `Content-Type`, JSON being YAML
//! too) and out (by `Accept`); errors as `{"message": …}`; lists paged with `X-Total-Count`
//! and `Link`.
//!
//! # Layout
//!
//! - this module: the router (every route with its OpenAPI operation) and the state;
//! - `exchange`: errors, bodies, answers, paging and the shared query options
//!   (`validate_only`, `expand_references`, `only_references`, `as_blueprint`);
//! - `artifacts`: static artifacts, workflows, the multi-document root, docker-compose;
//! - `deployments`: deployments and their scale and SLA sub-resources;
//! - `gateways`, `events` (with the SSE stream), `live` (the stream's per-route `stats`),
//!   `system` (info, stats, config, health and metrics lookups, the HAProxy configuration), `prometheus` (`GET /metrics`), `openapi` (the document) and `schemas`.

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
mod live;
mod openapi;
mod prometheus;
mod rollouts;
mod schemas;
mod system;

use artifacts::*;
use deployments::*;
use events::*;
use gateways::*;
pub use live::LiveStats;
use openapi::*;
pub use prometheus::Metrics;
use prometheus::*;
use rollouts::*;
use system::*;

mod exchange;
pub use exchange::ApiError;
use exchange::*;

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
    /// The live per-route numbers of the event stream (`stats` messages).
    pub live: Arc<LiveStats>,
}

/// The API as an axum router (state applied).
pub fn router(state: AppState) -> axum::Router {
    let (app, doc) = documented(&state).split_for_parts();
    let app = app
        .layer(axum::Extension(Arc::new(openapi::finish(doc))))
        .with_state(state.clone())
        .layer(axum::middleware::map_response(no_store))
        // The web UI: cacheable, so outside `no_store` (issue 23).
        .merge(crate::ui::router());
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
        .routes(routes!(haproxy_configuration))
        .routes(routes!(metrics))
        .routes(routes!(events, publish))
        .routes(routes!(stream))
        .routes(routes!(list_deployments, create_deployment))
        .routes(routes!(get_deployment, put_deployment, delete_deployment))
        .routes(routes!(get_scale, put_scale))
        .routes(routes!(get_sla, put_sla, delete_sla))
        .routes(routes!(get_workflow_status, put_workflow_status))
        .routes(routes!(get_workflow_executions))
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
