//! Issue 18: the rollout planner on a virtual clock, seeded — how often it rolls back a
//! healthy canary at low traffic, how fast it rolls back a bad one — the cost of one planner
//! step (criterion), and the time from a failing verdict to the embedded router sending every
//! request to the stable route.
//!
//! Run with: `cargo bench -p vamp-benches --bench rollouts`

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::Criterion;
use vamp_core::model::{Artifact, Rollout};
use vamp_core::rollout::plan;
use vamp_core::rollout::sim::Sampler;
use vamp_core::rollout::{Observation, Phase, Weights};

/// The issue's example rollout.
const SPEC: &str = "kind: rollouts\nname: sava-release\ngateway: sava/sava/webport\nstable: sava/sava/sava:1.0.0/webport\ncanary: sava/sava/sava:1.1.0/webport\nsteps:\n  - weight: 10%\n  - analysis: {}\n  - weight: 50%\n  - pause: 30s\n  - analysis: {}\nanalysis:\n  interval: 10s\n  min_requests: 50\n  failure_limit: 0\n  inconclusive_limit: 3\n  metrics:\n    - {metric: success-rate, min: 99%, critical: true}\n    - {metric: latency-p99, max: 500ms}\n    - {metric: latency-p99, max_ratio: 1.5}\n";

fn rollout() -> Rollout {
    let Artifact::Rollout(r) = vamp_core::dsl::read(SPEC, None).expect("spec").remove(0) else {
        panic!("not a rollout")
    };
    r
}

/// How the simulated traffic is given.
#[derive(Clone, Copy)]
enum Traffic {
    /// Requests per second to the gateway, split by the weights.
    Gateway(f64),
    /// Requests per second to the canary (the stable route gets what the weights make of it,
    /// nine times as much at 10%).
    Canary(f64),
}

/// One simulated rollout: the stable route fails `stable_error` of its requests, the canary
/// `canary_error`, both answer in about 2 ms. Returns the final phase and the number of
/// verdicts made.
fn run(
    r: &Rollout,
    seed: u64,
    traffic: Traffic,
    stable_error: f64,
    canary_error: f64,
) -> (Phase, usize) {
    let mut rng = Sampler::new(seed);
    let timeline = plan::simulate(
        r,
        Weights {
            stable: 100,
            canary: 0,
        },
        1,
        7200,
        |_, w| {
            let share = f64::from(w.canary) / 100.0;
            let total = match traffic {
                Traffic::Gateway(rps) => rps,
                // Before the first shift the canary gets nothing; the stable route what it
                // gets at 10%.
                Traffic::Canary(rps) if share == 0.0 => rps * 9.0,
                Traffic::Canary(rps) => rps / share,
            };
            let c = rng.poisson(total * share);
            let s = rng.poisson(total * (1.0 - share));
            (
                rng.requests(s, stable_error, 2.0),
                rng.requests(c, canary_error, 2.0),
            )
        },
    );
    let end = &timeline.last().expect("a tick").0;
    (end.phase, end.intervals.len())
}

fn main() {
    let r = rollout();
    // 1. Healthy canaries at 1 request per second.
    let runs = 1000;
    for (what, traffic) in [
        ("1 rps to the gateway", Traffic::Gateway(1.0)),
        ("1 rps to the canary", Traffic::Canary(1.0)),
    ] {
        let mut outcomes = std::collections::BTreeMap::<&str, u32>::new();
        let t = Instant::now();
        for seed in 0..runs {
            let (phase, _) = run(&r, seed, traffic, 0.001, 0.001);
            *outcomes.entry(phase.as_str()).or_default() += 1;
        }
        let rolled_back = outcomes.get("RolledBack").copied().unwrap_or(0);
        println!(
            "healthy canaries, {what} (0.1% errors on both routes), {runs} runs of up to 2 h simulated in {:.1?}: {outcomes:?}; false rollbacks {:.2}%",
            t.elapsed(),
            f64::from(rolled_back) * 100.0 / f64::from(runs as u32)
        );
    }
    // 2. A canary with 5% errors against 0.1% on stable.
    for (what, traffic) in [
        ("20 rps to the canary", Traffic::Canary(20.0)),
        (
            "20 rps to the gateway (2 rps to the canary at 10%)",
            Traffic::Gateway(20.0),
        ),
    ] {
        let mut outcomes = std::collections::BTreeMap::<&str, u32>::new();
        let mut within_three = 0;
        for seed in 0..runs {
            let (phase, verdicts) = run(&r, 1_000_000 + seed, traffic, 0.001, 0.05);
            *outcomes.entry(phase.as_str()).or_default() += 1;
            if phase == Phase::RolledBack && verdicts <= 3 {
                within_three += 1;
            }
        }
        println!(
            "bad canaries (5% errors vs 0.1%), {what}, {runs} runs: {outcomes:?}; rolled back within 3 intervals {within_three} ({:.1}%)",
            f64::from(within_three) * 100.0 / f64::from(runs as u32)
        );
    }

    // 3. One planner step, in an analysis with evidence.
    let t0 = DateTime::<Utc>::UNIX_EPOCH;
    let mut rng = Sampler::new(7);
    let observed = |n: u64, rng: &mut Sampler| Observation {
        weights: Some(Weights {
            stable: 90,
            canary: 10,
        }),
        counts: Some((
            rng.requests(900 * n, 0.001, 2.0),
            rng.requests(100 * n, 0.001, 2.0),
        )),
        canary_ready: true,
        ..Observation::default()
    };
    let (status, _) = plan::tick(&r, None, &observed(0, &mut rng), t0);
    let (status, _) = plan::tick(
        &r,
        Some(&status),
        &observed(1, &mut rng),
        t0 + chrono::Duration::seconds(1),
    );
    let later = observed(2, &mut rng);
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(50)
        .measurement_time(Duration::from_secs(3));
    c.bench_function("rollout_plan_tick_counting", |b| {
        b.iter(|| plan::tick(&r, Some(&status), &later, t0 + chrono::Duration::seconds(2)));
    });
    c.bench_function("rollout_plan_tick_with_verdict", |b| {
        b.iter(|| {
            plan::tick(
                &r,
                Some(&status),
                &later,
                t0 + chrono::Duration::seconds(11),
            )
        });
    });
    c.final_summary();

    // 4. Failing verdict → every request on the stable route, through a real embedded router.
    let rt = vamp_benches::runtime();
    rt.block_on(verdict_to_traffic());
}

