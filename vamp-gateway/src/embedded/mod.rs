//! The embedded router: Vamp's gateways served in process, with no HAProxy (ARCHITECTURE,
//! "embedded/"). The embedded default.
//!
//! - One listener per gateway port on a configurable host (default `127.0.0.1`). A port that
//!   cannot be bound fails that gateway only ([`ApplyReport::failed`]).
//! - The data path runs on the caller's tokio runtime, or on `N` threads of its own
//!   ([`EmbeddedRouter::with_workers`]).
//! - HTTP/1.1 and HTTP/2 (prior knowledge) through hyper; TCP gateways relay bytes.
//! - Route choice as HAProxy's layout makes it (spec §4.2.2, [`crate::select`]): the first
//!   matching condition at its strength, else smooth weighted round-robin, so a 90/10 split is
//!   exact over every 10 requests; `sticky: route` pins clients with cookie `o_<gateway>`,
//!   `sticky: instance` also with a per-route cookie naming the instance.
//! - Rewrites: the path-only subset of HAProxy's (`path`, `path_beg`, `path_end`, `path_sub`;
//!   `%[path]`, `%[query]`); literal HAProxy ACLs in conditions are refused with the reason.
//! - [`Router::apply`] swaps each gateway's table atomically: requests in flight finish with
//!   the table they started with, keep-alive connections stay open, none is dropped. A
//!   gateway that moves port or protocol gets a new listener; a removed one stops accepting
//!   (its open connections finish).
//! - An instance that does not answer within the upstream timeout (60 s,
//!   [`EmbeddedRouter::with_upstream_timeout`]) gets the client a `504`.
//! - Per-route statistics: requests, errors (5xx, unreachable or slow instance), latency
//!   histogram.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use vamp_core::traits::Router;
//! use vamp_gateway::embedded::EmbeddedRouter;
//!
//! let router = EmbeddedRouter::new();
//! let report = router.apply(&[]).await.unwrap();
//! assert!(report.applied.is_empty());
//! # });
//! ```

mod proxy;
pub mod stats;
mod table;
mod upstream;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use vamp_core::traits::{ApplyReport, ResolvedGateway, RouteStats, Router};

pub use table::TableError;

use proxy::{Live, Upstream};
use stats::RouteCounters;
use table::Table;

/// One served gateway.
#[derive(Debug)]
struct Running {
    port: u16,
    protocol: vamp_core::model::PortType,
    live: Live,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting and waits (at most 5 s) until the port is free.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

type Counters = HashMap<(String, String), Arc<RouteCounters>>;

/// How long an instance may take to send its answer's headers by default.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// A tokio runtime of the router's own ([`EmbeddedRouter::with_workers`]): shut down in the
/// background when the last clone of the router goes (a runtime may not be dropped inside
/// another one).
#[derive(Debug)]
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The in-process router. Clones share the listeners and statistics.
#[derive(Debug, Clone)]
pub struct EmbeddedRouter {
    host: IpAddr,
    running: Arc<tokio::sync::Mutex<BTreeMap<String, Running>>>,
    counters: Arc<Mutex<Counters>>,
    client: Upstream,
    limits: crate::listen::ConnectionLimits,
    /// Where the data path runs: a runtime of its own, or (`None`) the caller's.
    runtime: Option<Arc<OwnRuntime>>,
}

impl Default for EmbeddedRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddedRouter {
    /// A router listening on `127.0.0.1`.
    pub fn new() -> Self {
        Self::on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A router whose gateways listen on `host` (`0.0.0.0` to serve other machines).
    pub fn on(host: IpAddr) -> Self {
        EmbeddedRouter {
            host,
            running: Arc::default(),
            counters: Arc::default(),
            client: proxy::upstream(DEFAULT_UPSTREAM_TIMEOUT),
            limits: crate::listen::ConnectionLimits::default(),
            runtime: None,
        }
    }

    /// The same router serving its gateways on `workers` threads of its own (a tokio runtime
    /// named `vamp-router`), apart from the runtime that calls [`Router::apply`]: the data
    /// path then uses that many cores whatever else the process does — the knob a comparison
    /// with HAProxy's `nbthread` needs. Without it, the caller's runtime serves. Set it before
    /// the first `apply`.
    ///
    /// ```
    /// let router = vamp_gateway::embedded::EmbeddedRouter::new().with_workers(1).unwrap();
    /// # drop(router);
    /// ```
    ///
    /// # Errors
    /// When the threads cannot be started.
    pub fn with_workers(mut self, workers: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("vamp-router")
            .enable_all()
            .build()?;
        self.runtime = Some(Arc::new(OwnRuntime(Some(rt))));
        Ok(self)
    }

    /// Where listeners are served: the router's own runtime, else the caller's.
    fn handle(&self) -> tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .and_then(|r| r.0.as_ref())
            .map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone())
    }

