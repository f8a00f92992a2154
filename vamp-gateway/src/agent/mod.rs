//! The gateway agent: applies the gateways a `haproxy-kv` router publishes to one local HAProxy
//! (ARCHITECTURE, "agent/"; spec §4.4, without its 5 s poll).
//!
//! - **Watches** `<root>/gateways…` (a listing, then a watch from the listing's revision: no
//!   change is missed or seen twice) and acts on each change at once; changes that arrive
//!   together are applied together.
//! - Applies through [`LocalRouter`]: weight and strength changes through the runtime API with
//!   **no reload**, structural changes through a checked seamless reload, runtime weights set
//!   again after it.
//! - **Never applies an empty or invalid state.** It applies only when the list of names at
//!   `<root>/gateways` and the entries agree; a missing list, an entry that does not decode or
//!   a config HAProxy refuses keeps the running config and is reported in
//!   [`AgentStatus::last_error`]. (An explicit empty list `[]` does remove every gateway.)
//! - **Keeps serving through outages.** HAProxy runs on its own; when the store is unreachable
//!   the agent retries with backoff (100 ms doubling to `max_backoff`, with jitter) and, once back, lists
//!   again and applies whatever changed meanwhile.
//! - **Watchdog**: every second it checks that HAProxy runs, and starts it again with the
//!   state last applied if it died; a state that did not wholly take (a gateway whose port was
//!   taken, a reload HAProxy refused) is tried again.
//! - Reports its health and the applied revision through [`Agent::status`] and
//!   [`serve_status`] (HTTP `GET /health`).
//!
//! One file: the session, the watchdog and the reconcile step are one state machine over the
//! same `Seen` state.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tokio::sync::watch;
use vamp_core::traits::{KeyValueStore, KvEventKind, ResolvedGateway, Router};

use crate::haproxy::local::LocalRouter;
use crate::haproxy::render::RenderOptions;
use crate::wire::{self, WireGateway};

mod stats;
mod status;
pub use status::serve_status;

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The key root, e.g. `/vamp/default`.
    pub root: String,
    /// The HAProxy binary.
    pub haproxy: PathBuf,
    /// HAProxy's files (config, sockets); keep it short: socket paths hold 107 bytes.
    pub dir: PathBuf,
    /// Bind host, timeouts, health checks.
    pub render: RenderOptions,
    /// The longest wait between two attempts to reach the store.
    pub max_backoff: Duration,
    /// The name it publishes its counters under (`<root>/stats/<name>`): unique per agent.
    pub name: String,
    /// How often it publishes its HAProxy's counters for the server (rollouts, SLAs).
    pub stats_period: Duration,
}

impl AgentConfig {
    /// Defaults for `root`, `haproxy` and `dir`: loopback, 5 s backoff cap.
    pub fn new(
        root: impl Into<String>,
        haproxy: impl Into<PathBuf>,
        dir: impl Into<PathBuf>,
    ) -> Self {
        AgentConfig {
            root: root.into(),
            haproxy: haproxy.into(),
            dir: dir.into(),
            render: RenderOptions::default(),
            max_backoff: Duration::from_secs(5),
            name: format!("agent-{}", std::process::id()),
            stats_period: Duration::from_secs(1),
        }
    }
}

/// What the agent is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    /// The store answered on the last attempt and the watch is open.
    pub kv_connected: bool,
    /// HAProxy runs (it starts on the first state applied).
    pub haproxy_running: bool,
    /// The store revision of the state HAProxy serves.
    pub applied_revision: Option<u64>,
    /// The gateways served.
    pub applied_gateways: Vec<String>,
    /// Gateways of the applied state that could not be served, with the reason.
    pub failed_gateways: Vec<(String, String)>,
    /// The last problem (cleared by the next successful apply or reconnect).
    pub last_error: Option<String>,
    /// Structural reloads done.
    pub reloads: u32,
    /// Times HAProxy was found dead and started again with the last applied state.
    pub haproxy_restarts: u32,
}

/// One agent: a store, a local HAProxy, and the loop between them.
#[derive(Debug)]
pub struct Agent {
    kv: Arc<dyn KeyValueStore>,
    config: AgentConfig,
    router: LocalRouter,
    status: watch::Sender<AgentStatus>,
    /// A state not (wholly) applied — refused by HAProxy, or with gateways that could not be
    /// served — with its revision: the watchdog tries it again.
    retry: tokio::sync::Mutex<Option<(Vec<ResolvedGateway>, u64)>>,
}

/// The keys the agent follows, as last read.
#[derive(Debug, Default)]
struct Seen {
    list: Option<Vec<u8>>,
    entries: BTreeMap<String, Vec<u8>>,
}

