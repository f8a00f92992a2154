//! [`Vamp`]: the one type an embedding application holds — artifacts, deployments, events and
//! the reconciler over a [`ContainerDriver`], a [`Persistence`] and a [`Router`].
//!
//! ```no_run
//! # async fn demo(driver: std::sync::Arc<dyn vamp_core::traits::ContainerDriver>) -> Result<(), Box<dyn std::error::Error>> {
//! use vamp_core::{Vamp, dsl, model::Artifact};
//! let vamp = Vamp::builder().driver(driver).build()?;
//! for artifact in dsl::read(&std::fs::read_to_string("shop.yml")?, None)? {
//!     if let Artifact::Blueprint(bp) = &artifact {
//!         vamp.deploy(&bp.name, bp).await?;
//!     } else {
//!         vamp.put(artifact).await?;
//!     }
//! }
//! // Reconcile until asked to stop.
//! vamp.run(std::future::pending()).await;
//! # Ok(()) }
//! ```

mod artifacts;
mod cluster;
mod cluster_stats;
mod deployments;
mod events;
mod fetch;
mod gateways;
mod ports;
mod reconcile;
mod run;
mod scale;
mod traffic;
mod validate;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Mutex, Notify};

use crate::dsl::{self, DslError, ErrorKind, Mark};
use crate::engine::{self, EngineConfig};
use crate::memory::{MemoryPersistence, RecordingRouter};
use crate::model::*;
use crate::traits::{
    ContainerDriver, GatewayEndpoint, MetricProvider, Page, Paged, Persistence, Precondition,
    ResolvedGateway, Router, StoredArtifact, WebhookSender,
};
use crate::{Error, Result};

pub use cluster::ClusterState;
pub use reconcile::Report;
pub use run::Background;
pub use traffic::{RouteTraffic, Traffic};

use crate::rollout::calls;
use crate::sla;

/// Settings of a [`Vamp`].
#[derive(Debug, Clone, PartialEq)]
pub struct VampConfig {
    /// The planners' settings (gateway host, port range, default scale, virtual hosts).
    pub engine: EngineConfig,
    /// Time between reconciliation passes when nothing happens (a safety net: changes made
    /// through [`Vamp`] start a pass at once).
    pub resync: Duration,
    /// Time between passes while a service is converging.
    pub converging: Duration,
    /// A service not deployed within this time fails (`ready-for-deployment`, spec §3.2).
    pub ready_for_deployment: Duration,
    /// A service not removed within this time fails (`ready-for-undeployment`).
    pub ready_for_undeployment: Duration,
    /// Driver calls run at most this many at a time.
    pub driver_concurrency: usize,
    /// Time between passes of the SLA runtime ([`Vamp::sla_pass`]: metrics, SLA checks,
    /// escalations) in [`Vamp::run`]; `None` runs none (spec §3.1: Vamp 1.x disabled them by
    /// default, 0.9.x ran them every 5 s).
    pub sla_period: Option<Duration>,
    /// Which events the store keeps, applied every [`retention_period`](Self::retention_period)
    /// in [`Vamp::run`] ([`Persistence::retain_events`]); `None` keeps every event.
    pub retention: Option<crate::traits::Retention>,
    /// Time between retention passes.
    pub retention_period: Duration,
    /// Time between rollout passes ([`Vamp::rollout_pass`]) in [`Vamp::run`]; `None` runs
    /// none. Analysis intervals are the rollouts' own; this is how often they are looked at.
    pub rollout_period: Option<Duration>,
    /// The hosts rollouts may call (metric providers, webhooks), as written in their URLs
    /// (`127.0.0.1`, `prometheus.monitoring`, `hooks.slack.com`); empty allows any. A rollout
    /// naming another host is refused when it is stored.
    pub call_hosts: Vec<String>,
    /// What `env://NAME` values in services' environments read (spec §3.6): the host
    /// environment the embedder chooses to expose — none by default; `vamp-server` passes its
    /// own process environment.
    pub environment: BTreeMap<String, String>,
    /// How workflows run (spec §5.6).
    pub workflows: crate::workflow::WorkflowConfig,
    /// The lease of a leader elected through [`VampBuilder::election`]: renewed every third
    /// of it; a leader that cannot renew stops acting after two thirds of it.
    pub election_ttl: Duration,
}

