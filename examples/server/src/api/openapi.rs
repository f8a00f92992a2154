//! The OpenAPI 3 document of the API, served at `/api/v1/openapi.json`.

use super::*;

/// The OpenAPI 3 document of this API.
pub(super) async fn openapi() -> Response {
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
