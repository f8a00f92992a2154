//! Bad flags get a clear error and exit code, never a panic or a hang.

use std::process::Command;
use std::time::Duration;

fn run(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vamp-gateway-agent"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let status = vamp_core::testkit::eventually_blocking(
        &format!("the agent to exit on bad flags {args:?}"),
        Duration::from_secs(20),
        || child.try_wait().expect("wait"),
    );
    let out = child.wait_with_output().expect("output");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_haproxy_is_named() {
    let (code, err) = run(&["--haproxy", "/nonexistent/haproxy"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no HAProxy at /nonexistent/haproxy"), "{err}");
}

#[test]
fn a_malformed_status_address_is_a_usage_error() {
    let (code, err) = run(&["--status", "not-an-address"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--status"), "{err}");
}

#[test]
fn a_malformed_etcd_endpoint_is_named() {
    let haproxy = std::env::var("VAMP_TEST_HAPROXY").unwrap_or_else(|_| "/bin/sh".into());
    let (code, err) = run(&["--haproxy", &haproxy, "--etcd", "::not a url::"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("etcd"), "{err}");
}

#[test]
fn one_store_at_a_time() {
    let (code, err) = run(&[
        "--zookeeper",
        "127.0.0.1:2181",
        "--consul",
        "http://127.0.0.1:8500",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--consul") && err.contains("--zookeeper"),
        "{err}"
    );
    let (code, err) = run(&[
        "--etcd",
        "http://127.0.0.1:2379",
        "--consul",
        "http://127.0.0.1:8500",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--etcd"), "{err}");
}
