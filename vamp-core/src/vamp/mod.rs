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

mod calls;
mod events;
mod fetch;
mod ports;
mod reconcile;
mod rollouts;
mod sla;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Mutex, Notify};

use crate::dsl::{self, DslError, ErrorKind, Mark};
use crate::engine::{self, EngineConfig};
use crate::memory::{MemoryPersistence, RecordingRouter};
use crate::model::*;
use crate::traits::{
    ContainerDriver, EventFilter, EventStream, GatewayEndpoint, MetricProvider, Page, Paged,
    Persistence, Precondition, ResolvedGateway, RouteStats, Router, StoredArtifact, StoredEvent,
    WebhookSender,
};
use crate::{Error, Result};

pub use reconcile::Report;
pub use rollouts::{ROLLOUT_EVENT_TYPE, RolloutReport};
pub use sla::SlaReport;

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
                asks: StdMutex::new(calls::Asks::default()),
                deliveries: StdMutex::new(calls::Deliveries::new()),
                calls_settled: Notify::new(),
                rollout_wake: Notify::new(),
                config: self.config,
                wake: Notify::new(),
                reroute: Notify::new(),
                routing: Mutex::new(()),
                writes: Mutex::new(()),
                applied: StdMutex::new(None),
                endpoints: StdMutex::new(BTreeMap::new()),
                last_port: StdMutex::new(None),
                decoded: StdMutex::new(std::collections::HashMap::new()),
                sla: StdMutex::new(sla::SlaState::new(Utc::now())),
                ports: Mutex::new(None),
                rollouts: Mutex::new(()),
            }),
        })
    }
}

