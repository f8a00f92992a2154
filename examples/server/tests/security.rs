//! Issue 15, probed as an attacker and as a careless user would: a web page or a rebinding DNS
//! name cannot reach the API; tokens are strings whatever they look like; what cannot be
//! served is refused when it is validated; limits hold; slow clients are cut off; hostile
//! names and values are refused with the field named and nothing stored.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

mod common;

use common::{Server, get, parse, post, send, yaml};

/// A page's attack (issue 15, point 1): a breed that runs a command, and a deployment of it.
fn attack(marker: &std::path::Path) -> String {
    format!(
        "---\nkind: breeds\nname: evil:1\ndeployable: {{type: command, definition: \"touch {}\"}}\nports: {{web: 8080/http}}\n---\nkind: deployments\nname: evil\nclusters:\n  evil: evil:1\n",
        marker.display()
    )
}

/// How many artifacts of `kind` are stored.
async fn count(u: &str, kind: &str) -> String {
    let (status, headers, body) = send(Method::GET, &format!("{u}/{kind}"), None).await;
    assert_eq!(status, 200, "{body}");
    headers["x-total-count"].to_str().expect("ascii").to_owned()
}

async fn nothing_stored(u: &str) {
    for kind in ["breeds", "deployments", "gateways"] {
        assert_eq!(count(u, kind).await, "0", "{kind} stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_page_cannot_make_the_server_run_a_command() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let client = reqwest::Client::new();
    // A plain cross-origin form-like POST (text/plain needs no preflight).
    let answer = client
        .post(u.as_str())
        .header("Origin", "http://evil.example")
        .header("Content-Type", "text/plain")
        .body(attack(&marker))
        .send()
        .await
        .expect("post");
    assert_eq!(
        answer.status(),
        403,
        "{}",
        answer.text().await.unwrap_or_default()
    );
    // The same page's request had it no Origin: the media type alone refuses it.
    let answer = client
        .post(u.as_str())
        .header("Content-Type", "text/plain")
        .body(attack(&marker))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap_or_default();
    assert!(text.contains("application/json"), "{text}");
    // DNS rebinding: the page's name now resolves to 127.0.0.1, so it is same-origin; the
    // Host is the page's name.
    let answer = client
        .post(u.as_str())
        .header("Host", "evil.example:8080")
        .header("Origin", "http://evil.example:8080")
        .header("Content-Type", "application/x-yaml")
        .body(attack(&marker))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 403);
    let text = answer.text().await.unwrap_or_default();
    assert!(text.contains("server.allowed_hosts"), "{text}");
    nothing_stored(u).await;
    server.stop().await;

    // With a token set, none of it gets further without the token either.
    let server = Server::start(&[("server.token", "0123456789abcdef")]).await;
    let u = &server.url;
    let answer = client
        .post(u.as_str())
        .header("Content-Type", "application/x-yaml")
        .body(attack(&marker))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 401);
    for kind in ["breeds", "deployments"] {
        let answer = client
            .get(format!("{u}/{kind}"))
            .bearer_auth("0123456789abcdef")
            .send()
            .await
            .expect("get");
        assert_eq!(answer.headers()["x-total-count"], "0", "{kind}");
    }
    server.stop().await;
    assert!(!marker.exists(), "the command ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_only_where_the_process_driver_is_chosen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    // A server on the embedded defaults, the driver not chosen.
    let server = Server::start_unset_driver(&[]).await;
    let u = &server.url;
    let body = post(400, u, &attack(&marker)).await;
    let message = parse(&body)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("UnsupportedDeployableError")
            && message.contains("driver.kind")
            && message.contains("clusters.evil"),
        "{message}"
    );
    nothing_stored(u).await;
    server.stop().await;
    assert!(!marker.exists(), "the command ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_from_the_environment_the_api_and_in_any_scheme_case() {
    use vamp_server::config::ServerConfig;
    // A token that looks like a number, a boolean or is quoted stays the text it is.
    for token in ["12345678", "1e300000", "\"quoted-token\"", "0x1F2E3D4C"] {
        let env = [("VAMP_SERVER__TOKEN".to_owned(), token.to_owned())];
        let config = ServerConfig::load(None, env, []).expect("a token is a string");
        assert_eq!(config.server.token.as_deref(), Some(token));
    }
    // `true` is a string too — one too short to be a token.
    let env = [("VAMP_SERVER__TOKEN".to_owned(), "true".to_owned())];
    let err = ServerConfig::load(None, env, [])
        .expect_err("short")
        .to_string();
    assert!(err.contains("server.token is 4 characters long"), "{err}");
    // A variable that does not fit names itself.
    let env = [("VAMP_SERVER__BODY_LIMIT".to_owned(), "lots".to_owned())];
    let err = ServerConfig::load(None, env, [])
        .expect_err("not a number")
        .to_string();
    assert!(
        err.contains("VAMP_SERVER__BODY_LIMIT") && err.contains("lots"),
        "{err}"
    );
    let env = [("VAMP_SERVER__TOKEN".to_owned(), "two words".to_owned())];
    let err = ServerConfig::load(None, env, [])
        .expect_err("a space")
        .to_string();
    assert!(err.contains("server.token"), "{err}");

    let server = Server::start(&[(
        "server.tokens",
        "{ ci = \"ci-token-0001\", alice = \"alice-token-1\" }",
    )])
    .await;
    let u = &server.url;
    let client = reqwest::Client::new();
    for (header, status) in [
        ("Bearer ci-token-0001", 200),
        ("bearer alice-token-1", 200),
        ("BEARER ci-token-0001", 200),
        ("Bearer nope-nope-nope", 401),
        ("Basic ci-token-0001", 401),
    ] {
        let answer = client
            .get(format!("{u}/info"))
            .header("Authorization", header)
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), status, "{header}");
    }
    // A token no client could send is refused where it is set, and the API stays usable.
    let answer = client
        .put(format!("{u}/config"))
        .header("Authorization", "Bearer ci-token-0001")
        .header("Content-Type", "application/json")
        .body(json!({"server.token": "line\nbreak-token"}).to_string())
        .send()
        .await
        .expect("put");
    assert_eq!(answer.status(), 400);
    let text = answer.text().await.unwrap_or_default();
    assert!(text.contains("server.token"), "{text}");
    let answer = client
        .get(format!("{u}/info"))
        .header("Authorization", "Bearer ci-token-0001")
        .send()
        .await
        .expect("get");
    assert_eq!(answer.status(), 200);
    // Rotation: a new named token is added while the old one still works.
    let answer = client
        .put(format!("{u}/config"))
        .header("Authorization", "Bearer ci-token-0001")
        .header("Content-Type", "application/json")
        .body(json!({"server.tokens": {"ci": "ci-token-0002"}}).to_string())
        .send()
        .await
        .expect("put");
    assert_eq!(answer.status(), 202);
    for (token, status) in [("ci-token-0002", 200), ("ci-token-0001", 401)] {
        let answer = client
            .get(format!("{u}/info"))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), status, "{token}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_served_or_is_too_big_is_refused_when_validated() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let breed = "name: web:1\ndeployable: {type: command, definition: /bin/true}\nports: {web: 8080/http}\n";
    post(201, &format!("{u}/breeds"), breed).await;
    let docker = "name: img:1\ndeployable: {type: container/docker, definition: nginx}\nports: {web: 80/http}\n";
    post(201, &format!("{u}/breeds"), docker).await;
    let cases = [
        // A literal HAProxy ACL on the embedded router.
        (
            "gateways",
            "name: acl\nport: 0\nroutes:\n  '[127.0.0.1:1]': {condition: 'hdr_sub(user-agent) Android'}\n",
            vec![
                "UnsupportedConditionError",
                "routes.[127.0.0.1:1].condition",
            ],
        ),
        // A docker breed on the process driver.
        (
            "deployments",
            "name: d1\nclusters:\n  c: img:1\n",
            vec!["UnsupportedDeployableError", "clusters.c"],
        ),
        // A million instances, a billion CPUs.
        (
            "deployments",
            "name: d2\nclusters:\n  c:\n    breed: web:1\n    scale: {instances: 1000000, cpu: 1, memory: 64MB}\n",
            vec!["LimitExceededError", "instances"],
        ),
        (
            "deployments",
            "name: d3\nclusters:\n  c:\n    breed: web:1\n    scale: {instances: 1, cpu: 1000000000, memory: 64MB}\n",
            vec!["LimitExceededError", "cpu"],
        ),
    ];
    for (kind, body, words) in cases {
        for query in ["?validate_only=true", ""] {
            let text = post(400, &format!("{u}/{kind}{query}"), body).await;
            let message = parse(&text)["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for word in &words {
                assert!(message.contains(word), "'{word}' missing from: {message}");
            }
        }
    }
    assert_eq!(count(u, "deployments").await, "0");
    // A gateway without a port, or with port 0, gets one and is served at once.
    for (name, port) in [("a", "port: 0\n"), ("b", "")] {
        let body = format!("name: {name}\n{port}routes:\n  '[127.0.0.1:1]': {{weight: 100%}}\n");
        let (status, _, text) =
            send(Method::POST, &format!("{u}/gateways"), Some(yaml(&body))).await;
        assert_eq!(status, 202, "{text}");
        let port = parse(&text)["port"].as_str().unwrap_or_default().to_owned();
        let number: u16 = port
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a port was given: {text}"));
        assert!(number != 0, "{text}");
        // Served: the route's target refuses, so the gateway answers 502/503 — not a
        // refused connection.
        vamp_core::testkit::eventually("the gateway served", || async move {
            reqwest::get(format!("http://127.0.0.1:{number}/"))
                .await
                .ok()
                .map(|r| r.status().as_u16())
                .filter(|s| *s >= 500)
        })
        .await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_the_api_keeps_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&[("server.header_timeout", "1")]).await;
    let u = &server.url;
    let address = u
        .trim_start_matches("http://")
        .trim_end_matches("/api/v1")
        .to_owned();
    const SOCKETS: usize = 400;
    let mut slow = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let mut s = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        s.write_all(b"GET /api/v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .expect("half a header");
        slow.push(s);
    }
    // The API answers the while.
    let _ = get(200, &format!("{u}/info")).await;
    // Every slow socket is closed by the server (bounded: 20 s in all, with a 1 s timeout).
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        let mut closed = 0;
        for mut s in slow {
            let mut buf = [0u8; 256];
            // EOF or a reset: either way the server let go.
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            closed += 1;
        }
        closed
    })
    .await
    .expect("the server closes slow clients after the header timeout");
    assert_eq!(closed, SOCKETS);
    let _ = get(200, &format!("{u}/info")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_bomb_is_refused_small() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    // 379 bytes that expand to 10^9 values.
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let text = post(400, &format!("{u}/breeds"), bomb).await;
    assert!(text.contains("expands to more than"), "{text}");
    let _ = get(200, &format!("{u}/info")).await;
    server.stop().await;
}

