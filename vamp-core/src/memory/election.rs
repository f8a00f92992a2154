//! Elections without a store: [`AlwaysLeader`] for one server, [`MemoryElection`] for
//! servers in one process (tests of the leader-only runtimes).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::Result;
use crate::traits::{Candidate, LeaderElection, Leadership};

/// One server, always the leader (term 1): the embedded default.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use vamp_core::memory::AlwaysLeader;
/// use vamp_core::traits::{Candidate, LeaderElection};
/// let me = Candidate { node: "vamp".into(), url: "http://127.0.0.1:8080/api/v1".into() };
/// let lead = AlwaysLeader.campaign(&me, Duration::from_secs(3)).await.unwrap();
/// assert!(lead.leader);
/// assert_eq!(lead.term, 1);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysLeader;

#[async_trait]
impl LeaderElection for AlwaysLeader {
    fn backend(&self) -> &'static str {
        "none"
    }

    async fn campaign(&self, candidate: &Candidate, _ttl: Duration) -> Result<Leadership> {
        Ok(Leadership {
            leader: true,
            term: 1,
            holder: Some(candidate.clone()),
        })
    }

    async fn resign(&self, _candidate: &Candidate) -> Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Lease {
    holder: Option<Candidate>,
    term: u64,
    expires: Option<Instant>,
}

/// A lease in this process's memory, shared by its clones: servers in one process elect one
/// of them as they would on a real store.
#[derive(Debug, Clone, Default)]
pub struct MemoryElection {
    lease: Arc<Mutex<Lease>>,
}

#[async_trait]
impl LeaderElection for MemoryElection {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn campaign(&self, candidate: &Candidate, ttl: Duration) -> Result<Leadership> {
        let mut lease = crate::vamp::lock(&self.lease);
        let now = Instant::now();
        let live = lease.expires.is_some_and(|e| e > now);
        let ours = lease
            .holder
            .as_ref()
            .is_some_and(|h| h.node == candidate.node);
        if !live || ours {
            if !(live && ours) {
                lease.term += 1;
                lease.holder = Some(candidate.clone());
            }
            lease.expires = Some(now + ttl);
        }
        Ok(Leadership {
            leader: lease
                .holder
                .as_ref()
                .is_some_and(|h| h.node == candidate.node),
            term: lease.term,
            holder: lease.holder.clone(),
        })
    }

    async fn resign(&self, candidate: &Candidate) -> Result<()> {
        let mut lease = crate::vamp::lock(&self.lease);
        if lease
            .holder
            .as_ref()
            .is_some_and(|h| h.node == candidate.node)
        {
            lease.holder = None;
            lease.expires = None;
        }
        Ok(())
    }
}
