//! The OpenAPI document against the live API, in process (issue 20): every operation it lists
//! is served, every route is registered through it, and every example in it — request
//! bodies and the artifacts' schemas — is accepted by the API it describes.

use axum::http::StatusCode;
use serde_json::{Value, json};

#[path = "common/inprocess.rs"]
mod inprocess;
use inprocess::Api;

/// The app the examples run against: the process driver (commands allowed), gateway ports
/// of its own.
async fn api() -> Api {
    Api::new(&[
        ("driver.kind", "process"),
        ("gateways.ports", &vamp_core::testkit::gateway_port_slice()),
    ])
    .await
}

async fn document(api: &Api) -> Value {
    let (status, text) = api.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect("JSON")
}

/// A path with sample values for its parameters (`{kind}` as given).
fn filled(path: &str, kind: &str, name: &str) -> String {
    path.replace("{kind}", kind)
        .replace("{name}", name)
        .replace("{cluster}", "web")
        .replace("{service}", "web:1.0.0")
        .replace("{command}", "pause")
        .replace("{path}", "gateways/shop/web/web")
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(path, method, operation)` of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, &'static str, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method, op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let api = api().await;
    let doc = document(&api).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 50, "{} operations", ops.len());
    for (path, method, _) in ops {
        let uri = filled(&path, "breeds", "x");
        let (status, body) = api.call(&method.to_uppercase(), &uri, None).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(
            !body.contains("no such API path"),
            "{method} {uri} is documented but not served"
        );
    }
}

#[test]
fn every_route_is_registered_with_its_documentation() {
    // `api::router` registers routes only through utoipa-axum's `routes!`, which takes each
    // path and method from the handler's `#[utoipa::path]`: a plain axum route would be
    // served undocumented.
    let source = include_str!("../src/api/mod.rs");
    assert_eq!(
        source.matches(".route(").count(),
        0,
        "a route bypasses the document"
    );
    assert!(source.matches("routes!(").count() >= 25);
}

/// The request body examples of an operation: `(name, value)`.
fn examples(op: &Value, doc: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (_, content) in op["requestBody"]["content"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if let Some(example) = content.get("example") {
            out.push((String::new(), example.clone()));
        }
        for (name, example) in content["examples"].as_object().into_iter().flatten() {
            out.push((name.clone(), example["value"].clone()));
        }
        if let Some(reference) = content["schema"]["$ref"].as_str() {
            let name = reference.trim_start_matches("#/components/schemas/");
            if let Some(example) = doc["components"]["schemas"][name].get("examples") {
                out.extend(
                    example
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| (String::new(), e.clone())),
                );
            }
            if let Some(example) = doc["components"]["schemas"][name].get("example") {
                out.push((String::new(), example.clone()));
            }
        }
    }
    out
}

/// What the examples need to exist: the deployment `shop` (cluster `web`, service
/// `web:1.0.0`) and the standalone gateway `edge` with the rollout example's two routes.
async fn fixtures(api: &Api) {
    let shop = json!({"name": "shop", "clusters": {"web": {"services": [{"breed": {"name": "web:1.0.0", "deployable": {"type": "command", "definition": "python3 -m http.server $PORT"}, "ports": {"web": "8080/http"}}}]}}});
    let (status, body) = api
        .call("PUT", "/api/v1/deployments/shop", Some(&shop))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let edge = json!({"name": "edge", "port": "9071/http", "routes": {"[127.0.0.1:31080]": {"weight": "100%"}, "[127.0.0.1:31081]": {"weight": "0%"}}});
    let (status, body) = api.call("POST", "/api/v1/gateways", Some(&edge)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn every_example_is_accepted_by_the_live_api() {
    let api = api().await;
    fixtures(&api).await;
    let doc = document(&api).await;
    let mut tried = 0;
    for (path, method, op) in operations(&doc) {
        for (example_name, example) in examples(&op, &doc) {
            let kind = if example_name.is_empty() {
                "breeds"
            } else {
                &example_name
            };
            // `{name}` is the example's own name where the path ends with it, else `shop`.
            let name = if path.ends_with("{name}") {
                example["name"].as_str().unwrap_or("shop")
            } else {
                "shop"
            };
            let mut uri = filled(&path, kind, name);
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            if params.contains(&"validate_only") {
                uri.push_str("?validate_only=true");
            } else if path.ends_with("/docker-compose") {
                uri.push_str("?name=site");
            }
            let (status, body) = api.call(&method.to_uppercase(), &uri, Some(&example)).await;
            assert!(
                status.is_success(),
                "{method} {uri} refuses its own example {example}: {status} {body}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 20, "only {tried} examples");
}

#[tokio::test]
async fn every_artifact_kind_has_a_schema_with_an_accepted_example() {
    let api = api().await;
    fixtures(&api).await;
    let doc = document(&api).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, endpoint) in [
        ("Breed", "/api/v1/breeds"),
        ("Blueprint", "/api/v1/blueprints"),
        ("Scale", "/api/v1/scales"),
        ("Sla", "/api/v1/slas"),
        ("Escalation", "/api/v1/escalations"),
        ("Route", "/api/v1/routes"),
        ("Condition", "/api/v1/conditions"),
        ("Rewrite", "/api/v1/rewrites"),
        ("Template", "/api/v1/templates"),
        ("Workflow", "/api/v1/workflows"),
        ("Gateway", "/api/v1/gateways"),
        ("Event", "/api/v1/events"),
        ("Rollout", "/api/v1/rollouts"),
        ("Deployment", "/api/v1/deployments"),
        ("EventQuery", ""),
    ] {
        let example = schemas[schema]
            .get("examples")
            .and_then(|e| e.get(0))
            .or_else(|| schemas[schema].get("example"))
            .unwrap_or_else(|| panic!("{schema} has no example"))
            .clone();
        if endpoint.is_empty() {
            continue;
        }
        let (status, body) = api
            .call(
                "POST",
                &format!("{endpoint}?validate_only=true"),
                Some(&example),
            )
            .await;
        assert!(
            status.is_success(),
            "{schema}'s example is refused: {status} {body}"
        );
    }
}