impl Seen {
    /// Takes in one change; returns its revision.
    fn apply(&mut self, root: &str, ev: vamp_core::traits::KvEvent) -> u64 {
        let value = if ev.kind == KvEventKind::Delete {
            None
        } else {
            ev.value
        };
        self.update(root, &ev.key, value);
        ev.revision
    }

    fn update(&mut self, root: &str, key: &str, value: Option<Vec<u8>>) {
        if key == wire::list_key(root) {
            self.list = value;
        } else if let Some(name) = wire::name_of(root, key) {
            match value {
                Some(v) => self.entries.insert(name, v),
                None => self.entries.remove(&name),
            };
        }
    }
}

enum Desired {
    Apply(Vec<ResolvedGateway>),
    /// Entries and list disagree: an update is being written.
    Wait,
    Refuse(String),
}

impl Agent {
    /// An agent for `kv` (not yet running).
    pub fn new(kv: Arc<dyn KeyValueStore>, config: AgentConfig) -> Self {
        let router = LocalRouter::new(
            config.haproxy.clone(),
            config.dir.clone(),
            config.render.clone(),
        );
        Agent {
            kv,
            config,
            router,
            status: watch::channel(AgentStatus::default()).0,
            retry: tokio::sync::Mutex::default(),
        }
    }

    /// Follows the agent's status.
    pub fn status(&self) -> watch::Receiver<AgentStatus> {
        self.status.subscribe()
    }

    /// The PID of HAProxy's master, while it runs.
    pub async fn haproxy_pid(&self) -> Option<u32> {
        self.router.haproxy_pid().await
    }

    /// HAProxy's own reload counter, if it runs.
    ///
    /// # Errors
    /// The master socket's errors.
    pub async fn haproxy_reloads(
        &self,
    ) -> Result<Option<u32>, crate::haproxy::process::ProcessError> {
        self.router.haproxy_reloads().await
    }

