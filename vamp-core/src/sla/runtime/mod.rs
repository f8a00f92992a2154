//! The SLA runtime (spec §5.2, §5.5): response-time metrics of the gateways SLAs watch, SLA
//! checks, and escalations — one [`Vamp::sla_pass`] at a time, run by [`Vamp::run`] every
//! [`VampConfig::sla_period`](super::VampConfig::sla_period).
//!
//! Where the original read HAProxy's access logs back from Elasticsearch, the router's own
//! counters are the source here: each pass turns the growth of a gateway's request count and
//! response-time sum since the previous pass into `metrics` events — only for the gateways of
//! clusters with a `response_time_sliding_window` SLA (every gateway's traffic is on
//! `/metrics` for Prometheus already).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;

use chrono::{DateTime, Utc};

mod escalate;

use crate::Vamp;
use crate::model::*;
use crate::sla::{self, Direction, Sample};
use crate::traits::{EventFilter, Page};
use crate::vamp::lock;
use crate::{Error, Result};

/// What the SLA runtime keeps between passes.
#[derive(Debug)]
pub(crate) struct SlaState {
    pub(crate) samples: HashMap<String, Sample>,
    /// SLA events up to this time have been escalated.
    pub(crate) escalated_until: DateTime<Utc>,
    /// The `metrics:responseTime` values of each checked gateway, oldest first: read from the
    /// store once (what earlier runs published), then kept here, so a check does not search
    /// an event log that grows by every pass.
    pub(crate) series: HashMap<String, VecDeque<(DateTime<Utc>, f64)>>,
    /// The newest SLA event of each (deployment, cluster), once looked up.
    pub(crate) last_sla: HashMap<(String, String), Option<DateTime<Utc>>>,
}

impl SlaState {
    pub(crate) fn new(now: DateTime<Utc>) -> Self {
        SlaState {
            samples: HashMap::new(),
            escalated_until: now,
            series: HashMap::new(),
            last_sla: HashMap::new(),
        }
    }
}

/// What one [`Vamp::sla_pass`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlaReport {
    /// `metrics` events published (`metrics:responseTime` and `metrics:rate` per watched
    /// gateway).
    pub metrics: Vec<Event>,
    /// SLA events published (`sla`, `deployment:<d>`, `cluster:<c>`, `sla:escalate` or
    /// `sla:deescalate`).
    pub checks: Vec<Event>,
    /// Services rescaled by escalations: (deployment, cluster, service, new scale).
    pub scaled: Vec<(String, String, String, Scale)>,
}

/// A cluster with an SLA, as one pass sees it.
struct Watched {
    deployment: String,
    cluster: String,
    sla: Sla,
    /// The cluster's gateways, `<deployment>/<cluster>/<port>`.
    gateways: Vec<String>,
    /// Every service of the cluster is deployed and done.
    settled: bool,
}

const METRICS: &str = "metrics";

impl Vamp {
    /// One pass of the SLA runtime at the current time; see [`sla_pass_at`](Self::sla_pass_at).
    ///
    /// # Errors
    /// When the store cannot be read or written.
    pub async fn sla_pass(&self) -> Result<SlaReport> {
        self.sla_pass_at(Utc::now()).await
    }

