//! The rollout runtime's calls to the outside (issue 19): metric providers and webhooks.
//!
//! A pass never waits for them. What the planner wants asked ([`plan::wants`]) is asked in a
//! background task; the answer waits here and the next pass takes it (the task wakes the
//! rollout loop when it is in). So one slow webhook or provider never holds up a pass, another
//! rollout, or a command. Gates and `rollback` webhooks are asked at most once per analysis
//! interval. Event and post-rollout webhooks are delivered in order, one task per rollout,
//! with bounded retries; a failure there is logged and changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::Vamp;
use crate::model::{Event, ProviderCheck, Rollout, Webhook, WebhookKind, render_template};
use crate::rollout::plan::Wants;
use crate::rollout::{Gate, GateAnswer, Measured, Measurement, Observation, RolloutStatus};
use crate::traits::{CallError, Reading, WebhookSender};
use crate::vamp::lock;

/// What a rollout asked outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AskKey {
    /// The metric providers, for the verdict of this round.
    Measure(DateTime<Utc>),
    /// A gate's webhooks.
    Gate(Gate),
    /// The `rollback` webhooks.
    Rollback,
}

impl AskKey {
    /// Asked again no sooner than an interval after the last time (a measurement is asked
    /// once per round anyway).
    fn paced(self) -> bool {
        !matches!(self, AskKey::Measure(_))
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Measured(Vec<Measured>),
    Gate(GateAnswer),
}

#[derive(Debug)]
enum Entry {
    InFlight,
    Answered(Answer),
}

/// The asks of every rollout: in flight or answered, and when each was last started.
#[derive(Debug, Default)]
pub(crate) struct Asks {
    entries: HashMap<(String, AskKey), Entry>,
    started: HashMap<(String, AskKey), DateTime<Utc>>,
}

impl Asks {
    fn in_flight(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::InFlight))
            .count()
    }

    /// Forgets a rollout's asks (it ended, or is gone).
    pub(crate) fn forget(&mut self, rollout: &str) {
        self.entries.retain(|(name, _), _| name != rollout);
        self.started.retain(|(name, _), _| name != rollout);
    }
}

/// A delivery of one body to some webhooks, in order.
#[derive(Debug)]
pub(crate) struct Delivery {
    hooks: Vec<Webhook>,
    body: serde_json::Value,
}

/// The per-rollout delivery queues.
pub(crate) type Deliveries = HashMap<String, tokio::sync::mpsc::UnboundedSender<Delivery>>;

/// Bounded retries of one webhook call: 2xx is a success; a 4xx is an answer (not retried);
/// no answer, a timeout or a 5xx is tried again after 250 ms, doubling up to 2 s.
async fn post_with_retries(
    sender: &dyn WebhookSender,
    hook: &Webhook,
    url: &str,
    body: &serde_json::Value,
) -> Result<u16, CallError> {
    let timeout = Duration::from_secs(hook.timeout.get());
    let mut backoff = Duration::from_millis(250);
    let mut attempt = 0;
    loop {
        // The sender is bounded by `timeout`; this is the runtime's own guard.
        let answer = match tokio::time::timeout(
            timeout + Duration::from_secs(1),
            sender.post(url, body, timeout),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err(CallError::Timeout {
                url: url.to_owned(),
                timeout,
            }),
        };
        let retry = match &answer {
            Ok(status) => *status >= 500,
            Err(e) => e.is_transient(),
        };
        if !retry || attempt >= hook.retries {
            return answer;
        }
        attempt += 1;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// The value of a template variable of `rollout`.
fn variable(rollout: &Rollout, name: &str) -> String {
    match name {
        "canary" => rollout.canary.clone(),
        "stable" => rollout.stable.clone(),
        "gateway" => rollout.gateway.clone(),
        _ => format!("{}s", rollout.analysis.interval.get()),
    }
}

/// `text` with the rollout's template variables; percent-encoded for URLs.
fn render(rollout: &Rollout, text: &str, url: bool) -> String {
    // The reader refused unknown variables; an unknown one left as written is harmless.
    render_template(text, |name| {
        let value = variable(rollout, name);
        if url {
            percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        } else {
            value
        }
    })
    .unwrap_or_else(|_| text.to_owned())
}

/// The host of an http(s) URL as written (no port, no credentials; brackets kept for IPv6).
///
/// ```text
/// http://user@prom.test:9090/x → prom.test
/// ```
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// The URLs a rollout calls, with the field each is in, template variables filled in.
pub(crate) fn called_urls(rollout: &Rollout) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, check) in rollout.analysis.metrics.iter().enumerate() {
        if let crate::model::Check::Provider(p) = check {
            out.push((
                format!("analysis.metrics[{i}].url"),
                render(rollout, &p.url, true),
            ));
        }
    }
    for (i, hook) in rollout.webhooks.iter().enumerate() {
        out.push((
            format!("webhooks[{i}].url"),
            render(rollout, &hook.url, true),
        ));
    }
    out
}

