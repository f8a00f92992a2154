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

#[test]
fn a_canary_release_through_the_cli() {
    let server = server_binary();
    let data = tempfile::tempdir().expect("tempdir");
    let _reap = Reap(data.path().join("process"));
    let (api, gateway) = (free_port(), free_port());
    let host = format!("http://127.0.0.1:{api}");
    let running = spawn(
        Command::new(&server)
            .arg("--data")
            .arg(data.path())
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .env("VAMP_GATEWAYS__PORTS", vamp_core::testkit::gateway_ports())
            .env("VAMP_DRIVER__KIND", "process")
            .env("RUST_LOG", "warn"),
    );
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

    let exe = server.display();
    let breed = |v: &str| {
        format!(
            "kind: breeds\nname: app:{v}\ndeployable: {{type: command, definition: \"'{exe}' demo-app --app-version {v}\"}}\nports: {{web: 8080/http}}\n"
        )
    };
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
