//! [`RecordingRouter`]: a [`Router`] that records what it is asked to route.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::Result;
use crate::traits::{ApplyReport, ResolvedGateway, RouteStats, Router};

/// Remembers every set of gateways it is given and routes nothing: for tests, and for running
/// the engine before a data plane is chosen. Its traffic figures are whatever
/// [`set_stats`](Self::set_stats) last gave it. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct RecordingRouter {
    applied: Arc<Mutex<Vec<Vec<ResolvedGateway>>>>,
    stats: Arc<Mutex<Vec<RouteStats>>>,
    /// Keep only the last set applied (a long-running server routing nothing), not every one.
    last_only: bool,
}

impl RecordingRouter {
    /// A router that keeps only the last set applied: for servers that route nothing
    /// (`router.kind = "none"`) and run for long, where the whole history would only grow.
    ///
    /// ```
    /// use vamp_core::memory::RecordingRouter;
    /// let router = RecordingRouter::last_only();
    /// assert!(router.applied().is_empty());
    /// ```
    pub fn last_only() -> Self {
        RecordingRouter {
            last_only: true,
            ..RecordingRouter::default()
        }
    }

    /// What [`Router::stats`] answers from now on (cumulative counters, as a real router's).
    ///
    /// ```
    /// use vamp_core::memory::RecordingRouter;
    /// use vamp_core::traits::RouteStats;
    /// let router = RecordingRouter::default();
    /// router.set_stats(vec![RouteStats { gateway: "shop/web".into(), requests: 10, ..RouteStats::default() }]);
    /// ```
    pub fn set_stats(&self, stats: Vec<RouteStats>) {
        *self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stats;
    }

    /// Every set applied so far, oldest first.
    pub fn applied(&self) -> Vec<Vec<ResolvedGateway>> {
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The last set applied.
    pub fn current(&self) -> Vec<ResolvedGateway> {
        self.applied().pop().unwrap_or_default()
    }
}

#[async_trait]
impl Router for RecordingRouter {
    fn backend(&self) -> &'static str {
        "recording"
    }

    async fn apply(&self, gateways: &[ResolvedGateway]) -> Result<ApplyReport> {
        let mut applied = self
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.last_only {
            applied.clear();
        }
        applied.push(gateways.to_vec());
        drop(applied);
        Ok(ApplyReport {
            applied: gateways.iter().map(|g| g.name.clone()).collect(),
            failed: Vec::new(),
        })
    }

    fn measures_percentiles(&self) -> bool {
        true
    }

    async fn stats(&self) -> Result<Vec<RouteStats>> {
        Ok(self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }
}
