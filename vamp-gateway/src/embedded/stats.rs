//! Per-route counters: lock-free, shared by every connection of a gateway and kept across
//! routing-table swaps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vamp_core::traits::{LatencyHistogram, RouteStats};

/// Upper bounds of the latency buckets, in milliseconds (the last bucket is unbounded).
pub const BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
];

/// Counters of one route, in shards: each thread that records counts in a shard of its own
/// (its own cache line), so the router's worker threads never write one line between them;
/// a snapshot adds the shards up.
#[derive(Debug)]
pub(crate) struct RouteCounters {
    shards: Box<[Shard]>,
}

/// One thread's share of a route's counters, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    requests: AtomicU64,
    errors: AtomicU64,
    /// One more than [`BUCKETS_MS`]: the last one counts everything slower.
    buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    /// Every response time added up, in microseconds.
    total_micros: AtomicU64,
}

/// Shards per route: threads beyond this share them.
const SHARDS: usize = 8;

thread_local! {
    /// This thread's shard, handed out in turn the first time it records.
    static SHARD: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        usize::try_from(NEXT.fetch_add(1, Ordering::Relaxed)).unwrap_or(0) % SHARDS
    };
}

impl Default for RouteCounters {
    fn default() -> Self {
        RouteCounters {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl RouteCounters {
    /// Counts one request (or TCP connection) that took `elapsed`.
    pub(crate) fn record(&self, elapsed: Duration, error: bool) {
        let i = SHARD.with(|i| *i);
        let Some(shard) = self.shards.get(i) else {
            return;
        };
        shard.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            shard.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        shard.total_micros.fetch_add(micros, Ordering::Relaxed);
        let ms = elapsed.as_secs_f64() * 1_000.0;
        let b = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        if let Some(bucket) = shard.buckets.get(b) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A counter summed over the shards.
    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| counter(s).load(Ordering::Relaxed))
            .sum()
    }

    /// A snapshot, with cumulative bucket counts (as [`LatencyHistogram`] documents).
    pub(crate) fn snapshot(&self, gateway: &str, route: &str) -> RouteStats {
        let mut running = 0;
        let buckets = BUCKETS_MS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| {
                running += self
                    .shards
                    .iter()
                    .map(|s| s.buckets.get(i).map_or(0, |b| b.load(Ordering::Relaxed)))
                    .sum::<u64>();
                (bound, running)
            })
            .collect();
        RouteStats {
            gateway: gateway.to_owned(),
            route: route.to_owned(),
            requests: self.sum(|s| &s.requests),
            errors: self.sum(|s| &s.errors),
            latency: LatencyHistogram {
                buckets,
                #[allow(clippy::cast_precision_loss)]
                sum_ms: self.sum(|s| &s.total_micros) as f64 / 1_000.0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_errors_counted() {
        let c = RouteCounters::default();
        c.record(Duration::from_micros(300), false);
        c.record(Duration::from_millis(3), true);
        c.record(Duration::from_secs(60), false);
        let s = c.snapshot("g", "r");
        assert_eq!((s.requests, s.errors), (3, 1));
        assert_eq!(s.latency.buckets[0], (0.5, 1));
        assert_eq!(s.latency.buckets[3], (5.0, 2));
        assert_eq!(s.latency.buckets.last(), Some(&(f64::INFINITY, 3)));
        assert!(
            (s.latency.sum_ms - 60_003.3).abs() < 1e-6,
            "{}",
            s.latency.sum_ms
        );
    }
}
