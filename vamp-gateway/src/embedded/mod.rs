//! The embedded router: Vamp's gateways served in process, with no HAProxy (ARCHITECTURE,
//! "embedded/"). The embedded default.
//!
//! - One listener per gateway port on a configurable host (default `127.0.0.1`). A port that
//!   cannot be bound fails that gateway only ([`ApplyReport::failed`]).
//! - The data path runs on the caller's tokio runtime, or on `N` threads of its own
//!   ([`EmbeddedRouter::with_workers`]): one listener per port, whose connections go each to
//!   the thread serving the fewest.
//! - Optionally one shared listener for every HTTP gateway with virtual hosts, chosen by the
//!   `Host` header through a hash map ([`EmbeddedRouter::with_shared_listener`]); a gateway
//!   with port 0 is served there only.
//! - HTTP/1.1 and HTTP/2 (prior knowledge) through hyper; HTTP/1.1 upgrades (WebSocket)
//!   are routed like any request and then tunnelled; TCP gateways relay bytes.
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
//! - Traffic mirroring: a route's `mirror` gets copies of a share of its requests, fire and
//!   forget, bounded ([`EmbeddedRouter::mirrored`]; the rules are in `mirror.rs`).
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

mod mirror;
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

pub use mirror::{BODY_LIMIT as MIRROR_BODY_LIMIT, IN_FLIGHT as MIRRORS_IN_FLIGHT, MirrorCounts};
pub use table::TableError;

use proxy::{Hosts, Live, Serves, Upstream};
use stats::RouteCounters;
use table::Table;

/// One served gateway.
#[derive(Debug)]
struct Running {
    /// Its own port; 0 for none (served on the shared listener only).
    port: u16,
    protocol: vamp_core::model::PortType,
    live: Live,
    stop: watch::Sender<bool>,
    /// Its port's accept loop (none without a port of its own).
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and waits (at most 5 s) until the port is free.
    async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(accepting) = self.accepting {
            let _ = tokio::time::timeout(Duration::from_secs(5), accepting).await;
        }
    }
}

type Counters = HashMap<(String, String), Arc<RouteCounters>>;

