//! Several servers, one leader (issue 24): the election loop of [`Vamp::run`] and what the
//! other loops ask before they act ([`Vamp::leads`]).
//!
//! The leader runs the reconciler (driver actions), the SLA, rollout and workflow runtimes
//! and event retention; every server serves the API and routes (a follower's reconciler
//! loop only hands the stored gateways to its router). A leader renews its lease every third
//! of the TTL and acts only until two thirds of it after its last renewal began
//! ([`Leadership::acting_until`]), so it stops before the store can elect another.

use std::time::{Duration, Instant};

use crate::model::{Event, Kind};
use crate::traits::{Candidate, Fence, Leadership, Precondition, StoredArtifact};

use super::*;

/// This server's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    /// This server's node name.
    pub node: String,
    /// Whether this server leads (and may act now).
    pub leader: bool,
    /// The leader's term, 0 before the first election.
    pub term: u64,
    /// The leader's node name, when one leads.
    pub leader_node: Option<String>,
    /// The leader's API URL, when one leads.
    pub leader_url: Option<String>,
}

/// What the election loop keeps.
#[derive(Debug)]
pub(crate) struct Election {
    pub(crate) election: Arc<dyn crate::traits::LeaderElection>,
    pub(crate) candidate: Candidate,
    pub(crate) ttl: Duration,
    /// The last outcome and until when it lets this server act (`None`: for ever, the
    /// one-server default).
    pub(crate) state: StdMutex<(Leadership, Option<Instant>)>,
}

impl Election {
    /// One server: always the leader, for ever.
    pub(crate) fn alone(candidate: Candidate) -> Election {
        Election {
            election: Arc::new(crate::memory::AlwaysLeader),
            state: StdMutex::new((
                Leadership {
                    leader: true,
                    term: 1,
                    holder: Some(candidate.clone()),
                },
                None,
            )),
            candidate,
            ttl: Duration::from_secs(3),
        }
    }

    /// Whether this `Vamp` is the only server (no election loop, no change loop).
    pub(crate) fn is_alone(&self) -> bool {
        self.election.backend() == "none"
    }

    /// An election on a shared store: nobody leads until the first campaign.
    pub(crate) fn on(
        election: Arc<dyn crate::traits::LeaderElection>,
        candidate: Candidate,
        ttl: Duration,
    ) -> Election {
        if election.backend() == "none" {
            return Election::alone(candidate);
        }
        Election {
            election,
            candidate,
            ttl,
            state: StdMutex::new((Leadership::default(), Some(Instant::now()))),
        }
    }
}

impl Vamp {
    /// Whether this server leads now: only the leader runs the reconciler, the runtimes and
    /// retention. Always `true` without an election (one server).
    pub fn leads(&self) -> bool {
        let state = lock(&self.inner.election.state);
        state.0.leader && state.1.is_none_or(|until| Instant::now() < until)
    }

    /// This server's view of the cluster (`GET /api/v1/info`'s `cluster`).
    pub fn cluster(&self) -> ClusterState {
        let leads = self.leads();
        let e = &self.inner.election;
        let state = lock(&e.state);
        ClusterState {
            node: e.candidate.node.clone(),
            leader: leads,
            term: state.0.term,
            leader_node: state.0.holder.as_ref().map(|h| h.node.clone()),
            leader_url: state.0.holder.as_ref().map(|h| h.url.clone()),
        }
    }