    /// The same router with other limits on client connections (header and idle timeouts,
    /// connections per gateway port). Set them before the first `apply`.
    #[must_use]
    pub fn with_limits(mut self, limits: crate::listen::ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same router with another limit for an instance's answer (headers) — after it the
    /// client gets `504` (default 60 s). Set it before the first `apply`.
    #[must_use]
    pub fn with_upstream_timeout(mut self, timeout: Duration) -> Self {
        self.client.timeout = timeout;
        self
    }

    /// The ports served now, by gateway name.
    pub async fn ports(&self) -> BTreeMap<String, u16> {
        self.running
            .lock()
            .await
            .iter()
            .map(|(k, r)| (k.clone(), r.port))
            .collect()
    }

    fn counters_for(&self, gateway: &str) -> impl FnMut(&str) -> Arc<RouteCounters> + '_ {
        let gateway = gateway.to_owned();
        move |route: &str| {
            let mut all = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            all.entry((gateway.clone(), route.to_owned()))
                .or_default()
                .clone()
        }
    }
}

#[async_trait]
impl Router for EmbeddedRouter {
    /// A bind probe on the router's host.
    fn can_listen(&self, port: u16) -> bool {
        std::net::TcpListener::bind((self.host, port)).is_ok()
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn measures_percentiles(&self) -> bool {
        true
    }

    /// Conditions in Vamp's grammar only: a literal HAProxy ACL means nothing here.
    fn check_condition(&self, condition: &str) -> Result<(), String> {
        crate::condition::Condition::parse(condition)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn apply(&self, gateways: &[ResolvedGateway]) -> vamp_core::Result<ApplyReport> {
        let mut running = self.running.lock().await;
        let mut report = ApplyReport::default();
        let wanted: BTreeMap<&str, &ResolvedGateway> =
            gateways.iter().map(|g| (g.name.as_str(), g)).collect();

        // Removed gateways and those moving port or protocol free their ports first.
        let leaving: Vec<String> = running
            .iter()
            .filter(|(name, r)| {
                wanted
                    .get(name.as_str())
                    .is_none_or(|g| g.port != r.port || g.protocol != r.protocol)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in leaving {
            if let Some(r) = running.remove(&name) {
                r.stop().await;
                tracing::info!(gateway = %name, "embedded router stopped serving");
            }
        }

        for (name, g) in wanted {
            let table = match Table::build(g, self.counters_for(name)) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    // A running gateway keeps its last good table.
                    report.failed.push((name.to_owned(), e.to_string()));
                    continue;
                }
            };
            if let Some(r) = running.get(name) {
                let unchanged = proxy::current(&r.live).source == *g;
                if !unchanged {
                    r.live.swap(table);
                    tracing::debug!(gateway = %name, "routing table swapped");
                }
                report.applied.push(name.to_owned());
                continue;
            }
            // Bound here, registered with the serving runtime there.
            let bound = std::net::TcpListener::bind((self.host, g.port))
                .and_then(|l| l.set_nonblocking(true).map(|()| l));
            match bound {
                Ok(bound) => {
                    let live: Live = proxy::LiveTable::new(table);
                    let (stop, stopped) = watch::channel(false);
                    let serving = (live.clone(), self.client.clone(), self.limits.clone());
                    let task = self.handle().spawn(async move {
                        let (live, client, limits) = serving;
                        match tokio::net::TcpListener::from_std(bound) {
                            Ok(listener) => {
                                proxy::serve(listener, live, client, limits, stopped).await;
                            }
                            Err(e) => tracing::error!(error = %e, "cannot serve a bound port"),
                        }
                    });
                    running.insert(
                        name.to_owned(),
                        Running {
                            port: g.port,
                            protocol: g.protocol,
                            live,
                            stop,
                            task,
                        },
                    );
                    tracing::info!(gateway = %name, port = g.port, "embedded router serving");
                    report.applied.push(name.to_owned());
                }
                Err(e) => report.failed.push((
                    name.to_owned(),
                    format!("cannot listen on {}:{}: {e}", self.host, g.port),
                )),
            }
        }
        Ok(report)
    }

    async fn stats(&self) -> vamp_core::Result<Vec<RouteStats>> {
        let running = self.running.lock().await;
        let mut out = Vec::new();
        for r in running.values() {
            let table = proxy::current(&r.live);
            for route in &table.routes {
                out.push(route.stats.snapshot(&table.gateway, &route.path));
            }
        }
        Ok(out)
    }
}