impl Default for VampConfig {
    fn default() -> Self {
        VampConfig {
            engine: EngineConfig::default(),
            resync: Duration::from_secs(5),
            converging: Duration::from_millis(250),
            ready_for_deployment: Duration::from_secs(600),
            ready_for_undeployment: Duration::from_secs(600),
            driver_concurrency: 8,
            sla_period: None,
            retention: None,
            retention_period: Duration::from_secs(600),
            rollout_period: Some(Duration::from_secs(1)),
            call_hosts: Vec::new(),
            environment: BTreeMap::new(),
            workflows: crate::workflow::WorkflowConfig::default(),
            election_ttl: Duration::from_secs(3),
        }
    }
}

/// Builds a [`Vamp`]; only the driver is required.
#[derive(Default)]
pub struct VampBuilder {
    persistence: Option<Arc<dyn Persistence>>,
    driver: Option<Arc<dyn ContainerDriver>>,
    router: Option<Arc<dyn Router>>,
    providers: Vec<Arc<dyn MetricProvider>>,
    webhook_sender: Option<Arc<dyn WebhookSender>>,
    scripts: Option<Arc<dyn crate::traits::ScriptRuntime>>,
    election: Option<(
        Arc<dyn crate::traits::LeaderElection>,
        crate::traits::Candidate,
    )>,
    config: VampConfig,
}

impl std::fmt::Debug for VampBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VampBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl VampBuilder {
    /// Where artifacts and events live (default: in memory).
    pub fn persistence(mut self, persistence: Arc<dyn Persistence>) -> Self {
        self.persistence = Some(persistence);
        self
    }

    /// What runs the services.
    pub fn driver(mut self, driver: Arc<dyn ContainerDriver>) -> Self {
        self.driver = Some(driver);
        self
    }

    /// What routes the gateways (default: a [`RecordingRouter`], which routes nothing).
    pub fn router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = Some(router);
        self
    }

    /// A metric provider for rollout checks (`provider: prometheus`, `provider: web`); one
    /// per kind, the last given wins. Without one, checks on that provider are refused.
    pub fn provider(mut self, provider: Arc<dyn MetricProvider>) -> Self {
        self.providers.retain(|p| p.kind() != provider.kind());
        self.providers.push(provider);
        self
    }

    /// What posts rollouts' webhooks. Without one, rollouts with webhooks are refused.
    pub fn webhook_sender(mut self, sender: Arc<dyn WebhookSender>) -> Self {
        self.webhook_sender = Some(sender);
        self
    }

    /// What runs JavaScript workflows (`application/javascript` breeds). Without one, their
    /// runs fail saying so.
    pub fn scripts(mut self, scripts: Arc<dyn crate::traits::ScriptRuntime>) -> Self {
        self.scripts = Some(scripts);
        self
    }

    /// Elects one leader among the servers sharing a store (issue 24): only the leader runs
    /// the reconciler, the SLA, rollout and workflow runtimes and retention; `candidate` names
    /// this server. Without an election this `Vamp` is the only one and always leads.
    pub fn election(
        mut self,
        election: Arc<dyn crate::traits::LeaderElection>,
        candidate: crate::traits::Candidate,
    ) -> Self {
        self.election = Some((election, candidate));
        self
    }

    /// Settings.
    pub fn config(mut self, config: VampConfig) -> Self {
        self.config = config;
        self
    }

    /// The [`Vamp`]; an error when no driver was given.
    pub fn build(self) -> Result<Vamp> {
        let driver = self.driver.ok_or_else(|| Error::Invalid {
            what: "Vamp builder",
            message: "a container driver is required: call .driver(…)".into(),
        })?;
        Ok(Vamp {
            inner: Arc::new(Inner {
                persistence: self
                    .persistence
                    .unwrap_or_else(|| Arc::new(MemoryPersistence::default())),
                driver,
                router: self
                    .router
                    .unwrap_or_else(|| Arc::new(RecordingRouter::last_only())),
                providers: self.providers,
                webhook_sender: self.webhook_sender,
                scripts: self.scripts,
                asks: StdMutex::new(calls::Asks::default()),
                deliveries: StdMutex::new(calls::Deliveries::new()),
                calls_settled: Notify::new(),
                rollout_wake: Notify::new(),
                wake: Notify::new(),
                reroute: Notify::new(),
                routing: Mutex::new(()),
                writes: Mutex::new(()),
                applied: StdMutex::new(None),
                unserved: StdMutex::new(BTreeMap::new()),
                endpoints: StdMutex::new(BTreeMap::new()),
                last_port: StdMutex::new(None),
                decoded: StdMutex::new(std::collections::HashMap::new()),
                sla: StdMutex::new(sla::runtime::SlaState::new(Utc::now())),
                ports: Mutex::new(None),
                rollouts: Mutex::new(()),
                workflows: StdMutex::default(),
                workflow_wake: Notify::new(),
                workflow_cancel: Arc::default(),
                traffic: StdMutex::default(),
                protected: StdMutex::default(),
                workflow_logs: tokio::sync::broadcast::channel(WORKFLOW_LOG_BUFFER).0,
                local_events: StdMutex::default(),
                followed: tokio::sync::watch::channel(0).0,
                election: match self.election {
                    Some((election, candidate)) => {
                        cluster::Election::on(election, candidate, self.config.election_ttl)
                    }
                    None => cluster::Election::alone(crate::traits::Candidate {
                        node: "vamp".into(),
                        url: String::new(),
                    }),
                },
                config: self.config,
            }),
        })
    }
}