    /// Campaigns every third of the TTL until `stopped`; on a change of leader or term,
    /// emits an event tagged `cluster`, `cluster:leader`, and a new leader starts its loops at
    /// once. A leader resigns when it stops.
    pub(crate) async fn election_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let e = &self.inner.election;
        if e.is_alone() {
            return;
        }
        let mut every = tokio::time::interval(e.ttl / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                _ = every.tick() => {}
            }
            let began = Instant::now();
            let was = self.cluster();
            match e.election.campaign(&e.candidate, e.ttl).await {
                Ok(outcome) => {
                    let until = Leadership::acting_until(began, e.ttl);
                    *lock(&e.state) = (outcome, Some(until));
                }
                Err(err) => {
                    // The last outcome stands until its acting time runs out.
                    tracing::warn!(error = %err, backend = e.election.backend(), "cannot campaign");
                }
            }
            let now = self.cluster();
            if now.leader != was.leader
                || now.term != was.term
                || now.leader_node != was.leader_node
            {
                self.leadership_changed(&now).await;
            }
        }
        if self.leads()
            && let Err(err) = e.election.resign(&e.candidate).await
        {
            tracing::warn!(error = %err, "cannot resign; the lease expires by itself");
        }
    }

    async fn leadership_changed(&self, now: &ClusterState) {
        tracing::info!(
            node = %now.node,
            leader = now.leader,
            term = now.term,
            leader_node = now.leader_node.as_deref().unwrap_or("none"),
            "leadership"
        );
        if now.leader {
            // Before it acts, a new leader records its term where the persistence fences
            // writes: from then on, nothing the previous leader still tries is stored.
            if let Some(fence) = self.inner.election.election.fence(&now.node, now.term)
                && let Err(err) = self.db().raise_fence(&fence).await
            {
                tracing::error!(
                    error = %err,
                    scope = %fence.scope,
                    "cannot record this leader's term; its writes will be refused. If the election store lost its data (its terms started again), delete the scope's row of vamp_fences"
                );
            }
            // A new leader starts at once.
            self.wake_leader_loops();
            let mut event = Event::new(
                ["cluster", "cluster:leader"],
                serde_json::json!({
                    "node": now.node,
                    "term": now.term,
                    "text": format!("{} leads (term {})", now.node, now.term),
                }),
            );
            event.kind = "cluster".into();
            self.emit(event).await;
        }
    }
}

impl Vamp {
    /// Starts a reconciliation, rollout and workflow pass now.
    fn wake_leader_loops(&self) {
        self.inner.wake.notify_one();
        self.inner.rollout_wake.notify_one();
        self.inner.workflow_wake.notify_one();
    }

    /// Acts on changes other servers made to the shared store: an `archive` event (an
    /// artifact, deployment or gateway stored or deleted) this `Vamp` did not store itself
    /// starts a routing pass, and on the leader a reconciliation, rollout and workflow pass —
    /// at once, not at the next resync. Needs a persistence whose subscribers hear other
    /// processes' events (PostgreSQL); elsewhere it hears only this process's.
    pub(crate) async fn change_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        use futures::StreamExt;
        if self.inner.election.is_alone() {
            return;
        }
        let mut events = match self.db().subscribe().await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "other servers' changes wait for the resync");
                return;
            }
        };
        // What changed before this subscription is in the store: a port index built earlier
        // is built again from it.
        self.forget_ports().await;
        loop {
            let next = tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                next = events.next() => next,
            };
            let changed = match next {
                Some(Ok(stored)) => {
                    let foreign = !lock(&self.inner.local_events).contains(&stored.id);
                    let archive = stored.event.tags.iter().any(|t| t == "archive");
                    if foreign && archive {
                        self.follow_ports(&stored.event).await;
                    }
                    self.inner.followed.send_if_modified(|seen| {
                        let newer = stored.id > *seen;
                        *seen = (*seen).max(stored.id);
                        newer
                    });
                    foreign && archive
                }
                // Fell behind: what was missed is in the store; act as if everything changed.
                Some(Err(_)) => {
                    self.forget_ports().await;
                    true
                }
                None => return,
            };
            if changed {
                self.inner.reroute.notify_one();
                if self.leads() {
                    self.wake_leader_loops();
                }
            }
        }
    }
}

/// Held while this server reads, then writes what others might claim too (ports, a
/// deployment): this process's write lock and, in a cluster, the store's shared one.
pub(crate) struct WriteGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    _shared: Option<crate::traits::SharedLock>,
}

/// How long a cluster's write lock waits for the change loop to catch up with the store
/// before it drops the port index (rebuilt from the store on next use) instead.
const CATCH_UP: Duration = Duration::from_secs(2);

