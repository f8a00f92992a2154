//! End to end: `vamp-server` on embedded defaults, driven only through the `vamp` CLI — create
//! breeds and blueprints from YAML, deploy, merge v2 at 0%, move weights to 50/50 and see the
//! split in real answers through the gateway, slice v1, undeploy — while `vamp events` tails
//! the SSE stream. Needs `vamp-server` built next to `vamp` (scripts/test.sh builds it).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn server_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_vamp")).with_file_name("vamp-server");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p vamp-server` first",
        path.display()
    );
    path
}

use vamp_core::testkit::child::Running;
use vamp_core::testkit::free_port;

fn spawn(command: &mut Command) -> Running {
    Running::spawn(command)
}

fn vamp(host: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vamp"))
        .args(["--host", host])
        .args(args)
        .output()
        .expect("run vamp");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(host: &str, args: &[&str]) -> String {
    let (code, out, err) = vamp(host, args);
    assert_eq!(code, 0, "vamp {args:?}: {err}{out}");
    out
}

/// The first body line (the version) of a GET through the gateway.
fn version(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| b.lines().next())
        .unwrap_or_default()
        .to_owned()
}

/// Kills the instances the server's process driver still records when the test ends: a
/// failing test leaves no process behind (instances outlive their server by design).
struct Reap(std::path::PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(driver) = vamp_drivers::process::ProcessDriver::new(
            vamp_drivers::process::ProcessConfig::new(self.0.clone()),
        ) {
            driver.kill_all_now();
        }
    }
}

/// `vamp-server` on `api` with its data in `data`: the process driver, gateway ports of its
/// own.
fn start_server(server: &std::path::Path, data: &std::path::Path, api: u16) -> Running {
    spawn(
        Command::new(server)
            .arg("--data")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .env(
                "VAMP_GATEWAYS__PORTS",
                vamp_core::testkit::gateway_port_slice(),
            )
            .env("VAMP_DRIVER__KIND", "process")
            .env("RUST_LOG", "warn"),
    )
}

/// Breed `app:<version>`: the demo service run by `vamp-server demo-app`, health-checked on
/// `/health` (so a deployed service answers).
/// A started `vamp-server` with its data directory, its API's address, and what reaps its
/// instances when the test ends.
struct Started {
    server: PathBuf,
    data: tempfile::TempDir,
    _reap: Reap,
    host: String,
    running: Running,
}

impl Started {
    fn new() -> Started {
        let server = server_binary();
        let data = tempfile::tempdir().expect("tempdir");
        let reap = Reap(data.path().join("process"));
        let api = free_port();
        let running = start_server(&server, data.path(), api);
        running
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the server starts");
        Started {
            server,
            data,
            _reap: reap,
            host: format!("http://127.0.0.1:{api}"),
            running,
        }
    }
}

fn demo_breed(server: &std::path::Path, version: &str) -> String {
    let exe = server.display();
    format!(
        "kind: breeds\nname: app:{version}\ndeployable: {{type: command, definition: \"'{exe}' demo-app --app-version {version}\"}}\nports: {{web: 8080/http}}\nhealth_checks: {{path: /health, port: web, initial_delay: 0s, timeout: 2s, interval: 1s, failures: 3}}\n"
    )
}

