//! The REST API over a real server on a loopback port (memory persistence, process driver,
//! embedded router): artifacts in JSON and YAML, paging, bad input, events and their SSE
//! stream, deployments, the bearer token.

use std::time::Duration;

use serde_json::{Value, json};
use vamp_core::testkit::eventually_within;

mod common;

use common::{Server, delete, expect, get, parse, post, put, send, undeploy, wait_gone, yaml};

const BREED: &str =
    "name: web:1.0\ndeployable: {type: command, definition: /bin/true}\nports: {web: 8080/http}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_artifacts_round_trip_in_json_and_yaml_with_vamps_status_codes() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    let body = post(201, &format!("{u}/breeds"), BREED).await;
    assert_eq!(parse(&body)["name"], "web:1.0");
    // JSON bodies are YAML too; every static kind has the same routes.
    let scale = (
        reqwest::header::CONTENT_TYPE,
        "application/json",
        r#"{"name": "small", "cpu": 0.1, "memory": "64MB", "instances": 2}"#.to_owned(),
    );
    expect(201, Method::POST, &format!("{u}/scales"), Some(scale)).await;

    let client = reqwest::Client::new();
    let got = client
        .get(format!("{u}/breeds/web:1.0"))
        .header("Accept", "application/x-yaml")
        .send()
        .await
        .expect("get");
    assert_eq!(got.headers()["content-type"], "application/x-yaml");
    assert_eq!(got.headers()["cache-control"], "no-store");
    let text = got.text().await.expect("text");
    assert!(text.contains("name: web:1.0"), "{text}");

    let body = put(
        200,
        &format!("{u}/breeds/web:1.0"),
        &BREED.replace("/bin/true", "/bin/false"),
    )
    .await;
    assert_eq!(parse(&body)["deployable"]["definition"], "/bin/false");
    let (status, _, body) =
        send(Method::PUT, &format!("{u}/breeds/other"), Some(yaml(BREED))).await;
    assert_eq!(status, 400);
    assert!(
        parse(&body)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("InconsistentArtifactName"),
        "{body}"
    );

    for i in 0..3 {
        let breed = BREED.replace("web:1.0", &format!("page:{i}"));
        post(201, &format!("{u}/breeds"), &breed).await;
    }
    let (status, headers, body) =
        send(Method::GET, &format!("{u}/breeds?page=2&per_page=2"), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-total-count"], "4");
    let link = headers["link"].to_str().expect("ascii");
    assert!(
        link.contains("page=1&per_page=2>; rel=first")
            && link.contains("page=2&per_page=2>; rel=last"),
        "{link}"
    );
    assert_eq!(parse(&body).as_array().map(Vec::len), Some(2));
    let (_, headers, _) = send(Method::GET, &format!("{u}/breeds?per_page=1000"), None).await;
    assert!(
        headers["link"]
            .to_str()
            .expect("ascii")
            .contains("per_page=30"),
        "clamped to 30"
    );

    let _ = delete(204, &format!("{u}/breeds/web:1.0"), None).await;
    let (status, _, body) = send(Method::GET, &format!("{u}/breeds/web:1.0"), None).await;
    assert_eq!(
        (status, body.as_str()),
        (404, ""),
        "missing: 404 with an empty body"
    );
    delete(204, &format!("{u}/breeds/web:1.0"), None).await;
    let body = get(200, &format!("{u}/info")).await;
    assert_eq!(parse(&body)["persistence"]["type"], "memory");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_and_a_message_naming_the_problem_and_stores_nothing() {
    use reqwest::Method;
    let server = Server::start(&[("server.body_limit", "2048")]).await;
    let u = &server.url;
    post(201, &format!("{u}/breeds"), BREED).await;
    let cases: [(&str, &str, u16, &[&str]); 6] = [
        ("breeds", "name: [\n", 400, &["line"]),
        (
            "breeds",
            "name: x:1\ndeployable: a\nportz: {web: 80}\n",
            400,
            &["portz", "line 3"],
        ),
        (
            "breeds",
            "name: x:1\ndeployable: a\nports: 12\n",
            400,
            &["ports"],
        ),
        ("breeds", &"x".repeat(4096), 413, &["body_limit"]),
        (
            "deployments",
            "name: d\nclusters:\n  c: missing:1.0\n",
            400,
            &["missing:1.0"],
        ),
        ("scales", "name: s\ncpu: lots\n", 400, &["cpu"]),
    ];
    for (kind, body, expected, words) in cases {
        let (status, _, text) = send(Method::POST, &format!("{u}/{kind}"), Some(yaml(body))).await;
        assert_eq!(status, expected, "{kind} {body:.40}: {text}");
        let message = parse(&text)["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for word in words {
            assert!(message.contains(word), "'{word}' missing from: {message}");
        }
    }
    let form = (
        reqwest::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded",
        "a=b".to_owned(),
    );
    let text = expect(400, Method::POST, &format!("{u}/breeds"), Some(form)).await;
    assert!(
        text.contains("application/x-yaml"),
        "names the supported types: {text}"
    );
    get(404, &format!("{u}/nonsense")).await;
    // Nothing of the rejected requests was stored.
    let (_, headers, _) = send(Method::GET, &format!("{u}/breeds"), None).await;
    assert_eq!(headers["x-total-count"], "1");
    let (_, headers, _) = send(Method::GET, &format!("{u}/deployments"), None).await;
    assert_eq!(headers["x-total-count"], "0");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_queried_by_tag_and_streamed_as_sse() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = server.url.clone();
    let mut stream = reqwest::Client::new()
        .get(format!("{u}/events/stream?tag=deployments:shop"))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let json = |v: Value| {
        (
            reqwest::header::CONTENT_TYPE,
            "application/json",
            v.to_string(),
        )
    };
    expect(
        201,
        Method::POST,
        &format!("{u}/events"),
        Some(json(json!({"tags": ["other"], "value": 1}))),
    )
    .await;
    let _ = expect(
        201,
        Method::POST,
        &format!("{u}/events"),
        Some(json(
            json!({"tags": ["deployments:shop", "health"], "value": 0.9, "type": "health"}),
        )),
    )
    .await;
    let mut seen = String::new();
    while !seen.contains("\n\n") || !seen.contains("data:") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("an SSE message in time")
            .expect("bytes")
            .expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: health"), "{seen}");
    assert!(
        seen.contains("deployments:shop") && !seen.contains("\"other\""),
        "only matching events: {seen}"
    );
    let (_, headers, body) = send(Method::GET, &format!("{u}/events?tag=deployments"), None).await;
    assert_eq!(headers["x-total-count"], "1", "group tags match: {body}");
    assert_eq!(parse(&body)[0]["value"], 0.9);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_is_required() {
    let server = Server::start(&[("server.token", "s3cret-token")]).await;
    let client = reqwest::Client::new();
    let denied = client
        .get(format!("{}/breeds", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(denied.status(), 401);
    assert!(denied.text().await.expect("text").contains("Bearer"));
    let allowed = client
        .get(format!("{}/breeds", server.url))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("get");
    assert_eq!(allowed.status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_merge_slice_and_undeploy_through_the_api() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    let exe = env!("CARGO_BIN_EXE_vamp-server");
    for version in ["1.0.0", "1.1.0"] {
        let breed = format!(
            "name: app:{version}\ndeployable: {{type: command, definition: \"'{exe}' demo-app --app-version {version}\"}}\nports: {{web: 8080/http}}\n"
        );
        post(201, &format!("{u}/breeds"), &breed).await;
    }
    put(
        202,
        &format!("{u}/deployments/shop"),
        "name: shop\nclusters:\n  app: app:1.0.0\n",
    )
    .await;
    let body = put(
        202,
        &format!("{u}/deployments/shop"),
        "name: shop\nclusters:\n  app: app:1.1.0\n",
    )
    .await;
    let routes = &parse(&body)["clusters"]["app"]["gateways"]["web"]["routes"];
    assert_eq!(
        routes["app:1.1.0"]["weight"], "0%",
        "a merged version joins at 0%: {routes}"
    );
    // Removing the version with all the traffic is refused, and changes nothing.
    let body = delete(
        400,
        &format!("{u}/deployments/shop"),
        Some("name: shop\nclusters:\n  app: app:1.0.0\n"),
    )
    .await;
    assert!(body.contains("InvalidRouteWeight"), "{body}");
    delete(202, &format!("{u}/deployments/shop"), None).await;
    let (_, _, gateways) = send(Method::GET, &format!("{u}/gateways"), None).await;
    assert!(gateways.contains("shop/app/web"), "{gateways}");
    let _ = get(200, &format!("{u}/gateways/shop/app/web")).await;
    // Remove everything; the deployment goes once its services are gone.
    undeploy(
        u,
        "shop",
        "name: shop\nclusters:\n  app:\n    services: [app:1.0.0, app:1.1.0]\n",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_takes_many_kinds_at_once_and_a_rejected_body_changes_nothing() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    let many = format!(
        "{}---\nkind: scales\nname: small\ncpu: 0.1\nmemory: 64MB\ninstances: 1\n---\nkind: blueprints\nname: shop\nclusters:\n  web: web:1.0\n",
        format_args!("kind: breeds\n{BREED}")
    );
    let body = post(202, u, &many).await;
    assert_eq!(parse(&body).as_array().map(Vec::len), Some(3));
    // A later document that fails validation (weights over 100%) undoes the earlier ones.
    let bad = "kind: breeds\nname: other:1.0\ndeployable: {type: command, definition: /bin/true}\n---\nkind: scales\nname: small\ncpu: 0.5\nmemory: 64MB\ninstances: 1\n---\nkind: blueprints\nname: broken\nclusters:\n  web:\n    gateways: {web: {routes: {web:1.0: {weight: 80%}, other:1.0: {weight: 80%}}}}\n    services: [web:1.0, other:1.0]\n";
    let body = post(400, u, bad).await;
    assert!(body.contains("160%"), "{body}");
    assert_eq!(
        common::get_status(&format!("{u}/breeds/other:1.0")).await,
        404,
        "the new breed went"
    );
    let (_, _, scale) = send(Method::GET, &format!("{u}/scales/small"), None).await;
    assert_eq!(
        parse(&scale)["cpu"],
        0.1,
        "the replaced scale came back: {scale}"
    );
    post(400, u, "kind: events\ntags: [a]\n").await;
    // DELETE with the same documents removes them.
    delete(202, u, Some(&many)).await;
    let (_, headers, _) = send(Method::GET, &format!("{u}/breeds"), None).await;
    assert_eq!(headers["x-total-count"], "0");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_return_the_newest_value_in_the_window() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    let json = |v: Value| {
        (
            reqwest::header::CONTENT_TYPE,
            "application/json",
            v.to_string(),
        )
    };
    for (tags, value) in [
        (json!(["gateways:shop/web", "health"]), json!(0.5)),
        (json!(["gateways:shop/web", "health"]), json!(0.97)),
        (
            json!(["gateways:shop/web", "routes:shop/web/v2", "metrics:rate"]),
            json!(12.5),
        ),
        (
            json!(["deployments:shop", "clusters:web", "health"]),
            json!(1.0),
        ),
    ] {
        expect(
            201,
            Method::POST,
            &format!("{u}/events"),
            Some(json(json!({"tags": tags, "value": value}))),
        )
        .await;
    }
    let get = |path: &str| {
        let url = format!("{u}/{path}");
        async move { send(Method::GET, &url, None).await }
    };
    assert_eq!(
        get("health/gateways/shop%2Fweb").await.2,
        "0.97",
        "the newest"
    );
    assert_eq!(
        get("metrics/gateways/shop%2Fweb/routes/shop%2Fweb%2Fv2/rate")
            .await
            .2,
        "12.5"
    );
    assert_eq!(get("health/deployments/shop/clusters/web").await.2, "1.0");
    assert_eq!(
        get("health/deployments/shop/clusters/web/services/s/instances/i")
            .await
            .0,
        404,
        "instances never"
    );
    assert_eq!(
        get("metrics/gateways/shop%2Fweb/responseTime").await.0,
        404,
        "no such metric"
    );
    assert_eq!(
        get("health/gateways/shop%2Fweb?window=0").await.0,
        404,
        "outside the window"
    );
    let (status, _, body) = get("config").await;
    assert_eq!(status, 200);
    assert_eq!(parse(&body)["persistence"]["kind"], "memory");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_prometheus_text_format() {
    use reqwest::Method;
    let server = Server::start(&[("server.token", "s3cret-token")]).await;
    let u = &server.url;
    // Two refused answers (no token), then the scrape itself needs none.
    get(401, &format!("{u}/breeds")).await;
    get(401, &format!("{u}/breeds")).await;
    let root = u.trim_end_matches("/api/v1");
    let (status, headers, body) = send(Method::GET, &format!("{root}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    assert!(
        body.contains("vamp_api_responses_total{code=\"4xx\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("vamp_up 1") && body.contains("vamp_deployments 0"),
        "{body}"
    );
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.rsplitn(2, ' ');
        let value = parts.next().unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_scale_is_read_and_set_and_the_api_is_described() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    common::store_demo_breed(u).await;
    post(
        201,
        &format!("{u}/scales"),
        "name: big\ncpu: 1\nmemory: 1GB\ninstances: 3\n",
    )
    .await;
    put(
        202,
        &format!("{u}/deployments/s"),
        "name: s\nclusters:\n  c: app:1.0.0\n",
    )
    .await;
    let path = format!("{u}/deployments/s/clusters/c/services/app:1.0.0/scale");
    get(200, &path).await;
    put(202, &path, "cpu: 0.5\nmemory: 128MB\ninstances: 2\n").await;
    assert_eq!(
        parse(&send(Method::GET, &path, None).await.2)["instances"],
        2
    );
    put(202, &path, "big").await;
    assert_eq!(
        parse(&send(Method::GET, &path, None).await.2)["instances"],
        3
    );
    let body = put(400, &path, "nosuch").await;
    assert!(body.contains("nosuch"), "{body}");
    let missing = format!("{u}/deployments/s/clusters/c/services/other:1.0/scale");
    get(404, &missing).await;
    // The OpenAPI document lists what is served.
    let body = get(200, &format!("{u}/openapi.json")).await;
    let doc = parse(&body);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    for path in [
        "/api/v1/{kind}",
        "/api/v1/deployments/{name}",
        "/api/v1/events/stream",
        "/api/v1/workflows/{name}/status",
        "/api/v1/deployments/{name}/clusters/{cluster}/sla",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    // Its processes go before the server does (they would outlive it).
    undeploy(u, "s", "name: s\nclusters:\n  c: app:1.0.0\n").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_files_become_stored_blueprints_with_notes() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    let compose = "version: '2'\nservices:\n  web:\n    image: nginx:1.25\n    ports: ['8080:80']\n    volumes: ['/data:/data']\n";
    let (status, headers, body) = send(
        Method::POST,
        &format!("{u}/docker-compose?name=site"),
        Some(yaml(compose)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["content-type"], "application/x-yaml");
    assert!(body.starts_with("# line "), "notes first: {body}");
    assert!(body.contains("volumes"), "{body}");
    assert!(body.contains("name: site"), "{body}");
    assert_eq!(
        common::get_status(&format!("{u}/blueprints/site")).await,
        200,
        "stored"
    );
    let body = post(400, &format!("{u}/docker-compose"), compose).await;
    assert!(body.contains("name="), "{body}");
    post(400, &format!("{u}/docker-compose?name=x"), "services: 12\n").await;
    assert_eq!(
        common::get_status(&format!("{u}/blueprints/x")).await,
        404,
        "nothing stored"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_stored_artifacts_with_a_status_and_vamps_guards() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    let workflow = "name: tick\nbreed: {name: tick:1, deployable: {type: command, definition: /bin/true}}\nschedule: {time: PT30S}\n";
    post(202, &format!("{u}/workflows?validate_only=true"), workflow).await;
    assert_eq!(
        common::get_status(&format!("{u}/workflows/tick")).await,
        404,
        "validate_only stores nothing"
    );
    post(202, &format!("{u}/workflows"), workflow).await;
    let (status, headers, body) = send(Method::GET, &format!("{u}/workflows"), None).await;
    assert_eq!(
        (status, headers["x-total-count"].to_str().ok()),
        (200, Some("1")),
        "{body}"
    );
    assert_eq!(parse(&body)[0]["schedule"]["time"]["period"], "PT30S");
    let status_url = format!("{u}/workflows/tick/status");
    // The workflow runtime schedules it (spec §5.6): starting, then running; a `time`
    // schedule runs at once, and the run shows in its executions.
    vamp_core::testkit::eventually("the workflow running", || async {
        parse(&send(Method::GET, &status_url, None).await.2) == "running"
    })
    .await;
    let executions_url = format!("{u}/workflows/tick/executions");
    vamp_core::testkit::eventually("a finished run", || async {
        let e = parse(&get(200, &executions_url).await);
        e["last"][0]["finished"].is_string()
    })
    .await;
    let e = parse(&get(200, &executions_url).await);
    assert_eq!(e["last"].as_array().map(Vec::len), Some(1), "{e}");
    assert!(
        e["last"][0]["status"] == "succeeded" || e["last"][0]["status"] == "failed",
        "{e}"
    );
    get(404, &format!("{u}/workflows/nope/executions")).await;
    // Replacing a workflow that is not suspended is refused (spec §2.6).
    let body = put(400, &format!("{u}/workflows/tick"), workflow).await;
    assert!(
        body.contains("WorkflowUpdateError") && body.contains("suspended"),
        "{body}"
    );
    // Statuses: a wrong one is named with the ones allowed, and changes nothing.
    let body = expect(
        400,
        Method::PUT,
        &status_url,
        Some((reqwest::header::CONTENT_TYPE, "text/plain", "active".into())),
    )
    .await;
    assert!(
        body.contains("IllegalWorkflowStatus")
            && body.contains("'active'")
            && body.contains("suspended"),
        "{body}"
    );
    assert_eq!(
        parse(&send(Method::GET, &status_url, None).await.2),
        "running"
    );
    let body = expect(
        202,
        Method::PUT,
        &status_url,
        Some((
            reqwest::header::CONTENT_TYPE,
            "application/json",
            "\"suspended\"".into(),
        )),
    )
    .await;
    assert_eq!(parse(&body)["status"], "suspended");
    put(202, &format!("{u}/workflows/tick"), workflow).await;
    // Bad input names the problem and its line.
    let bad = "name: tock\nbreed: tick:1\nschedule: {time: every minute}\n";
    let body = post(400, &format!("{u}/workflows"), bad).await;
    assert!(
        body.contains("IllegalWorkflowSchedulePeriod") && body.contains("line 3"),
        "{body}"
    );
    let body = put(
        400,
        &format!("{u}/deployments/tick"),
        "name: tick\nclusters:\n  c:\n    breed: tick:1\n",
    )
    .await;
    assert!(body.contains("DeploymentWorkflowNameCollision"), "{body}");
    assert_eq!(
        common::get_status(&format!("{u}/workflows/nope/status")).await,
        404
    );
    put(404, &format!("{u}/workflows/nope/status"), "running").await;
    // DELETE stops it first (spec §2.6): stopping, then gone.
    delete(202, &format!("{u}/workflows/tick"), None).await;
    vamp_core::testkit::eventually("the workflow gone", || async {
        common::get_status(&status_url).await == 404
    })
    .await;
    delete(204, &format!("{u}/workflows/tick"), None).await;
    server.stop().await;
}

/// A breed whose instances only sleep (cheap, stays up).
const SLEEPER: &str = "name: sleeper:1\ndeployable: {type: command, definition: sleep 120}\nports: {web: 8080/http}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_sla_is_read_set_by_name_or_inline_and_removed() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    post(201, &format!("{u}/breeds"), SLEEPER).await;
    put(
        202,
        &format!("{u}/deployments/s"),
        "name: s\nclusters:\n  c: sleeper:1\n",
    )
    .await;
    let sla = format!("{u}/deployments/s/clusters/c/sla");
    get(404, &sla).await;
    let inline = "type: response_time_sliding_window\nthreshold: {upper: 1000, lower: 100}\nwindow: {interval: 60, cooldown: 60}\n";
    let body = put(202, &sla, inline).await;
    assert_eq!(
        parse(&body)["clusters"]["c"]["sla"]["threshold"]["upper"],
        1000
    );
    let body = get(200, &sla).await;
    assert_eq!(parse(&body)["type"], "response_time_sliding_window");
    // By name: it must be stored.
    let body = post(400, &sla, "relaxed").await;
    assert!(body.contains("'relaxed'"), "{body}");
    assert_eq!(
        parse(&send(Method::GET, &sla, None).await.2)["threshold"]["upper"],
        1000,
        "unchanged"
    );
    let stored = "name: relaxed\ntype: response_time_sliding_window\nthreshold: {upper: 5000, lower: 1000}\nwindow: {interval: 60, cooldown: 60}\n";
    post(201, &format!("{u}/slas"), stored).await;
    post(202, &sla, "relaxed").await;
    assert_eq!(
        parse(&send(Method::GET, &sla, None).await.2)["threshold"]["upper"],
        5000
    );
    // Bad input names the field.
    let body = put(400, &sla, "type: response_time_sliding_window\nthreshold: {upper: 1000, lower: 100}\nwindow: {interval: 60, cooldown: 60}\nthresold: 3\n").await;
    assert!(
        body.contains("thresold") && body.contains("line 4"),
        "{body}"
    );
    get(404, &format!("{u}/deployments/s/clusters/nope/sla")).await;
    put(400, &format!("{u}/deployments/nope/clusters/c/sla"), inline).await;
    delete(204, &sla, None).await;
    get(404, &sla).await;
    delete(404, &format!("{u}/deployments/s/clusters/nope/sla"), None).await;
    undeploy(u, "s", "name: s\nclusters:\n  c: sleeper:1\n").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_deploys_deployment_documents_with_the_breeds_sent_alongside() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let body = format!(
        "kind: breeds\n{SLEEPER}---\nkind: deployments\nname: shop\nclusters:\n  c: sleeper:1\n"
    );
    let answer = post(202, &format!("{u}?validate_only=true"), &body).await;
    assert_eq!(
        parse(&answer)[1]["clusters"]["c"]["services"][0]["breed"]["name"],
        "sleeper:1"
    );
    assert_eq!(
        common::get_status(&format!("{u}/breeds/sleeper:1")).await,
        404,
        "validate_only stores nothing"
    );
    assert_eq!(
        common::get_status(&format!("{u}/deployments/shop")).await,
        404
    );
    let answer = post(
        202,
        &format!("{u}?validate_only=true"),
        "kind: gateways\nname: edge\nport: 9998/http\nroutes: [shop/c/web]\n",
    )
    .await;
    assert_eq!(
        parse(&answer)[0]["routes"]["shop/c/web"]["weight"],
        "100%",
        "shown as it would be stored: {answer}"
    );
    // A deployment that cannot be made stops the whole request before anything is stored.
    let broken = format!(
        "kind: breeds\n{SLEEPER}---\nkind: deployments\nname: shop\nclusters:\n  c: missing:1\n"
    );
    let answer = post(400, u, &broken).await;
    assert!(answer.contains("missing:1"), "{answer}");
    assert_eq!(
        common::get_status(&format!("{u}/breeds/sleeper:1")).await,
        404,
        "nothing stored"
    );
    let answer = post(202, u, &body).await;
    let answer = parse(&answer);
    assert_eq!(
        (answer[0]["name"].as_str(), answer[1]["name"].as_str()),
        (Some("sleeper:1"), Some("shop"))
    );
    get(200, &format!("{u}/deployments/shop")).await;
    // DELETE with a deployment document removes the services it names.
    delete(
        202,
        u,
        Some("kind: deployments\nname: shop\nclusters:\n  c: sleeper:1\n"),
    )
    .await;
    wait_gone(u, "shop").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_settings_change_the_running_server_and_others_are_refused() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    let config = format!("{u}/config");
    let (status, _, body) =
        send(Method::PUT, &config, Some(yaml("server.body_limit: 200\n"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(parse(&body)["server.body_limit"], 200);
    let big = format!("{BREED}metadata: {{note: \"{}\"}}\n", "x".repeat(300));
    post(413, &format!("{u}/breeds"), &big).await;
    let (_, _, body) = send(Method::GET, &format!("{config}?type=dynamic"), None).await;
    assert_eq!(parse(&body), json!({"server.body_limit": 200}));
    let (_, _, body) = send(Method::GET, &format!("{config}?flatten=true"), None).await;
    assert_eq!(parse(&body)["server.body_limit"], 200);
    let (_, _, body) = send(Method::GET, &format!("{config}?type=startup"), None).await;
    assert_eq!(parse(&body)["server"]["body_limit"], 4_194_304);
    // Settings the running server cannot take are refused with the way to change them.
    let (status, _, body) =
        send(Method::POST, &config, Some(yaml("router:\n  kind: none\n"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("router.kind") && body.contains("restart"),
        "{body}"
    );
    let body = put(400, &config, "server.body_limit: many\n").await;
    assert!(body.contains("body_limit"), "{body}");
    assert_eq!(
        parse(
            &send(Method::GET, &format!("{config}?type=dynamic"), None)
                .await
                .2
        ),
        json!({"server.body_limit": 200}),
        "nothing changed"
    );
    // A token set at run time is required at once, and hidden.
    let body = put(
        202,
        &config,
        "server.token: s3cret-token\nserver.body_limit: null\n",
    )
    .await;
    assert!(!body.contains("s3cret-token"), "{body}");
    get(401, &format!("{u}/breeds")).await;
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("{config}?type=dynamic"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(
        answer.json::<Value>().await.expect("json"),
        json!({"server.token": "<hidden>"})
    );
    let answer = client
        .post(&config)
        .bearer_auth("s3cret-token")
        .header("content-type", "application/json")
        .body(r#"{"server.token": null}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status().as_u16(), 202);
    get(200, &format!("{u}/breeds")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_static_kind_and_standalone_gateways_have_their_routes() {
    use reqwest::Method;
    // Gateways only computed: the standalone one's port is not bound.
    let server = Server::start(&[("router.kind", "none")]).await;
    let u = &server.url;
    let kinds = [
        ("breeds", "web:1.0", BREED.to_owned(), "deployable: {type: command, definition: /bin/false}"),
        ("blueprints", "shop", "name: shop\nclusters:\n  web: web:1.0\n".into(), "clusters:\n  api: web:1.0"),
        ("scales", "small", "name: small\ncpu: 0.1\nmemory: 64MB\ninstances: 1\n".into(), "cpu: 0.2\nmemory: 64MB"),
        ("slas", "fast", "name: fast\ntype: response_time_sliding_window\nthreshold: {upper: 800, lower: 50}\nwindow: {interval: 60, cooldown: 120}\n".into(), "type: escalation_only"),
        ("escalations", "up", "name: up\ntype: scale_instances\nminimum: 1\nmaximum: 10\nscale_by: 2\n".into(), "type: scale_instances\nminimum: 2\nmaximum: 4\nscale_by: 1"),
        ("conditions", "firefox", "name: firefox\ncondition: user-agent == Firefox\n".into(), "condition: user-agent == Chrome"),
        ("rewrites", "strip", "name: strip\npath: /%[path,regsub(^/api,)] if path_beg /api\n".into(), "path: /a if TRUE"),
        ("routes", "half", "name: half\nweight: 50%\n".into(), "weight: 25%"),
        ("templates", "base", "name: base\ndefinition:\n  deployable: base/image:1\n".into(), "definition:\n  deployable: base/image:2"),
    ];
    for (kind, name, doc, changed) in &kinds {
        let one = format!("{u}/{kind}/{name}");
        post(201, &format!("{u}/{kind}"), doc).await;
        get(200, &one).await;
        let replaced = format!("name: {name}\n{changed}\n");
        put(200, &one, &replaced).await;
        let (status, headers, _) = send(Method::GET, &format!("{u}/{kind}"), None).await;
        assert_eq!(
            (status, headers["x-total-count"].to_str().ok()),
            (200, Some("1")),
            "{kind}"
        );
        // An unknown field is named with its line; the stored one stays.
        let body = put(400, &one, &format!("{replaced}colour: red\n")).await;
        assert!(body.contains("colour"), "{kind}: {body}");
        get(200, &one).await;
    }
    for (kind, name, _, _) in kinds.iter().rev() {
        delete(204, &format!("{u}/{kind}/{name}"), None).await;
        assert_eq!(
            common::get_status(&format!("{u}/{kind}/{name}")).await,
            404,
            "{kind}"
        );
    }
    // Standalone gateways: POST, a port taken twice refused, DELETE; a deployment's is not.
    let edge = "name: edge\nport: 9999/http\nroutes: [shop/web/port]\n";
    let body = post(202, &format!("{u}/gateways?validate_only=true"), edge).await;
    assert_eq!(
        parse(&body)["routes"]["shop/web/port"]["weight"],
        "100%",
        "validate_only shows what would be stored: {body}"
    );
    assert_eq!(
        common::get_status(&format!("{u}/gateways/edge")).await,
        404,
        "and stores nothing"
    );
    let body = post(202, &format!("{u}/gateways"), edge).await;
    assert_eq!(
        parse(&body)["routes"]["shop/web/port"]["weight"],
        "100%",
        "weights defaulted: {body}"
    );
    let body = post(
        400,
        &format!("{u}/gateways"),
        "name: other\nport: 9999/http\nroutes: [a/b/c]\n",
    )
    .await;
    assert!(body.contains("9999") && body.contains("edge"), "{body}");
    assert_eq!(
        common::get_status(&format!("{u}/gateways/other")).await,
        404
    );
    post(
        400,
        &format!("{u}/gateways"),
        "name: shop/web/port\nroutes: [a/b/c]\n",
    )
    .await;
    delete(202, &format!("{u}/gateways/edge"), None).await;
    assert_eq!(common::get_status(&format!("{u}/gateways/edge")).await, 404);
    delete(202, &format!("{u}/gateways/edge"), None).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_expand_or_collapse_and_deployments_show_as_blueprints() {
    use reqwest::Method;
    let server = Server::start(&[]).await;
    let u = &server.url;
    post(201, &format!("{u}/breeds"), SLEEPER).await;
    let scale = "name: small\ncpu: 0.1\nmemory: 64MB\ninstances: 1\n";
    post(201, &format!("{u}/scales"), scale).await;
    let bp = "name: shop\nclusters:\n  c:\n    services:\n      - breed: sleeper:1\n        scale: small\n";
    post(201, &format!("{u}/blueprints"), bp).await;
    let (_, _, plain) = send(Method::GET, &format!("{u}/blueprints/shop"), None).await;
    let service = &parse(&plain)["clusters"]["c"]["services"][0];
    assert!(
        service["breed"].get("deployable").is_none(),
        "a reference: {plain}"
    );
    let expanded = get(200, &format!("{u}/blueprints/shop?expand_references=true")).await;
    let service = &parse(&expanded)["clusters"]["c"]["services"][0];
    assert_eq!(
        service["breed"]["deployable"]["definition"], "sleep 120",
        "{expanded}"
    );
    assert_eq!(service["scale"]["instances"], 1, "{expanded}");
    let (_, _, listed) = send(
        Method::GET,
        &format!("{u}/blueprints?expand_references=true"),
        None,
    )
    .await;
    assert_eq!(parse(&listed)[0], parse(&expanded), "lists show the same");
    get(
        400,
        &format!("{u}/blueprints?expand_references=true&only_references=true"),
    )
    .await;
    let body = get(400, &format!("{u}/blueprints?expand_references=maybe")).await;
    assert!(body.contains("expand_references"), "{body}");
    // A deployment as the blueprint that makes it: no runtime state; sent back, a no-op merge.
    put(
        202,
        &format!("{u}/deployments/shop"),
        "name: shop\nclusters:\n  c: sleeper:1\n",
    )
    .await;
    let shown = get(200, &format!("{u}/deployments/shop?as_blueprint=true")).await;
    let shown_json = parse(&shown);
    assert_eq!(shown_json["kind"], "blueprints", "{shown}");
    assert!(
        !shown.contains("instances\":[") && !shown.contains("\"status\""),
        "{shown}"
    );
    assert_eq!(
        shown_json["clusters"]["c"]["services"][0]["breed"]["deployable"]["definition"],
        "sleep 120"
    );
    let (_, _, refs) = send(
        Method::GET,
        &format!("{u}/deployments?as_blueprint=true&only_references=true"),
        None,
    )
    .await;
    assert_eq!(
        parse(&refs)[0]["clusters"]["c"]["services"][0]["breed"],
        json!({"reference": "sleeper:1"}),
        "a reference, written as Vamp writes it: {refs}"
    );
    expect(
        202,
        Method::PUT,
        &format!("{u}/deployments/shop"),
        Some((
            reqwest::header::CONTENT_TYPE,
            "application/json",
            shown.clone(),
        )),
    )
    .await;
    undeploy(u, "shop", &shown).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_what_is_stored_and_only_configured_origins_may_call() {
    use reqwest::Method;
    let server = Server::start(&[("server.cors_origins", "http://ui.example")]).await;
    let u = &server.url;
    post(201, &format!("{u}/breeds"), BREED).await;
    for path in ["stats", "statistics"] {
        let body = get(200, &format!("{u}/{path}")).await;
        let stats = parse(&body);
        assert_eq!(
            (stats["breeds"].as_u64(), stats["blueprints"].as_u64()),
            (Some(1), Some(0)),
            "{body}"
        );
        assert!(
            stats["events"].as_u64() >= Some(1),
            "the breed's archive event: {body}"
        );
    }
    for path in ["information", "configuration"] {
        get(200, &format!("{u}/{path}")).await;
    }
    // A browser's preflight from a configured origin is answered (spec §2.1); from any other
    // origin the request goes no further (issue 15).
    let answer = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{u}/breeds"))
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .expect("preflight");
    assert_eq!(answer.status(), 403);
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let answer = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{u}/breeds"))
        .header("Origin", "http://ui.example")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .expect("preflight");
    let headers = answer.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://ui.example");
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .expect("ascii")
            .contains("PUT")
    );
    assert_eq!(headers["access-control-max-age"], "1800");
    let answer = reqwest::Client::new()
        .get(format!("{u}/breeds"))
        .header("Origin", "http://ui.example")
        .send()
        .await
        .expect("get");
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_lowercase();
    assert!(
        exposed.contains("link") && exposed.contains("x-total-count"),
        "{exposed}"
    );
    server.stop().await;
}

/// The test harness itself: a server dropped without undeploying (a failing test) leaves no
/// instance running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_test_server_leaves_no_process_behind() {
    let server = Server::start(&[]).await;
    let u = server.url.clone();
    common::store_demo_breed(&u).await;
    common::deploy(&u, "left", "name: left\nclusters:\n  c: app:1.0.0\n").await;
    let port = eventually_within("an instance", Duration::from_secs(30), || async {
        let (_, _, body) = send(reqwest::Method::GET, &format!("{u}/deployments/left"), None).await;
        parse(&body)["clusters"]["c"]["services"][0]["instances"][0]["ports"]["web"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or(body)
    })
    .await;
    drop(server);
    let what = format!("the instance on {port} to stop with its server");
    eventually_within(&what, Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
}

/// Issue 16: a weight change through the API reaches the traffic without waiting for the
/// periodic pass (an hour away here) — through `PUT /gateways/{name}`, the multi-document
/// root and a deployment's merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_changes_reach_the_traffic_without_waiting_for_the_resync() {
    let server = Server::start(&[("synchronization.period", "3600")]).await;
    let u = &server.url;
    // Who answers through `port` now (the demo app names its version; a bare backend its
    // name), waiting until it is `want`.
    async fn answers(port: u16, want: &str) {
        let want = want.to_owned();
        vamp_core::testkit::eventually(&format!("{want} answering on {port}"), || {
            let want = want.clone();
            async move {
                let body = reqwest::get(format!("http://127.0.0.1:{port}/"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                body.contains(&want).then_some(())
            }
        })
        .await;
    }
    let (a, b) = (
        vamp_gateway::testkit::backend("alpha").await,
        vamp_gateway::testkit::backend("beta").await,
    );
    let port = vamp_core::testkit::free_port();
    let gateway = |to_a: bool| {
        let (wa, wb) = if to_a { (100, 0) } else { (0, 100) };
        format!(
            "name: edge\nport: {port}/http\nroutes:\n  '[127.0.0.1:{a}]': {{weight: {wa}%}}\n  '[127.0.0.1:{b}]': {{weight: {wb}%}}\n"
        )
    };
    post(202, &format!("{u}/gateways"), &gateway(true)).await;
    answers(port, "alpha").await;
    put(202, &format!("{u}/gateways/edge"), &gateway(false)).await;
    answers(port, "beta").await;
    let root = format!("kind: gateways\n{}", gateway(true));
    put(202, u, &root).await;
    answers(port, "alpha").await;

    // A deployment's gateway: two versions, the traffic shifted by a merge.
    let exe = env!("CARGO_BIN_EXE_vamp-server");
    for version in ["1.0.0", "2.0.0"] {
        let breed = format!(
            "name: app:{version}\ndeployable: {{type: command, definition: \"'{exe}' demo-app --app-version {version}\"}}\nports: {{web: 8080/http}}\n"
        );
        post(201, &format!("{u}/breeds"), &breed).await;
    }
    let external = vamp_core::testkit::free_port();
    let shift = |w1: u8| {
        format!(
            "name: shop\ngateways:\n  {external}: app/web\nclusters:\n  app:\n    services: [app:1.0.0, app:2.0.0]\n    gateways:\n      web:\n        routes:\n          app:1.0.0: {{weight: {w1}%}}\n          app:2.0.0: {{weight: {}%}}\n",
            100 - w1
        )
    };
    common::deploy(u, "shop", &shift(100)).await;
    answers(external, "1.0.0").await;
    common::deploy(u, "shop", &shift(0)).await;
    answers(external, "2.0.0").await;
    undeploy(
        u,
        "shop",
        "name: shop\nclusters:\n  app:\n    services: [app:1.0.0, app:2.0.0]\n",
    )
    .await;
    server.stop().await;
}
