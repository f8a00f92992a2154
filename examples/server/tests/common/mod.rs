//! What the server's tests share: a server on a loopback port, requests, waits.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use vamp_server::App;
use vamp_server::config::ServerConfig;

pub(crate) struct Server {
    pub(crate) url: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A test that panics leaves its deployments running: their processes lead process groups of
/// their own and outlive the server by design (a restarted server adopts them). The guard
/// Every kind of stored artifact, as the API names them.
pub(crate) const STORED_KINDS: [&str; 12] = [
    "breeds",
    "blueprints",
    "scales",
    "slas",
    "escalations",
    "conditions",
    "rewrites",
    "routes",
    "templates",
    "workflows",
    "gateways",
    "deployments",
];

/// The status of a GET of `url`.
pub(crate) async fn get_status(url: &str) -> u16 {
    send(reqwest::Method::GET, url, None).await.0
}

/// kills whatever the server's process driver still records.
impl Drop for Server {
    fn drop(&mut self) {
        let state = self._dir.path().join("process");
        if let Ok(driver) = vamp_drivers::process::ProcessDriver::new(
            vamp_drivers::process::ProcessConfig::new(state),
        ) {
            driver.kill_all_now();
        }
    }
}

impl Server {
    /// A server on memory persistence and the process driver (chosen explicitly, so it runs
    /// the tests' `command` breeds), with `extra` settings over that.
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Server {
        let mut flags = vec![("driver.kind", "process")];
        flags.extend_from_slice(extra);
        Self::start_unset_driver(&flags).await
    }

