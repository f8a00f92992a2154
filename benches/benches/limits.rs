//! Issue 15's bounded figures: the peak memory of refusing a YAML alias bomb, and the rate of
//! standalone gateway creates through the API as their number grows to 10 000 (each create
//! must cost the same, not grow with the gateways already stored).
//!
//! Run with: `cargo bench -p vamp-benches --bench limits`

use std::time::{Duration, Instant};

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// 379 bytes that expand to 10^9 values.
const BOMB: &str = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";

fn main() {
    // First, while the process is small: the bomb's peak.
    let before = peak_rss_kib();
    let t = Instant::now();
    let refused = vamp_core::dsl::read(BOMB, None).is_err();
    let took = t.elapsed();
    let after = peak_rss_kib();
    println!(
        "alias bomb ({} bytes): refused {refused} in {took:?}; peak RSS {before} KiB -> {after} KiB (+{} KiB)",
        BOMB.len(),
        after.saturating_sub(before)
    );

    let rt = vamp_benches::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = vamp_benches::server_config(
        dir.path(),
        &[("router.kind", "none"), ("gateways.ports", "20000-39999")],
    );
    rt.block_on(async {
        let app = vamp_server::App::build(config).await.expect("app");
        let listener = app.bind().await.expect("bind");
        let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
        let _server =
            tokio::spawn(async move { app.serve(listener, std::future::pending()).await });
        let client = reqwest::Client::new();
        const TOTAL: usize = 10_000;
        const STEP: usize = 1_000;
        println!(
            "\n{TOTAL} standalone gateways created one by one (SQLite, no router), per {STEP}:"
        );
        let start = Instant::now();
        let mut step = Instant::now();
        for n in 1..=TOTAL {
            let body = format!(
                "name: g{n}\nroutes:\n  '[127.0.0.1:{}]': {{weight: 100%}}\n",
                1 + n % 60_000
            );
            let r = client
                .post(format!("{base}/gateways"))
                .header("Content-Type", "application/x-yaml")
                .body(body)
                .send()
                .await
                .expect("post");
            assert_eq!(
                r.status().as_u16(),
                202,
                "{}",
                r.text().await.unwrap_or_default()
            );
            if n % STEP == 0 {
                let e = step.elapsed();
                println!(
                    "  {:>5}-{n:<5} {:>7.0} creates/s   {:.2} ms each",
                    n - STEP + 1,
                    STEP as f64 / e.as_secs_f64(),
                    e.as_secs_f64() * 1000.0 / STEP as f64
                );
                step = Instant::now();
            }
        }
        let all = start.elapsed();
        println!(
            "  all {TOTAL}: {all:?} ({:.0} creates/s); peak RSS {} MiB",
            TOTAL as f64 / all.as_secs_f64(),
            peak_rss_kib() / 1024
        );
        let _ = Duration::ZERO;
    });
}
