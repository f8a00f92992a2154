//! Per-route counters: lock-free, shared by every connection of a gateway and kept across
//! routing-table swaps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vamp_core::traits::{LatencyHistogram, RouteStats};

/// Upper bounds of the latency buckets, in milliseconds (the last bucket is unbounded).
pub const BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
];

/// Counters of one route.
#[derive(Debug, Default)]
pub(crate) struct RouteCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    /// One more than [`BUCKETS_MS`]: the last one counts everything slower.
    buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    /// Every response time added up, in microseconds.
    total_micros: AtomicU64,
}

impl RouteCounters {
    /// Counts one request (or TCP connection) that took `elapsed`.
    pub(crate) fn record(&self, elapsed: Duration, error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
        let ms = elapsed.as_secs_f64() * 1_000.0;
        let i = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A snapshot, with cumulative bucket counts (as [`LatencyHistogram`] documents).
    pub(crate) fn snapshot(&self, gateway: &str, route: &str) -> RouteStats {
        let mut running = 0;
        let buckets = BUCKETS_MS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, n)| {
                running += n.load(Ordering::Relaxed);
                (bound, running)
            })
            .collect();
        RouteStats {
            gateway: gateway.to_owned(),
            route: route.to_owned(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: LatencyHistogram {
                buckets,
                #[allow(clippy::cast_precision_loss)]
                sum_ms: self.total_micros.load(Ordering::Relaxed) as f64 / 1_000.0,
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
