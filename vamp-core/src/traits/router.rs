//! The router trait: the data plane that routes the resolved gateways (spec §3.5, §4).

use std::fmt::Debug;

use async_trait::async_trait;

use crate::Result;
use crate::model::expression::{ConditionOperand, Expr};
use crate::model::{Percentage, PortType, Sticky};

/// A concrete address a route sends traffic to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteTarget {
    /// The instance (or gateway) name.
    pub name: String,
    /// Host or IP.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A condition, parsed (spec §1.7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCondition {
    /// The text as written.
    pub text: String,
    /// The parsed expression (a whole raw ACL when the text is not in the grammar).
    pub expr: Expr<ConditionOperand>,
}

impl ResolvedCondition {
    /// Parses a condition text.
    pub fn parse(text: &str) -> Self {
        ResolvedCondition {
            text: text.to_owned(),
            expr: crate::model::expression::parse_condition(text),
        }
    }
}

/// A path rewrite: `http-request set-path <path> if <condition>` (spec §1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRewrite {
    /// The new path (may use HAProxy sample expressions).
    pub path: String,
    /// The raw HAProxy condition, wrapped in `{ }`.
    pub condition: String,
}

/// Load-balancing inside a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Weighted round robin (HTTP default).
    RoundRobin,
    /// Fewest connections (TCP default).
    LeastConn,
    /// Hash of the client address.
    Source,
    /// Another HAProxy algorithm, passed through.
    Other(String),
}

/// A route with weights defaulted and targets resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedRoute {
    /// The route path as in the gateway (`shop/web/sava:1.0.0/http`, `[host:port]`, …).
    pub path: String,
    /// Stable id (spec §4.2.1).
    pub lookup_name: String,
    /// Share of the traffic that no condition claims.
    pub weight: Percentage,
    /// Which requests this route attracts.
    pub condition: Option<ResolvedCondition>,
    /// Share of matching requests sent here.
    pub condition_strength: Percentage,
    /// Path rewrites.
    pub rewrites: Vec<ResolvedRewrite>,
    /// Balancing between the targets.
    pub balance: Balance,
    /// Where the traffic goes.
    pub targets: Vec<RouteTarget>,
    /// Where copies of a share of the requests go (answers thrown away), if anywhere.
    pub mirror: Option<ResolvedMirror>,
}

/// A route's mirror, resolved: `host:port` and the share of requests copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMirror {
    /// The host copies go to.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The share of the route's requests copied.
    pub percentage: Percentage,
}

/// A gateway as the data plane needs it: port allocated, routes resolved (ARCHITECTURE,
/// "Boundary of Router::apply"). Routers do no lookups of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedGateway {
    /// The gateway name.
    pub name: String,
    /// Stable id (spec §4.2.1); HAProxy frontends are named by it.
    pub lookup_name: String,
    /// The port to listen on; 0 for a gateway with no port of its own, served on the
    /// router's [shared virtual-host listener](Router::shared_listener) only.
    pub port: u16,
    /// HTTP or TCP.
    pub protocol: PortType,
    /// Sticky sessions.
    pub sticky: Option<Sticky>,
    /// Virtual host names.
    pub virtual_hosts: Vec<String>,
    /// Routes in order (conditions are evaluated in this order).
    pub routes: Vec<ResolvedRoute>,
}

/// What [`Router::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplyReport {
    /// Gateways now served.
    pub applied: Vec<String>,
    /// Gateways that could not be served, with the reason (e.g. the port is taken); the
    /// others are served regardless.
    pub failed: Vec<(String, String)>,
}

/// Latency histogram: counts of requests at or below each upper bound (ms).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyHistogram {
    /// `(upper bound in ms, count)`, ascending bounds; the last bound may be `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of every response time counted, in ms (0 when the router measures none): with
    /// the count it gives the mean, as a Prometheus histogram's `_sum` does.
    pub sum_ms: f64,
}

