//! The data path: per-request latency (criterion), then a bounded load run (8 keep-alive
//! clients, 3 s per path) giving throughput and p50/p99, and the time from a weight change to
//! traffic shifted — for a direct connection, the embedded router and HAProxy (when
//! `VAMP_BENCH_HAPROXY` or `/usr/sbin/haproxy` gives a binary), all on one 90/10 split.
//!
//! Run with: `cargo bench -p vamp-benches --bench proxy`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use vamp_core::traits::{ResolvedGateway, Router};
use vamp_gateway::embedded::EmbeddedRouter;
use vamp_gateway::haproxy::local::LocalRouter;
use vamp_gateway::haproxy::render::RenderOptions;
use vamp_gateway::testkit::{Client, backend, free_port, gateway, route};

fn haproxy_binary() -> Option<PathBuf> {
    let path = std::env::var_os("VAMP_BENCH_HAPROXY")
        .map_or_else(|| PathBuf::from("/usr/sbin/haproxy"), PathBuf::from);
    path.exists().then_some(path)
}

fn split_gateway(port: u16, a: u16, b: u16, weight_a: u8) -> ResolvedGateway {
    let g = "bench/web";
    gateway(
        g,
        port,
        vec![
            route(g, "bench/a", weight_a, &[("a", a)]),
            route(g, "bench/b", 100 - weight_a, &[("b", b)]),
        ],
    )
}

/// A bounded load run: `clients` keep-alive clients for `length`; (requests/s, p50, p99, failures).
async fn load(port: u16, clients: usize, length: Duration) -> (f64, Duration, Duration, u64) {
    let deadline = Instant::now() + length;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(port);
            let mut latencies = Vec::new();
            let mut failures = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.get("/", &[]).await {
                    Ok(r) if r.status == 200 => latencies.push(t.elapsed()),
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    vamp_benches::gather(tasks, length).await
}

/// Mean time from `apply` of a flipped split (0/100 ↔ 100/0) until the next response comes
/// from the newly weighted backend, over `n` flips.
async fn shift_time(router: &impl Router, port: u16, a: u16, b: u16, n: u32) -> Duration {
    let mut client = Client::new(port);
    let mut total = Duration::ZERO;
    for i in 0..n {
        let to_a = i % 2 == 0;
        let g = split_gateway(port, a, b, if to_a { 100 } else { 0 });
        let t = Instant::now();
        router.apply(&[g]).await.expect("apply");
        let want = if to_a { "a" } else { "b" };
        loop {
            let r = client.get("/", &[]).await.expect("request");
            if r.backend() == want {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "traffic did not shift"
            );
        }
        total += t.elapsed();
    }
    total / n
}

fn main() {
    let rt = vamp_benches::runtime();
    let (a, b) = rt.block_on(async { (backend("a").await, backend("b").await) });

    let embedded = EmbeddedRouter::new();
    let embedded_port = free_port();
    rt.block_on(embedded.apply(&[split_gateway(embedded_port, a, b, 90)]))
        .expect("embedded apply");

    let dir = tempfile::Builder::new()
        .prefix("hb")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let haproxy = haproxy_binary().map(|bin| {
        let opts = RenderOptions {
            health_checks: false,
            ..RenderOptions::default()
        };
        let router = LocalRouter::new(bin, dir.path(), opts);
        let port = free_port();
        rt.block_on(router.apply(&[split_gateway(port, a, b, 90)]))
            .expect("haproxy apply");
        (router, port)
    });

    let mut paths = vec![("direct", a), ("embedded", embedded_port)];
    if let Some((_, port)) = &haproxy {
        paths.push(("haproxy", *port));
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("proxy_request");
        for (name, port) in &paths {
            let port = *port;
            group.bench_function(*name, |bench| {
                bench.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut client = Client::new(port);
                        let t = Instant::now();
                        for _ in 0..iters {
                            client.get("/", &[]).await.expect("request");
                        }
                        t.elapsed()
                    })
                });
            });
        }
        group.finish();
    }

    println!("\nload: 8 keep-alive clients, 3 s each, 90/10 split");
    for (name, port) in &paths {
        let (rps, p50, p99, failures) = rt.block_on(load(*port, 8, Duration::from_secs(3)));
        println!("  {name:9} {rps:9.0} req/s   p50 {p50:?}   p99 {p99:?}   failures {failures}");
    }
    println!("\nweight change → traffic shifted (mean of 20 flips)");
    println!(
        "  embedded  {:?}",
        rt.block_on(shift_time(&embedded, embedded_port, a, b, 20))
    );
    if let Some((router, port)) = &haproxy {
        println!(
            "  haproxy   {:?}",
            rt.block_on(shift_time(router, *port, a, b, 20))
        );
        rt.block_on(router.stop()).expect("stop haproxy");
    }
    c.final_summary();
}
