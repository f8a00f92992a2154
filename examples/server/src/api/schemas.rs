//! The OpenAPI schemas of the artifacts (one per kind), events and errors, as the API reads
//! and writes them (the DSL's normalized form, docs/dsl.md). These types only describe: the
//! handlers read and write `vamp_core`'s model through the DSL, which accepts more forms
//! (short forms, references) than a schema can say; each schema's example is one the live
//! API accepts (tested in `tests/openapi.rs`).
#![allow(
    dead_code,
    reason = "schema descriptions: never built, only read by utoipa's derive"
)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

/// A refusal: what is wrong and how to fix it (spec §2.1).
#[derive(ToSchema)]
#[schema(example = json!({"message": "request body, line 4, column 8: error[InvalidPortError]: ports.web: … (hint: …)"}))]
pub(super) struct ErrorBody {
    /// The reason, with the line, the path and a hint where the body was at fault.
    message: String,
}

/// A breed (spec §1.3): what runs, on which ports, with which environment.
#[derive(ToSchema)]
#[schema(example = json!({"name": "web:1.0.0", "deployable": {"type": "command", "definition": "python3 -m http.server $PORT"}, "ports": {"web": "8080/http"}, "environment_variables": {"LOG_LEVEL": "info"}}))]
pub(super) struct Breed {
    /// The name (`app:1.0.0`).
    name: String,
    /// What runs: `registry/image:tag`, or `{type, definition}` (`container/docker`, `command`).
    deployable: Value,
    /// Ports by name: `"8080/http"` or `"5432/tcp"`.
    ports: Option<BTreeMap<String, String>>,
    /// Environment variables (values may refer to dependencies: `$db.host`).
    environment_variables: Option<BTreeMap<String, Option<String>>>,
    /// Values referable by others, never in the environment.
    constants: Option<BTreeMap<String, String>>,
    /// Driver arguments, `- key: value`.
    arguments: Option<Vec<BTreeMap<String, String>>>,
    /// Other breeds this one needs, by alias.
    dependencies: Option<BTreeMap<String, Value>>,
    /// Health checks: `{path, port, initial_delay, timeout, interval, failures, protocol}`.
    health_checks: Option<Vec<Value>>,
}

/// A blueprint (spec §1.5): clusters of services and the gateways in front of them.
#[derive(ToSchema)]
#[schema(example = json!({"name": "shop", "gateways": {"9050/http": "web/web"}, "clusters": {"web": {"services": [{"breed": {"name": "web:1.0.0", "deployable": {"type": "command", "definition": "python3 -m http.server $PORT"}, "ports": {"web": "8080/http"}}}]}}}))]
pub(super) struct Blueprint {
    /// The name.
    name: String,
    /// Clusters by name: services (breed, scale, environment), gateways, an SLA.
    clusters: BTreeMap<String, Value>,
    /// External gateways by port: `"9050/http": cluster/port` or a gateway.
    gateways: Option<BTreeMap<String, Value>>,
    /// Environment variables of the clusters' services, `cluster.port` or `cluster.NAME`.
    environment_variables: Option<BTreeMap<String, String>>,
    /// Free-form metadata.
    metadata: Option<BTreeMap<String, Value>>,
}

/// A deployment (spec §1.12): a blueprint deployed, with each service's status and instances.
#[derive(ToSchema)]
#[schema(example = json!({"name": "shop", "clusters": {"web": {"services": [{"breed": {"name": "web:1.0.0", "deployable": {"type": "command", "definition": "python3 -m http.server $PORT"}, "ports": {"web": "8080/http"}}}]}}}))]
pub(super) struct Deployment {
    /// The name.
    name: String,
    /// Clusters: services with `status` (intention, phase) and `instances`, gateways, SLA.
    clusters: BTreeMap<String, Value>,
    /// External gateways by port.
    gateways: Option<BTreeMap<String, Value>>,
    /// Resolved host and ports of the clusters (read-only).
    hosts: Option<BTreeMap<String, String>>,
    /// Resolved ports (read-only).
    ports: Option<BTreeMap<String, String>>,
    /// Resolved environment (read-only).
    environment_variables: Option<BTreeMap<String, String>>,
}

