//! Every server's traffic (issue 24): each server of a cluster routes, so a rollout that
//! judged only the leader's router would see a fraction of the requests. Each server
//! publishes its router's cumulative per-route counters to the shared persistence about once
//! a second ([`Persistence::publish`](crate::traits::Persistence::publish)), and
//! [`Vamp::route_stats`] adds the others' last records to its own router's fresh counters.
//!
//! The counters only grow per server. A server that stops keeps its last record (an hour), so
//! the sum does not drop when it goes; a server restarted under the same node name starts
//! from zero, which the analysis sees as counters that went back (a reset: that interval is
//! judged again).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::traits::{LatencyHistogram, RouteStats};
use crate::{Error, Result, Vamp};

/// The topic of the routers' counters.
const TOPIC: &str = "route-stats";

/// How often a server publishes them.
const EVERY: Duration = Duration::from_secs(1);

/// How old a record may be and still count: as long as the store keeps them.
const KEEP: Duration = Duration::from_secs(3600);

/// One route's counters as published (an infinite bound is `null` in JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    gateway: String,
    route: String,
    requests: u64,
    errors: u64,
    sum_ms: f64,
    buckets: Vec<(Option<f64>, u64)>,
}

fn to_wire(stats: &[RouteStats]) -> serde_json::Value {
    let wire: Vec<Wire> = stats
        .iter()
        .map(|s| Wire {
            gateway: s.gateway.clone(),
            route: s.route.clone(),
            requests: s.requests,
            errors: s.errors,
            sum_ms: s.latency.sum_ms,
            buckets: s
                .latency
                .buckets
                .iter()
                .map(|(b, c)| (b.is_finite().then_some(*b), *c))
                .collect(),
        })
        .collect();
    serde_json::to_value(wire).unwrap_or_default()
}

fn from_wire(value: serde_json::Value) -> Option<Vec<RouteStats>> {
    let wire: Vec<Wire> = serde_json::from_value(value).ok()?;
    Some(
        wire.into_iter()
            .map(|w| RouteStats {
                gateway: w.gateway,
                route: w.route,
                requests: w.requests,
                errors: w.errors,
                latency: LatencyHistogram {
                    buckets: w
                        .buckets
                        .into_iter()
                        .map(|(b, c)| (b.unwrap_or(f64::INFINITY), c))
                        .collect(),
                    sum_ms: w.sum_ms,
                },
            })
            .collect(),
    )
}

/// Adds counters by gateway and route, in the order first seen.
fn sum(all: impl IntoIterator<Item = RouteStats>) -> Vec<RouteStats> {
    let mut order = Vec::new();
    let mut by_route: BTreeMap<(String, String), RouteStats> = BTreeMap::new();
    for s in all {
        let key = (s.gateway.clone(), s.route.clone());
        match by_route.get_mut(&key) {
            Some(total) => {
                total.requests += s.requests;
                total.errors += s.errors;
                total.latency.merge(&s.latency);
            }
            None => {
                order.push(key.clone());
                by_route.insert(key, s);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|k| by_route.remove(&k))
        .collect()
}

impl Vamp {
    /// Per-route traffic counters (requests, errors, response times) of **every** server:
    /// this server's router's, plus, in a cluster, the last ones each other server published
    /// (about a second old). What rollouts, the traffic windows and workflows judge.
    ///
    /// # Errors
    /// [`Error::Unsupported`] from routers that cannot count.
    pub async fn route_stats(&self) -> Result<Vec<RouteStats>> {
        let own = self.inner.router.stats().await?;
        if self.inner.election.is_alone() {
            return Ok(own);
        }
        let node = &self.inner.election.candidate.node;
        let others = match self.db().published(TOPIC, KEEP).await {
            Ok(others) => others,
            Err(e) => {
                tracing::warn!(error = %e, "other servers' counters unavailable; counting this server's");
                return Ok(own);
            }
        };
        let theirs = others
            .into_iter()
            .filter(|p| &p.node != node)
            .filter_map(|p| from_wire(p.value))
            .flatten();
        Ok(sum(own.into_iter().chain(theirs)))
    }

    /// This server's router's counters alone (its `/metrics`: each server exports its own,
    /// and Prometheus adds them up).
    ///
    /// # Errors
    /// [`Error::Unsupported`] from routers that cannot count.
    pub async fn router_stats(&self) -> Result<Vec<RouteStats>> {
        self.inner.router.stats().await
    }

    /// In a cluster, publishes this server's router's counters about once a second.
    pub(crate) async fn publish_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        if self.inner.election.is_alone() {
            return;
        }
        let node = self.inner.election.candidate.node.clone();
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                _ = every.tick() => {}
            }
            let stats = match self.inner.router.stats().await {
                Ok(stats) => stats,
                Err(Error::Unsupported { .. }) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the router's counters");
                    continue;
                }
            };
            if let Err(e) = self.db().publish(TOPIC, &node, &to_wire(&stats)).await {
                tracing::debug!(error = %e, "cannot publish the router's counters");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(route: &str, requests: u64, buckets: Vec<(f64, u64)>) -> RouteStats {
        RouteStats {
            gateway: "shop".into(),
            route: route.into(),
            requests,
            errors: 1,
            latency: LatencyHistogram {
                buckets,
                sum_ms: 1.5,
            },
        }
    }

    #[test]
    fn counters_survive_the_wire_and_add_up_by_route() {
        let a = vec![
            stats("v1", 10, vec![(5.0, 8), (f64::INFINITY, 10)]),
            stats("v2", 2, vec![(5.0, 2), (f64::INFINITY, 2)]),
        ];
        let b = from_wire(to_wire(&[stats(
            "v1",
            4,
            vec![(5.0, 1), (f64::INFINITY, 4)],
        )]))
        .expect("reads back");
        assert_eq!(b[0].latency.buckets[1].0, f64::INFINITY);
        let total = sum(a.into_iter().chain(b));
        assert_eq!(total.len(), 2);
        assert_eq!(total[0].route, "v1");
        assert_eq!((total[0].requests, total[0].errors), (14, 2));
        assert_eq!(
            total[0].latency.buckets,
            vec![(5.0, 9), (f64::INFINITY, 14)]
        );
        assert_eq!(total[0].latency.sum_ms, 3.0);
        assert_eq!((total[1].route.as_str(), total[1].requests), ("v2", 2));
        assert!(from_wire(serde_json::json!({"not": "stats"})).is_none());
    }

    #[test]
    fn histograms_with_other_bounds_merge_at_or_below_each_bound() {
        let mut a = LatencyHistogram {
            buckets: vec![(1.0, 1), (10.0, 4), (f64::INFINITY, 5)],
            sum_ms: 0.0,
        };
        a.merge(&LatencyHistogram {
            buckets: vec![(5.0, 2), (f64::INFINITY, 3)],
            sum_ms: 0.0,
        });
        assert_eq!(
            a.buckets,
            vec![(1.0, 1), (5.0, 3), (10.0, 6), (f64::INFINITY, 8)]
        );
    }
}