/// What webhooks receive: the rollout, where it is, its last verdict and a line of text.
pub(crate) fn webhook_body(
    rollout: &Rollout,
    kind: WebhookKind,
    status: Option<&RolloutStatus>,
    text: Option<&str>,
) -> serde_json::Value {
    let last = status.and_then(|s| s.intervals.last());
    let text = text.map_or_else(
        || {
            format!(
                "rollout {}: {} webhook{}",
                rollout.name,
                kind.as_str(),
                status.map_or(String::new(), |s| format!(
                    " ({}, step {})",
                    s.phase.as_str(),
                    s.step + 1
                ))
            )
        },
        str::to_owned,
    );
    json!({
        "rollout": rollout.name,
        "type": kind.as_str(),
        "gateway": rollout.gateway,
        "stable": rollout.stable,
        "canary": rollout.canary,
        "phase": status.map(|s| s.phase.as_str()),
        "step": status.map(|s| s.step),
        "weights": status.map(|s| s.weights),
        "reason": status.and_then(|s| s.reason.clone()),
        "verdict": last.map(|i| json!({
            "verdict": i.verdict,
            "at": i.at,
            "checks": i.checks.iter().map(|c| c.reason.clone()).collect::<Vec<_>>(),
        })),
        "text": text,
    })
}

impl Vamp {
    /// Fills in what the planner wants asked from answers already in, and starts asking what
    /// is not (the answer goes to a later pass).
    pub(crate) fn answers_for(
        &self,
        rollout: &Rollout,
        status: Option<&RolloutStatus>,
        wanted: Wants,
        observed: &mut Observation,
        now: DateTime<Utc>,
    ) {
        let gap = chrono::Duration::seconds(
            i64::try_from(rollout.analysis.interval.get()).unwrap_or(i64::MAX),
        );
        if let Some(round) = wanted.measure
            && let Some(Answer::Measured(values)) =
                self.take_or_ask(rollout, status, AskKey::Measure(round), gap, now)
        {
            observed.measured = Some(Measurement { round, values });
        }
        if let Some(gate) = wanted.gate
            && let Some(Answer::Gate(answer)) =
                self.take_or_ask(rollout, status, AskKey::Gate(gate), gap, now)
        {
            observed.gate = Some((gate, answer));
        }
        if wanted.rollback
            && let Some(Answer::Gate(answer)) =
                self.take_or_ask(rollout, status, AskKey::Rollback, gap, now)
        {
            observed.rollback = Some(answer);
        }
    }

