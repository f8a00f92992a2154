//! Issue 17: the API answers as Vamp's does — `validate_only` never writes, response shapes
//! clients read, imports of stored templates, strict media types, event query bodies.

use reqwest::Method;
use serde_json::{Value, json};

mod common;

use common::{Server, get, parse, post, send, yaml};

const BREED: &str =
    "name: web:1.0\ndeployable: {type: command, definition: /bin/true}\nports: {web: 8080/http}\n";

/// Everything the store holds, as the API lists it: every kind (all pages), the deployments,
/// the gateways, the events and the dynamic configuration.
async fn dump(u: &str) -> Value {
    let mut out = serde_json::Map::new();
    for kind in common::STORED_KINDS.into_iter().chain(["events"]) {
        let mut all = Vec::new();
        for page in 1.. {
            let body = get(200, &format!("{u}/{kind}?page={page}&per_page=30")).await;
            let items = parse(&body).as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                break;
            }
            all.extend(items);
        }
        out.insert(kind.to_owned(), Value::Array(all));
    }
    let (_, _, config) = send(Method::GET, &format!("{u}/config?type=dynamic"), None).await;
    out.insert("config".into(), parse(&config));
    Value::Object(out)
}

/// Every route that writes, with a body that would change the store.
fn writes(u: &str) -> Vec<(Method, String, Option<String>)> {
    let w = |m: Method, path: &str, body: Option<&str>| {
        (m, format!("{u}{path}"), body.map(str::to_owned))
    };
    vec![
        w(
            Method::POST,
            "/breeds",
            Some("name: new:1\ndeployable: {type: command, definition: /bin/true}\n"),
        ),
        w(
            Method::PUT,
            "/breeds/web:1.0",
            Some(&BREED.replace("/bin/true", "/bin/false")),
        ),
        w(Method::DELETE, "/breeds/web:1.0", None),
        w(
            Method::POST,
            "/scales",
            Some("name: big\ncpu: 1\nmemory: 1GB\ninstances: 2\n"),
        ),
        w(Method::DELETE, "/scales/small", None),
        w(
            Method::POST,
            "/templates",
            Some("name: t2\ndefinition: {a: 1}\n"),
        ),
        w(Method::DELETE, "/templates/base", None),
        w(
            Method::POST,
            "/conditions",
            Some("name: c2\ncondition: has cookie b\n"),
        ),
        w(Method::DELETE, "/conditions/beta", None),
        w(
            Method::POST,
            "/gateways",
            Some("name: g2\nroutes:\n  '[127.0.0.1:1]': {weight: 100%}\n"),
        ),
        w(
            Method::PUT,
            "/gateways/edge",
            Some("name: edge\nport: 0\nroutes:\n  '[127.0.0.1:2]': {weight: 100%}\n"),
        ),
        w(Method::DELETE, "/gateways/edge", None),
        w(
            Method::PUT,
            "/deployments/shop/clusters/c/services/web:1.0/scale",
            Some("cpu: 0.5\nmemory: 128MB\ninstances: 2\n"),
        ),
        w(
            Method::PUT,
            "/deployments/shop/clusters/c/sla",
            Some(
                "type: escalation_only\nescalations: [{type: scale_instances, minimum: 1, maximum: 2, scale_by: 1}]\n",
            ),
        ),
        w(Method::DELETE, "/deployments/shop/clusters/c/sla", None),
        w(
            Method::PUT,
            "/deployments/shop",
            Some("name: shop\nclusters:\n  d: web:1.0\n"),
        ),
        w(
            Method::POST,
            "/deployments",
            Some("name: other\nclusters:\n  c: web:1.0\n"),
        ),
        w(
            Method::DELETE,
            "/deployments/shop",
            Some("name: shop\nclusters:\n  c: web:1.0\n"),
        ),
        w(Method::POST, "/events", Some("tags: [a, b]\nvalue: 1\n")),
        w(Method::PUT, "/workflows/flow/status", Some("suspended")),
        w(Method::PUT, "/config", Some("server.body_limit: 1000000\n")),
        w(
            Method::POST,
            "/docker-compose?name=compose",
            Some("services:\n  web:\n    image: nginx\n"),
        ),
        w(
            Method::POST,
            "",
            Some(
                "kind: breeds\nname: root:1\ndeployable: {type: command, definition: /bin/true}\n",
            ),
        ),
        w(
            Method::PUT,
            "",
            Some("kind: scales\nname: small\ncpu: 2\nmemory: 1GB\ninstances: 1\n"),
        ),
        w(Method::DELETE, "", Some("kind: breeds\nname: web:1.0\n")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_only_never_changes_anything_on_any_route() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    // A populated store.
    let populate = format!(
        "kind: breeds\n{BREED}---\nkind: scales\nname: small\ncpu: 0.1\nmemory: 64MB\ninstances: 1\n---\nkind: templates\nname: base\ndefinition: {{a: 1}}\n---\nkind: conditions\nname: beta\ncondition: has cookie beta\n---\nkind: gateways\nname: edge\nport: 0\nroutes:\n  '[127.0.0.1:1]': {{weight: 100%}}\n---\nkind: workflows\nname: flow\nbreed: web:1.0\nschedule: daemon\nstatus: running\n"
    );
    // A service that stays up, so the reconciler has nothing left to change once it runs.
    let populate = populate.replace("/bin/true", "sleep 300");
    post(202, u, &populate).await;
    common::deploy(u, "shop", "name: shop\nclusters:\n  c: web:1.0\n").await;
    let url = format!("{u}/deployments/shop");
    vamp_core::testkit::eventually("the deployment done", || {
        let url = url.clone();
        async move {
            let (_, _, body) = send(Method::GET, &url, None).await;
            (parse(&body)["clusters"]["c"]["services"][0]["status"]["phase"]["name"] == "Done")
                .then_some(())
        }
    })
    .await;
    // The workflow runtime has scheduled the workflow (its `scheduled` event is stored), so
    // it changes nothing more while the writes are tried.
    let scheduled = format!("{u}/events?tag=workflows:flow&tag=scheduled");
    vamp_core::testkit::eventually("the workflow scheduled", || async {
        parse(&get(200, &scheduled).await)
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let before = dump(u).await;
    for (method, url, body) in writes(u) {
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}validate_only=true");
        let body = body.map(|b| {
            let kind = if b == "suspended" {
                "text/plain"
            } else {
                "application/x-yaml"
            };
            (reqwest::header::CONTENT_TYPE, kind, b)
        });
        let (status, _, text) = send(method.clone(), &url, body).await;
        assert!(status < 500, "{method} {url}: {status} {text}");
        let after = dump(u).await;
        assert_eq!(
            after, before,
            "{method} {url} ({status}) changed the store: {text}"
        );
    }
    common::undeploy(u, "shop", "name: shop\nclusters:\n  c: web:1.0\n").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_have_vamps_shapes() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    // A breed without variables still lists them, empty.
    let body = post(
        201,
        &format!("{u}/breeds"),
        "name: bare:1\ndeployable: {type: command, definition: /bin/true}\n",
    )
    .await;
    let breed = parse(&body);
    for (field, empty) in [
        ("environment_variables", json!({})),
        ("ports", json!({})),
        ("constants", json!({})),
        ("arguments", json!([])),
        ("dependencies", json!({})),
    ] {
        assert_eq!(breed[field], empty, "{field}: {body}");
    }
    // A service's breed by name is a reference, also from the cluster shorthand.
    for bp in [
        "name: a\nclusters:\n  c: bare:1\n",
        "name: b\nclusters:\n  c:\n    services:\n      - breed: bare:1\n",
    ] {
        let (status, _, body) =
            send(Method::POST, &format!("{u}/blueprints"), Some(yaml(bp))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            parse(&body)["clusters"]["c"]["services"][0]["breed"],
            json!({"reference": "bare:1"}),
            "{body}"
        );
    }
    // A standalone gateway gets its generated virtual host (spec §3.5).
    let body = post(202, &format!("{u}/gateways"), "name: shop\nvirtual_hosts: [shop.example.com]\nroutes:\n  '[127.0.0.1:1]': {weight: 100%}\n").await;
    assert_eq!(
        parse(&body)["virtual_hosts"],
        json!(["shop.example.com", "shop.vamp"]),
        "{body}"
    );
    // Info names this server and since when it runs.
    let (_, _, body) = send(Method::GET, &format!("{u}/info"), None).await;
    let info = parse(&body);
    assert_eq!(info["uuid"].as_str().map(str::len), Some(36), "{body}");
    assert!(
        info["running_since"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some(),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_follow_vamps_rules() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    // A bare number is not a weight.
    let body = post(400, &format!("{u}/gateways"), "name: g\nroutes:\n  '[127.0.0.1:1]':\n    weight: 50\n  '[127.0.0.1:2]':\n    weight: 50%\n").await;
    let message = parse(&body)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("routes.[127.0.0.1:1].weight") && message.contains("line 4"),
        "{message}"
    );
    // An import of a stored template resolves through the API (spec §1.11).
    post(201, &format!("{u}/templates"), "name: base\ndefinition:\n  deployable: {type: command, definition: /bin/true}\n  ports: {web: 8080/http}\n").await;
    let body = post(201, &format!("{u}/breeds"), "name: web:2\nimport: base\n").await;
    assert_eq!(parse(&body)["ports"]["web"], "8080/http", "{body}");
    let body = post(
        400,
        &format!("{u}/breeds"),
        "name: web:3\nimport: nowhere\n",
    )
    .await;
    assert!(body.contains("ImportReferenceError"), "{body}");
    // Media types: an HTML Accept and a text/plain create are refused, naming what works.
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("{u}/breeds"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("get");
    assert_eq!(answer.status(), 400);
    assert!(
        answer
            .text()
            .await
            .unwrap_or_default()
            .contains("application/json")
    );
    let answer = client
        .post(format!("{u}/breeds"))
        .header("Content-Type", "text/plain")
        .body(BREED)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 400);
    // A JavaScript breed as the script itself.
    let answer = client
        .put(format!("{u}/breeds/script:1"))
        .header("Content-Type", "application/javascript")
        .body("console.log('hi')")
        .send()
        .await
        .expect("put");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        body["deployable"],
        json!({"type": "application/javascript", "definition": "console.log('hi')"})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_queried_with_a_query_body() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    for (tags, value) in [("[a, b]", 1), ("[a]", 2), ("[a, b]", 5), ("[c]", 7)] {
        post(
            201,
            &format!("{u}/events"),
            &format!("tags: {tags}\nvalue: {value}\ntype: metrics\n"),
        )
        .await;
    }
    let query = |body: &str| {
        let (u, body) = (u.clone(), body.to_owned());
        async move {
            let (status, _, text) =
                send(Method::GET, &format!("{u}/events"), Some(yaml(&body))).await;
            assert_eq!(status, 200, "{text}");
            parse(&text)
        }
    };
    let found = query("tags: [a, b]\n").await;
    assert_eq!(found.as_array().map(Vec::len), Some(2), "{found}");
    let found = query("tags: [a]\ntimestamp: {gte: now-1h, lte: now}\n").await;
    assert_eq!(found.as_array().map(Vec::len), Some(3), "{found}");
    let found = query("tags: [a]\ntimestamp: {lt: now-1h}\n").await;
    assert_eq!(found.as_array().map(Vec::len), Some(0), "{found}");
    let sum = query("tags: [a, b]\naggregator: {type: sum}\n").await;
    assert_eq!(sum, json!({"value": 6.0}));
    let count = query("tags: [a]\naggregator: {type: count}\n").await;
    assert_eq!(count, json!({"value": 3}));
    server.stop().await;
}