/// Vamp: artifacts, deployments, events and the reconciler. Clones share everything.
#[derive(Clone)]
pub struct Vamp {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Vamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vamp")
            .field("persistence", &self.inner.persistence.backend())
            .field("driver", &self.inner.driver.backend())
            .field("router", &self.inner.router.backend())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) persistence: Arc<dyn Persistence>,
    pub(crate) driver: Arc<dyn ContainerDriver>,
    pub(crate) router: Arc<dyn Router>,
    /// Rollouts' metric providers, one per kind.
    pub(crate) providers: Vec<Arc<dyn MetricProvider>>,
    /// What posts rollouts' webhooks.
    pub(crate) webhook_sender: Option<Arc<dyn WebhookSender>>,
    /// What runs JavaScript workflows.
    pub(crate) scripts: Option<Arc<dyn crate::traits::ScriptRuntime>>,
    /// Provider queries and gate webhooks in flight or answered, for the next pass.
    pub(crate) asks: StdMutex<calls::Asks>,
    /// The per-rollout queues of event and post-rollout webhooks.
    pub(crate) deliveries: StdMutex<calls::Deliveries>,
    /// Signalled when an ask is answered.
    pub(crate) calls_settled: Notify,
    /// Starts a rollout pass now (an answer came in).
    pub(crate) rollout_wake: Notify,
    pub(crate) config: VampConfig,
    /// Starts a reconciliation pass now.
    pub(crate) wake: Notify,
    /// Starts a routing pass now: something that changes routing was stored (issue 16: a
    /// weight change reaches the router at once, not at the next resync).
    pub(crate) reroute: Notify,
    /// Serializes routing passes (the reconciler's and the routing loop's).
    pub(crate) routing: Mutex<()>,
    /// Serializes read-modify-write of deployments (API calls and the reconciler).
    pub(crate) writes: Mutex<()>,
    /// The gateways the router served after the last pass (those it could not serve are
    /// left out, so the next pass tries them again).
    pub(crate) applied: StdMutex<Option<Vec<ResolvedGateway>>>,
    /// The gateways the router could not serve at the last pass, with the reason (each is
    /// logged when it starts failing or its reason changes, not at every pass).
    pub(crate) unserved: StdMutex<BTreeMap<String, String>>,
    /// Where the driver published each gateway for services.
    pub(crate) endpoints: StdMutex<BTreeMap<String, GatewayEndpoint>>,
    /// The last gateway port allocated, to count on from.
    pub(crate) last_port: StdMutex<Option<u16>>,
    /// Artifacts already read back from the store, by kind and name, with their revision:
    /// reading (parsing) is the costly part of validation and reconciliation.
    pub(crate) decoded: StdMutex<std::collections::HashMap<(Kind, String), (u64, Artifact)>>,
    /// What the SLA runtime keeps between passes.
    pub(crate) sla: StdMutex<sla::runtime::SlaState>,
    /// The gateway ports in use (built on first use).
    pub(crate) ports: Mutex<Option<ports::PortIndex>>,
    /// One rollout pass or command at a time.
    pub(crate) rollouts: Mutex<()>,
    /// What the workflow runtime keeps between passes.
    pub(crate) workflows: StdMutex<crate::workflow::runtime::WorkflowRuntime>,
    /// Starts a workflow pass now (a run ended).
    pub(crate) workflow_wake: Notify,
    /// Set when `run` ends: the JavaScript runs in progress stop.
    pub(crate) workflow_cancel: Arc<std::sync::atomic::AtomicBool>,
    /// The snapshots of the router's counters [`Vamp::traffic`] measures windows against.
    pub(crate) traffic: StdMutex<traffic::TrafficHistory>,
    /// Workflows that cannot be deleted or stopped: the stock ones, once installed.
    pub(crate) protected: StdMutex<std::collections::BTreeSet<String>>,
    /// Workflow output as it is written ([`Vamp::workflow_logs`]).
    pub(crate) workflow_logs: tokio::sync::broadcast::Sender<crate::workflow::WorkflowLog>,
    /// Who leads the servers sharing the store.
    pub(crate) election: cluster::Election,
    /// The ids of the last events this `Vamp` stored (the change loop skips them).
    pub(crate) local_events: StdMutex<std::collections::VecDeque<u64>>,
    /// The newest event id the change loop has acted on (a cluster's write lock waits for it
    /// to reach the store's newest, so the port index holds every other server's claims).
    pub(crate) followed: tokio::sync::watch::Sender<u64>,
}