/// A gateway (spec §1.6): a port and weighted, conditional routes.
#[derive(ToSchema)]
#[schema(example = json!({"name": "edge", "port": "9070/http", "routes": {"[127.0.0.1:31080]": {"weight": "100%"}}}))]
pub(super) struct Gateway {
    /// The name (`shop/web/web` for a deployment's gateway).
    name: String,
    /// The port: `"9070/http"`, `"9070/tcp"`.
    port: String,
    /// Routes by target: `weight` ("90%"), `condition`, `condition_strength`, `rewrites`.
    routes: BTreeMap<String, Value>,
    /// `route`, `instance` or absent.
    sticky: Option<String>,
    /// Host names this gateway answers for.
    virtual_hosts: Option<Vec<String>>,
    /// Whether a deployment created it (read-only).
    internal: Option<bool>,
    /// Where it is served (read-only): host and port.
    service: Option<Value>,
    /// Whether it is served (read-only).
    deployed: Option<bool>,
}

/// A stored route (spec §1.7): a weight, a condition and rewrites, referable from gateways.
#[derive(ToSchema)]
#[schema(example = json!({"name": "beta-users", "weight": "10%", "condition": "cookie group has beta", "condition_strength": "100%"}))]
pub(super) struct Route {
    /// The name.
    name: String,
    /// Share of traffic: `"10%"`.
    weight: Option<String>,
    /// A condition expression (spec §1.7.1).
    condition: Option<Value>,
    /// Share of matching traffic the condition takes: `"100%"`.
    condition_strength: Option<String>,
    /// Path rewrites.
    rewrites: Option<Vec<Value>>,
}

/// A stored condition (spec §1.7.1).
#[derive(ToSchema)]
#[schema(example = json!({"name": "android", "condition": "user-agent == Android"}))]
pub(super) struct Condition {
    /// The name.
    name: String,
    /// The expression: `user-agent == Android`, `has cookie group`, `header x has y`, …
    condition: String,
}

/// A stored rewrite (spec §1.8).
#[derive(ToSchema)]
#[schema(example = json!({"name": "to-beta", "path": "/beta/%[path] if { path_beg /beta }"}))]
pub(super) struct Rewrite {
    /// The name.
    name: String,
    /// `<new path> if { <condition> }`.
    path: String,
}

/// A stored scale (spec §1.4).
#[derive(ToSchema)]
#[schema(example = json!({"name": "small", "cpu": 0.2, "memory": "128MB", "instances": 2}))]
pub(super) struct Scale {
    /// The name.
    name: String,
    /// Cores.
    cpu: f64,
    /// Memory: `"128MB"`, `"1GB"`.
    memory: String,
    /// Instances.
    instances: u32,
}

/// A stored SLA (spec §1.9).
#[derive(ToSchema)]
#[schema(example = json!({"name": "fast", "type": "response_time_sliding_window", "window": {"interval": 600, "cooldown": 600}, "threshold": {"upper": 1000, "lower": 100}, "escalations": [{"type": "scale_instances", "minimum": 1, "maximum": 3, "scale_by": 1}]}))]
pub(super) struct Sla {
    /// The name.
    name: String,
    /// `response_time_sliding_window`, or another type (stored, not run).
    r#type: String,
    /// `{interval, cooldown}` in seconds.
    window: Option<Value>,
    /// `{upper, lower}` in milliseconds.
    threshold: Option<Value>,
    /// Escalations, inline or by name.
    escalations: Option<Vec<Value>>,
}

/// A stored escalation (spec §1.10).
#[derive(ToSchema)]
#[schema(example = json!({"name": "more", "type": "scale_instances", "minimum": 1, "maximum": 4, "scale_by": 1}))]
pub(super) struct Escalation {
    /// The name.
    name: String,
    /// `scale_instances`, `scale_cpu`, `scale_memory`, `to_all`, `to_one`, or another type.
    r#type: String,
    /// The lower bound.
    minimum: Option<f64>,
    /// The upper bound.
    maximum: Option<f64>,
    /// The step.
    scale_by: Option<f64>,
    /// The cluster it scales (default: the SLA's).
    target: Option<String>,
    /// Members of `to_all` and `to_one`.
    escalations: Option<Vec<Value>>,
}