/// Vamp: artifacts, deployments, events and the reconciler. Clones share everything.
#[derive(Clone)]
pub struct Vamp {
    inner: Arc<Inner>,
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

struct Inner {
    persistence: Arc<dyn Persistence>,
    driver: Arc<dyn ContainerDriver>,
    router: Arc<dyn Router>,
    /// Rollouts' metric providers, one per kind.
    providers: Vec<Arc<dyn MetricProvider>>,
    /// What posts rollouts' webhooks.
    webhook_sender: Option<Arc<dyn WebhookSender>>,
    /// Provider queries and gate webhooks in flight or answered, for the next pass.
    asks: StdMutex<calls::Asks>,
    /// The per-rollout queues of event and post-rollout webhooks.
    deliveries: StdMutex<calls::Deliveries>,
    /// Signalled when an ask is answered.
    calls_settled: Notify,
    /// Starts a rollout pass now (an answer came in).
    rollout_wake: Notify,
    config: VampConfig,
    /// Starts a reconciliation pass now.
    wake: Notify,
    /// Starts a routing pass now: something that changes routing was stored (issue 16: a
    /// weight change reaches the router at once, not at the next resync).
    reroute: Notify,
    /// Serializes routing passes (the reconciler's and the routing loop's).
    routing: Mutex<()>,
    /// Serializes read-modify-write of deployments (API calls and the reconciler).
    writes: Mutex<()>,
    /// The gateways last handed to the router.
    applied: StdMutex<Option<Vec<ResolvedGateway>>>,
    /// Where the driver published each gateway for services.
    endpoints: StdMutex<BTreeMap<String, GatewayEndpoint>>,
    /// The last gateway port allocated, to count on from.
    last_port: StdMutex<Option<u16>>,
    /// Artifacts already read back from the store, by kind and name, with their revision:
    /// reading (parsing) is the costly part of validation and reconciliation.
    decoded: StdMutex<std::collections::HashMap<(Kind, String), (u64, Artifact)>>,
    /// What the SLA runtime keeps between passes.
    sla: StdMutex<sla::SlaState>,
    /// The gateway ports in use (built on first use).
    ports: Mutex<Option<ports::PortIndex>>,
    /// One rollout pass or command at a time.
    rollouts: Mutex<()>,
}

/// Kinds read into the snapshot that references resolve against.
const STATIC_KINDS: [Kind; 10] = [
    Kind::Breed,
    Kind::Blueprint,
    Kind::Scale,
    Kind::Sla,
    Kind::Escalation,
    Kind::Condition,
    Kind::Rewrite,
    Kind::Route,
    Kind::Template,
    Kind::Workflow,
];

/// An artifact as it is stored: a standalone gateway with its route weights and condition
/// strengths filled in (spec §2.5); others as they are.
fn as_stored(artifact: Artifact) -> Result<Artifact> {
    Ok(match artifact {
        Artifact::Gateway(mut g) => {
            engine::default_weights(&mut g.routes, ErrorKind::GatewayRouteWeightError, "routes")?;
            Artifact::Gateway(g)
        }
        other => other,
    })
}

/// What a deploy stores: the merged deployment, the revision it replaces, the inline breeds of
/// its blueprint and the port allocator's new position.
struct DeployPlan {
    deployment: Deployment,
    revision: Option<u64>,
    breeds: Vec<Breed>,
    last_port: Option<u16>,
}

fn dsl_error(kind: ErrorKind, path: &str, message: String, hint: &str) -> Error {
    Error::Dsl(DslError::new(kind, path, Mark::default(), message, hint))
}

fn decode(kind: Kind, stored: &StoredArtifact) -> Result<Artifact> {
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

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
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

    fn db(&self) -> &dyn Persistence {
        &*self.inner.persistence
    }

    /// Drops a deleted artifact from the read cache.
    fn forget(&self, kind: Kind, name: &str) {
        lock(&self.inner.decoded).remove(&(kind, name.to_owned()));
    }

    /// Reads a stored artifact back, parsing it only when its revision is new to us.
    fn decode(&self, kind: Kind, stored: &StoredArtifact) -> Result<Artifact> {
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

    async fn emit(&self, event: Event) {
        if let Err(e) = self.db().append_event(&event).await {
            tracing::warn!(error = %e, tags = ?event.tags, "cannot store event");
        }
    }

    /// Everything references may point at, as stored now.
    async fn snapshot(&self) -> Result<Vec<Artifact>> {
        let mut out = Vec::new();
        for kind in STATIC_KINDS
            .into_iter()
            .chain([Kind::Gateway, Kind::Deployment])
        {
            out.extend(self.readable(kind).await?);
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ artifacts

    /// Validates and stores an artifact (create or replace); returns what was stored. A
    /// blueprint's inline breeds are stored as breeds too (spec §2.1); a gateway's route
    /// weights and condition strengths are filled in (spec §2.5). Deployments are made
    /// with [`deploy`](Self::deploy), events with [`publish`](Self::publish).
    pub async fn put(&self, artifact: Artifact) -> Result<Vec<StoredArtifact>> {
        // A gateway given no port gets one here: allocation and store happen under the write
        // lock, so two such creates never get the same port.
        let _allocating = match &artifact {
            Artifact::Gateway(g) if g.port.is_none_or(|p| p.number == 0) => {
                Some(self.inner.writes.lock().await)
            }
            _ => None,
        };
        let artifact = self.validate(&artifact).await?;
        let mut stored = Vec::new();
        if let Artifact::Blueprint(bp) = &artifact {
            for breed in inline_breeds(bp) {
                stored.push(self.store(Artifact::Breed(breed)).await?);
            }
        }
        if let Artifact::Rollout(r) = &artifact
            && let Some(status) = self.rollout_status(&r.name).await?
            && status.phase.is_final()
            && self.rollout(&r.name).await?.as_ref() != Some(r)
        {
            // A new spec for a rollout that ended begins a new rollout.
            self.forget_rollout_status(&r.name).await?;
        }
        stored.push(self.store(artifact).await?);
        Ok(stored)
    }

    /// Every check [`put`](Self::put) makes, storing nothing (spec §2.1 `validate_only=true`):
    /// the artifact's own rules, its references against the store, and the guards of its
    /// kind (a workflow must be absent or suspended to be replaced, spec §2.6). Returns the
    /// artifact as `put` would store it (a gateway with its weights filled in).
    ///
    /// # Errors
    /// The first problem found, as [`put`](Self::put) would return it.
    pub async fn validate(&self, artifact: &Artifact) -> Result<Artifact> {
        let mut checked = self.validate_all(std::slice::from_ref(artifact)).await?;
        checked.pop().ok_or_else(|| Error::Invalid {
            what: "validation",
            message: "nothing was checked".into(),
        })
    }

    /// [`validate`](Self::validate) for several artifacts meant to be stored together: each
    /// may refer to the others (a blueprint to a breed sent with it). Returns them as `put`
    /// would store them.
    ///
    /// # Errors
    /// The first problem found.
    pub async fn validate_all(&self, artifacts: &[Artifact]) -> Result<Vec<Artifact>> {
        let mut stored = artifacts
            .iter()
            .cloned()
            .map(as_stored)
            .collect::<Result<Vec<_>>>()?;
        self.gateway_rules(&mut stored).await?;
        for artifact in &stored {
            if let Artifact::Rollout(r) = artifact {
                self.rollout_rules(r).await?;
            }
        }
        let artifacts = stored.as_slice();
        for artifact in artifacts {
            let kind = artifact.kind();
            if matches!(kind, Kind::Deployment | Kind::Event | Kind::EventQuery) {
                return Err(Error::Invalid {
                    what: "artifact kind",
                    message: format!("{kind} are not stored this way; use deploy or publish"),
                });
            }
            if let Artifact::Workflow(w) = artifact {
                self.check_workflow_update(&w.name).await?;
            }
            // Only what the artifact refers to (and what the rules across artifacts of its
            // kind need) is read from the store.
            let problem = self
                .checked(artifacts, |known| {
                    let expanded = match dsl::expand_available(artifact, known) {
                        Ok(expanded) => expanded,
                        Err(e) => return Some(e),
                    };
                    let mut problems = dsl::validate::artifact(&expanded);
                    problems.extend(dsl::validate::against(artifact, known));
                    if let Artifact::Gateway(g) = &expanded {
                        problems.extend(self.unroutable(g, ""));
                    }
                    problems.into_iter().next()
                })
                .await?;
            if let Some(first) = problem {
                return Err(first.into());
            }
        }
        Ok(stored)
    }

    /// The rules of standalone gateways that depend on the server: the limits on their
    /// number, routes and names, the ports they may use; a gateway without a port (or port
    /// 0) gets a free one from the gateway range here (spec §2.5), so what is stored is
    /// served.
    async fn gateway_rules(&self, artifacts: &mut [Artifact]) -> Result<()> {
        let config = &self.inner.config.engine;
        let limits = &config.limits;
        let mut claimed: BTreeSet<u16> = artifacts
            .iter()
            .filter_map(|a| match a {
                Artifact::Gateway(g) => g.port.map(|p| p.number).filter(|p| *p != 0),
                _ => None,
            })
            .collect();
        let mut new_ones = 0;
        for artifact in artifacts.iter_mut() {
            let Artifact::Gateway(g) = artifact else {
                continue;
            };
            limits.check_gateway(g)?;
            // Spec §2.5: a gateway gets the generated virtual host `<name>.vamp` appended.
            if config.virtual_hosts {
                let generated = engine::virtual_host(&g.name);
                if !g.virtual_hosts.contains(&generated) {
                    g.virtual_hosts.push(generated);
                }
            }
            let exists = self.with_ports(|index| index.has_gateway(&g.name)).await?;
            if !exists {
                new_ones += 1;
            }
            match g.port.as_mut() {
                Some(p) if p.number != 0 => {
                    if !config.allowed_ports.contains(&p.number) {
                        return Err(dsl_error(
                            ErrorKind::UnavailableGatewayPortError,
                            "port",
                            format!(
                                "port {} is outside the ports gateways may use ({}-{})",
                                p.number,
                                config.allowed_ports.start(),
                                config.allowed_ports.end()
                            ),
                            "choose a port in that range, or leave the port out to get a free one",
                        ));
                    }
                }
                _ => {
                    let kind = g.port.map(|p| p.kind).unwrap_or_default();
                    let number = self.free_gateway_port(&claimed).await?;
                    claimed.insert(number);
                    g.port = Some(GatewayPort { number, kind });
                }
            }
        }
        if new_ones > 0 {
            let count = self.with_ports(ports::PortIndex::standalone).await?;
            if count + new_ones > limits.gateways {
                return Err(dsl_error(
                    ErrorKind::LimitExceededError,
                    "name",
                    format!(
                        "{count} gateways are stored and {} may be: this would make {}",
                        limits.gateways,
                        count + new_ones
                    ),
                    "remove unused gateways, or raise limits.gateways in the server's configuration",
                ));
            }
        }
        Ok(())
    }

    /// A gateway port from the gateway range that no gateway claims, none of `also`, and that
    /// the router can listen on; counts on from the last one handed out.
    async fn free_gateway_port(&self, also: &BTreeSet<u16>) -> Result<u16> {
        let config = &self.inner.config.engine;
        let last = *lock(&self.inner.last_port);
        let mut skip = also.clone();
        // Bounded tries, so a router that can listen nowhere cannot stall a create.
        for _ in 0..64 {
            let candidate = self
                .with_ports(|index| {
                    let range = config.ports.range();
                    let taken = |p: u16| index.is_taken(p) || skip.contains(&p);
                    let from = match last {
                        Some(l) if (*range.start()..*range.end()).contains(&l) => l + 1,
                        _ => *range.start(),
                    };
                    (from..=*range.end())
                        .chain(*range.start()..from)
                        .find(|p| !taken(*p))
                })
                .await?;
            let Some(port) = candidate else { break };
            if self.inner.router.can_listen(port) {
                *lock(&self.inner.last_port) = Some(port);
                return Ok(port);
            }
            skip.insert(port);
        }
        let range = config.ports.range();
        Err(dsl_error(
            ErrorKind::NoAvailablePortError,
            "port",
            format!(
                "no free gateway port left in {}-{}",
                range.start(),
                range.end()
            ),
            "widen the gateway port range, or remove unused gateways",
        ))
    }

    /// What about gateway `g` the router cannot route: conditions it cannot evaluate.
    /// `path` is where the gateway is written.
    fn unroutable(&self, g: &Gateway, path: &str) -> Option<DslError> {
        for (route_path, route) in &g.routes {
            let Some(route) = route.inline() else {
                continue;
            };
            let Some(condition) = route.condition.as_ref().and_then(Ref::inline) else {
                continue;
            };
            if let Err(reason) = self.inner.router.check_condition(&condition.definition) {
                let at = if path.is_empty() {
                    format!("routes.{route_path}.condition")
                } else {
                    format!("{path}.routes.{route_path}.condition")
                };
                return Some(DslError::new(
                    ErrorKind::UnsupportedConditionError,
                    at,
                    Mark::default(),
                    format!(
                        "the {} router cannot evaluate '{}': {reason}",
                        self.inner.router.backend(),
                        condition.definition
                    ),
                    "write the condition in Vamp's grammar (host, user-agent, cookie, header), or serve this gateway through HAProxy",
                ));
            }
        }
        None
    }

    /// What about deployment `d` cannot be served here: a breed the driver cannot run, a
    /// condition the router cannot evaluate, a value over the limits.
    fn unservable(&self, d: &Deployment) -> Result<()> {
        let config = &self.inner.config.engine;
        config.limits.check_deployment(d, &config.default_scale)?;
        for (c, cluster) in &d.clusters {
            for s in &cluster.services {
                if let Err(reason) = self.inner.driver.check_deployable(&s.breed.deployable) {
                    return Err(dsl_error(
                        ErrorKind::UnsupportedDeployableError,
                        &format!("clusters.{c}.services.{}.breed.deployable", s.breed.name),
                        format!("breed '{}': {reason}", s.breed.name),
                        "deploy it where a driver runs this kind of deployable (driver.kind in the server's configuration)",
                    ));
                }
            }
        }
        for g in engine::gateways(d, config) {
            if let Some(e) = self.unroutable(&g, &format!("gateways.{}", g.name)) {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The store as it would be with `alongside` stored too (they replace stored artifacts
    /// of the same kind and name).
    async fn snapshot_with(&self, alongside: &[Artifact]) -> Result<Vec<Artifact>> {
        let mut known = self.snapshot().await?;
        for a in alongside {
            known.retain(|k| (k.kind(), k.name()) != (a.kind(), a.name()));
            known.push(a.clone());
        }
        Ok(known)
    }

    async fn store(&self, artifact: Artifact) -> Result<StoredArtifact> {
        let (kind, name) = (artifact.kind(), artifact.name().to_owned());
        let mut json = artifact.to_json();
        if let serde_json::Value::Object(m) = &mut json {
            m.shift_remove("kind");
        }
        let existed = self.db().get(kind, &name).await?.is_some();
        let stored = self.db().put(kind, &name, &json, Precondition::Any).await?;
        if let Artifact::Gateway(g) = &artifact {
            self.index_gateway(&name, Some(g)).await;
        }
        self.changed(kind);
        let what = if existed { "update" } else { "create" };
        self.emit(events::archive(kind, &name, what, json)).await;
        Ok(stored)
    }

    /// Something of `kind` was stored or removed: when it can change what the router routes,
    /// a routing pass starts now (the periodic resync is only a safety net, ARCHITECTURE).
    fn changed(&self, kind: Kind) {
        if matches!(
            kind,
            Kind::Gateway | Kind::Deployment | Kind::Condition | Kind::Rewrite | Kind::Route
        ) {
            self.inner.reroute.notify_one();
        }
        if kind == Kind::Deployment {
            self.inner.wake.notify_one();
        }
    }

    /// Puts back an artifact read earlier from this `Vamp`, as it was: no validation and no
    /// guards (they held when it was first stored). For undoing part of a multi-document write
    /// that failed later on. A deployment is saved as is and reconciled again.
    ///
    /// # Errors
    /// When the persistence fails; events and queries cannot be restored.
    pub async fn restore(&self, artifact: Artifact) -> Result<()> {
        match artifact {
            Artifact::Deployment(d) => {
                let _writes = self.inner.writes.lock().await;
                let revision = self.load(&d.name).await?.map(|(_, r)| r);
                self.save(&d, revision, "update").await?;
                Ok(())
            }
            Artifact::Event(_) | Artifact::EventQuery(_) => Err(Error::Invalid {
                what: "artifact kind",
                message: "events are not restored".into(),
            }),
            other => self.store(other).await.map(|_| ()),
        }
    }

    /// A workflow may be created or replaced only while it is absent or suspended (spec §2.6).
    async fn check_workflow_update(&self, name: &str) -> Result<()> {
        match self.workflow(name).await? {
            Some(w) if w.status != WorkflowStatus::Suspended => Err(dsl_error(
                ErrorKind::WorkflowUpdateError,
                "status",
                format!(
                    "workflow '{name}' is {}: only a suspended workflow can be replaced",
                    w.status.as_str()
                ),
                "set its status to suspended first (PUT /api/v1/workflows/<name>/status with body suspended)",
            )),
            _ => Ok(()),
        }
    }

    /// A workflow by name.
    pub async fn workflow(&self, name: &str) -> Result<Option<Workflow>> {
        Ok(match self.get(Kind::Workflow, name).await? {
            Some(Artifact::Workflow(w)) => Some(w),
            _ => None,
        })
    }

    /// Sets the status of a stored workflow (spec §2.6 `PUT /workflows/{name}/status`), e.g.
    /// `suspended` before replacing it, or `restarting`; `None` when there is no such
    /// workflow. The change is archived like any update.
    pub async fn set_workflow_status(
        &self,
        name: &str,
        status: WorkflowStatus,
    ) -> Result<Option<Workflow>> {
        let _writes = self.inner.writes.lock().await;
        let Some(mut w) = self.workflow(name).await? else {
            return Ok(None);
        };
        if w.status != status {
            w.status = status;
            self.store(Artifact::Workflow(w.clone())).await?;
        }
        Ok(Some(w))
    }

    /// `artifacts` with their references to stored artifacts inlined (spec §2.1
    /// `expand_references`); references to missing ones stay as they are.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn expand(&self, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>> {
        let snapshot = self.snapshot().await?;
        artifacts
            .iter()
            .map(|a| dsl::expand_available(a, &snapshot).map_err(Error::from))
            .collect()
    }

    /// Reads artifacts from `text` as the API takes them: `import:` (spec §1.11) resolves
    /// against the templates and artifacts of the text and then against the stored ones. `kind`
    /// is the expected kind, as [`dsl::read`] takes it.
    ///
    /// # Errors
    /// The first [`DslError`] (as [`Error::Dsl`]), with its line and column; or the store's.
    pub async fn read(&self, text: &str, kind: Option<Kind>) -> Result<Vec<Artifact>> {
        let read = self
            .checked(&[], |stored| dsl::read_documents(text, kind, Some(stored)))
            .await?;
        Ok(read?.into_iter().map(|d| d.artifact).collect())
    }

    /// [`dsl::read_deployable`] with `import:` resolving against stored artifacts too.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn read_deployable(&self, text: &str) -> Result<Vec<(Kind, Artifact)>> {
        let read = self
            .checked(&[], |stored| {
                dsl::read_deployable_importing(text, Some(stored))
            })
            .await?;
        Ok(read?)
    }

    /// An artifact by kind and name.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<Artifact>> {
        match self.db().get(kind, name).await? {
            Some(stored) => self.decode(kind, &stored).map(Some),
            None => Ok(None),
        }
    }

    /// A page of the artifacts of a kind, by name.
    pub async fn list(&self, kind: Kind, page: Page) -> Result<Paged<Artifact>> {
        let stored = self.db().list(kind, page).await?;
        Ok(Paged {
            items: stored
                .items
                .iter()
                .map(|s| self.decode(kind, s))
                .collect::<Result<_>>()?,
            total: stored.total,
        })
    }

    /// Deletes an artifact; false if there was none. Deployments go with
    /// [`undeploy`](Self::undeploy).
    pub async fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        if kind == Kind::Deployment {
            return Err(Error::Invalid {
                what: "artifact kind",
                message: "deployments are removed with undeploy".into(),
            });
        }
        let deleted = self
            .db()
            .delete(kind, name, Precondition::Any)
            .await?
            .is_some();
        self.forget(kind, name);
        if kind == Kind::Gateway {
            self.index_gateway(name, None).await;
        }
        if kind == Kind::Rollout {
            self.forget_rollout_status(name).await?;
        }
        if deleted {
            self.changed(kind);
            self.emit(events::archive(
                kind,
                name,
                "delete",
                serde_json::Value::Null,
            ))
            .await;
        }
        Ok(deleted)
    }

    // ---------------------------------------------------------------- deployments

    /// A deployment by name.
    pub async fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        Ok(match self.get(Kind::Deployment, name).await? {
            Some(Artifact::Deployment(d)) => Some(d),
            _ => None,
        })
    }

    /// Every deployment.
    pub async fn deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self
            .list(Kind::Deployment, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter_map(|a| match a {
                Artifact::Deployment(d) => Some(d),
                _ => None,
            })
            .collect())
    }

    async fn load(&self, name: &str) -> Result<Option<(Deployment, u64)>> {
        match self.db().get(Kind::Deployment, name).await? {
            Some(stored) => match self.decode(Kind::Deployment, &stored)? {
                Artifact::Deployment(d) => Ok(Some((d, stored.revision))),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// A deployment that must exist, with its revision; `ArtifactNotFound` otherwise.
    async fn existing(&self, name: &str) -> Result<(Deployment, u64)> {
        self.load(name).await?.ok_or_else(|| {
            dsl_error(
                ErrorKind::ArtifactNotFound,
                "name",
                format!("deployment '{name}' does not exist"),
                "deploy it first",
            )
        })
    }

    async fn save(&self, d: &Deployment, revision: Option<u64>, what: &str) -> Result<()> {
        let mut json = Artifact::Deployment(d.clone()).to_json();
        if let serde_json::Value::Object(m) = &mut json {
            m.shift_remove("kind");
        }
        let precondition = revision.map_or(Precondition::Absent, Precondition::Revision);
        self.db()
            .put(Kind::Deployment, &d.name, &json, precondition)
            .await?;
        self.index_deployment(&d.name, Some(d)).await;
        if !what.is_empty() {
            // A write through the API (the reconciler's own saves pass no `what` and route
            // at the end of their pass).
            self.changed(Kind::Deployment);
            self.emit(events::archive(Kind::Deployment, &d.name, what, json))
                .await;
        }
        Ok(())
    }

    /// Deploys `blueprint` as deployment `name`, merging into it if it exists (spec §3.3): new
    /// services join full gateways at 0%, changed services redeploy. References are resolved
    /// against the store; the result is validated before anything is stored. The reconciler
    /// starts at once.
    pub async fn deploy(&self, name: &str, blueprint: &Blueprint) -> Result<Deployment> {
        let _writes = self.inner.writes.lock().await;
        let plan = self.plan_deployment(name, blueprint, &[]).await?;
        *lock(&self.inner.last_port) = plan.last_port;
        for breed in plan.breeds {
            if self.get(Kind::Breed, &breed.name).await?.as_ref()
                != Some(&Artifact::Breed(breed.clone()))
            {
                self.store(Artifact::Breed(breed)).await?;
            }
        }
        let what = if plan.revision.is_some() {
            "update"
        } else {
            "create"
        };
        self.save(&plan.deployment, plan.revision, what).await?;
        Ok(plan.deployment)
    }

    /// What [`deploy`](Self::deploy) would store, with every check it makes, storing nothing
    /// (spec §2.1 `validate_only=true`). References resolve against the store as it would be
    /// with `alongside` stored too (the other documents of one request). The gateway ports
    /// shown are the ones a deploy made now would get.
    ///
    /// # Errors
    /// The errors [`deploy`](Self::deploy) would return.
    pub async fn preview(
        &self,
        name: &str,
        blueprint: &Blueprint,
        alongside: &[Artifact],
    ) -> Result<Deployment> {
        let _writes = self.inner.writes.lock().await;
        Ok(self
            .plan_deployment(name, blueprint, alongside)
            .await?
            .deployment)
    }

    /// Everything a deploy decides before it stores anything.
    async fn plan_deployment(
        &self,
        name: &str,
        blueprint: &Blueprint,
        alongside: &[Artifact],
    ) -> Result<DeployPlan> {
        let snapshot = self.snapshot_with(alongside).await?;
        if snapshot
            .iter()
            .any(|a| a.kind() == Kind::Workflow && a.name() == name)
        {
            return Err(dsl_error(
                ErrorKind::DeploymentWorkflowNameCollision,
                "name",
                format!("'{name}' is a workflow"),
                "deployments and workflows share one name space: pick another name",
            ));
        }
        let Artifact::Blueprint(expanded) =
            dsl::expand(&Artifact::Blueprint(blueprint.clone()), &snapshot)?
        else {
            return Err(Error::Invalid {
                what: "blueprint",
                message: "expansion changed its kind".into(),
            });
        };
        // A dependency may be provided by the deployment merged into (spec §1.5: relaxed when
        // merging); merge checks dependencies against the result.
        let problem = dsl::validate::artifact(&Artifact::Blueprint(expanded.clone()))
            .into_iter()
            .find(|e| e.kind != ErrorKind::UnresolvedBreedDependencyError);
        if let Some(first) = problem {
            return Err(first.into());
        }
        let current = self.load(name).await?;
        let config = &self.inner.config.engine;
        let mut d = engine::merge(
            current.as_ref().map(|(d, _)| d),
            name,
            &expanded,
            config,
            Utc::now(),
        )?;
        self.unservable(&d)?;
        // Ports used by the gateways of every other deployment.
        let others: Vec<Deployment> = snapshot
            .into_iter()
            .filter_map(|a| match a {
                Artifact::Deployment(o) if o.name != name => Some(o),
                _ => None,
            })
            .collect();
        let other_gateways: Vec<Artifact> = others
            .iter()
            .flat_map(|o| engine::gateways(o, config))
            .map(Artifact::Gateway)
            .chain(self.list(Kind::Gateway, Page::ALL).await?.items)
            .collect();
        for g in engine::gateways(&d, config) {
            let is_external = names::segments(&g.name) == Some(2);
            if let Some(e) = is_external
                .then(|| dsl::validate::against(&Artifact::Gateway(g.clone()), &other_gateways))
                .and_then(|v| v.into_iter().next())
            {
                return Err(e.into());
            }
        }
        let taken: BTreeSet<u16> = other_gateways
            .iter()
            .filter_map(|a| match a {
                Artifact::Gateway(g) => g.port.map(|p| p.number),
                _ => None,
            })
            .chain(
                d.gateways
                    .keys()
                    .filter_map(|k| GatewayPort::parse(k).ok().map(|p| p.number)),
            )
            .collect();
        let last = *lock(&self.inner.last_port);
        // Ports another program holds are skipped (the router probes them); a bounded number
        // of tries, so a router that says no to everything cannot stall a deploy.
        let before = d.clone();
        let mut taken = taken;
        let mut last_port = engine::allocate_ports(&mut d, &taken, config, last)?;
        for _ in 0..64 {
            let busy: Vec<u16> = d
                .ports
                .iter()
                .filter(|(k, v)| before.ports.get(*k) != Some(v))
                .filter_map(|(_, v)| v.parse::<u16>().ok())
                .filter(|p| !self.inner.router.can_listen(*p))
                .collect();
            if busy.is_empty() {
                break;
            }
            tracing::debug!(
                ?busy,
                "gateway ports taken by another program; choosing others"
            );
            taken.extend(busy);
            d = before.clone();
            last_port = engine::allocate_ports(&mut d, &taken, config, last)?;
        }
        Ok(DeployPlan {
            deployment: d,
            revision: current.map(|(_, r)| r),
            breeds: inline_breeds(&expanded),
            last_port,
        })
    }

    /// What [`slice`](Self::slice) would make of deployment `name`, with every check it
    /// makes, storing nothing (spec §2.1 `validate_only=true`); `None` when the deployment
    /// does not exist.
    ///
    /// # Errors
    /// The errors `slice` would return.
    pub async fn slice_preview(
        &self,
        name: &str,
        blueprint: &Blueprint,
    ) -> Result<Option<Deployment>> {
        let Some((current, _)) = self.load(name).await? else {
            return Ok(None);
        };
        Ok(Some(engine::slice(&current, blueprint, Utc::now())?))
    }

    /// Removes the services `blueprint` names (spec §3.4); they are undeployed by the
    /// reconciler. `InvalidRouteWeight` while the remaining services would not carry all the
    /// traffic. `None` when the deployment does not exist.
    pub async fn slice(&self, name: &str, blueprint: &Blueprint) -> Result<Option<Deployment>> {
        let _writes = self.inner.writes.lock().await;
        let Some((current, revision)) = self.load(name).await? else {
            return Ok(None);
        };
        let d = engine::slice(&current, blueprint, Utc::now())?;
        if d != current {
            self.save(&d, Some(revision), "update").await?;
        }
        Ok(Some(d))
    }

    /// Undeploys a whole deployment (every service); `None` when it does not exist. Nothing
    /// needs to carry the traffic afterwards, so no weights need moving first.
    pub async fn undeploy(&self, name: &str) -> Result<Option<Deployment>> {
        let _writes = self.inner.writes.lock().await;
        let Some((current, revision)) = self.load(name).await? else {
            return Ok(None);
        };
        let everything = Blueprint {
            name: name.to_owned(),
            clusters: current
                .clusters
                .iter()
                .map(|(c, cluster)| {
                    let services = cluster
                        .services
                        .iter()
                        .map(|s| Service {
                            breed: Ref::Reference(s.breed.name.clone()),
                            ..Service::default()
                        })
                        .collect();
                    (
                        c.clone(),
                        Cluster {
                            services,
                            ..Cluster::default()
                        },
                    )
                })
                .collect(),
            ..Blueprint::default()
        };
        let d = engine::slice(&current, &everything, Utc::now())?;
        self.save(&d, Some(revision), "update").await?;
        Ok(Some(d))
    }

    /// Sets the scale of one service (spec §2.2 `…/scale`); it redeploys.
    ///
    /// # Errors
    /// `ArtifactNotFound` for a missing deployment or service; `LimitExceededError` for a
    /// scale over the limits.
    pub async fn scale(
        &self,
        deployment: &str,
        cluster: &str,
        service: &str,
        scale: Scale,
    ) -> Result<Deployment> {
        let _writes = self.inner.writes.lock().await;
        let (d, revision) = self.scaled(deployment, cluster, service, scale).await?;
        self.save(&d, Some(revision), "update").await?;
        Ok(d)
    }

    /// What [`scale`](Self::scale) would make of the deployment, with every check it makes,
    /// storing nothing (`validate_only`).
    ///
    /// # Errors
    /// The errors `scale` would return.
    pub async fn scale_preview(
        &self,
        deployment: &str,
        cluster: &str,
        service: &str,
        scale: Scale,
    ) -> Result<Deployment> {
        Ok(self.scaled(deployment, cluster, service, scale).await?.0)
    }

    async fn scaled(
        &self,
        deployment: &str,
        cluster: &str,
        service: &str,
        scale: Scale,
    ) -> Result<(Deployment, u64)> {
        let engine = &self.inner.config.engine;
        engine.limits.check_scale(&scale, "scale")?;
        let (mut d, revision) = self.existing(deployment).await?;
        let s = d
            .clusters
            .get_mut(cluster)
            .and_then(|c| c.services.iter_mut().find(|s| s.breed.name == service))
            .ok_or_else(|| {
                dsl_error(
                    ErrorKind::ArtifactNotFound,
                    &format!("clusters.{cluster}"),
                    format!("deployment '{deployment}' has no service '{service}' in cluster '{cluster}'"),
                    "check the cluster and breed names",
                )
            })?;
        s.scale = Some(Scale {
            name: String::new(),
            metadata: Metadata::default(),
            ..scale
        });
        s.status = ServiceStatus {
            since: Utc::now(),
            ..ServiceStatus::default()
        };
        engine.limits.check_deployment(&d, &engine.default_scale)?;
        Ok((d, revision))
    }

    /// Sets (`Some`) or removes (`None`) the SLA of one cluster of a deployment (spec §2.2
    /// `…/clusters/{c}/sla`). A reference must name a stored SLA; it is stored inline and
    /// anonymous, as deployments hold everything they run. Returns the updated deployment.
    ///
    /// # Errors
    /// `ArtifactNotFound` for a missing deployment, cluster or referenced SLA; the SLA's own
    /// validation errors.
    pub async fn set_cluster_sla(
        &self,
        deployment: &str,
        cluster: &str,
        sla: Option<Ref<Sla>>,
    ) -> Result<Deployment> {
        self.cluster_sla(deployment, cluster, sla, true).await
    }

    /// What [`set_cluster_sla`](Self::set_cluster_sla) would make of the deployment, with
    /// every check it makes, storing nothing (`validate_only`).
    ///
    /// # Errors
    /// The errors `set_cluster_sla` would return.
    pub async fn cluster_sla_preview(
        &self,
        deployment: &str,
        cluster: &str,
        sla: Option<Ref<Sla>>,
    ) -> Result<Deployment> {
        self.cluster_sla(deployment, cluster, sla, false).await
    }

    async fn cluster_sla(
        &self,
        deployment: &str,
        cluster: &str,
        sla: Option<Ref<Sla>>,
        store: bool,
    ) -> Result<Deployment> {
        let sla = match sla {
            Some(Ref::Reference(name)) => match self.get(Kind::Sla, &name).await? {
                Some(Artifact::Sla(s)) => Some(s),
                _ => {
                    return Err(dsl_error(
                        ErrorKind::ArtifactNotFound,
                        "sla",
                        format!("SLA '{name}' does not exist"),
                        "store it first (POST /api/v1/slas) or send the SLA inline",
                    ));
                }
            },
            Some(Ref::Inline(s)) => Some(s),
            None => None,
        };
        let sla = match sla {
            Some(s) => {
                let snapshot = self.snapshot().await?;
                let expanded = dsl::expand(&Artifact::Sla(s), &snapshot)?;
                if let Some(first) = dsl::validate::artifact(&expanded).into_iter().next() {
                    return Err(first.into());
                }
                match expanded {
                    Artifact::Sla(s) => Some(s),
                    _ => None,
                }
            }
            None => None,
        };
        let _writes = self.inner.writes.lock().await;
        let (mut d, revision) = self.existing(deployment).await?;
        let c = d.clusters.get_mut(cluster).ok_or_else(|| {
            dsl_error(
                ErrorKind::ArtifactNotFound,
                "clusters",
                format!("deployment '{deployment}' has no cluster '{cluster}'"),
                "check the cluster name (GET /api/v1/deployments/<name>)",
            )
        })?;
        // Inline definitions are anonymous (spec §1.1).
        let sla = sla.map(|s| {
            Ref::Inline(Sla {
                name: String::new(),
                metadata: Metadata::default(),
                ..s
            })
        });
        if c.sla != sla {
            c.sla = sla;
            if store {
                self.save(&d, Some(revision), "update").await?;
            }
        }
        Ok(d)
    }

    /// The gateways of all deployments and the standalone ones.
    pub async fn gateways(&self) -> Result<Vec<Gateway>> {
        let config = &self.inner.config.engine;
        let mut out: Vec<Gateway> = self
            .deployments()
            .await?
            .iter()
            .flat_map(|d| engine::gateways(d, config))
            .collect();
        for a in self.list(Kind::Gateway, Page::ALL).await?.items {
            if let Artifact::Gateway(g) = a {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// Per-route traffic counters of the router (requests, errors, response times);
    /// [`Error::Unsupported`] from routers that cannot count.
    pub async fn route_stats(&self) -> Result<Vec<RouteStats>> {
        self.inner.router.stats().await
    }

    // ------------------------------------------------------------------- events

    /// Stores an event (and delivers it to subscribers).
    pub async fn publish(&self, event: &Event) -> Result<StoredEvent> {
        self.db().append_event(event).await
    }

    /// Stores several events in order (in one write where the store can).
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<StoredEvent>> {
        self.db().append_events(events).await
    }

    /// A page of stored events, newest first.
    pub async fn events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        self.db().query_events(filter, page).await
    }

    /// The newest stored event that passes `filter` (no total counted).
    pub async fn newest_event(&self, filter: &EventFilter) -> Result<Option<StoredEvent>> {
        self.db().newest_event(filter).await
    }

    /// Events from now on.
    pub async fn subscribe(&self) -> Result<EventStream> {
        self.db().subscribe().await
    }

    // --------------------------------------------------------------- reconciler

    /// Runs reconciliation passes until `shutdown` resolves: at once when something changes
    /// through this `Vamp`, every [`VampConfig::converging`] while a service converges, and
    /// every [`VampConfig::resync`] otherwise. A failing pass is logged and retried. With
    /// [`VampConfig::sla_period`] set, an [`sla_pass`](Self::sla_pass) runs that often too.
    ///
    /// Beside the reconciler runs the routing loop: whatever changes routing (a gateway, a
    /// deployment's weights, a condition) reaches the router at once through
    /// [`route_now`](Self::route_now), without waiting for a reconciliation pass. Passes in
    /// progress finish before `run` returns.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopper = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(
            stopper,
            self.reconcile_loop(stopped.clone()),
            self.routing_loop(stopped.clone()),
            self.retention_loop(stopped.clone()),
            self.rollout_loop(stopped)
        );
    }

    /// Applies [`VampConfig::retention`] now; returns how many events went.
    ///
    /// # Errors
    /// When the persistence fails (or cannot: `Unsupported`).
    pub async fn retain_events(&self) -> Result<u64> {
        match &self.inner.config.retention {
            Some(retention) => self.db().retain_events(retention, Utc::now()).await,
            None => Ok(0),
        }
    }

    async fn rollout_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let Some(period) = self.inner.config.rollout_period else {
            return;
        };
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                _ = every.tick() => {}
                () = self.inner.rollout_wake.notified() => {}
            }
            if let Err(e) = self.rollout_pass().await {
                tracing::warn!(error = %e, "rollout pass failed");
            }
        }
    }

    async fn retention_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        if self.inner.config.retention.is_none() {
            return;
        }
        let mut every = tokio::time::interval(self.inner.config.retention_period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                _ = every.tick() => {}
            }
            match self.retain_events().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "event retention"),
                Err(e) => tracing::warn!(error = %e, "event retention failed"),
            }
        }
    }

    async fn reconcile_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut sla = self.inner.config.sla_period.map(|period| {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        loop {
            let wait = match self.reconcile().await {
                Ok(report) if !report.converged => self.inner.config.converging,
                Ok(_) => self.inner.config.resync,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation pass failed");
                    self.inner.config.converging
                }
            };
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = tick(sla.as_mut()) => {
                    if let Err(e) = self.sla_pass().await {
                        tracing::warn!(error = %e, "SLA pass failed");
                    }
                }
            }
        }
    }

    async fn routing_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                () = self.inner.reroute.notified() => {}
            }
            if let Err(e) = self.route_now().await {
                tracing::warn!(error = %e, "routing pass failed; the next change or resync retries");
            }
        }
    }
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until_stopped(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The next tick of the SLA timer; never, without one.
async fn tick(every: Option<&mut tokio::time::Interval>) {
    match every {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The inline breeds of a blueprint's services.
fn inline_breeds(bp: &Blueprint) -> Vec<Breed> {
    bp.clusters
        .values()
        .flat_map(|c| c.services.iter())
        .filter_map(|s| s.breed.inline().cloned())
        .collect()
}