    /// One pass of the SLA runtime as of `now` (spec §5.2, §5.5):
    ///
    /// 1. **metrics** — for each gateway of a cluster with a `response_time_sliding_window`
    ///    SLA, the mean response time and the request rate since the previous pass, as `metrics`
    ///    events tagged `gateways:<g>`, `gateway`, `metrics:responseTime` / `metrics:rate`
    ///    (the mean is 0 when there was no request, as in Vamp). The first pass only takes the
    ///    baseline.
    /// 2. **checks** — for each such cluster whose services are all done, unless an SLA event
    ///    of the cluster is younger than `interval + cooldown`: the mean of each gateway's
    ///    `metrics:responseTime` events over the last `interval`, the worst one against the
    ///    thresholds ([`sla::evaluate`]) → an SLA event.
    /// 3. **escalations** — for every SLA event of a cluster that has an SLA, its escalations
    ///    are planned ([`sla::plan`]) and the first service of each changed cluster is
    ///    rescaled through [`scale`](Self::scale), which redeploys it. Events posted through
    ///    the events API since the previous pass are escalated before the checks (they start
    ///    the cooldown too); the checks' own events right after each check.
    ///
    /// # Errors
    /// When the store cannot be read or written. Escalations that cannot be applied are
    /// logged and skipped.
    pub async fn sla_pass_at(&self, now: DateTime<Utc>) -> Result<SlaReport> {
        let watched = self.watched().await?;
        self.forget_unwatched(&watched);
        let mut report = SlaReport {
            metrics: self.publish_metrics(&watched, now).await?,
            ..SlaReport::default()
        };
        let escalations = self.stored_escalations().await?;
        // SLA events posted since the previous pass first: they start the cooldown too.
        report.scaled = self.escalate(now, &escalations).await?;
        for w in &watched {
            let Some(event) = self.check(w, now).await? else {
                continue;
            };
            if let Some(direction) = Direction::from_tags(&event.tags) {
                match self
                    .escalate_one(&w.deployment, &w.cluster, direction, &escalations)
                    .await
                {
                    Ok(changes) => report.scaled.extend(changes),
                    Err(err) => {
                        tracing::warn!(deployment = %w.deployment, cluster = %w.cluster, error = %err, "escalation not applied");
                    }
                }
            }
            report.checks.push(event);
        }
        Ok(report)
    }

    /// Drops what the runtime keeps for gateways and clusters no SLA watches any more
    /// (undeployed, or their SLA removed), so its memory follows what is deployed.
    fn forget_unwatched(&self, watched: &[Watched]) {
        let gateways: std::collections::HashSet<&str> = watched
            .iter()
            .flat_map(|w| w.gateways.iter().map(String::as_str))
            .collect();
        let clusters: std::collections::HashSet<(&str, &str)> = watched
            .iter()
            .map(|w| (w.deployment.as_str(), w.cluster.as_str()))
            .collect();
        let mut state = lock(&self.inner.sla);
        state.samples.retain(|g, _| gateways.contains(g.as_str()));
        state.series.retain(|g, _| gateways.contains(g.as_str()));
        state
            .last_sla
            .retain(|(d, c), _| clusters.contains(&(d.as_str(), c.as_str())));
    }

    /// The clusters with an SLA, their SLA resolved.
    async fn watched(&self) -> Result<Vec<Watched>> {
        let mut out = Vec::new();
        for d in self.deployments().await? {
            for (cname, cluster) in &d.clusters {
                let Some(sla) = self.resolve_sla(cluster.sla.as_ref()).await? else {
                    continue;
                };
                let mut ports: Vec<&String> = cluster.gateways.keys().collect();
                if ports.is_empty() {
                    ports = cluster
                        .services
                        .iter()
                        .flat_map(|s| s.breed.ports.keys())
                        .collect();
                    ports.sort();
                    ports.dedup();
                }
                out.push(Watched {
                    deployment: d.name.clone(),
                    cluster: cname.clone(),
                    gateways: ports
                        .iter()
                        .map(|p| format!("{}/{cname}/{p}", d.name))
                        .collect(),
                    settled: !cluster.services.is_empty()
                        && cluster.services.iter().all(|s| {
                            s.status.intention == Intention::Deployment
                                && s.status.phase.name == PhaseName::Done
                        }),
                    sla,
                });
            }
        }
        Ok(out)
    }