/// A workflow (spec §1.11): a breed run on a schedule.
#[derive(ToSchema)]
#[schema(example = json!({"name": "tick", "breed": {"name": "tick:1", "deployable": {"type": "command", "definition": "/bin/true"}}, "schedule": {"time": "PT30S"}}))]
pub(super) struct Workflow {
    /// The name.
    name: String,
    /// The breed it runs.
    breed: Value,
    /// `daemon`, `{event: {tags}}` or `{time: <ISO-8601 period>}`.
    schedule: Value,
    /// `starting`, `running`, `stopping`, `suspending`, `suspended`, `restarting`.
    status: Option<String>,
    /// Environment variables of the runs.
    environment_variables: Option<BTreeMap<String, String>>,
    /// The scale of the runs.
    scale: Option<Value>,
}

/// An event (spec §1.14).
#[derive(ToSchema)]
#[schema(example = json!({"tags": ["deployments:shop", "note"], "value": {"text": "deployed by CI"}, "type": "event"}))]
pub(super) struct Event {
    /// Tags: `a`, `group:a`.
    tags: Vec<String>,
    /// Any JSON value.
    value: Value,
    /// The type (default `event`).
    r#type: Option<String>,
    /// When (default: now), ISO-8601.
    timestamp: Option<String>,
    /// Its id, once stored (read-only).
    id: Option<String>,
}

/// An event query (spec §1.14): tags, a time range and an aggregation.
#[derive(ToSchema)]
#[schema(example = json!({"tags": ["metrics:rate"], "timestamp": {"gte": "now-10m"}, "aggregator": {"type": "average", "field": "value"}}))]
pub(super) struct EventQuery {
    /// Events with all of these tags.
    tags: Vec<String>,
    /// `{lt|lte, gt|gte}`.
    timestamp: Option<Value>,
    /// `{type: min|max|average|sum|count, field}`.
    aggregator: Option<Value>,
}

/// A template (spec §1.13): fields other artifacts import.
#[derive(ToSchema)]
#[schema(example = json!({"name": "base", "definition": {"ports": {"web": "8080/http"}}}))]
pub(super) struct Template {
    /// The name.
    name: String,
    /// The fields, merged into the artifacts that import the template.
    definition: BTreeMap<String, Value>,
}

/// A rollout (issue 18, docs/rollouts.md): steps from stable to canary, judged on the way.
#[derive(ToSchema)]
#[schema(example = json!({"name": "web-release", "gateway": "edge", "stable": "[127.0.0.1:31080]", "canary": "[127.0.0.1:31081]", "steps": [{"weight": "10%"}, {"analysis": {}}, {"weight": "50%"}], "analysis": {"interval": "10s", "metrics": [{"metric": "success-rate", "min": "99%"}]}}))]
pub(super) struct Rollout {
    /// The name.
    name: String,
    /// The gateway whose two routes it moves.
    gateway: String,
    /// The stable route.
    stable: String,
    /// The canary route.
    canary: String,
    /// `{weight}`, `{analysis}`, `{pause}` in order.
    steps: Vec<Value>,
    /// `{interval, min_requests, failure_limit, metrics}`.
    analysis: Option<Value>,
    /// Webhooks: `{type, url, timeout, retries}`.
    webhooks: Option<Vec<Value>>,
}

/// A rollout's status (read-only): phase, step, weights, verdicts, the last reason.
#[derive(ToSchema)]
pub(super) struct RolloutStatus {
    /// `Progressing`, `Paused`, `Succeeded`, `RolledBack`, `Aborted`.
    phase: String,
    /// The current step.
    step: u32,
    /// `{stable, canary}` in per cent.
    weights: Value,
    /// Why it is where it is.
    reason: Option<String>,
}
