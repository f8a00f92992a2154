//! Live per-route numbers on the event stream (issue 23): about once a second, while anyone
//! listens, the router's counters since the last look as one SSE message of type `stats`
//! (not stored): `{at, seconds, routes: [{gateway, route, requests, errors, rate,
//! error_ratio, p50_ms, p99_ms}]}`, with the routes that served requests in that second (a
//! route left out served none). Counts are the differences between two reads of
//! [`Vamp::route_stats`](vamp_core::Vamp::route_stats); percentiles come from the
//! differences of the response-time histograms, `null` where the router measures none.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use vamp_core::Vamp;
use vamp_core::rollout::Counts;

/// The SSE type of the live numbers.
pub(super) const STATS: &str = "stats";

/// How often the numbers go out.
const PERIOD: Duration = Duration::from_secs(1);

/// The publisher of `stats` messages: started by the first stream that asks, it reads the
/// router only while some stream listens.
#[derive(Debug)]
pub struct LiveStats {
    tx: broadcast::Sender<Arc<str>>,
    started: AtomicBool,
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            // A stream that falls 4 s behind skips to the newest numbers.
            tx: broadcast::channel(4).0,
            started: AtomicBool::new(false),
        }
    }
}

impl LiveStats {
    /// The messages from now on; starts the publisher the first time.
    pub(super) fn subscribe(
        self: &Arc<Self>,
        vamp: &Vamp,
        stopping: &watch::Receiver<bool>,
    ) -> broadcast::Receiver<Arc<str>> {
        let rx = self.tx.subscribe();
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(publish(self.clone(), vamp.clone(), stopping.clone()));
        }
        rx
    }
}

type Key = (String, String);

async fn publish(live: Arc<LiveStats>, vamp: Vamp, mut stopping: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<(Instant, HashMap<Key, Counts>)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        if live.tx.receiver_count() == 0 {
            // Nobody listens: no reads, and the next listener starts from a fresh baseline.
            previous = None;
            continue;
        }
        let stats = match vamp.route_stats().await {
            Ok(stats) => stats,
            Err(e) => {
                tracing::debug!(error = %e, "no live route numbers");
                continue;
            }
        };
        let now = Instant::now();
        let current: HashMap<Key, Counts> = stats
            .iter()
            .map(|s| ((s.gateway.clone(), s.route.clone()), Counts::from_stats(s)))
            .collect();
        if let Some((then, before)) = &previous {
            let message = message(now.duration_since(*then), before, &current);
            // No receiver left since the check: nothing to do.
            let _ = live.tx.send(message.to_string().into());
        }
        previous = Some((now, current));
    }
}

/// The `stats` message for the counts `before` and `now`, `elapsed` apart.
fn message(elapsed: Duration, before: &HashMap<Key, Counts>, now: &HashMap<Key, Counts>) -> Value {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let mut routes: Vec<(&Key, Counts)> = now
        .iter()
        .filter_map(|(key, counts)| {
            let delta = match before.get(key) {
                Some(earlier) => counts.since(earlier)?,
                None => counts.clone(),
            };
            (delta.requests > 0).then_some((key, delta))
        })
        .collect();
    routes.sort_by(|a, b| a.0.cmp(b.0));
    #[expect(
        clippy::cast_precision_loss,
        reason = "per-second counts far below 2^52"
    )]
    let routes: Vec<Value> = routes
        .into_iter()
        .map(|((gateway, route), d)| {
            json!({
                "gateway": gateway,
                "route": route,
                "requests": d.requests,
                "errors": d.errors,
                "rate": d.requests as f64 / seconds,
                "error_ratio": d.errors as f64 / d.requests as f64,
                "p50_ms": d.percentile(0.5),
                "p99_ms": d.percentile(0.99),
            })
        })
        .collect();
    json!({
        "at": chrono::Utc::now(),
        "seconds": seconds,
        "routes": routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64, errors: u64, buckets: Vec<u64>) -> Counts {
        Counts {
            requests,
            errors,
            bounds: vec![1.0, 10.0],
            buckets,
            sum_ms: 0.0,
        }
    }

    #[test]
    fn a_message_holds_what_each_route_served_since_the_last_look() {
        let key = |r: &str| ("g".to_owned(), r.to_owned());
        let before = HashMap::from([
            (key("a"), counts(100, 1, vec![90, 10, 0])),
            (key("idle"), counts(5, 0, vec![5, 0, 0])),
        ]);
        let now = HashMap::from([
            (key("a"), counts(300, 21, vec![90 + 100, 10 + 100, 0])),
            (key("idle"), counts(5, 0, vec![5, 0, 0])),
            (key("new"), counts(4, 0, vec![4, 0, 0])),
        ]);
        let m = message(Duration::from_secs(2), &before, &now);
        let routes = m["routes"].as_array().unwrap();
        // The idle route served nothing: left out. The new one counts from zero.
        assert_eq!(routes.len(), 2, "{m}");
        assert_eq!(routes[0]["route"], "a");
        assert_eq!(routes[0]["requests"], 200);
        assert_eq!(routes[0]["errors"], 20);
        assert_eq!(routes[0]["rate"], 100.0);
        assert_eq!(routes[0]["error_ratio"], 0.1);
        // Half the 200 answered within 1 ms, half within 1–10 ms.
        assert_eq!(routes[0]["p50_ms"], 1.0);
        assert!(routes[0]["p99_ms"].as_f64().unwrap() > 9.0);
        assert_eq!(routes[1]["route"], "new");
        assert_eq!(routes[1]["requests"], 4);
    }

    #[test]
    fn counters_that_went_back_are_left_out_not_negative() {
        let key = ("g".to_owned(), "a".to_owned());
        let before = HashMap::from([(key.clone(), counts(100, 0, vec![100, 0, 0]))]);
        let now = HashMap::from([(key, counts(3, 0, vec![3, 0, 0]))]);
        let m = message(Duration::from_secs(1), &before, &now);
        assert_eq!(m["routes"].as_array().unwrap().len(), 0);
    }
}
