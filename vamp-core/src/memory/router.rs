//! [`RecordingRouter`]: a [`Router`] that records what it is asked to route.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::Result;
use crate::traits::{ApplyReport, ResolvedGateway, Router};

/// Remembers every set of gateways it is given and routes nothing: for tests, and for running
/// the engine before a data plane is chosen. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct RecordingRouter {
    applied: Arc<Mutex<Vec<Vec<ResolvedGateway>>>>,
}

impl RecordingRouter {
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
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(gateways.to_vec());
        Ok(ApplyReport {
            applied: gateways.iter().map(|g| g.name.clone()).collect(),
            failed: Vec::new(),
        })
    }
}
