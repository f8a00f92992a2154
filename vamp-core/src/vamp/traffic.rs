//! Traffic over a window, from the router's counters: what the stock `health` and `metrics`
//! workflows measure (spec §5.2, §5.3) where Vamp searched HAProxy's access logs in
//! Elasticsearch.
//!
//! The router's counters only grow, so a window is the difference between the counters now
//! and the snapshot taken nearest the window's start. [`Vamp::traffic`] keeps the snapshots it
//! needs: one each time it is asked (at most one per [`spacing`](TrafficHistory::spacing)),
//! none older than the longest window asked for (capped at [`LONGEST_WINDOW`]) but the one
//! that starts it, and never more than [`MAX_SNAPSHOTS`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::traits::RouteStats;
use crate::vamp::lock;
use crate::{Error, Result, Vamp};

/// The longest window [`Vamp::traffic`] answers for; longer ones are cut to this.
pub(crate) const LONGEST_WINDOW: Duration = Duration::from_secs(3600);

/// The most snapshots kept, whatever the windows asked for.
pub(crate) const MAX_SNAPSHOTS: usize = 256;

/// What one route saw over a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteTraffic {
    /// The gateway.
    pub gateway: String,
    /// The route (its full path, e.g. `shop/web/web:1.0/port`).
    pub route: String,
    /// Requests (connections for TCP) in the window.
    pub requests: u64,
    /// Failed ones: 5xx answers or connection errors.
    pub errors: u64,
    /// The sum of their response times, in ms.
    pub sum_ms: f64,
    /// Whether the router measures response times (else `sum_ms` is 0 by default).
    pub measured: bool,
}

impl RouteTraffic {
    /// The mean response time in ms: 0 without requests (as Vamp), `None` when the router
    /// measures no response times.
    #[must_use]
    pub fn mean_ms(&self) -> Option<f64> {
        if !self.measured {
            return None;
        }
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        Some(if self.requests == 0 {
            0.0
        } else {
            self.sum_ms / self.requests as f64
        })
    }
}

/// Every route's traffic over a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Traffic {
    /// The seconds the counts cover: the window asked for to within the snapshots' spacing
    /// (1 s, or a hundredth of the longest window asked for), less while the server has not
    /// counted that long yet — 0 the first time, which sets the baseline.
    pub seconds: f64,
    /// The routes the router serves, by gateway then route.
    pub routes: Vec<RouteTraffic>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: u64,
    errors: u64,
    sum_ms: f64,
}

#[derive(Debug)]
struct Snapshot {
    at: DateTime<Utc>,
    counts: HashMap<(String, String), Counts>,
}

/// The snapshots of the router's counters [`Vamp::traffic`] keeps.
#[derive(Debug, Default)]
pub(crate) struct TrafficHistory {
    snapshots: VecDeque<Snapshot>,
    /// The longest window asked for so far.
    longest: Duration,
}

impl TrafficHistory {
    /// The least time between two snapshots: a hundredth of the longest window, at least 1 s.
    fn spacing(&self) -> Duration {
        (self.longest / 100).max(Duration::from_secs(1))
    }

    /// The counts of `stats` over `window` as of `now`, keeping a snapshot of them.
    fn window(&mut self, stats: &[RouteStats], window: Duration, now: DateTime<Utc>) -> Traffic {
        let window = window.min(LONGEST_WINDOW);
        self.longest = self.longest.max(window);
        let current = Snapshot {
            at: now,
            counts: stats
                .iter()
                .map(|s| {
                    (
                        (s.gateway.clone(), s.route.clone()),
                        Counts {
                            requests: s.requests,
                            errors: s.errors,
                            sum_ms: s.latency.sum_ms,
                        },
                    )
                })
                .collect(),
        };
        let start = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        // The snapshot nearest the window's start: a caller that asks every `window` seconds
        // gets windows that meet end to end even when its runs come a little early.
        let base = self.snapshots.iter().min_by_key(|s| (s.at - start).abs());
        let mut routes: Vec<RouteTraffic> = stats
            .iter()
            .map(|s| {
                let now = Counts {
                    requests: s.requests,
                    errors: s.errors,
                    sum_ms: s.latency.sum_ms,
                };
                // The first call has nothing to count from: its counts are the baseline. A
                // route that came after the baseline counted everything in the window.
                let then = match base {
                    None => now,
                    Some(b) => b
                        .counts
                        .get(&(s.gateway.clone(), s.route.clone()))
                        .copied()
                        .unwrap_or_default(),
                };
                // A counter below its snapshot restarted (a router restart): all it has
                // counted is in the window.
                let delta = if now.requests < then.requests || now.errors < then.errors {
                    now
                } else {
                    Counts {
                        requests: now.requests - then.requests,
                        errors: now.errors - then.errors,
                        sum_ms: (now.sum_ms - then.sum_ms).max(0.0),
                    }
                };
                RouteTraffic {
                    gateway: s.gateway.clone(),
                    route: s.route.clone(),
                    requests: delta.requests,
                    errors: delta.errors,
                    sum_ms: delta.sum_ms,
                    measured: !s.latency.buckets.is_empty(),
                }
            })
            .collect();
        routes.sort_by(|a, b| (&a.gateway, &a.route).cmp(&(&b.gateway, &b.route)));
        let seconds = base.map_or(0.0, |b| {
            (now - b.at).to_std().map_or(0.0, |d| d.as_secs_f64())
        });
        let spacing = chrono::Duration::from_std(self.spacing()).unwrap_or(chrono::Duration::MAX);
        if self.snapshots.back().is_none_or(|s| now - s.at >= spacing) {
            self.snapshots.push_back(current);
        }
        self.prune(now);
        Traffic { seconds, routes }
    }

