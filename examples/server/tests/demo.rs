//! `vamp-server --demo` as a user runs it: the binary on embedded defaults in a fresh data
//! directory, ready within a bounded time, traffic split 90/10 through the gateway, SIGTERM
//! stops it and the demo's processes — and a second run works the same. With `--demo-rollout`
//! a healthy canary ends `Succeeded`, a failing one `RolledBack` (the README's commands).

use std::process::{Command, Stdio};
use std::time::Duration;

use vamp_core::testkit::child::Running;

mod common;
use vamp_core::testkit::free_port;

fn start(data: &std::path::Path, api: u16, gateway: u16) -> Running {
    start_with(data, api, gateway, &[])
}

fn start_with(data: &std::path::Path, api: u16, gateway: u16, more: &[&str]) -> Running {
    Running::spawn(&mut common::demo_command(data, api, gateway, more))
}

fn get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

fn stop(mut running: Running) {
    let pid = running.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = vamp_core::testkit::eventually_blocking(
        "vamp-server to stop after SIGTERM",
        Duration::from_secs(40),
        || running.child.try_wait().expect("wait"),
    );
    assert!(status.success(), "vamp-server exited with {status}");
}

/// The body of `GET <path>` on the API.
fn api_get(api: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", api)).expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// Requests per gateway route, from `/metrics`: `(gateway, route, count)`.
fn route_requests(api: u16) -> Vec<(String, String, u64)> {
    api_get(api, "/metrics")
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("vamp_route_requests_total{gateway=\"")?;
            let (gateway, rest) = rest.split_once("\",route=\"")?;
            let (route, count) = rest.split_once("\"} ")?;
            Some((gateway.to_owned(), route.to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// The demo instances' ports, from the API.
fn instance_ports(api: u16) -> Vec<u16> {
    let body = api_get(api, "/api/v1/deployments/vamp-demo");
    let body = body.as_str();
    let d: serde_json::Value = serde_json::from_str(body).expect("deployment JSON");
    let mut ports = Vec::new();
    for service in d["clusters"]["demo"]["services"]
        .as_array()
        .expect("services")
    {
        for instance in service["instances"].as_array().expect("instances") {
            ports.push(
                u16::try_from(instance["ports"]["web"].as_u64().expect("port")).expect("u16"),
            );
        }
    }
    ports
}

#[test]
fn the_demo_splits_traffic_90_10_stops_cleanly_and_runs_again() {
    let data = tempfile::tempdir().expect("tempdir");
    for run in 1..=2 {
        let (api, gateway) = (free_port(), free_port());
        let running = start(data.path(), api, gateway);
        running.wait_for_line("vamp-server listening on http://", Duration::from_secs(30));
        let ready = running.wait_for_line("vamp demo ready:", Duration::from_secs(90));
        assert_eq!(
            ready,
            format!(
                "vamp demo ready: gateway http://127.0.0.1:{gateway}/ api http://127.0.0.1:{api}/api/v1"
            ),
            "run {run}"
        );
        let mut new = 0;
        for _ in 0..1000 {
            let answer = get(gateway);
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
            if body.starts_with("1.1.0") {
                new += 1;
            } else {
                assert!(body.starts_with("1.0.0"), "{body}");
            }
        }
        assert!(
            (70..=130).contains(&new),
            "run {run}: {new} of 1000 went to 1.1.0, not about 100"
        );
        // The router counted them per route: the cluster gateway's two routes split alike.
        let counted = route_requests(api);
        let to_new: u64 = counted
            .iter()
            .filter(|(g, r, _)| g == "vamp-demo/demo/web" && r.contains("1.1.0"))
            .map(|(_, _, n)| n)
            .sum();
        let all: u64 = counted
            .iter()
            .filter(|(g, _, _)| g == "vamp-demo/demo/web")
            .map(|(_, _, n)| n)
            .sum();
        assert!(
            all >= 1000 && to_new >= new && to_new <= new + 10,
            "run {run}: /metrics counted {to_new} of {all} to 1.1.0, the answers {new} of 1000: {counted:?}"
        );
        let ports = instance_ports(api);
        assert_eq!(ports.len(), 2, "{ports:?}");
        stop(running);
        for port in ports {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                "run {run}: the demo instance on port {port} still answers after the server stopped"
            );
        }
    }
}

#[test]
fn a_taken_demo_port_is_reported_at_once() {
    let data = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let output = Command::new(env!("CARGO_BIN_EXE_vamp-server"))
        .args(["--demo", "--data"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--demo-port", &port.to_string()])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run vamp-server");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("port {port} is taken")) && err.contains("--demo-port"),
        "{err}"
    );
    drop(taken);
}

/// The README's two rollout demos: a healthy canary takes all of the traffic, one failing 20%
/// of its requests is rolled back; each run says how it ended.
#[test]
fn the_demo_rollout_succeeds_and_a_failing_canary_is_rolled_back() {
    for (more, ending, version) in [
        (&["--demo-rollout"][..], "Succeeded", "1.1.0"),
        (
            &["--demo-rollout", "--demo-canary-error-rate", "0.2"][..],
            "RolledBack",
            "1.0.0",
        ),
    ] {
        let data = tempfile::tempdir().expect("tempdir");
        let (api, gateway) = (free_port(), free_port());
        let running = start_with(data.path(), api, gateway, more);
        running.wait_for_line("vamp demo ready", Duration::from_secs(90));
        // Two analysis intervals of 5 s each at least; a debug build beside the rest of the
        // suite on two cores has taken more than 90 s, so the bound is generous (a bound on a
        // wait, not a timing assertion).
        let line =
            running.wait_for_line("rollout vamp-demo-release ended", Duration::from_secs(240));
        assert_eq!(line, format!("rollout vamp-demo-release ended: {ending}"));
        // All of the traffic on the version that won.
        for _ in 0..20 {
            let answer = get(gateway);
            assert!(answer.contains(&format!("\r\n\r\n{version}")), "{answer}");
        }
        stop(running);
    }
}

#[test]
fn demo_rollout_flags_need_the_demo_and_a_share() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vamp-server"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run vamp-server")
    };
    let out = run(&["--demo-rollout"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--demo"));
    let out = run(&["--demo", "--demo-rollout", "--demo-canary-error-rate", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("between 0 and 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
