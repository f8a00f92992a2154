//! JavaScript workflows in a real server (issue 22): a daemon that emits an event each run
//! through the `vamp` object, runs every period and stops when suspended; scripts that loop
//! or allocate without end are stopped and recorded with the reason while the server keeps
//! answering. Waits are bounded polls on what the API reports.

use std::time::Duration;

mod common;

use common::{Server, get, parse, post, put};
use vamp_core::testkit::{eventually, eventually_within};

const WAIT: Duration = Duration::from_secs(30);

/// A JavaScript workflow `name` running `script`, with the breed's `env` (YAML map body).
fn js_workflow(name: &str, script: &str, schedule: &str, env: &str) -> String {
    let script = serde_json::to_string(script).expect("a JSON string");
    format!(
        "name: {name}\nbreed:\n  name: {name}:1\n  deployable: {{type: application/javascript, definition: {script}}}\n  environment_variables: {{{env}}}\nschedule: {schedule}\n"
    )
}

async fn executions(u: &str, name: &str) -> serde_json::Value {
    parse(&get(200, &format!("{u}/workflows/{name}/executions")).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_daemon_emits_an_event_each_period_and_stops_when_suspended() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let script = "const n = Number(process.env.VAMP_WORKFLOW_EXECUTION_PERIOD);\n\
                  vamp.event(['ticks', 'ticks:' + process.env.WHO], {period: n}).then((e) => console.log('sent', e.id));";
    post(
        202,
        &format!("{u}/workflows"),
        &js_workflow(
            "ticker",
            script,
            "daemon",
            "VAMP_WORKFLOW_EXECUTION_PERIOD: \"1\", WHO: me",
        ),
    )
    .await;
    let events = format!("{u}/events?tag=ticks:me");
    eventually_within("three events from three runs", WAIT, || async {
        parse(&get(200, &events).await)
            .as_array()
            .is_some_and(|a| a.len() >= 3)
    })
    .await;
    let e = executions(u, "ticker").await;
    let first = &e["last"][e["last"].as_array().map_or(0, Vec::len) - 1];
    assert_eq!(first["status"], "succeeded", "{e}");
    assert!(
        first["log"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("sent ")),
        "{e}"
    );
    let stored = parse(&get(200, &events).await);
    assert_eq!(stored[0]["value"]["period"], 1);

    put(202, &format!("{u}/workflows/ticker/status"), "suspending").await;
    eventually("suspended", || async {
        parse(&get(200, &format!("{u}/workflows/ticker/status")).await) == "suspended"
    })
    .await;
    let runs = |e: &serde_json::Value| e["succeeded_total"].as_u64().unwrap_or(0);
    let at_suspension = runs(&executions(u, "ticker").await);
    // Two more periods: at most the run in progress at the suspension ends.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let later = runs(&executions(u, "ticker").await);
    assert!(later <= at_suspension + 1, "{at_suspension} → {later}");
    let metrics = get(200, &format!("{}/metrics", u.trim_end_matches("/api/v1"))).await;
    assert!(
        metrics.contains("vamp_workflow_runs_total{workflow=\"ticker\",result=\"succeeded\"}")
            || metrics
                .contains("vamp_workflow_runs_total{result=\"succeeded\",workflow=\"ticker\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_that_loop_or_allocate_without_end_fail_with_the_reason_and_the_server_stays_up() {
    let server = Server::start(&[("workflows.memory_limit", "16")]).await;
    let u = &server.url;
    let once = "{time: {period: PT1H, repeat: 1}}";
    post(
        202,
        &format!("{u}/workflows"),
        &js_workflow(
            "spin",
            "for (;;) {}",
            once,
            "VAMP_WORKFLOW_EXECUTION_TIMEOUT: \"1\"",
        ),
    )
    .await;
    post(
        202,
        &format!("{u}/workflows"),
        &js_workflow(
            "hog",
            "const keep = []; for (;;) keep.push(new Array(100000).fill(1));",
            once,
            "VAMP_WORKFLOW_EXECUTION_TIMEOUT: \"60\"",
        ),
    )
    .await;
    for (name, reason) in [("spin", "timeout"), ("hog", "out of memory")] {
        eventually_within(&format!("{name} failed"), WAIT, || async {
            executions(u, name).await["failed_total"] == 1
        })
        .await;
        let e = executions(u, name).await;
        assert!(
            e["failed"][0]["failure"]
                .as_str()
                .is_some_and(|f| f.contains(reason)),
            "{name}: {e}"
        );
        // The server answers all along.
        get(200, &format!("{u}/info")).await;
    }
    server.stop().await;
}

/// A run gets a token of its workflow's own (`VAMP_API_TOKEN`): the API takes it beside the
/// configured ones while the workflow exists, and refuses it once the workflow is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_workflow_has_an_api_token_of_its_own_while_it_exists() {
    let server = Server::start(&[("server.token", "the-admin-token")]).await;
    let u = &server.url;
    let admin = |method: reqwest::Method, url: String| {
        reqwest::Client::new()
            .request(method, url)
            .bearer_auth("the-admin-token")
    };
    let workflow = js_workflow(
        "keyed",
        "console.log(process.env.VAMP_API_TOKEN)",
        "{time: {period: PT1H, repeat: 1}}",
        "",
    );
    let stored = admin(reqwest::Method::POST, format!("{u}/workflows"))
        .header("Content-Type", "application/x-yaml")
        .body(workflow)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 202);
    let executions = format!("{u}/workflows/keyed/executions");
    let token: String = eventually_within("the run's output", WAIT, || {
        let request = admin(reqwest::Method::GET, executions.clone());
        async move {
            let e: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
            Some(e["last"][0]["log"][0]["text"].as_str()?.to_owned())
        }
    })
    .await;
    assert_eq!(token.len(), 64, "{token}");
    let with_token = |token: &str| {
        reqwest::Client::new()
            .get(format!("{u}/workflows"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(with_token(&token).await.unwrap().status(), 200);
    assert_eq!(with_token("a-guess").await.unwrap().status(), 401);
    let deleted = admin(reqwest::Method::DELETE, format!("{u}/workflows/keyed"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    eventually("the workflow's token refused", || async {
        with_token(&token).await.is_ok_and(|r| r.status() == 401)
    })
    .await;
    server.stop().await;
}

/// Workflow output reaches the SSE stream as it is written (type `workflow-log`, filtered by
/// `workflows:<name>` like events), before the run has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lines_are_streamed_live_on_the_event_stream() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    let mut stream = reqwest::Client::new()
        .get(format!(
            "{u}/events/stream?tag=workflows:talker&type=workflow-log"
        ))
        .send()
        .await
        .expect("stream");
    // The line comes long before the run ends (it waits 20 s after writing it).
    let script = "console.log('hello from', process.env.WHO);\nconsole.error('and to stderr');\nsetTimeout(() => {}, 20000);";
    post(
        202,
        &format!("{u}/workflows"),
        &js_workflow("talker", script, "daemon", "WHO: talker"),
    )
    .await;
    post(
        202,
        &format!("{u}/workflows"),
        &js_workflow(
            "other",
            "console.log('not for this stream');",
            "daemon",
            "X: y",
        ),
    )
    .await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains("and to stderr") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("the lines in time; seen: {seen}"))
            .expect("bytes")
            .expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: workflow-log"), "{seen}");
    let lines: Vec<serde_json::Value> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_eq!(lines[0]["workflow"], "talker", "{seen}");
    assert_eq!(lines[0]["text"], "hello from talker");
    assert_eq!(lines[0]["stderr"], false);
    assert_eq!(lines[1]["stderr"], true);
    assert!(lines[0]["execution"].as_u64().is_some(), "{seen}");
    assert!(!seen.contains("not for this stream"), "{seen}");
    let e = executions(u, "talker").await;
    assert_eq!(e["last"][0]["status"], "running", "still running: {e}");
    server.stop().await;
}