impl Vamp {
    /// Takes the write lock: this process's, and in a cluster the lock all servers share
    /// ([`Persistence::lock_shared`](crate::traits::Persistence::lock_shared)) — after which
    /// the port index is brought up to every write another server committed before it let
    /// the lock go (the change loop reaches the store's newest event, or the index is
    /// dropped and rebuilt). So port allocation is race-free across servers (issue 24).
    pub(crate) async fn write_lock(&self) -> crate::Result<WriteGuard<'_>> {
        let local = self.inner.writes.lock().await;
        if self.inner.election.is_alone() {
            return Ok(WriteGuard {
                _local: local,
                _shared: None,
            });
        }
        let shared = self.db().lock_shared("writes").await?;
        let newest = self
            .db()
            .newest_event(&crate::traits::EventFilter::default())
            .await?
            .map_or(0, |e| e.id);
        let mut followed = self.inner.followed.subscribe();
        let caught_up = matches!(
            tokio::time::timeout(CATCH_UP, followed.wait_for(|seen| *seen >= newest)).await,
            Ok(Ok(_))
        );
        if !caught_up {
            tracing::debug!(
                newest,
                "the change loop is behind the store; rebuilding the port index"
            );
            self.forget_ports().await;
        }
        Ok(WriteGuard {
            _local: local,
            _shared: shared,
        })
    }
}

tokio::task_local! {
    /// The fence of the leader-only pass this task runs, if any ([`Vamp::as_leader`]).
    static FENCE: Fence;
}

impl Vamp {
    /// Runs a leader-only pass (reconciliation, rollouts, workflows, SLAs) so that its writes
    /// carry this server's term: a store that can check it ([`Persistence::put_fenced`])
    /// refuses them once another server leads. Without an election, or on a store that
    /// cannot check, the pass runs as it is.
    ///
    /// [`Persistence::put_fenced`]: crate::traits::Persistence::put_fenced
    pub(crate) async fn as_leader<F: std::future::Future>(&self, pass: F) -> F::Output {
        let e = &self.inner.election;
        let c = self.cluster();
        match c
            .leader
            .then(|| e.election.fence(&c.node, c.term))
            .flatten()
        {
            Some(fence) => FENCE.scope(fence, pass).await,
            None => pass.await,
        }
    }

    /// A write of this `Vamp`: fenced inside a leader-only pass, plain otherwise (API calls
    /// may write on any server).
    pub(crate) async fn put_stored(
        &self,
        kind: Kind,
        name: &str,
        value: &serde_json::Value,
        precondition: Precondition,
    ) -> crate::Result<StoredArtifact> {
        match FENCE.try_with(Clone::clone) {
            Ok(fence) => {
                self.db()
                    .put_fenced(kind, name, value, precondition, &fence)
                    .await
            }
            Err(_) => self.db().put(kind, name, value, precondition).await,
        }
    }
}

impl Vamp {
    /// Keeps the port index true to a gateway or deployment another server stored or
    /// deleted (the archive event carries it), so this server does not hand out a port the
    /// other one just claimed; what does not read drops the index, rebuilt on next use.
    async fn follow_ports(&self, event: &Event) {
        let named = |prefix: &str| {
            event
                .tags
                .iter()
                .find_map(|t| t.strip_prefix(prefix).map(str::to_owned))
        };
        let deleted = event.tags.iter().any(|t| t == "archive:delete");
        let (kind, name) = match (named("gateways:"), named("deployments:")) {
            (Some(name), _) => (Kind::Gateway, name),
            (None, Some(name)) => (Kind::Deployment, name),
            _ => return,
        };
        if deleted {
            match kind {
                Kind::Gateway => self.index_gateway(&name, None).await,
                _ => self.index_deployment(&name, None).await,
            }
            return;
        }
        let read = crate::dsl::read(&event.value.to_string(), Some(kind))
            .ok()
            .and_then(|mut all| all.pop());
        match read {
            Some(crate::model::Artifact::Gateway(g)) => self.index_gateway(&name, Some(&g)).await,
            Some(crate::model::Artifact::Deployment(d)) => {
                self.index_deployment(&name, Some(&d)).await;
            }
            _ => self.forget_ports().await,
        }
    }
}
