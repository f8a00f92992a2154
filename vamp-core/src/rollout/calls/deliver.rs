//! Event and post-rollout webhooks: delivered in order, one task per rollout, with bounded
//! retries; a failure is logged and changes nothing. And the collection-period warning a
//! rollout gets at its start.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::Vamp;
use crate::model::{Event, Rollout, Webhook};
use crate::traits::{CallError, WebhookSender};
use crate::vamp::lock;

use super::render::render;

/// A delivery of one body to some webhooks, in order.
#[derive(Debug)]
pub(crate) struct Delivery {
    hooks: Vec<Webhook>,
    body: serde_json::Value,
}

/// The per-rollout delivery queues.
pub(crate) type Deliveries = HashMap<String, tokio::sync::mpsc::UnboundedSender<Delivery>>;

/// Bounded retries of one webhook call: 2xx is a success; a 4xx is an answer (not retried);
/// no answer, a timeout or a 5xx is tried again after 250 ms, doubling up to 2 s, with jitter
/// ([`crate::retry::backoff`]).
pub(super) async fn post_with_retries(
    sender: &dyn WebhookSender,
    hook: &Webhook,
    url: &str,
    body: &serde_json::Value,
) -> Result<u16, CallError> {
    let timeout = Duration::from_secs(hook.timeout.get());
    let mut delays = crate::retry::backoff(Duration::from_millis(250), Duration::from_secs(2))
        .take(hook.retries as usize);
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
        match delays.next() {
            Some(delay) if retry => tokio::time::sleep(delay).await,
            _ => return answer,
        }
    }
}

impl Vamp {
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
}
