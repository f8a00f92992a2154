//! The API's handlers called in-process (`tower::ServiceExt::oneshot` on the router): no
//! socket, no reconciler — what each answers, status, shape and errors (issue 20). The
//! socket tests (`api.rs`) cover serving: connections, limits, shutdown.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

#[path = "common/inprocess.rs"]
mod inprocess;
use inprocess::Api;

const BREED: &str = "name: web:1.0.0\ndeployable: registry/web:1.0.0\nports:\n  web: 8080/http\n";

#[tokio::test]
async fn info_names_the_version_and_the_backends() {
    let api = Api::new(&[]).await;
    let (status, info) = api.json("GET", "/api/v1/info", None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{info}");
    assert!(info["uuid"].is_string(), "{info}");
}

#[tokio::test]
async fn an_artifact_is_created_read_listed_and_deleted() {
    let api = Api::new(&[]).await;
    let (status, created) = api.json("POST", "/api/v1/breeds", Some(BREED)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "web:1.0.0");
    let (status, read) = api.json("GET", "/api/v1/breeds/web:1.0.0", None).await;
    assert_eq!(
        (status, &read["deployable"]["definition"]),
        (StatusCode::OK, &Value::from("registry/web:1.0.0")),
        "{read}"
    );
    let (status, list) = api.json("GET", "/api/v1/breeds", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (status, _) = api.json("DELETE", "/api/v1/breeds/web:1.0.0", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.json("GET", "/api/v1/breeds/web:1.0.0", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn validate_only_checks_and_stores_nothing() {
    let api = Api::new(&[]).await;
    let (status, shown) = api
        .json("POST", "/api/v1/breeds?validate_only=true", Some(BREED))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shown}");
    assert_eq!(shown["name"], "web:1.0.0");
    let (status, _) = api.json("GET", "/api/v1/breeds/web:1.0.0", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "validate_only stored it");
}

#[tokio::test]
async fn bad_yaml_is_a_400_naming_the_line_and_the_fix() {
    let api = Api::new(&[]).await;
    let (status, error) = api
        .json(
            "POST",
            "/api/v1/breeds",
            Some("name: web\ndeployable: registry/web\nports:\n  web: eighty/http\n"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("line 4") && message.contains("ports.web") && message.contains("hint"),
        "{message}"
    );
}

#[tokio::test]
async fn a_token_is_asked_for_when_one_is_set() {
    let api = Api::new(&[("server.token", "s3cret-token")]).await;
    let (status, _) = api.json("GET", "/api/v1/breeds", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let request = Request::builder()
        .uri("/api/v1/breeds")
        .header("host", "127.0.0.1")
        .header("authorization", "Bearer s3cret-token")
        .body(Body::empty())
        .expect("request");
    let response = api
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_and_kinds_are_404s() {
    let api = Api::new(&[]).await;
    for path in ["/api/v1/nothing-here", "/api/v1/breeds/none"] {
        let (status, body) = api.json("GET", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}
