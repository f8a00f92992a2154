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

use crate::Vamp;
use crate::model::{ProviderCheck, Rollout, Webhook, WebhookKind};
use crate::rollout::plan::Wants;
use crate::rollout::{Gate, GateAnswer, Measured, Measurement, Observation, RolloutStatus};
use crate::traits::Reading;
use crate::vamp::lock;

mod deliver;
mod render;

pub(crate) use deliver::Deliveries;
use deliver::post_with_retries;
use render::render;
pub(crate) use render::{called_urls, url_host, webhook_body};

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