    /// A server with `driver.kind` left as a fresh installation has it (unset, so the process
    /// driver runs no commands) unless `extra` sets it.
    pub(crate) async fn start_unset_driver(extra: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut flags = vec![
            ("server.listen".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "server.data_dir".to_owned(),
                dir.path().display().to_string(),
            ),
            ("persistence.kind".to_owned(), "memory".to_owned()),
            // Tests that count artifacts and events start without the stock workflows and
            // their events every 10 s; tests of those workflows turn them on.
            ("workflows.stock".to_owned(), "false".to_owned()),
            (
                "gateways.ports".to_owned(),
                vamp_core::testkit::gateway_port_slice(),
            ),
        ];
        flags.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = ServerConfig::load(None, [], flags).expect("config");
        let app = App::build(config).await.expect("app");
        let listener = app.bind().await.expect("bind");
        let url = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Server {
            url,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let served = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("graceful shutdown in time")
                .expect("task");
            served.expect("served");
        }
    }
}

pub(crate) fn yaml(body: &str) -> (reqwest::header::HeaderName, &'static str, String) {
    (
        reqwest::header::CONTENT_TYPE,
        "application/x-yaml",
        body.to_owned(),
    )
}

pub(crate) async fn send(
    method: reqwest::Method,
    url: &str,
    body: Option<(reqwest::header::HeaderName, &'static str, String)>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url);
    if let Some((name, value, body)) = body {
        request = request.header(name, value).body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

/// Sends like [`send`], asserts the answer's status is `want` and returns its body.
pub(crate) async fn expect(
    want: u16,
    method: reqwest::Method,
    url: &str,
    body: Option<(reqwest::header::HeaderName, &'static str, String)>,
) -> String {
    let (status, _, answer) = send(method, url, body).await;
    assert_eq!(status, want, "{url}: {answer}");
    answer
}

/// `GET url`, expecting status `want`: the answer's body.
pub(crate) async fn get(want: u16, url: &str) -> String {
    expect(want, reqwest::Method::GET, url, None).await
}

/// `POST url` with the YAML `body`, expecting status `want`: the answer's body.
pub(crate) async fn post(want: u16, url: &str, body: &str) -> String {
    expect(want, reqwest::Method::POST, url, Some(yaml(body))).await
}

/// `PUT url` with the YAML `body`, expecting status `want`: the answer's body.
pub(crate) async fn put(want: u16, url: &str, body: &str) -> String {
    expect(want, reqwest::Method::PUT, url, Some(yaml(body))).await
}

/// `DELETE url`, with the YAML `body` if any, expecting status `want`: the answer's body.
pub(crate) async fn delete(want: u16, url: &str, body: Option<&str>) -> String {
    expect(want, reqwest::Method::DELETE, url, body.map(yaml)).await
}

/// Waits (at most 30 s) until the deployment is gone — its processes with it, which would
/// otherwise outlive the test's server.
pub(crate) async fn wait_gone(u: &str, deployment: &str) {
    let url = format!("{u}/deployments/{deployment}");
    let what = format!("deployment {deployment} to go");
    vamp_core::testkit::eventually_within(&what, Duration::from_secs(30), || async {
        send(reqwest::Method::GET, &url, None).await.0 == 404
    })
    .await;
}

pub(crate) fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Stores breed `app:1.0.0`: the demo service, run by this very server's `demo-app`
/// subcommand, on port `web`.
pub(crate) async fn store_demo_breed(api: &str) {
    let exe = env!("CARGO_BIN_EXE_vamp-server");
    let breed = format!(
        "name: app:1.0.0\ndeployable: {{type: command, definition: \"'{exe}' demo-app\"}}\nports: {{web: 8080/http}}\n"
    );
    post(201, &format!("{api}/breeds"), &breed).await;
}

/// Deploys (`PUT`) the blueprint `body` (YAML) as deployment `name`: 202.
pub(crate) async fn deploy(u: &str, name: &str, body: &str) {
    put(202, &format!("{u}/deployments/{name}"), body).await;
}

/// Removes the services `body` (YAML) names from deployment `name` (202), then waits until the
/// deployment is gone — its processes with it.
pub(crate) async fn undeploy(u: &str, name: &str, body: &str) {
    delete(202, &format!("{u}/deployments/{name}"), Some(body)).await;
    wait_gone(u, name).await;
}

/// Replaces a stock workflow's environment the way a user does (suspend, replace, and it
/// starts again): `env` over what it is installed with.
pub(crate) async fn tune_stock_workflow(
    u: &str,
    name: &str,
    env: &'static [(&'static str, &'static str)],
) {
    let status = format!("{u}/workflows/{name}/status");
    put(202, &status, "suspending").await;
    vamp_core::testkit::eventually("suspended", || async {
        parse(&get(200, &status).await) == "suspended"
    })
    .await;
    let stock = vamp_core::workflow::STOCK_WORKFLOWS
        .iter()
        .find(|s| s.name == name)
        .expect("a stock workflow");
    let tuned = vamp_core::workflow::StockWorkflow {
        environment: env,
        ..*stock
    };
    put(
        202,
        &format!("{u}/workflows/{name}"),
        &tuned.artifact_yaml(),
    )
    .await;
    vamp_core::testkit::eventually("running again", || async {
        parse(&get(200, &status).await) == "running"
    })
    .await;
}

/// The port the server gave the gateway `name` (polled until it has one).
pub(crate) async fn gateway_port(api: &str, name: &str) -> u16 {
    vamp_core::testkit::eventually(&format!("gateway {name}'s port"), || async {
        let g = parse(&get(200, &format!("{api}/gateways/{name}")).await);
        g["port"]
            .as_str()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
    })
    .await
}

/// `vamp-server --demo` as the README runs it (the binary under test): data in `data`, the API
/// on 127.0.0.1:`api`, the demo's gateway on `gateway`, gateway ports from the tests' slice,
/// and the `more` flags.
pub(crate) fn demo_command(
    data: &std::path::Path,
    api: u16,
    gateway: u16,
    more: &[&str],
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vamp-server"));
    command
        .args(["--demo", "--data"])
        .arg(data)
        .args(more)
        .args(["--listen", &format!("127.0.0.1:{api}")])
        .args(["--demo-port", &gateway.to_string()])
        .env(
            "VAMP_GATEWAYS__PORTS",
            vamp_core::testkit::gateway_port_slice(),
        )
        .env("RUST_LOG", "warn");
    command
}
