//! The one retry policy of the workspace (issue 20): every reconnect and retry loop — store
//! watches, the gateway agent's session, webhook deliveries — waits as [`backoff`] says.
//! Exponential backoff with jitter, from `backon`, so that clients that lost the same server
//! at the same moment do not all come back in step.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays between attempts: `first`, doubling up to `cap`, each stretched by a random share of
/// itself (a delay `d` waits between `d` and `2d`). Endless: `.take(n)` for at most `n` retries,
/// a fresh iterator after a success.
///
/// ```
/// use std::time::Duration;
/// let delays: Vec<Duration> =
///     vamp_core::retry::backoff(Duration::from_millis(100), Duration::from_secs(1)).take(6).collect();
/// assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200));
/// assert!(delays[5] >= Duration::from_secs(1) && delays[5] <= Duration::from_secs(2));
/// ```
pub fn backoff(first: Duration, cap: Duration) -> Backoff {
    Backoff(
        ExponentialBuilder::default()
            .with_min_delay(first)
            .with_max_delay(cap.max(first))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build(),
    )
}

/// The delays [`backoff`] gives.
#[derive(Debug)]
pub struct Backoff(backon::ExponentialBackoff);

impl Backoff {
    /// The next delay (never ends).
    pub fn delay(&mut self) -> Duration {
        self.0.next().unwrap_or(Duration::from_secs(1))
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_cap_with_jitter_within_bounds() {
        let (first, cap) = (Duration::from_millis(10), Duration::from_millis(80));
        let delays: Vec<Duration> = backoff(first, cap).take(200).collect();
        assert_eq!(delays.len(), 200, "endless until taken");
        let mut base = first;
        for d in &delays {
            assert!(
                *d >= base && *d <= base * 2,
                "{d:?} outside [{base:?}, {:?}]",
                base * 2
            );
            base = (base * 2).min(cap);
        }
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter spreads the delays");
    }
}