    /// Step 1: `metrics` events of the watched gateways.
    async fn publish_metrics(&self, watched: &[Watched], now: DateTime<Utc>) -> Result<Vec<Event>> {
        let gateways: Vec<&String> = watched
            .iter()
            .filter(|w| matches!(w.sla.kind, SlaKind::ResponseTimeSlidingWindow { .. }))
            .flat_map(|w| &w.gateways)
            .collect();
        if gateways.is_empty() {
            return Ok(Vec::new());
        }
        let stats = match self.inner.router.stats().await {
            Ok(stats) => stats,
            Err(Error::Unsupported { .. }) => {
                tracing::debug!("the router counts no traffic: response-time SLAs have no data");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        // (requests, response-time sum, whether the router measures response times at all)
        let mut totals: BTreeMap<&str, (u64, f64, bool)> = BTreeMap::new();
        for r in &stats {
            let t = totals.entry(r.gateway.as_str()).or_default();
            t.0 += r.requests;
            t.1 += r.latency.sum_ms;
            t.2 |= !r.latency.buckets.is_empty();
        }
        let events = self.sample(&gateways, &totals, now);
        self.publish_all(&events).await?;
        Ok(events)
    }

    /// Takes this pass's sample of each gateway; the metrics since the previous one.
    fn sample(
        &self,
        gateways: &[&String],
        totals: &BTreeMap<&str, (u64, f64, bool)>,
        now: DateTime<Utc>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut state = lock(&self.inner.sla);
        for &g in gateways {
            let (requests, sum_ms, measured) =
                totals.get(g.as_str()).copied().unwrap_or((0, 0.0, true));
            let current = Sample {
                requests,
                sum_ms,
                at: now,
            };
            let Some(previous) = state.samples.insert(g.clone(), current) else {
                continue;
            };
            let metrics = sla::sample_metrics(&previous, &current, measured);
            if let (Some(series), Some((_, value))) = (
                state.series.get_mut(g.as_str()),
                metrics.iter().find(|(m, _)| *m == "responseTime"),
            ) {
                series.push_back((now, *value));
            }
            for (metric, value) in metrics {
                events.push(Event {
                    tags: vec![
                        format!("gateways:{g}"),
                        "gateway".into(),
                        format!("metrics:{metric}"),
                    ],
                    value: serde_json::json!(value),
                    kind: METRICS.into(),
                    timestamp: now,
                });
            }
        }
        events
    }

    /// Step 2: the SLA check of one cluster.
    async fn check(&self, w: &Watched, now: DateTime<Utc>) -> Result<Option<Event>> {
        let SlaKind::ResponseTimeSlidingWindow {
            upper,
            lower,
            interval,
            cooldown,
        } = w.sla.kind
        else {
            return Ok(None);
        };
        if !w.settled {
            return Ok(None);
        }
        let since = |seconds: u64| {
            now - chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1_000))
        };
        let key = (w.deployment.clone(), w.cluster.clone());
        let cached = lock(&self.inner.sla).last_sla.get(&key).copied();
        let last = match cached {
            Some(last) => last,
            None => {
                let newest = EventFilter {
                    tags: sla::sla_tags(&w.deployment, &w.cluster),
                    ..EventFilter::default()
                };
                let last = self.newest_event(&newest).await?.map(|e| e.event.timestamp);
                lock(&self.inner.sla).last_sla.insert(key.clone(), last);
                last
            }
        };
        if last.is_some_and(|t| t > since(interval.saturating_add(cooldown)) && t <= now) {
            return Ok(None);
        }
        let window = since(interval);
        let mut means = Vec::new();
        for g in &w.gateways {
            let known = lock(&self.inner.sla).series.contains_key(g);
            if !known {
                let filter = EventFilter {
                    tags: vec![format!("gateways:{g}"), "metrics:responseTime".into()],
                    kind: Some(METRICS.into()),
                    from: Bound::Excluded(window),
                    until: Bound::Included(now),
                };
                let mut seed: Vec<(DateTime<Utc>, f64)> = self
                    .events(&filter, Page::ALL)
                    .await?
                    .items
                    .iter()
                    .filter_map(|e| Some((e.event.timestamp, e.event.value.as_f64()?)))
                    .collect();
                seed.sort_by_key(|(t, _)| *t);
                lock(&self.inner.sla).series.insert(g.clone(), seed.into());
            }
            let mut state = lock(&self.inner.sla);
            let Some(series) = state.series.get_mut(g) else {
                continue;
            };
            while series.front().is_some_and(|(t, _)| *t <= window) {
                series.pop_front();
            }
            means.extend(sla::window_mean(series.iter().copied(), now));
        }
        let Some(direction) = sla::evaluate(upper, lower, &means) else {
            return Ok(None);
        };
        let (event, worst) = sla::sla_event(
            &w.deployment,
            &w.cluster,
            direction,
            &means,
            (upper, lower),
            now,
        );
        tracing::info!(deployment = %w.deployment, cluster = %w.cluster, ?direction, response_time = worst, "SLA event");
        self.publish(&event).await?;
        lock(&self.inner.sla).last_sla.insert(key, Some(now));
        Ok(Some(event))
    }
}