/// Hostile strings: control characters, bidirectional overrides, separators, lengths.
fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let nasty = prop_oneof![
        Just("\u{0}".to_owned()),
        Just("\n".to_owned()),
        Just("\r\nX-Injected: 1".to_owned()),
        Just("\u{202E}".to_owned()),
        Just("\u{2066}".to_owned()),
        Just("\u{1b}[31m".to_owned()),
        Just(" ".to_owned()),
        Just("/".to_owned()),
        Just("[".to_owned()),
        Just("x".repeat(300)),
    ];
    ("[a-z]{0,6}", nasty, "[a-z]{0,6}").prop_map(|(a, n, b)| format!("{a}{n}{b}"))
}

/// Hostile text for data-plane values: control and bidirectional-control characters.
fn control() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let nasty = prop_oneof![
        Just("\u{0}".to_owned()),
        Just("\n".to_owned()),
        Just("\r\nbackend evil".to_owned()),
        Just("\u{202E}".to_owned()),
        Just("\u{1b}[31m".to_owned()),
    ];
    ("[a-z]{1,6}", nasty).prop_map(|(a, n)| format!("{a}{n}"))
}

/// One create per route, the hostile text in the field `field` names; `value` goes in
/// data-plane values.
fn creates(name: &str, value: &str) -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("breeds", json!({"name": name, "deployable": "x"}), "name"),
        (
            "blueprints",
            json!({"name": name, "clusters": {"c": "web:1"}}),
            "name",
        ),
        (
            "scales",
            json!({"name": name, "cpu": 1, "memory": "64MB", "instances": 1}),
            "name",
        ),
        (
            "slas",
            json!({"name": name, "type": "response_time_sliding_window", "window": {"interval": 60, "cooldown": 60}, "threshold": {"upper": 100, "lower": 10}}),
            "name",
        ),
        (
            "escalations",
            json!({"name": name, "type": "scale_instances", "minimum": 1, "maximum": 2, "scale_by": 1}),
            "name",
        ),
        (
            "conditions",
            json!({"name": name, "condition": "has cookie a"}),
            "name",
        ),
        (
            "rewrites",
            json!({"name": name, "path": "/a if { path_beg /b }"}),
            "name",
        ),
        ("routes", json!({"name": name, "weight": "50%"}), "name"),
        ("templates", json!({"name": name, "a": 1}), "name"),
        (
            "workflows",
            json!({"name": name, "breed": "web:1", "schedule": "daemon"}),
            "name",
        ),
        (
            "gateways",
            json!({"name": name, "port": 0, "routes": {"[127.0.0.1:1]": {"weight": "100%"}}}),
            "name",
        ),
        (
            "deployments",
            json!({"name": name, "clusters": {"c": "web:1"}}),
            "name",
        ),
        // Hostile values in data-plane fields.
        (
            "gateways",
            json!({"name": "g", "port": 0, "routes": {"[127.0.0.1:1]": {"weight": "100%", "condition": format!("has cookie {value}")}}}),
            "condition",
        ),
        (
            "gateways",
            json!({"name": "g", "port": 0, "virtual_hosts": [value], "routes": {"[127.0.0.1:1]": {"weight": "100%"}}}),
            "virtual_hosts",
        ),
        (
            "blueprints",
            json!({"name": "bp", "clusters": {name: "web:1"}}),
            "clusters",
        ),
    ]
}