async fn demo(version: &str, error_rate: f64) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = vamp_demo_app::DemoConfig {
        version: version.into(),
        error_rate,
        ..vamp_demo_app::DemoConfig::default()
    };
    tokio::spawn(vamp_demo_app::serve(
        listener,
        config,
        std::future::pending(),
    ));
    port
}

async fn verdict_to_traffic() {
    use std::sync::Arc;
    use vamp_core::Vamp;
    use vamp_core::memory::MemoryDriver;
    use vamp_gateway::embedded::EmbeddedRouter;
    use vamp_gateway::testkit::{Client, free_port};
    let router = EmbeddedRouter::new();
    let vamp = Vamp::builder()
        .driver(Arc::new(MemoryDriver::default()))
        .router(Arc::new(router))
        .config(vamp_core::VampConfig {
            rollout_period: None,
            resync: Duration::from_secs(3600),
            ..vamp_core::VampConfig::default()
        })
        .build()
        .expect("vamp");
    tokio::spawn({
        let vamp = vamp.clone();
        async move { vamp.run(std::future::pending()).await }
    });
    let (stable, canary) = (demo("1.0.0", 0.0).await, demo("2.0.0", 1.0).await);
    let port = free_port();
    let gateway = format!(
        "kind: gateways\nname: g\nport: {port}/http\nroutes:\n  '[127.0.0.1:{stable}]': {{weight: 100%}}\n  '[127.0.0.1:{canary}]': {{weight: 0%}}\n"
    );
    vamp.put(
        vamp_core::dsl::read(&gateway, None)
            .expect("gateway")
            .remove(0),
    )
    .await
    .expect("store");
    let spec = format!(
        "kind: rollouts\nname: r\ngateway: g\nstable: '[127.0.0.1:{stable}]'\ncanary: '[127.0.0.1:{canary}]'\nsteps:\n  - weight: 50%\n  - analysis: {{}}\nanalysis:\n  interval: 1s\n  min_requests: 10\n  metrics:\n    - {{metric: success-rate, min: 99%, critical: true}}\n"
    );
    vamp.put(
        vamp_core::dsl::read(&spec, None)
            .expect("rollout")
            .remove(0),
    )
    .await
    .expect("store rollout");
    let mut figures = Vec::new();
    for round in 0..20 {
        let t0 = Utc::now();
        let mut now = t0;
        // Begin (weights 50/50), then traffic until the analysis is due.
        vamp.rollout_pass_at(now).await.expect("pass");
        let mut client = Client::new(port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get("/", &[]).await.map(|r| r.status) != Ok(500) {
            assert!(Instant::now() < deadline, "the canary never answered");
        }
        for _ in 0..40 {
            let _ = client.get("/", &[]).await;
        }
        now += chrono::Duration::seconds(2);
        let started = Instant::now();
        vamp.rollout_pass_at(now).await.expect("the failing pass");
        // The first two answers in a row from the stable route: the canary is out.
        let mut in_a_row = 0;
        while in_a_row < 2 {
            let ok = client.get("/", &[]).await.is_ok_and(|r| r.status == 200);
            in_a_row = if ok { in_a_row + 1 } else { 0 };
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never rolled back"
            );
        }
        figures.push(started.elapsed());
        let status = vamp
            .rollout_status("r")
            .await
            .expect("status")
            .expect("some");
        assert_eq!(status.phase, Phase::RolledBack, "round {round}");
        vamp.rollout_command("r", plan::Command::Retry)
            .await
            .expect("retry");
    }
    figures.sort();
    println!(
        "failing verdict → all traffic on the stable route (embedded router, 20 rounds): p50 {:.2?} p99 {:.2?} max {:.2?}",
        figures[10], figures[19], figures[19]
    );
}
