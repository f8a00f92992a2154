//! Issue 17: event retention holds the log at its configured size while 1 000 000 events
//! arrive, and tag queries stay fast at that size.
//!
//! Emits 1 000 000 metric events (`VAMP_BENCH_EVENTS` for fewer) (as the SLA runtime and the stock metrics workflow publish
//! them: a gateway tag, a route tag, the metric) in batches of 1 000, runs the retention pass
//! every 100 000 events with `max_count` = 100 000 for `metrics`, and at the end reports the
//! events kept and the median and p99 of two tag queries (the latest rate of a gateway; the
//! newest page of a gateway's metrics). SQLite always; PostgreSQL when `VAMP_BENCH_POSTGRES`
//! is a server URL (`bash scripts/bench.sh retention postgres` sets it up); `VAMP_BENCH_ONLY=
//! sqlite|postgres` runs one.
//!
//! Run with: `cargo bench -p vamp-benches --bench retention`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use vamp_core::model::Event;
use vamp_core::traits::{EventFilter, Page, Persistence, Retention, RetentionRule};
use vamp_drivers::postgres::PostgresPersistence;
use vamp_drivers::sqlite::SqlitePersistence;

/// Events emitted; `VAMP_BENCH_EVENTS` may ask for fewer (a quick check).
fn total() -> u64 {
    std::env::var("VAMP_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}
const BATCH: u64 = 1_000;
const KEEP: u64 = 100_000;
const EVERY: u64 = 100_000;

fn batch(start: u64, run: &str) -> Vec<Event> {
    (start..start + BATCH)
        .map(|i| {
            let g = i % 100;
            let mut e = Event::new(
                [
                    format!("gateways:{run}-g{g}"),
                    format!("routes:{run}-g{g}/r{}", i % 3),
                    "metrics:rate".to_owned(),
                ],
                json!(i),
            );
            e.kind = "metrics".into();
            e
        })
        .collect()
}

fn percentile(mut d: Vec<Duration>, p: f64) -> Duration {
    d.sort();
    d[((d.len() as f64 * p).ceil() as usize).clamp(1, d.len()) - 1]
}

async fn run(name: &str, db: &dyn Persistence) {
    let run = format!("r{}", std::process::id());
    let retention = Retention {
        default: RetentionRule::default(),
        by_type: BTreeMap::from([(
            "metrics".to_owned(),
            RetentionRule {
                max_age: None,
                max_count: Some(KEEP),
            },
        )]),
    };
    let start = Instant::now();
    let mut retention_time = Duration::ZERO;
    let mut deleted = 0;
    let mut n = 0;
    let total = total();
    while n < total {
        db.append_events(&batch(n, &run)).await.expect("append");
        n += BATCH;
        if n % EVERY == 0 {
            let t = Instant::now();
            deleted += db
                .retain_events(&retention, chrono::Utc::now())
                .await
                .expect("retain");
            retention_time += t.elapsed();
        }
    }
    let all = start.elapsed();
    let kept = db
        .query_events(
            &EventFilter {
                kind: Some("metrics".into()),
                ..EventFilter::default()
            },
            Page::new(1, 1),
        )
        .await
        .expect("count")
        .total;
    println!(
        "{name}: {total} events in {all:.1?} ({:.0} events/s, retention passes {retention_time:.1?}); deleted {deleted}; metrics kept {kept} (max_count {KEEP})",
        total as f64 / all.as_secs_f64()
    );
    let latest = EventFilter::tags([format!("gateways:{run}-g7"), "metrics:rate".to_owned()]);
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let found = db.newest_event(&latest).await.expect("newest");
        times.push(t.elapsed());
        assert!(found.is_some(), "nothing found");
    }
    println!(
        "  latest rate of a gateway (newest_event, as the health and metrics lookups ask): p50 {:.2?} p99 {:.2?}",
        percentile(times.clone(), 0.5),
        percentile(times, 0.99)
    );
    for (what, filter, page) in [
        (
            "a gateway's rates, page of 1 with the total",
            latest.clone(),
            Page::new(1, 1),
        ),
        (
            "newest page of a route, with the total",
            EventFilter::tags([format!("routes:{run}-g7/r1")]),
            Page::new(1, 30),
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let found = db.query_events(&filter, page).await.expect("query");
            times.push(t.elapsed());
            assert!(!found.items.is_empty(), "{what}: nothing found");
        }
        println!(
            "  {what}: p50 {:.2?} p99 {:.2?}",
            percentile(times.clone(), 0.5),
            percentile(times, 0.99)
        );
    }
}

fn main() {
    let rt = vamp_benches::runtime();
    rt.block_on(async {
        let only = std::env::var("VAMP_BENCH_ONLY").unwrap_or_default();
        let dir = tempfile::tempdir().expect("tempdir");
        if only.is_empty() || only == "sqlite" {
            let sqlite = SqlitePersistence::open(dir.path().join("events.db"))
                .await
                .expect("sqlite");
            run("sqlite", &sqlite).await;
        }
        if only == "sqlite" {
            return;
        }
        match std::env::var("VAMP_BENCH_POSTGRES") {
            Ok(url) => {
                let pg = PostgresPersistence::connect(&url).await.expect("postgres");
                run("postgres", &pg).await;
            }
            Err(_) => println!("postgres: SKIPPED (set VAMP_BENCH_POSTGRES)"),
        }
    });
}