/// How long an instance may take to send its answer's headers by default.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// The router's own threads ([`EmbeddedRouter::with_workers`]), each running a one-thread
/// tokio runtime — thread per core, as HAProxy's `nbthread`: a connection stays on the thread
/// that accepted it, with its upstream connections, and no task moves between threads. They
/// stop when the last clone of the router goes.
#[derive(Debug)]
struct Workers {
    /// Each thread's runtime and how many connections it serves now.
    threads: Vec<proxy::Worker>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Workers {
    fn start(n: usize) -> std::io::Result<Workers> {
        let mut workers = Workers {
            threads: Vec::new(),
            stops: Vec::new(),
        };
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            workers.threads.push(proxy::Worker {
                handle: rt.handle().clone(),
                open: Arc::default(),
            });
            workers.stops.push(stop);
            std::thread::Builder::new()
                .name(format!("vamp-router-{i}"))
                .spawn(move || {
                    // The runtime runs until the router goes, and is dropped on its thread.
                    let _ = rt.block_on(stopped);
                })?;
        }
        Ok(workers)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// What the router serves now.
#[derive(Debug, Default)]
struct Served {
    gateways: BTreeMap<String, Running>,
    /// The shared virtual-host listener, once it listens: its stop and accept loops.
    shared: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

/// The shared virtual-host listener ([`EmbeddedRouter::with_shared_listener`]).
#[derive(Debug)]
struct Shared {
    address: std::net::SocketAddr,
    hosts: Arc<Hosts>,
}

/// The in-process router. Clones share the listeners and statistics.
#[derive(Debug, Clone)]
pub struct EmbeddedRouter {
    host: IpAddr,
    running: Arc<tokio::sync::Mutex<Served>>,
    shared: Option<Arc<Shared>>,
    counters: Arc<Mutex<Counters>>,
    client: Upstream,
    limits: crate::listen::ConnectionLimits,
    /// Where the data path runs: threads of its own, or (`None`) the caller's runtime.
    workers: Option<Arc<Workers>>,
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
            shared: None,
            counters: Arc::default(),
            client: proxy::upstream(DEFAULT_UPSTREAM_TIMEOUT),
            limits: crate::listen::ConnectionLimits::default(),
            workers: None,
        }
    }

    /// The same router serving its gateways on `workers` threads of its own, apart from the
    /// runtime that calls [`Router::apply`]: each thread runs a one-thread runtime; each
    /// port has one listener whose connections go each to the thread serving the fewest, and
    /// a connection stays on its thread — as HAProxy's `nbthread` does. The data
    /// path then uses that many cores whatever else the process does. Without it, the
    /// caller's runtime serves. Set it before the first `apply`.
    ///
    /// ```
    /// let router = vamp_gateway::embedded::EmbeddedRouter::new().with_workers(2).unwrap();
    /// # drop(router);
    /// ```
    ///
    /// # Errors
    /// When the threads cannot be started.
    pub fn with_workers(mut self, workers: usize) -> std::io::Result<Self> {
        self.workers = Some(Arc::new(Workers::start(workers)?));
        Ok(self)
    }

    /// The same router also serving every HTTP gateway with virtual hosts on one listener at
    /// `address`, chosen by the `Host` header (`gateways.vhost_listen`; spec §1.6 virtual
    /// hosts). The lookup is a hash map: the 10 000th host is found as fast as the first.
    /// Gateways keep their own ports too; a gateway with port 0 is served here only. An
    /// unknown host gets `404`. Set it before the first `apply`.
    ///
    /// ```
    /// let router = vamp_gateway::embedded::EmbeddedRouter::new()
    ///     .with_shared_listener("127.0.0.1:8080".parse().unwrap());
    /// # drop(router);
    /// ```
    #[must_use]
    pub fn with_shared_listener(mut self, address: std::net::SocketAddr) -> Self {
        self.shared = Some(Arc::new(Shared {
            address,
            hosts: Arc::default(),
        }));
        self
    }

    /// Binds `address` and serves `serves` there: on the caller's runtime, on the one worker,
    /// or with several workers from one acceptor that hands each connection to the worker
    /// serving the fewest ([`proxy::serve`]).
    fn listen(
        &self,
        address: std::net::SocketAddr,
        serves: &Serves,
        stopped: &watch::Receiver<bool>,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let threads = self.workers.as_ref().map_or(&[][..], |w| &w.threads[..]);
        let handle = threads
            .first()
            .map_or_else(tokio::runtime::Handle::current, |w| w.handle.clone());
        let listener = {
            // Registered with the runtime that accepts on it.
            let _entered = handle.enter();
            let socket = if address.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(address)?;
            socket.listen(1024)?
        };
        // One worker serves what it accepts; only several need the hand-over.
        let workers = if threads.len() > 1 {
            threads.to_vec()
        } else {
            Vec::new()
        };
        Ok(handle.spawn(proxy::serve(
            listener,
            workers,
            serves.clone(),
            self.client.clone(),
            self.limits.clone(),
            stopped.clone(),
        )))
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

    /// What the routes' mirrors did so far: copies sent, dropped (too many out at once),
    /// skipped (a body too long to copy) and failed.
    pub fn mirrored(&self) -> MirrorCounts {
        self.client.mirroring.counts()
    }

    /// How many client connections each of the router's own threads serves now
    /// ([`with_workers`](Self::with_workers)); empty when the caller's runtime serves.
    ///
    /// ```
    /// let router = vamp_gateway::embedded::EmbeddedRouter::new().with_workers(2).unwrap();
    /// assert_eq!(router.worker_connections(), [0, 0]);
    /// ```
    pub fn worker_connections(&self) -> Vec<usize> {
        self.workers.as_ref().map_or_else(Vec::new, |w| {
            w.threads
                .iter()
                .map(|t| t.open.load(std::sync::atomic::Ordering::Relaxed))
                .collect()
        })
    }

    /// The ports served now, by gateway name.
    pub async fn ports(&self) -> BTreeMap<String, u16> {
        self.running
            .lock()
            .await
            .gateways
            .iter()
            .filter(|(_, r)| r.port != 0)
            .map(|(k, r)| (k.clone(), r.port))
            .collect()
    }

    /// Serves the current virtual hosts on the shared listener (binding it the first time);
    /// `Err` with the reason when it cannot listen.
    fn serve_hosts(&self, served: &mut Served) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let mut map = proxy::HostMap::new();
        for r in served.gateways.values() {
            if r.protocol != vamp_core::model::PortType::Http {
                continue;
            }
            for host in &proxy::current(&r.live).source.virtual_hosts {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                // Two gateways with one host: the first by name has it.
                map.entry(host.into_boxed_str())
                    .or_insert_with(|| r.live.clone());
            }
        }
        let now = shared.hosts.current();
        let same = now.len() == map.len()
            && map
                .iter()
                .all(|(h, live)| now.get(h).is_some_and(|l| Arc::ptr_eq(l, live)));
        if !same {
            shared.hosts.swap(map);
        }
        if served.shared.is_none() {
            let (stop, stopped) = watch::channel(false);
            let accepting = self
                .listen(
                    shared.address,
                    &Serves::Hosts(shared.hosts.clone()),
                    &stopped,
                )
                .map_err(|e| format!("cannot listen on {} (virtual hosts): {e}", shared.address))?;
            tracing::info!(address = %shared.address, "embedded router serving virtual hosts");
            served.shared = Some((stop, accepting));
        }
        Ok(())
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

    fn shared_listener(&self) -> Option<std::net::SocketAddr> {
        self.shared.as_ref().map(|s| s.address)
    }

    fn mirrors(&self) -> bool {
        true
    }

    async fn apply(&self, gateways: &[ResolvedGateway]) -> vamp_core::Result<ApplyReport> {
        let mut served = self.running.lock().await;
        let running = &mut served.gateways;
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
            let unchanged = running
                .get(name)
                .is_some_and(|r| proxy::current(&r.live).source == *g);
            if unchanged {
                report.applied.push(name.to_owned());
                continue;
            }
            if g.port == 0 && self.shared.is_none() {
                report.failed.push((
                    name.to_owned(),
                    "it has no port of its own and the router no shared virtual-host listener \
                     (gateways.vhost_listen)"
                        .to_owned(),
                ));
                continue;
            }
            let table = match Table::build(g, self.counters_for(name)) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    // A running gateway keeps its last good table.
                    report.failed.push((name.to_owned(), e.to_string()));
                    continue;
                }
            };
            if let Some(r) = running.get(name) {
                r.live.swap(table);
                tracing::debug!(gateway = %name, "routing table swapped");
                report.applied.push(name.to_owned());
                continue;
            }
            let live: Live = proxy::LiveTable::new(table);
            let (stop, stopped) = watch::channel(false);
            let listening = match g.port {
                0 => Ok(None),
                port => self
                    .listen(
                        std::net::SocketAddr::new(self.host, port),
                        &Serves::Gateway(live.clone()),
                        &stopped,
                    )
                    .map(Some),
            };
            match listening {
                Ok(accepting) => {
                    running.insert(
                        name.to_owned(),
                        Running {
                            port: g.port,
                            protocol: g.protocol,
                            live,
                            stop,
                            accepting,
                        },
                    );
                    tracing::debug!(gateway = %name, port = g.port, "embedded router serving");
                    report.applied.push(name.to_owned());
                }
                Err(e) => report.failed.push((
                    name.to_owned(),
                    format!("cannot listen on {}:{}: {e}", self.host, g.port),
                )),
            }
        }
        if let Err(e) = self.serve_hosts(&mut served) {
            // Those served nowhere else fail; the others keep their own ports.
            tracing::warn!(error = %e, "embedded router: no shared virtual-host listener");
            let portless: Vec<String> = served
                .gateways
                .iter()
                .filter(|(_, r)| r.port == 0)
                .map(|(name, _)| name.clone())
                .collect();
            for name in portless {
                report.applied.retain(|a| *a != name);
                report.failed.push((name, e.clone()));
            }
        }
        Ok(report)
    }

    async fn stats(&self) -> vamp_core::Result<Vec<RouteStats>> {
        let served = self.running.lock().await;
        let mut out = Vec::new();
        for r in served.gateways.values() {
            let table = proxy::current(&r.live);
            for route in &table.routes {
                out.push(route.stats.snapshot(&table.gateway, &route.path));
            }
        }
        Ok(out)
    }
}
