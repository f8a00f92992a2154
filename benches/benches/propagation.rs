//! Issue 16: how long a weight change through the API takes to reach the traffic.
//!
//! A standalone gateway splits between two backends that name themselves; one client sends
//! requests through it back to back (light load). `PUT /api/v1/gateways/{name}` flips the
//! weights 100/0 ↔ 0/100 `FLIPS` times; each flip's figure is the time from the PUT's answer to
//! the first answer from the backend it moved the traffic to.
//!
//! - `embedded`: `vamp-server` with the embedded router (always run);
//! - `haproxy`: `vamp-server` with the `haproxy-kv` router on etcd, and a
//!   `vamp-gateway-agent` with its own HAProxy — run when `VAMP_PROP_ETCD` (an etcd URL) and
//!   `VAMP_PROP_AGENT` (the agent binary) are set; `scripts/propagation.sh` sets both up.
//!
//! Run with: `bash scripts/propagation.sh` (or `cargo bench -p vamp-benches --bench
//! propagation` for the embedded path only).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use vamp_gateway::testkit::{Client, backend, free_port};

const FLIPS: usize = 24;

/// Answers seen: when, and from which backend.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

async fn server(flags: Vec<(&str, String)>) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all: Vec<(&str, &str)> = vec![
        ("persistence.kind", "memory"),
        // Only changes may make the router move: the periodic pass is an hour away.
        ("synchronization.period", "3600"),
    ];
    all.extend(flags.iter().map(|(k, v)| (*k, v.as_str())));
    let config = vamp_benches::server_config(dir.path(), &all);
    let app = vamp_server::App::build(config).await.expect("app");
    let listener = app.bind().await.expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move { app.serve(listener, std::future::pending()).await });
    (base, dir)
}

fn gateway(name: &str, port: u16, a: u16, b: u16, to_a: bool) -> String {
    let (wa, wb) = if to_a { (100, 0) } else { (0, 100) };
    format!(
        "name: {name}\nport: {port}/http\nroutes:\n  '[127.0.0.1:{a}]': {{weight: {wa}%}}\n  '[127.0.0.1:{b}]': {{weight: {wb}%}}\n"
    )
}

async fn put(client: &reqwest::Client, url: &str, body: String) {
    let r = client
        .put(url)
        .header("Content-Type", "application/x-yaml")
        .body(body)
        .send()
        .await
        .expect("put");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
}

/// Flips the gateway `FLIPS` times; returns each flip's time to traffic.
async fn measure(base: &str, name: &str, port: u16) -> Vec<Duration> {
    let (a, b) = (backend("a").await, backend("b").await);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/gateways"))
        .header("Content-Type", "application/x-yaml")
        .body(gateway(name, port, a, b, true))
        .send()
        .await
        .expect("create");
    assert_eq!(
        r.status().as_u16(),
        202,
        "{}",
        r.text().await.unwrap_or_default()
    );
    // The prober: one request after the other, every answer recorded.
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (seen, stop) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut client = Client::new(port);
            while !stop.load(Ordering::Relaxed) {
                match client.get("/", &[]).await {
                    Ok(r) if r.status == 200 => {
                        seen.lock()
                            .await
                            .push((Instant::now(), r.backend().to_owned()));
                    }
                    _ => {
                        client = Client::new(port);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        })
    };
    // Until the gateway serves `a`.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.lock().await.iter().any(|(_, w)| w == "a") {
        assert!(Instant::now() < deadline, "the gateway never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = format!("{base}/gateways/{name}");
    let mut out = Vec::new();
    let mut to_a = true;
    for _ in 0..FLIPS {
        to_a = !to_a;
        let want = if to_a { "a" } else { "b" };
        put(&http, &url, gateway(name, port, a, b, to_a)).await;
        let answered = Instant::now();
        let deadline = answered + Duration::from_secs(30);
        let first = loop {
            let found = seen
                .lock()
                .await
                .iter()
                .rev()
                .take_while(|(t, _)| *t >= answered)
                .filter(|(_, w)| w == want)
                .map(|(t, _)| *t)
                .last();
            if let Some(t) = found {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "flip to {want} never reached the traffic"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        out.push(first.saturating_duration_since(answered));
        // A quiet moment between flips, so each is measured on its own.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = prober.await;
    out
}

fn report(path: &str, mut figures: Vec<Duration>) {
    figures.sort();
    let pct =
        |p: f64| figures[((figures.len() as f64 * p).ceil() as usize).clamp(1, figures.len()) - 1];
    println!(
        "{path:9} {} flips: p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        figures.len(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        figures.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

fn main() {
    let rt = vamp_benches::runtime();
    rt.block_on(async {
        let (base, _dir) = server(vec![]).await;
        let figures = measure(&base, "flip", free_port()).await;
        report("embedded", figures);

        let (Ok(etcd), Ok(agent)) = (
            std::env::var("VAMP_PROP_ETCD"),
            std::env::var("VAMP_PROP_AGENT"),
        ) else {
            println!("haproxy   SKIPPED: set VAMP_PROP_ETCD and VAMP_PROP_AGENT (scripts/propagation.sh does)");
            return;
        };
        let root = format!("/vamp/propagation-{}", std::process::id());
        let (base, dir) = server(vec![
            ("key_value.kind", "etcd".into()),
            ("key_value.servers", etcd.clone()),
            ("key_value.root", root.clone()),
            ("router.kind", "haproxy-kv".into()),
        ])
        .await;
        let haproxy = std::env::var("VAMP_PROP_HAPROXY").unwrap_or_else(|_| "/usr/sbin/haproxy".into());
        let agent_dir = dir.path().join("agent");
        let status = free_port();
        let mut child = tokio::process::Command::new(&agent)
            .args(["--etcd", &etcd, "--root", &root, "--haproxy", &haproxy])
            .arg("--dir")
            .arg(&agent_dir)
            .args(["--status", &format!("127.0.0.1:{status}"), "--no-health-checks"])
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start the agent");
        let figures = measure(&base, "flip", free_port()).await;
        report("haproxy", figures);
        // SIGTERM, so the agent stops its HAProxy too.
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    });
}
