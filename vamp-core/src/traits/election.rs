//! Leader election (issue 24): several servers share one store; one of them — the leader —
//! runs the reconciler, the SLA, rollout and workflow runtimes and event retention, while
//! every one serves the API and routes. The store decides who leads and hands out **terms**
//! that only grow, so a write can be fenced with the term of the leader that made it.
//!
//! The contract is a lease, renewed by polling: [`LeaderElection::campaign`] takes the lead
//! when nobody holds a live lease (or renews the caller's own), and answers who leads. A
//! leader calls it again well inside the TTL (the runtime: every third of it); a leader that
//! could not renew for two thirds of the TTL stops acting by itself, before its lease can
//! expire and another take over ([`Leadership::acting_until`]).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::Result;

/// Who campaigns: this server's node name (unique in the cluster) and the URL of its API,
/// which followers show as the leader's (`GET /api/v1/info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The node's name, e.g. `vamp-1`.
    pub node: String,
    /// Its API, e.g. `http://127.0.0.1:8080/api/v1`.
    pub url: String,
}

/// The outcome of a campaign: who leads, in which term.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leadership {
    /// Whether the candidate leads.
    pub leader: bool,
    /// The leader's term (0 while nobody leads): larger for every new leader.
    pub term: u64,
    /// The leader, if one holds a live lease.
    pub holder: Option<Candidate>,
}

impl Leadership {
    /// Until when a leader that renewed at `renewed` (a monotonic instant taken *before* the
    /// call) may act with a lease of `ttl`: two thirds of it, so it stops before the store
    /// can give the lead to another.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use vamp_core::traits::Leadership;
    /// let now = Instant::now();
    /// let until = Leadership::acting_until(now, Duration::from_secs(3));
    /// assert_eq!(until - now, Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn acting_until(renewed: std::time::Instant, ttl: Duration) -> std::time::Instant {
        renewed + ttl * 2 / 3
    }
}

/// A store that elects one leader among the servers sharing it.
///
/// Implementations: [`AlwaysLeader`](crate::memory::AlwaysLeader) (one server: the embedded
/// default), [`MemoryElection`](crate::memory::MemoryElection) (servers in one process, for
/// tests), and in `vamp-drivers` PostgreSQL (a lease row with an expiry and a term, the
/// database's clock), etcd (a key under a lease; the term is the key's create revision) and
/// ZooKeeper (an ephemeral node of the session; the term is the node's sequence number).
/// Every one runs the conformance kit (`testkit::election`).
#[async_trait]
pub trait LeaderElection: Send + Sync + Debug {
    /// The backend's name, e.g. `postgres`.
    fn backend(&self) -> &'static str;

    /// Takes the lead for `candidate` for `ttl` if nobody holds a live lease, or renews it if
    /// `candidate` holds it; answers who leads afterwards. A candidate that led and finds
    /// another leading (its lease expired meanwhile) is told so: it must stop acting.
    ///
    /// # Errors
    /// When the store cannot be reached: the caller is then not leader once its
    /// [`Leadership::acting_until`] passes.
    async fn campaign(&self, candidate: &Candidate, ttl: Duration) -> Result<Leadership>;

    /// Gives the lead up at once if `candidate` holds it (a server shutting down), so another
    /// takes over without waiting for the lease to expire. Nothing when it does not lead.
    ///
    /// # Errors
    /// When the store cannot be reached (the lease then expires by itself).
    async fn resign(&self, candidate: &Candidate) -> Result<()>;

    /// What `node` writes with while it leads in `term`, for a persistence that checks it in
    /// the write's own transaction ([`Persistence::put_fenced`](super::Persistence::put_fenced)):
    /// a [`FenceCheck::Lease`] where the election runs on that database, a
    /// [`FenceCheck::Token`] where it runs on another store. `None` (the default): no fencing
    /// (one server).
    fn fence(&self, node: &str, term: u64) -> Option<Fence> {
        let _ = (node, term);
        None
    }
}

/// A leader's right to write (issue 24): a fenced write is refused unless `node` may still
/// write in `term`, as [`check`](Self::check) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The election (e.g. the PostgreSQL lease row's scope, or `etcd:<key>`).
    pub scope: String,
    /// The leader.
    pub node: String,
    /// Its term.
    pub term: u64,
    /// How the persistence checks it.
    pub check: FenceCheck,
}

/// How a persistence judges a [`Fence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceCheck {
    /// The persistence holds the lease itself (the election runs on the same database): the
    /// write commits only while `node` holds a live lease of `scope` in `term`.
    Lease,
    /// The election runs on another store (etcd, ZooKeeper): the term is a **fencing token**.
    /// The persistence keeps the largest term that wrote (or was raised, see
    /// [`Persistence::raise_fence`](super::Persistence::raise_fence)) per scope and refuses a
    /// write with a smaller one — so once a new leader has raised its term, nothing the old
    /// one still tries is stored.
    Token,
}

impl Fence {
    /// A fence checked against the persistence's own lease row.
    ///
    /// ```
    /// use vamp_core::traits::{Fence, FenceCheck};
    /// let f = Fence::lease("/vamp", "vamp-1", 7);
    /// assert_eq!((f.term, f.check), (7, FenceCheck::Lease));
    /// ```
    #[must_use]
    pub fn lease(scope: impl Into<String>, node: impl Into<String>, term: u64) -> Fence {
        Fence {
            scope: scope.into(),
            node: node.into(),
            term,
            check: FenceCheck::Lease,
        }
    }

    /// A fencing token of an election on another store.
    ///
    /// ```
    /// use vamp_core::traits::{Fence, FenceCheck};
    /// let f = Fence::token("etcd:/vamp/leader", "vamp-2", 1042);
    /// assert_eq!((f.term, f.check), (1042, FenceCheck::Token));
    /// ```
    #[must_use]
    pub fn token(scope: impl Into<String>, node: impl Into<String>, term: u64) -> Fence {
        Fence {
            scope: scope.into(),
            node: node.into(),
            term,
            check: FenceCheck::Token,
        }
    }
}
