//! The REST API of `vamp-server` (memory persistence, no router): per-request latency of
//! `GET /api/v1/breeds` (a page of 30) and `POST /api/v1/breeds` (criterion), then a bounded
//! load run for each (8 keep-alive clients, 3 s) giving throughput and p50/p99.
//!
//! Run with: `cargo bench -p vamp-benches --bench api`

use std::time::{Duration, Instant};

use criterion::Criterion;

fn breed(n: u64) -> String {
    format!(
        "name: bench-{}:1.0\ndeployable: {{type: command, definition: /bin/true}}\nports: {{web: 8080/http}}\n",
        n % 1000
    )
}

async fn call(client: &reqwest::Client, base: &str, post: Option<u64>) -> bool {
    let request = match post {
        Some(n) => client
            .post(format!("{base}/breeds"))
            .header("Content-Type", "application/x-yaml")
            .body(breed(n)),
        None => client.get(format!("{base}/breeds")),
    };
    match request.send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// `clients` keep-alive clients for `length`: (requests/s, p50, p99, failures).
async fn load(
    base: &str,
    post: bool,
    clients: u64,
    length: Duration,
) -> (f64, Duration, Duration, u64) {
    let deadline = Instant::now() + length;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = base.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut latencies, mut failures, mut n) = (Vec::new(), 0u64, c * 1_000_000);
            while Instant::now() < deadline {
                n += 1;
                let t = Instant::now();
                if call(&client, &base, post.then_some(n)).await {
                    latencies.push(t.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    vamp_benches::gather(tasks, length).await
}

fn main() {
    let rt = vamp_benches::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = vamp_benches::server_config(
        dir.path(),
        &[("persistence.kind", "memory"), ("router.kind", "none")],
    );
    let (base, _server) = rt.block_on(async {
        let app = vamp_server::App::build(config).await.expect("app");
        let listener = app.bind().await.expect("bind");
        let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move { app.serve(listener, std::future::pending()).await });
        let client = reqwest::Client::new();
        for n in 0..30 {
            assert!(call(&client, &base, Some(n)).await, "seed breed {n}");
        }
        (base, server)
    });
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("api");
    group.bench_function("get_breeds_page", |b| {
        b.iter(|| assert!(rt.block_on(call(&client, &base, None))));
    });
    let mut n = 10_000;
    group.bench_function("post_breed", |b| {
        b.iter(|| {
            n += 1;
            assert!(rt.block_on(call(&client, &base, Some(n))));
        });
    });
    group.finish();
    c.final_summary();

    println!("\nload: 8 keep-alive clients, 3 s each");
    for (name, post) in [("GET page", false), ("POST breed", true)] {
        let (rps, p50, p99, failures) = rt.block_on(load(&base, post, 8, Duration::from_secs(3)));
        println!("  {name:10} {rps:8.0} req/s   p50 {p50:?}   p99 {p99:?}   failures {failures}");
    }
}
