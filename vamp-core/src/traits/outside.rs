//! How rollouts reach the outside (issue 19): [`MetricProvider`] answers a check's number
//! (Prometheus, a web endpoint), [`WebhookSender`] posts JSON to webhooks. Implementations live
//! in `vamp-drivers` (features `prometheus`, `web-metrics`, `webhooks`); the rollout runtime
//! calls them without holding up other rollouts and turns their failures into "no answer",
//! never into a failed canary.

use std::time::Duration;

use async_trait::async_trait;

use crate::model::ProviderKind;

/// A call to the outside that did not give an answer to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Nothing answered (refused, unresolvable, reset).
    #[error("{url}: {message}")]
    Unreachable {
        /// Where.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// No answer within the timeout.
    #[error("{url}: no answer within {}s", timeout.as_secs_f64())]
    Timeout {
        /// Where.
        url: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// An answer with a status that is not a success.
    #[error("{url} answered {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// Where.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, for the reason shown.
        body: String,
    },
    /// An answer that does not read as what was asked (not JSON, several series, …).
    #[error("{url}: {message}")]
    Answer {
        /// Where.
        url: String,
        /// What is wrong with it, and what would work.
        message: String,
    },
}

impl CallError {
    /// Whether trying again may help: no answer, a timeout, or a 5xx (a 4xx will not change).
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Unreachable { .. } | CallError::Timeout { .. } => true,
            CallError::Status { status, .. } => *status >= 500,
            CallError::Answer { .. } => false,
        }
    }
}

/// What a provider read.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// One number.
    Number(f64),
    /// Nothing to judge, and why (an empty result, NaN, a null at the path).
    NoData(String),
}

/// A source of numbers for rollout checks.
///
/// ```
/// use std::time::Duration;
/// use vamp_core::model::ProviderKind;
/// use vamp_core::traits::{CallError, MetricProvider, Reading};
///
/// /// Always 0.5: a provider for tests.
/// #[derive(Debug)]
/// struct Half;
///
/// #[async_trait::async_trait]
/// impl MetricProvider for Half {
///     fn kind(&self) -> ProviderKind {
///         ProviderKind::Web
///     }
///     async fn measure(&self, _url: &str, _query: &str, _timeout: Duration) -> Result<Reading, CallError> {
///         Ok(Reading::Number(0.5))
///     }
/// }
/// ```
#[async_trait]
pub trait MetricProvider: Send + Sync + std::fmt::Debug {
    /// Which provider it is (what `provider:` names in a rollout).
    fn kind(&self) -> ProviderKind;

    /// Reads one number: `url` and `query` (a PromQL query, a JSON path) with the template
    /// variables already filled in. Bounded by `timeout`.
    ///
    /// # Errors
    /// A [`CallError`] when the provider cannot be asked or answers something unreadable.
    async fn measure(
        &self,
        url: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<Reading, CallError>;

    /// How often the provider collects its data (Prometheus' scrape interval), when it can
    /// tell: an analysis interval shorter than twice this sees too few samples.
    async fn collection_period(&self, url: &str, timeout: Duration) -> Option<Duration> {
        let _ = (url, timeout);
        None
    }
}

/// Posts JSON to webhooks.
#[async_trait]
pub trait WebhookSender: Send + Sync + std::fmt::Debug {
    /// POSTs `body` to `url` as JSON, bounded by `timeout`; the answer's status (any status:
    /// the caller decides what a success is).
    ///
    /// # Errors
    /// [`CallError::Unreachable`] or [`CallError::Timeout`] when no answer came.
    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<u16, CallError>;
}