/// How many of its own event ids a `Vamp` remembers.
const LOCAL_EVENTS: usize = 1024;

/// How many workflow output lines a slow [`Vamp::workflow_logs`] reader may fall behind.
const WORKFLOW_LOG_BUFFER: usize = 1024;

pub(crate) fn dsl_error(kind: ErrorKind, path: &str, message: String, hint: &str) -> Error {
    Error::Dsl(DslError::new(kind, path, Mark::default(), message, hint))
}

pub(crate) fn decode(kind: Kind, stored: &StoredArtifact) -> Result<Artifact> {
    let text = stored.value.to_string();
    let mut read = dsl::read(&text, Some(kind)).map_err(|e| Error::Corrupt {
        backend: "persistence",
        message: format!("stored {kind}/{} does not read back: {e}", stored.name),
    })?;
    read.pop().ok_or_else(|| Error::Corrupt {
        backend: "persistence",
        message: format!("stored {kind}/{} is empty", stored.name),
    })
}

pub(crate) fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values behind these locks stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Vamp {
    /// A builder.
    pub fn builder() -> VampBuilder {
        VampBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &VampConfig {
        &self.inner.config
    }

    pub(crate) fn db(&self) -> &dyn Persistence {
        &*self.inner.persistence
    }

    /// Drops a deleted artifact from the read cache.
    pub(crate) fn forget(&self, kind: Kind, name: &str) {
        lock(&self.inner.decoded).remove(&(kind, name.to_owned()));
    }

    /// Reads a stored artifact back, parsing it only when its revision is new to us.
    pub(crate) fn decode(&self, kind: Kind, stored: &StoredArtifact) -> Result<Artifact> {
        let key = (kind, stored.name.clone());
        if let Some((revision, artifact)) = lock(&self.inner.decoded).get(&key)
            && *revision == stored.revision
        {
            return Ok(artifact.clone());
        }
        let artifact = decode(kind, stored)?;
        lock(&self.inner.decoded).insert(key, (stored.revision, artifact.clone()));
        Ok(artifact)
    }

    pub(crate) async fn emit(&self, event: Event) {
        match self.db().append_event(&event).await {
            Ok(stored) => self.mine(stored.id),
            Err(e) => tracing::warn!(error = %e, tags = ?event.tags, "cannot store event"),
        }
    }

    /// Notes an event this `Vamp` stored, so the change loop does not act on it again.
    pub(crate) fn mine(&self, id: u64) {
        let mut mine = lock(&self.inner.local_events);
        if mine.len() >= LOCAL_EVENTS {
            mine.pop_front();
        }
        mine.push_back(id);
    }
}
