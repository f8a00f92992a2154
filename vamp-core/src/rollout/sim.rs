//! Simulated traffic for the planner on a virtual clock ([`super::plan::simulate`]): Poisson
//! arrivals at `rps`, split by the weights, failing at each route's error rate, answering in
//! log-normal times around each route's median. Seeded: one seed, one timeline — what
//! `vamp rollout simulate` prints and the tests compare.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng};

use super::{Counts, Weights};

/// The embedded router's latency buckets (ms): what a simulated route reports.
pub const BOUNDS: [f64; 14] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
];

/// What the simulated routes do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficModel {
    /// Requests per second through the gateway (both routes).
    pub rps: f64,
    /// The stable route's failing share (0–1).
    pub stable_error_rate: f64,
    /// The canary's failing share (0–1).
    pub canary_error_rate: f64,
    /// The stable route's median response time, ms.
    pub stable_ms: f64,
    /// The canary's median response time, ms.
    pub canary_ms: f64,
}

impl Default for TrafficModel {
    fn default() -> Self {
        TrafficModel {
            rps: 20.0,
            stable_error_rate: 0.001,
            canary_error_rate: 0.001,
            stable_ms: 20.0,
            canary_ms: 20.0,
        }
    }
}

/// Per tick of `seconds`: what each route served since the last one, `(stable, canary)`.
///
/// ```
/// use vamp_core::rollout::Weights;
/// use vamp_core::rollout::sim::{TrafficModel, traffic};
/// let mut a = traffic(TrafficModel::default(), 7, 1);
/// let mut b = traffic(TrafficModel::default(), 7, 1);
/// let w = Weights { stable: 90, canary: 10 };
/// let now = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
/// assert_eq!(a(now, w), b(now, w), "one seed, one traffic");
/// ```
pub fn traffic(
    model: TrafficModel,
    seed: u64,
    seconds: i64,
) -> impl FnMut(DateTime<Utc>, Weights) -> (Counts, Counts) {
    let mut rng = Sampler::new(seed);
    #[expect(clippy::cast_precision_loss, reason = "tick lengths are small")]
    let seconds = seconds.max(1) as f64;
    move |_, w| {
        let share = w.canary_share();
        let n = rng.poisson(model.rps * seconds);
        let canary_n = (0..n).filter(|_| rng.uniform() < share).count() as u64;
        let stable = rng.requests(n - canary_n, model.stable_error_rate, model.stable_ms);
        let canary = rng.requests(canary_n, model.canary_error_rate, model.canary_ms);
        (stable, canary)
    }
}

/// Seeded draws of simulated traffic: arrivals and the requests of one route.
///
/// ```
/// use vamp_core::rollout::sim::Sampler;
/// let mut s = Sampler::new(7);
/// let counts = s.requests(1000, 0.01, 20.0);
/// assert_eq!(counts.requests, 1000);
/// assert_eq!(counts.buckets.iter().sum::<u64>(), 1000);
/// ```
#[derive(Debug)]
pub struct Sampler(StdRng);

impl Sampler {
    /// A sampler: one seed, one sequence of draws.
    pub fn new(seed: u64) -> Self {
        Sampler(StdRng::seed_from_u64(seed))
    }

    /// A uniform draw in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Poisson arrivals around `mean`: Knuth's method for small means, a rounded normal for
    /// large ones.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 50.0 {
            let normal = self.standard_normal();
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "clamped at 0, far below u64::MAX"
            )]
            return (mean + normal * mean.sqrt()).round().max(0.0) as u64;
        }
        let l = (-mean).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }

    fn standard_normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` requests of one route: each fails at `error`, answers around `median` ms
    /// (log-normal, σ 0.5), counted in the embedded router's [`BOUNDS`].
    pub fn requests(&mut self, n: u64, error: f64, median: f64) -> Counts {
        let mut buckets = vec![0; BOUNDS.len() + 1];
        let (mut errors, mut sum) = (0, 0.0);
        for _ in 0..n {
            if self.uniform() < error {
                errors += 1;
            }
            let ms = median * (0.5 * self.standard_normal()).exp();
            sum += ms;
            let i = BOUNDS.iter().position(|b| ms <= *b).unwrap_or(BOUNDS.len());
            buckets[i] += 1;
        }
        Counts {
            requests: n,
            errors,
            bounds: BOUNDS.to_vec(),
            buckets,
            sum_ms: sum,
        }
    }
}