#[test]
fn a_canary_release_through_the_cli() {
    let server = server_binary();
    let data = tempfile::tempdir().expect("tempdir");
    let _reap = Reap(data.path().join("process"));
    let (api, gateway) = (free_port(), free_port());
    let host = format!("http://127.0.0.1:{api}");
    let running = start_server(&server, data.path(), api);
    let line = running
        .lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the server starts");
    assert_eq!(
        line,
        format!("vamp-server listening on http://127.0.0.1:{api}")
    );

    // Tail the deployment's events while everything happens.
    let mut tail = Command::new(env!("CARGO_BIN_EXE_vamp"));
    tail.args(["--host", &host, "events", "--tag", "deployments:shop"]);
    let events = spawn(&mut tail);

    let breed = |v: &str| demo_breed(&server, v);
    let file = data.path().join("shop.yml");
    std::fs::write(
        &file,
        format!(
            "{}---\n{}---\nkind: blueprints\nname: shop-v1\ngateways:\n  {gateway}: app/web\nclusters:\n  app: app:1.0.0\n---\nkind: blueprints\nname: shop-v2\nclusters:\n  app: app:1.1.0\n",
            breed("1.0.0"),
            breed("1.1.0")
        ),
    )
    .expect("write shop.yml");
    let created = ok(&host, &["create", "-f", &file.display().to_string()]);
    assert_eq!(created.lines().count(), 4, "{created}");
    assert!(ok(&host, &["list", "breeds"]).contains("app:1.1.0"));

    ok(&host, &["deploy", "shop-v1", "shop", "--wait", "60"]);
    assert_eq!(version(gateway), "1.0.0");
    ok(&host, &["merge", "shop-v2", "shop", "--wait", "60"]);
    let gw = ok(
        &host,
        &["describe", "gateway", "shop/app/web", "-o", "json"],
    );
    let gw: serde_json::Value = serde_json::from_str(&gw).expect("json");
    assert_eq!(
        gw["routes"]["shop/app/app:1.1.0/web"]["weight"], "0%",
        "{gw}"
    );

    // Slicing the version that carries traffic is refused, with the reason and exit code 1.
    let (code, _, err) = vamp(&host, &["undeploy", "shop", "--service", "app:1.0.0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("InvalidRouteWeight"), "{err}");

    ok(
        &host,
        &[
            "update-gateway",
            "shop/app/web",
            "--weights",
            "app:1.0.0@50%,app:1.1.0@50%",
        ],
    );
    let new = (0..2000).filter(|_| version(gateway) == "1.1.0").count();
    assert!(
        (940..=1060).contains(&new),
        "{new} of 2000 answers from 1.1.0: not 50% ± 3 pt"
    );

    ok(
        &host,
        &[
            "update-gateway",
            "shop/app/web",
            "--weights",
            "app:1.0.0@0%,app:1.1.0@100%",
        ],
    );
    ok(
        &host,
        &["undeploy", "shop", "--service", "app:1.0.0", "--wait", "60"],
    );
    assert!(
        (0..50).all(|_| version(gateway) == "1.1.0"),
        "only v2 is left"
    );
    let shown = ok(&host, &["describe", "deployment", "shop", "--as-blueprint"]);
    assert!(
        shown.contains("kind: blueprints")
            && shown.contains("app:1.1.0")
            && !shown.contains("app:1.0.0"),
        "{shown}"
    );
    ok(&host, &["undeploy", "shop", "--wait", "60"]);
    let (code, _, _) = vamp(&host, &["describe", "deployment", "shop"]);
    assert_eq!(code, 1, "the deployment is gone");

    // The stream delivered the deployment's events as they happened.
    let mut seen = Vec::new();
    while let Ok(line) = events.lines.recv_timeout(Duration::from_secs(2)) {
        seen.push(line);
    }
    let all = seen.join("\n");
    assert!(all.contains("\"deployments:shop\""), "{all}");
    assert!(
        all.contains("archive:create") || all.contains("archive:update"),
        "{all}"
    );
    assert!(all.contains("synchronization:deployed"), "{all}");
    assert!(all.contains("synchronization:undeployed"), "{all}");
    drop(events);
    drop(running);
}

/// `vamp rollout status --watch` in a pseudo-terminal (`script` gives it one): it draws the
/// rollout, redraws on every change the SSE stream brings, and ends with the exit code of the
/// final phase (issue 19).
#[test]
fn a_rollout_watched_in_a_terminal() {
    let Started {
        server,
        data,
        _reap,
        host,
        running,
    } = Started::new();
    let breed = |v: &str| demo_breed(&server, v);
    let file = data.path().join("shop.yml");
    std::fs::write(
        &file,
        format!(
            "{}---\n{}---\nkind: blueprints\nname: shop\nclusters:\n  app:\n    services: [app:1.0.0, app:1.1.0]\n    gateways:\n      web:\n        routes:\n          app:1.0.0: {{weight: 100%}}\n          app:1.1.0: {{weight: 0%}}\n",
            breed("1.0.0"),
            breed("1.1.0")
        ),
    )
    .expect("write shop.yml");
    ok(&host, &["create", "-f", &file.display().to_string()]);
    ok(&host, &["deploy", "shop", "shop", "--wait", "60"]);
    let rollout = data.path().join("rollout.yml");
    std::fs::write(
        &rollout,
        "kind: rollouts\nname: watched\ngateway: shop/app/web\nstable: shop/app/app:1.0.0/web\ncanary: shop/app/app:1.1.0/web\nsteps:\n  - pause: {}\n  - weight: 50%\n  - pause: {}\n",
    )
    .expect("write rollout.yml");
    ok(&host, &["create", "-f", &rollout.display().to_string()]);

    let command = format!(
        "'{}' --host {host} rollout status watched --watch",
        env!("CARGO_BIN_EXE_vamp")
    );
    let mut watch = spawn(Command::new("script").args(["-qfec", &command, "/dev/null"]));
    let mut screen = String::new();
    let mut until = |what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !screen.contains(what) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match watch.lines.recv_timeout(left) {
                Ok(line) => {
                    screen.push_str(&line);
                    screen.push('\n');
                }
                Err(_) => panic!("'{what}' not shown within 30 s:\n{screen}"),
            }
        }
    };
    until("rollout watched: Paused, step 1/3");
    ok(&host, &["rollout", "promote", "watched"]);
    until("step 3/3");
    ok(&host, &["rollout", "resume", "watched"]);
    until("Succeeded");
    let status = vamp_core::testkit::eventually_blocking(
        &format!("the watch to end:\n{screen}"),
        Duration::from_secs(30),
        || watch.child.try_wait().expect("wait"),
    );
    while let Ok(line) = watch.lines.recv_timeout(Duration::from_millis(200)) {
        screen.push_str(&line);
        screen.push('\n');
    }
    assert_eq!(status.code(), Some(0), "exit code of Succeeded:\n{screen}");
    assert!(
        screen.contains("\u{1b}[2J"),
        "redrawn in place on a terminal"
    );
    for phase in ["Paused", "Progressing", "Succeeded"] {
        assert!(
            screen.contains(&format!(": {phase}")),
            "{phase} missing:\n{screen}"
        );
    }
    assert!(screen.contains("shop/app/app:1.1.0/web  100%"), "{screen}");
    // Without a terminal and without --watch: one look, the phase as exit code.
    let (code, out, _) = vamp(&host, &["rollout", "status", "watched"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = vamp(&host, &["rollout", "abort", "watched"]);
    assert_eq!(code, 1, "a finished rollout cannot be aborted: {err}");
    ok(&host, &["undeploy", "shop", "--wait", "60"]);
    drop(running);
}

/// `vamp workflow …` against a real server: a JavaScript daemon's status and output, followed
/// as it runs, then suspended and restarted.
#[test]
fn a_workflow_through_the_cli() {
    // Held to the end: the server, and what reaps its instances.
    let Started {
        data,
        _reap,
        host,
        running: _running,
        ..
    } = Started::new();
    let file = data.path().join("tick.yml");
    std::fs::write(
        &file,
        "kind: workflows\nname: tick\nbreed:\n  name: tick:1\n  deployable: {type: application/javascript, definition: \"console.log('tick'); console.error('to stderr')\"}\n  environment_variables: {VAMP_WORKFLOW_EXECUTION_PERIOD: \"1\"}\nschedule: daemon\n",
    )
    .expect("write tick.yml");
    ok(&host, &["create", "-f", &file.display().to_string()]);

    // Followed: the lines of a run, as they come.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_vamp"));
    follow.args(["--host", &host, "workflow", "logs", "tick", "--follow"]);
    let followed = spawn(&mut follow);
    followed.wait_for_line("== run #", Duration::from_secs(30));
    followed.wait_for_line("  tick", Duration::from_secs(30));
    followed.wait_for_line("! to stderr", Duration::from_secs(30));
    followed.wait_for_line("== #", Duration::from_secs(30));
    drop(followed);

    let status = ok(&host, &["workflow", "status", "tick"]);
    assert!(
        status.starts_with("workflow tick: running  schedule daemon"),
        "{status}"
    );
    assert!(status.contains("succeeded"), "{status}");
    let logs = ok(&host, &["workflow", "logs", "tick"]);
    assert!(logs.contains("  tick\n! to stderr\n"), "{logs}");

    assert_eq!(
        ok(&host, &["workflow", "suspend", "tick"]),
        "workflow tick: suspending\n"
    );
    vamp_core::testkit::eventually_blocking("suspended", Duration::from_secs(30), || {
        ok(&host, &["workflow", "status", "tick"]).starts_with("workflow tick: suspended")
    });
    assert_eq!(
        ok(&host, &["workflow", "restart", "tick"]),
        "workflow tick: restarting\n"
    );
    vamp_core::testkit::eventually_blocking("running again", Duration::from_secs(30), || {
        ok(&host, &["workflow", "status", "tick"]).starts_with("workflow tick: running")
    });
    let (code, _, err) = vamp(&host, &["workflow", "status", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not found"), "{err}");
}