    /// Runs until `shutdown` resolves, then stops HAProxy.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let work = async {
            let policy =
                || vamp_core::retry::backoff(Duration::from_millis(100), self.config.max_backoff);
            let mut backoff = policy();
            loop {
                let (error, connected) = self.session().await;
                if connected {
                    backoff = policy();
                }
                let delay = backoff.delay();
                tracing::warn!(error = %error, retry_in = ?delay, "gateway agent lost the store; HAProxy keeps serving");
                self.status.send_modify(|s| {
                    s.kv_connected = false;
                    s.last_error = Some(error);
                });
                tokio::time::sleep(delay).await;
            }
        };
        // The watchdog runs whether the store answers or not.
        let watchdog = async {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                self.watchdog().await;
            }
        };
        // The counters, for the server's rollouts and SLAs (the `haproxy-kv` router adds up
        // every agent's).
        let publish = async {
            let mut tick = tokio::time::interval(self.config.stats_period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last: Option<Vec<u8>> = None;
            loop {
                tick.tick().await;
                match self.publish_stats(last.as_deref()).await {
                    Ok(published) => last = published.or(last),
                    Err(e) => tracing::debug!(error = %e, "cannot publish the counters now"),
                }
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = work => {}
            () = watchdog => {}
            () = publish => {}
        }
        if let Err(e) = self.router.stop().await {
            tracing::warn!(error = %e, "stopping HAProxy");
        }
        self.status.send_modify(|s| s.haproxy_running = false);
    }

    /// One connection to the store: list, apply, then follow the watch until it fails.
    /// Returns why it ended and whether it had connected.
    async fn session(&self) -> (String, bool) {
        let root = &self.config.root;
        let prefix = wire::list_key(root);
        let listing = match self.kv.list(&prefix).await {
            Ok(l) => l,
            Err(e) => return (e.to_string(), false),
        };
        let mut seen = Seen::default();
        for e in listing.entries {
            seen.update(root, &e.key, Some(e.value));
        }
        let mut stream = match self.kv.watch(&prefix, Some(listing.revision)).await {
            Ok(s) => s,
            Err(e) => return (e.to_string(), false),
        };
        self.status.send_modify(|s| {
            s.kv_connected = true;
            s.last_error = None;
        });
        self.reconcile(&seen, listing.revision).await;
        loop {
            let mut revision = match stream.next().await {
                Some(Ok(ev)) => seen.apply(root, ev),
                Some(Err(e)) => return (e.to_string(), true),
                None => return ("the watch ended".into(), true),
            };
            // Changes that are already here are applied together.
            while let Some(Some(next)) = stream.next().now_or_never() {
                match next {
                    Ok(ev) => revision = seen.apply(root, ev),
                    Err(e) => {
                        self.reconcile(&seen, revision).await;
                        return (e.to_string(), true);
                    }
                }
            }
            self.reconcile(&seen, revision).await;
        }
    }

    /// Starts HAProxy again if it died (with the state last applied), and tries again a state
    /// that did not wholly take (a port taken then, a reload refused).
    async fn watchdog(&self) {
        let mut retry = self.retry.lock().await;
        if let Some((gateways, revision)) = retry.clone() {
            self.apply_locked(&mut retry, gateways, revision, true)
                .await;
        }
        drop(retry);
        match self.router.ensure_running().await {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!("HAProxy had stopped; started it again with the last applied state");
                self.status.send_modify(|s| s.haproxy_restarts += 1);
            }
            Err(e) => {
                tracing::error!(error = %e, "HAProxy is down and could not be started again");
                self.status.send_modify(|s| {
                    s.haproxy_running = false;
                    s.last_error = Some(e.to_string());
                });
            }
        }
    }

    fn desired(&self, seen: &Seen) -> Desired {
        let root = &self.config.root;
        let Some(list) = &seen.list else {
            return Desired::Refuse(format!(
                "no gateway list at {}: keeping the running configuration",
                wire::list_key(root)
            ));
        };
        let names: Vec<String> = match serde_json::from_slice(list) {
            Ok(n) => n,
            Err(e) => {
                return Desired::Refuse(format!(
                    "the gateway list at {} is not a JSON list of names ({e}): keeping the running configuration",
                    wire::list_key(root)
                ));
            }
        };
        let mut gateways = Vec::with_capacity(names.len());
        for name in &names {
            let Some(bytes) = seen.entries.get(name) else {
                return Desired::Wait;
            };
            match WireGateway::from_json(&wire::gateway_key(root, name), bytes) {
                Ok(g) if g.name == *name => gateways.push(g),
                Ok(g) => {
                    return Desired::Refuse(format!(
                        "the entry of gateway '{name}' names '{}': keeping the running configuration",
                        g.name
                    ));
                }
                Err(e) => {
                    return Desired::Refuse(format!("{e}: keeping the running configuration"));
                }
            }
        }
        if seen.entries.len() != names.len() {
            return Desired::Wait;
        }
        Desired::Apply(gateways)
    }

    async fn reconcile(&self, seen: &Seen, revision: u64) {
        match self.desired(seen) {
            Desired::Wait => {
                tracing::debug!(revision, "gateway update in progress; waiting for the list")
            }
            Desired::Refuse(reason) => {
                if seen.list.is_none() {
                    // Also the normal state before Vamp first publishes.
                    tracing::warn!(revision, %reason, "gateway state not applied");
                } else {
                    tracing::error!(revision, %reason, "gateway state not applied");
                }
                self.status.send_modify(|s| s.last_error = Some(reason));
            }
            Desired::Apply(gateways) => self.apply(gateways, revision).await,
        }
    }

    /// Applies a consistent state; keeps it for the watchdog to try again when it did not
    /// wholly take.
    async fn apply(&self, gateways: Vec<ResolvedGateway>, revision: u64) {
        // The lock also orders applies: a retry never overtakes a newer state.
        let mut retry = self.retry.lock().await;
        self.apply_locked(&mut retry, gateways, revision, false)
            .await;
    }

    async fn apply_locked(
        &self,
        retry: &mut Option<(Vec<ResolvedGateway>, u64)>,
        gateways: Vec<ResolvedGateway>,
        revision: u64,
        retrying: bool,
    ) {
        let result = self.router.apply(&gateways).await;
        let whole = matches!(&result, Ok(report) if report.failed.is_empty());
        *retry = (!whole).then_some((gateways, revision));
        match result {
            Ok(report) => {
                let reloads = self.router.reloads().await;
                if retrying {
                    tracing::debug!(
                        revision,
                        failed = report.failed.len(),
                        "gateway state tried again"
                    );
                } else {
                    tracing::info!(
                        revision,
                        gateways = report.applied.len(),
                        failed = report.failed.len(),
                        "gateways applied"
                    );
                }
                self.status.send_modify(|s| {
                    s.haproxy_running = true;
                    s.applied_revision = Some(revision);
                    s.last_error = report
                        .failed
                        .first()
                        .map(|(g, e)| format!("gateway '{g}' not served: {e}"));
                    s.applied_gateways = report.applied;
                    s.failed_gateways = report.failed;
                    s.reloads = reloads;
                });
            }
            Err(e) => {
                tracing::error!(revision, error = %e, "HAProxy refused the new state; the previous one keeps serving");
                self.status
                    .send_modify(|s| s.last_error = Some(e.to_string()));
            }
        }
    }
}