#[test]
fn hostile_names_and_values_are_refused_with_the_field_named_and_nothing_stored() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(Server::start(&[]));
    let u = server.url.clone();
    runtime.block_on(async {
        let breed = "name: web:1\ndeployable: {type: command, definition: /bin/true}\nports: {web: 8080/http}\n";
        post(201, &format!("{u}/breeds"), breed).await;
    });
    let kinds = common::STORED_KINDS;
    let counts = |runtime: &tokio::runtime::Runtime| -> Vec<String> {
        runtime.block_on(async {
            let mut out = Vec::new();
            for kind in kinds {
                out.push(count(&u, kind).await);
            }
            out
        })
    };
    let before = counts(&runtime);
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(name in hostile(), value in control())| {
        for (kind, body, field) in creates(&name, &value) {
            let (status, _, text) = runtime.block_on(send(
                Method::POST,
                &format!("{u}/{kind}"),
                Some((reqwest::header::CONTENT_TYPE, "application/json", body.to_string())),
            ));
            prop_assert!((400..500).contains(&status), "{kind} {name:?}: {status} {text}");
            prop_assert!(text.contains(field), "{kind} {name:?}: '{field}' not named in {text}");
        }
        let (status, _, _) = runtime.block_on(send(Method::GET, &format!("{u}/info"), None));
        prop_assert_eq!(status, 200);
    });
    assert_eq!(counts(&runtime), before, "something hostile was stored");
    runtime.block_on(server.stop());
}