    /// Drops the snapshots no window needs: those older than the longest window but the
    /// newest of them (it starts that window), and the oldest beyond [`MAX_SNAPSHOTS`].
    fn prune(&mut self, now: DateTime<Utc>) {
        let start = now - chrono::Duration::from_std(self.longest).unwrap_or(chrono::Duration::MAX);
        while self.snapshots.len() > 1 && self.snapshots[1].at <= start {
            self.snapshots.pop_front();
        }
        while self.snapshots.len() > MAX_SNAPSHOTS {
            self.snapshots.pop_front();
        }
    }
}

impl Vamp {
    /// Every route's traffic over the last `window`, from the router's counters; see
    /// [`traffic_at`](Self::traffic_at).
    ///
    /// # Errors
    /// When the router cannot be asked; [`Error::Unsupported`] from a router that counts no
    /// traffic.
    pub async fn traffic(&self, window: Duration) -> Result<Traffic> {
        self.traffic_at(window, Utc::now()).await
    }

    /// Every route's traffic over `window` up to `now`: the router's counters now less those
    /// of the snapshot nearest `now - window`, which this call (and each before it) keeps. The
    /// first call only sets the baseline ([`Traffic::seconds`] is 0). Windows are cut to
    /// an hour; at most 256 snapshots are kept, so memory follows the routes served.
    ///
    /// ```
    /// # async fn demo(vamp: vamp_core::Vamp) -> vamp_core::Result<()> {
    /// use std::time::Duration;
    /// let traffic = vamp.traffic(Duration::from_secs(60)).await?;
    /// for r in traffic.routes.iter().filter(|r| r.errors > 0) {
    ///     println!("{} failed {} of {} requests", r.route, r.errors, r.requests);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// When the router cannot be asked; [`Error::Unsupported`] from a router that counts no
    /// traffic.
    pub async fn traffic_at(&self, window: Duration, now: DateTime<Utc>) -> Result<Traffic> {
        let stats = self.route_stats().await?;
        if window.is_zero() {
            return Err(Error::Invalid {
                what: "traffic window",
                message: "the window must be longer than 0 seconds".into(),
            });
        }
        Ok(lock(&self.inner.traffic).window(&stats, window, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::LatencyHistogram;

    fn stats(requests: u64, errors: u64) -> Vec<RouteStats> {
        vec![RouteStats {
            gateway: "g".into(),
            route: "g/r".into(),
            requests,
            errors,
            latency: LatencyHistogram {
                buckets: vec![(f64::INFINITY, requests)],
                #[allow(clippy::cast_precision_loss)]
                sum_ms: requests as f64 * 2.0,
            },
        }]
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap_or_default()
    }

    #[test]
    fn a_window_counts_what_came_since_the_snapshot_nearest_its_start() {
        let mut h = TrafficHistory::default();
        let w = Duration::from_secs(10);
        let first = h.window(&stats(100, 1), w, at(0));
        assert!(first.seconds.abs() < f64::EPSILON, "the baseline");
        assert_eq!(first.routes[0].requests, 0);
        let t = h.window(&stats(130, 1), w, at(5));
        assert_eq!(
            (t.seconds, t.routes[0].requests),
            (5.0, 30),
            "since the oldest"
        );
        let t = h.window(&stats(150, 4), w, at(12));
        assert_eq!(
            (t.seconds, t.routes[0].requests, t.routes[0].errors),
            (12.0, 50, 3),
            "at 12, the snapshot at 0 is nearer the start (2) than the one at 5"
        );
        assert_eq!(t.routes[0].mean_ms(), Some(2.0));
        let t = h.window(&stats(160, 4), w, at(30));
        assert_eq!(
            (t.seconds, t.routes[0].requests, t.routes[0].errors),
            (18.0, 10, 0),
            "errors older than the window are gone"
        );
    }

    #[test]
    fn a_restarted_counter_counts_from_zero_and_snapshots_stay_bounded() {
        let mut h = TrafficHistory::default();
        let w = Duration::from_secs(100_000);
        h.window(&stats(500, 9), w, at(0));
        let t = h.window(&stats(20, 0), w, at(4000));
        assert_eq!(t.routes[0].requests, 20, "the router restarted");
        for i in 0..2000 {
            h.window(&stats(20, 0), w, at(4000 + i * 60));
        }
        assert!(h.snapshots.len() <= MAX_SNAPSHOTS);
        assert!(
            h.snapshots.back().is_some_and(|s| s.at > at(100_000)),
            "the newest are kept"
        );
    }

    proptest::proptest! {
        /// Whatever the calls' times and windows: the counts are what the counter grew by
        /// between the snapshot used and now (never more than since the first call), and the
        /// seconds covered are those between them.
        #[test]
        fn windows_count_growth_between_two_readings(
            steps in proptest::collection::vec((1u64..90, 0u64..50, 1u64..400), 1..60)
        ) {
            let mut h = TrafficHistory::default();
            let (mut t, mut requests) = (0i64, 1000u64);
            h.window(&stats(requests, 0), Duration::from_secs(10), at(t));
            for (gap, more, window) in steps {
                t += i64::try_from(gap).unwrap_or(1);
                requests += more;
                let w = h.window(&stats(requests, 0), Duration::from_secs(window), at(t));
                let r = &w.routes[0];
                proptest::prop_assert!(r.requests <= requests - 1000);
                #[allow(clippy::cast_precision_loss)]
                let elapsed = t as f64;
                proptest::prop_assert!(w.seconds > 0.0 && w.seconds <= elapsed);
                proptest::prop_assert!(h.snapshots.len() <= MAX_SNAPSHOTS);
            }
        }
    }
}
