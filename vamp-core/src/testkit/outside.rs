//! Stand-ins for the outside that rollouts call: a [`ScriptedProvider`] whose answer a test
//! sets, and a [`RecordingSender`] that records every webhook post and answers with the status
//! a test sets per URL (optionally after a delay).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::ProviderKind;
use crate::traits::{CallError, MetricProvider, Reading, WebhookSender};

/// A metric provider that answers what the test set, and records what it was asked.
#[derive(Debug)]
pub struct ScriptedProvider {
    kind: ProviderKind,
    answer: Mutex<Result<Reading, CallError>>,
    asked: Mutex<Vec<(String, String)>>,
    period: Mutex<Option<Duration>>,
}

impl ScriptedProvider {
    /// A provider of `kind` answering no data until told otherwise.
    pub fn new(kind: ProviderKind) -> Self {
        ScriptedProvider {
            kind,
            answer: Mutex::new(Ok(Reading::NoData("nothing set".into()))),
            asked: Mutex::new(Vec::new()),
            period: Mutex::new(None),
        }
    }

    /// What it answers from now on.
    pub fn answer(&self, answer: Result<Reading, CallError>) {
        *self.answer.lock().unwrap() = answer;
    }

    /// The collection period it reports.
    pub fn period(&self, period: Option<Duration>) {
        *self.period.lock().unwrap() = period;
    }

    /// Every `(url, query)` it was asked, in order.
    pub fn asked(&self) -> Vec<(String, String)> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl MetricProvider for ScriptedProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    async fn measure(
        &self,
        url: &str,
        query: &str,
        _timeout: Duration,
    ) -> Result<Reading, CallError> {
        self.asked
            .lock()
            .unwrap()
            .push((url.to_owned(), query.to_owned()));
        self.answer.lock().unwrap().clone()
    }

    async fn collection_period(&self, _url: &str, _timeout: Duration) -> Option<Duration> {
        *self.period.lock().unwrap()
    }
}

/// A webhook sender that records posts and answers per URL.
#[derive(Debug, Default)]
pub struct RecordingSender {
    statuses: Mutex<HashMap<String, u16>>,
    delays: Mutex<HashMap<String, Duration>>,
    posts: Mutex<Vec<(String, serde_json::Value)>>,
}

impl RecordingSender {
    /// A sender answering 200 everywhere until told otherwise.
    pub fn new() -> Self {
        RecordingSender::default()
    }

    /// `url` answers `status` from now on.
    pub fn status(&self, url: &str, status: u16) {
        self.statuses.lock().unwrap().insert(url.to_owned(), status);
    }

    /// `url` answers only after `delay` (a slow webhook).
    pub fn delay(&self, url: &str, delay: Duration) {
        self.delays.lock().unwrap().insert(url.to_owned(), delay);
    }

    /// Every post so far, in order.
    pub fn posts(&self) -> Vec<(String, serde_json::Value)> {
        self.posts.lock().unwrap().clone()
    }

    /// The bodies posted to `url`, in order.
    pub fn posted_to(&self, url: &str) -> Vec<serde_json::Value> {
        self.posts()
            .into_iter()
            .filter(|(u, _)| u == url)
            .map(|(_, b)| b)
            .collect()
    }
}

#[async_trait]
impl WebhookSender for RecordingSender {
    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<u16, CallError> {
        let delay = self.delays.lock().unwrap().get(url).copied();
        if let Some(delay) = delay {
            if delay > timeout {
                tokio::time::sleep(timeout).await;
                return Err(CallError::Timeout {
                    url: url.to_owned(),
                    timeout,
                });
            }
            tokio::time::sleep(delay).await;
        }
        self.posts
            .lock()
            .unwrap()
            .push((url.to_owned(), body.clone()));
        Ok(self
            .statuses
            .lock()
            .unwrap()
            .get(url)
            .copied()
            .unwrap_or(200))
    }
}