    /// The answer to `key` when it is in (taken), else `None`, starting the ask when none is
    /// in flight and it was not asked within `gap` before `now`.
    fn take_or_ask(
        &self,
        rollout: &Rollout,
        status: Option<&RolloutStatus>,
        key: AskKey,
        gap: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Option<Answer> {
        let id = (rollout.name.clone(), key);
        {
            let mut asks = lock(&self.inner.asks);
            match asks.entries.get(&id) {
                Some(Entry::Answered(_)) => {
                    return match asks.entries.remove(&id) {
                        Some(Entry::Answered(answer)) => Some(answer),
                        _ => None,
                    };
                }
                Some(Entry::InFlight) => return None,
                None => {}
            }
            if key.paced() && asks.started.get(&id).is_some_and(|at| now - *at < gap) {
                return None;
            }
            if let AskKey::Measure(_) = key {
                // Answers of earlier rounds are of no use any more.
                asks.entries.retain(|(name, k), _| {
                    name != &rollout.name || !matches!(k, AskKey::Measure(_))
                });
            }
            asks.entries.insert(id.clone(), Entry::InFlight);
            asks.started.insert(id.clone(), now);
        }
        let vamp = self.clone();
        let rollout = rollout.clone();
        let status = status.cloned();
        tokio::spawn(async move {
            let answer = match key {
                AskKey::Measure(_) => Answer::Measured(vamp.measure(&rollout).await),
                AskKey::Gate(gate) => Answer::Gate(
                    vamp.ask_webhooks(&rollout, gate.webhook(), status.as_ref())
                        .await,
                ),
                AskKey::Rollback => Answer::Gate(
                    vamp.ask_webhooks(&rollout, WebhookKind::Rollback, status.as_ref())
                        .await,
                ),
            };
            {
                let mut asks = lock(&vamp.inner.asks);
                // Still wanted (not forgotten meanwhile)?
                if let Some(entry) = asks.entries.get_mut(&id) {
                    *entry = Entry::Answered(answer);
                }
            }
            vamp.inner.calls_settled.notify_waiters();
            vamp.inner.rollout_wake.notify_one();
        });
        None
    }

    /// Asks every provider check of `rollout` at once; one answer per check, in order.
    async fn measure(&self, rollout: &Rollout) -> Vec<Measured> {
        let checks: Vec<&ProviderCheck> = rollout.analysis.provider_checks().collect();
        futures::future::join_all(
            checks
                .into_iter()
                .map(|check| self.measure_one(rollout, check)),
        )
        .await
    }

    async fn measure_one(&self, rollout: &Rollout, check: &ProviderCheck) -> Measured {
        let Some(provider) = self
            .inner
            .providers
            .iter()
            .find(|p| p.kind() == check.provider)
        else {
            return Measured::Failed(format!(
                "this server has no {} provider",
                check.provider.as_str()
            ));
        };
        let url = render(rollout, &check.url, true);
        let query = render(rollout, &check.query, false);
        let timeout = Duration::from_secs(check.timeout.get());
        let read = tokio::time::timeout(
            timeout + Duration::from_secs(1),
            provider.measure(&url, &query, timeout),
        )
        .await;
        match read {
            Ok(Ok(Reading::Number(v))) if v.is_finite() => Measured::Value(v),
            Ok(Ok(Reading::Number(v))) => Measured::NoData(format!("the answer is {v}")),
            Ok(Ok(Reading::NoData(why))) => Measured::NoData(why),
            Ok(Err(e)) => Measured::Failed(e.to_string()),
            Err(_) => Measured::Failed(format!("{url}: no answer within {}s", timeout.as_secs())),
        }
    }

    /// Asks every webhook of `kind` at once: open when all answered 2xx.
    async fn ask_webhooks(
        &self,
        rollout: &Rollout,
        kind: WebhookKind,
        status: Option<&RolloutStatus>,
    ) -> GateAnswer {
        let Some(sender) = self.inner.webhook_sender.clone() else {
            return GateAnswer {
                open: false,
                detail: "this server sends no webhooks".into(),
            };
        };
        let body = webhook_body(rollout, kind, status, None);
        let hooks: Vec<&Webhook> = rollout.webhooks_of(kind).collect();
        let answers = futures::future::join_all(hooks.iter().map(|hook| {
            let url = render(rollout, &hook.url, true);
            let (sender, body) = (sender.clone(), &body);
            async move {
                let answer = post_with_retries(&*sender, hook, &url, body).await;
                (url, answer)
            }
        }))
        .await;
        let open = answers
            .iter()
            .all(|(_, a)| a.as_ref().is_ok_and(|s| (200..300).contains(s)));
        let detail = answers
            .iter()
            .map(|(url, a)| match a {
                Ok(status) => format!("{url} answered {status}"),
                Err(e) => e.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        GateAnswer { open, detail }
    }

    /// Delivers `body` to `hooks` after whatever this rollout delivered before (one task per
    /// rollout, in order). Nothing happens without a sender.
    pub(crate) fn deliver(&self, rollout: &Rollout, hooks: Vec<Webhook>, body: serde_json::Value) {
        let Some(sender) = self.inner.webhook_sender.clone() else {
            return;
        };
        if hooks.is_empty() {
            return;
        }
        let mut queues = lock(&self.inner.deliveries);
        let queue = queues.entry(rollout.name.clone()).or_insert_with(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
            let r = rollout.clone();
            tokio::spawn(async move {
                while let Some(d) = rx.recv().await {
                    for hook in &d.hooks {
                        let url = render(&r, &hook.url, true);
                        match post_with_retries(&*sender, hook, &url, &d.body).await {
                            Ok(status) if (200..300).contains(&status) => {
                                tracing::debug!(rollout = %r.name, url, status, "webhook delivered");
                            }
                            Ok(status) => {
                                tracing::warn!(rollout = %r.name, url, status, "webhook refused the delivery");
                            }
                            Err(e) => {
                                tracing::warn!(rollout = %r.name, error = %e, "webhook not delivered");
                            }
                        }
                    }
                }
            });
            tx
        });
        if queue.send(Delivery { hooks, body }).is_err() {
            tracing::warn!(rollout = %rollout.name, "the webhook queue is gone");
        }
    }

    /// At a rollout's start: warns (an event tagged `warning`) when its analysis interval is
    /// shorter than twice a provider's collection period, since the window then holds too few
    /// samples. In the background; nothing waits for it.
    pub(crate) fn check_collection_periods(&self, rollout: &Rollout) {
        if rollout.analysis.provider_checks().next().is_none() {
            return;
        }
        let vamp = self.clone();
        let rollout = rollout.clone();
        tokio::spawn(async move {
            let interval = Duration::from_secs(rollout.analysis.interval.get());
            for check in rollout.analysis.provider_checks() {
                let Some(provider) = vamp
                    .inner
                    .providers
                    .iter()
                    .find(|p| p.kind() == check.provider)
                else {
                    continue;
                };
                let url = render(&rollout, &check.url, true);
                let Some(period) = provider
                    .collection_period(&url, Duration::from_secs(check.timeout.get()))
                    .await
                else {
                    continue;
                };
                if interval < period * 2 {
                    let text = format!(
                        "rollout {}: the analysis interval ({}s) is shorter than twice the collection period of {} ({}s): its windows hold too few samples; use an interval of at least {}s",
                        rollout.name,
                        interval.as_secs(),
                        check.label(),
                        period.as_secs_f64(),
                        (period * 2).as_secs_f64().ceil()
                    );
                    tracing::warn!("{text}");
                    let event = Event::new(
                        [
                            "rollouts".to_owned(),
                            format!("rollouts:{}", rollout.name),
                            "warning".to_owned(),
                        ],
                        json!({"text": text, "check": check.label(), "period_seconds": period.as_secs_f64()}),
                    );
                    if let Err(e) = vamp.publish(&event).await {
                        tracing::warn!(error = %e, "cannot publish the warning");
                    }
                }
            }
        });
    }

    /// Waits until every provider query and gate webhook in flight has answered, at most
    /// `timeout`; whether they all did. For tests and embedders that drive passes themselves.
    pub async fn settle_rollout_calls(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.inner.calls_settled.notified();
            if lock(&self.inner.asks).in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return lock(&self.inner.asks).in_flight() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn hosts_are_read_as_written() {
        assert_eq!(url_host("http://prom.test:9090/api"), Some("prom.test"));
        assert_eq!(
            url_host("https://u:p@hooks.example/x"),
            Some("hooks.example")
        );
        assert_eq!(url_host("http://[::1]:80/"), Some("[::1]"));
        assert_eq!(url_host("http://127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(url_host("ftp://x"), None);
        assert_eq!(url_host("http:///x"), None);
    }
}
