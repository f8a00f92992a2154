//! The SLA runtime (spec §5.5): SLA checks and escalations — one [`Vamp::sla_pass`] at a
//! time, run by [`Vamp::run`] every [`VampConfig::sla_period`](super::VampConfig::sla_period).
//!
//! The checks read the `metrics:responseTime` events of the gateways SLAs watch; one producer
//! publishes them: the stock `metrics` workflow (spec §5.2, `workflow::stock`), which
//! measures every gateway from the router's counters ([`Vamp::traffic`]). Anyone may post
//! such events, or SLA events, as in Vamp.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;

use chrono::{DateTime, Utc};

mod escalate;

use crate::Result;
use crate::Vamp;
use crate::model::*;
use crate::sla::{self, Direction};
use crate::traits::{EventFilter, EventStream, Page, StoredEvent};
use crate::vamp::lock;

/// Timed values, oldest first.
pub(crate) type Series = VecDeque<(DateTime<Utc>, f64)>;

/// The SLA runtime's subscription to the events.
pub(crate) struct Feed(EventStream);

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Feed")
    }
}

/// What the SLA runtime keeps between passes.
#[derive(Debug)]
pub(crate) struct SlaState {
    /// SLA events up to this time have been escalated.
    pub(crate) escalated_until: DateTime<Utc>,
    /// The `metrics:responseTime` values of each checked gateway within its window, oldest
    /// first, and the id of the newest event read into them: read from the store once, then
    /// fed from [`feed`](Self::feed), so a check does not search an event log that grows by
    /// every period.
    pub(crate) series: HashMap<String, (u64, Series)>,
    /// The events published since the previous pass, as they came; `None` until the first
    /// pass subscribes (or when the store cannot deliver them: every pass then reads the
    /// store).
    pub(crate) feed: Option<Feed>,
    /// The newest SLA event of each (deployment, cluster), once looked up.
    pub(crate) last_sla: HashMap<(String, String), Option<DateTime<Utc>>>,
}

impl SlaState {
    pub(crate) fn new(now: DateTime<Utc>) -> Self {
        SlaState {
            escalated_until: now,
            series: HashMap::new(),
            last_sla: HashMap::new(),
            feed: None,
        }
    }
}

/// What one [`Vamp::sla_pass`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlaReport {
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

    /// One pass of the SLA runtime as of `now` (spec §5.5):
    ///
    /// 1. **checks** — for each cluster with a `response_time_sliding_window` SLA whose
    ///    services are all done, unless an SLA event of the cluster is younger than
    ///    `interval + cooldown`: the mean of each gateway's `metrics:responseTime` events
    ///    (tags `gateways:<g>`, `gateway`, `metrics:responseTime`, type `metrics`: what the
    ///    stock `metrics` workflow publishes) over the last `interval`, the worst one against
    ///    the thresholds ([`sla::evaluate`]) → an SLA event. No event in the window, no check.
    /// 2. **escalations** — for every SLA event of a cluster that has an SLA, its escalations
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
        self.read_metrics_feed().await;
        let mut report = SlaReport::default();
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

    /// Reads the events published since the previous pass into the checked gateways'
    /// series: every event delivered so far, without waiting for more. The first pass
    /// subscribes; a subscriber that fell behind (or a store that cannot deliver events)
    /// forgets the series, which the checks then read from the store.
    async fn read_metrics_feed(&self) {
        use futures::FutureExt as _;
        use futures::StreamExt as _;
        if lock(&self.inner.sla).feed.is_none() {
            let feed = match self.subscribe().await {
                Ok(events) => Some(Feed(events)),
                Err(e) => {
                    tracing::debug!(error = %e, "no event feed: SLA checks read the store each pass");
                    None
                }
            };
            let mut state = lock(&self.inner.sla);
            state.feed = feed;
            // What was published before the subscription is read from the store.
            state.series.clear();
        }
        let mut state = lock(&self.inner.sla);
        let SlaState { series, feed, .. } = &mut *state;
        let Some(Feed(events)) = feed else {
            series.clear();
            return;
        };
        loop {
            // Unconstrained: what is delivered is read now, whatever budget the task that
            // runs this pass has left (tokio's cooperative scheduling would say "not ready").
            match tokio::task::unconstrained(events.next()).now_or_never() {
                Some(Some(Ok(e))) => {
                    let Some((g, at, value)) = gateway_response_time(&e) else {
                        continue;
                    };
                    let Some((seen, values)) = series.get_mut(g) else {
                        continue;
                    };
                    if e.id <= *seen {
                        continue;
                    }
                    *seen = e.id;
                    let later = values.back().is_some_and(|(t, _)| *t > at);
                    values.push_back((at, value));
                    if later {
                        values.make_contiguous().sort_by_key(|(t, _)| *t);
                    }
                }
                Some(Some(Err(_))) => series.clear(),
                Some(None) => {
                    *feed = None;
                    series.clear();
                    break;
                }
                None => break,
            }
        }
    }

    /// Reads a gateway's `metrics:responseTime` values within the window from the store.
    async fn seed_series(
        &self,
        gateway: &str,
        window: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let filter = EventFilter {
            tags: vec![
                format!("gateways:{gateway}"),
                "gateway".into(),
                "metrics:responseTime".into(),
            ],
            kind: Some(METRICS.into()),
            from: Bound::Excluded(window),
            until: Bound::Included(now),
        };
        let stored = self.events(&filter, Page::ALL).await?.items;
        let seen = stored.iter().map(|e| e.id).max().unwrap_or(0);
        let mut values: Vec<(DateTime<Utc>, f64)> = stored
            .iter()
            .filter_map(|e| gateway_response_time(e).map(|(_, t, v)| (t, v)))
            .collect();
        values.sort_by_key(|(t, _)| *t);
        lock(&self.inner.sla)
            .series
            .insert(gateway.to_owned(), (seen, values.into()));
        Ok(())
    }

    /// Step 1: the SLA check of one cluster.
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
                self.seed_series(g, window, now).await?;
            }
            let mut state = lock(&self.inner.sla);
            let Some((_, series)) = state.series.get_mut(g) else {
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

/// A gateway's `metrics:responseTime` value, as the stock `metrics` workflow publishes it:
/// (gateway, time, ms). A route's values carry their gateway's tags too (spec §5.2): they
/// are not the gateway's.
fn gateway_response_time(e: &StoredEvent) -> Option<(&str, DateTime<Utc>, f64)> {
    let event = &e.event;
    if event.kind != METRICS
        || !event.tags.iter().any(|t| t == "metrics:responseTime")
        || !event.tags.iter().any(|t| t == "gateway")
        || event.tags.iter().any(|t| t.starts_with("routes:"))
    {
        return None;
    }
    let gateway = event
        .tags
        .iter()
        .find_map(|t| t.strip_prefix("gateways:"))?;
    Some((gateway, event.timestamp, event.value.as_f64()?))
}