impl LatencyHistogram {
    /// Adds `other`'s counts (another server's router, issue 24). Equal bounds add bucket by
    /// bucket; otherwise the result has every bound of both, each counting what each
    /// histogram counted at or below it.
    ///
    /// ```
    /// use vamp_core::traits::LatencyHistogram;
    /// let mut a = LatencyHistogram { buckets: vec![(5.0, 2), (f64::INFINITY, 3)], sum_ms: 9.0 };
    /// let b = LatencyHistogram { buckets: vec![(5.0, 1), (f64::INFINITY, 1)], sum_ms: 2.0 };
    /// a.merge(&b);
    /// assert_eq!(a.buckets, vec![(5.0, 3), (f64::INFINITY, 4)]);
    /// assert_eq!(a.sum_ms, 11.0);
    /// ```
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.sum_ms += other.sum_ms;
        let same = self.buckets.len() == other.buckets.len()
            && self
                .buckets
                .iter()
                .zip(&other.buckets)
                .all(|(a, b)| a.0 == b.0);
        if same {
            for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
                mine.1 += theirs.1;
            }
            return;
        }
        let at_or_below = |h: &[(f64, u64)], bound: f64| {
            h.iter()
                .take_while(|(b, _)| *b <= bound)
                .last()
                .map_or(0, |(_, c)| *c)
        };
        let mut bounds: Vec<f64> = self
            .buckets
            .iter()
            .chain(&other.buckets)
            .map(|(b, _)| *b)
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        self.buckets = bounds
            .into_iter()
            .map(|b| {
                (
                    b,
                    at_or_below(&self.buckets, b) + at_or_below(&other.buckets, b),
                )
            })
            .collect();
    }
}

/// Traffic seen by one route.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteStats {
    /// The gateway.
    pub gateway: String,
    /// The route path.
    pub route: String,
    /// Requests (HTTP) or connections (TCP) handled.
    pub requests: u64,
    /// Failed ones (5xx or connection errors).
    pub errors: u64,
    /// Response time distribution.
    pub latency: LatencyHistogram,
}

/// The data plane: makes traffic flow as the gateways say.
///
/// Contract: [`apply`](Self::apply) takes the *whole* desired set (gateways missing from it
/// are removed), is idempotent, and never drops a request of an unchanged gateway. A gateway
/// that cannot be served is reported in [`ApplyReport::failed`]; the rest are still applied.
#[async_trait]
pub trait Router: Send + Sync + Debug {
    /// The backend's name, e.g. `embedded`, `haproxy-kv`.
    fn backend(&self) -> &'static str;

    /// Routes exactly these gateways from now on.
    async fn apply(&self, gateways: &[ResolvedGateway]) -> Result<ApplyReport>;

    /// Whether a gateway could listen on `port` now, as far as this router can tell: the
    /// engine skips ports another program holds when it hands out gateway ports (spec §3.5
    /// step 2). Routers that serve elsewhere (gateway agents on other hosts) cannot tell and
    /// keep the default, `true`.
    fn can_listen(&self, port: u16) -> bool {
        let _ = port;
        true
    }

    /// Whether this router can evaluate a route condition written `condition` (spec §1.7):
    /// `Err` with the reason when it cannot, so the gateway is refused when it is validated
    /// instead of stored and never served. The default accepts every condition (HAProxy
    /// takes literal ACLs too).
    ///
    /// # Errors
    /// Why the condition cannot be evaluated, in words.
    fn check_condition(&self, condition: &str) -> std::result::Result<(), String> {
        let _ = condition;
        Ok(())
    }

    /// Whether this router copies routes' traffic to a `mirror` target. Gateways with a
    /// mirror are refused when validated on routers that cannot (the default: no).
    fn mirrors(&self) -> bool {
        false
    }

    /// The one listener where every HTTP gateway with virtual hosts is also served, chosen by
    /// the `Host` header (`gateways.vhost_listen`), if this router has one. A standalone
    /// gateway written with virtual hosts and no port then gets no port of its own: it is
    /// served there only ([`ResolvedGateway::port`] 0), so gateways are not bounded by the
    /// port range. The default: none.
    fn shared_listener(&self) -> Option<std::net::SocketAddr> {
        None
    }

    /// The configuration text this router has its proxy run, for people to read (the
    /// server's `GET /api/v1/haproxy/configuration`, the web UI's admin page); `None` from
    /// routers that run no configuration file (the default).
    ///
    /// # Errors
    /// When the text cannot be read (e.g. from the key-value store).
    async fn rendered_config(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether [`stats`](Self::stats) carries response-time histograms, which percentile
    /// metrics (rollouts' `latency-p99`, …) need. The default: no.
    fn measures_percentiles(&self) -> bool {
        false
    }

    /// Per-route traffic counters since start. Routers that cannot count return
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    async fn stats(&self) -> Result<Vec<RouteStats>> {
        Err(crate::Error::Unsupported {
            backend: self.backend(),
            operation: "route statistics",
        })
    }
}
