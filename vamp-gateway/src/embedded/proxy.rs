//! The data path: HTTP/1.1 + HTTP/2 reverse proxy and TCP relay for one gateway port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::mirror::{self, Mirroring};
use super::table::Table;
use super::upstream::Upstreams;
use crate::condition::cookies;
use crate::listen::{ConnectionLimits, IdleTimeout};

/// How the data path talks to instances: how long an instance may take to answer. The
/// connections themselves belong to each client connection ([`super::upstream`]).
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) timeout: std::time::Duration,
    /// The router's mirroring (routes with a `mirror`).
    pub(crate) mirroring: Arc<Mirroring>,
}

pub(crate) fn upstream(timeout: std::time::Duration) -> Upstream {
    Upstream {
        timeout,
        mirroring: Arc::default(),
    }
}

/// Whether Linux connected `stream` to itself (its source is its destination).
pub(crate) fn connected_to_itself(stream: &TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(a), Ok(b)) if a == b)
}

/// The live table of a gateway: requests read it once each, [`super::EmbeddedRouter`] swaps
/// it. Each swap counts up `version`, so a connection keeps the table it read until the
/// version moves (one atomic load per request, rather than a lock and a shared count that
/// every thread writes).
#[derive(Debug)]
pub(crate) struct LiveTable {
    version: AtomicU64,
    table: RwLock<Arc<Table>>,
}

/// A gateway's [`LiveTable`], shared by its listener and its connections.
pub(crate) type Live = Arc<LiveTable>;

impl LiveTable {
    pub(crate) fn new(table: Arc<Table>) -> Live {
        Arc::new(LiveTable {
            version: AtomicU64::new(0),
            table: RwLock::new(table),
        })
    }

    /// Serves `table` from now on: requests that have read the old one finish with it.
    pub(crate) fn swap(&self, table: Arc<Table>) {
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = table;
        self.version.fetch_add(1, Ordering::Release);
    }
}

pub(crate) fn current(live: &Live) -> Arc<Table> {
    live.table
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Where a connection's requests find their gateway's table: its port's gateway
/// ([`Cached`]), or the gateway the `Host` header names on the shared listener
/// ([`HostCached`]); `None` when no gateway takes the request.
pub(crate) trait Tables: Send + Sync + 'static {
    /// The table for `req`.
    fn table(&self, req: &Request<Incoming>) -> Option<ConnTable>;
}

/// A connection's own handle on a table. Each request clones it: the count it touches is
/// this connection's, not the table's, which every connection on every worker thread would
/// otherwise write twice per request.
pub(crate) type ConnTable = Arc<Arc<Table>>;

/// One connection's copy of its gateway's table, read again when the table is swapped.
struct Cached {
    live: Live,
    seen: std::sync::Mutex<(u64, ConnTable)>,
}

impl Cached {
    fn new(live: Live) -> Cached {
        let version = live.version.load(Ordering::Acquire);
        let table = Arc::new(current(&live));
        Cached {
            live,
            seen: std::sync::Mutex::new((version, table)),
        }
    }

    fn table(&self) -> ConnTable {
        let version = self.live.version.load(Ordering::Acquire);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.0 != version {
            *seen = (version, Arc::new(current(&self.live)));
        }
        seen.1.clone()
    }
}

impl Tables for Cached {
    fn table(&self, _: &Request<Incoming>) -> Option<ConnTable> {
        Some(Cached::table(self))
    }
}

/// The gateways of the shared virtual-host listener by host name (lower case, no port):
/// a hash map, so finding the 10 000th host costs what finding the first does. Swapped whole,
/// with a version as [`LiveTable`] has.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    version: AtomicU64,
    map: RwLock<Arc<HostMap>>,
}

/// Host name → the live table of the gateway that has it.
pub(crate) type HostMap = std::collections::HashMap<Box<str>, Live>;

impl Hosts {
    /// Serves `map` from now on.
    pub(crate) fn swap(&self, map: HostMap) {
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The map served now.
    pub(crate) fn current(&self) -> Arc<HostMap> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The host a request is for: the `Host` header (HTTP/1.1) or the URI's authority (HTTP/2),
/// without its port.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    let host = match req.headers().get(header::HOST) {
        Some(v) => v.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    // `[::1]:8080`, `example.com:8080`, `example.com`.
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    Some(host.trim_end_matches('.'))
}

/// One shared-listener connection's view of the hosts: the map, and the gateway of the host
/// it asked for last (a keep-alive connection usually asks for one host).
struct HostCached {
    hosts: Arc<Hosts>,
    seen: std::sync::Mutex<HostSeen>,
}

struct HostSeen {
    version: u64,
    map: Arc<HostMap>,
    last: Option<(Box<str>, Cached)>,
}

impl HostCached {
    fn new(hosts: Arc<Hosts>) -> HostCached {
        let version = hosts.version.load(Ordering::Acquire);
        let map = hosts.current();
        HostCached {
            hosts,
            seen: std::sync::Mutex::new(HostSeen {
                version,
                map,
                last: None,
            }),
        }
    }
}

impl Tables for HostCached {
    fn table(&self, req: &Request<Incoming>) -> Option<ConnTable> {
        let host = request_host(req)?;
        let version = self.hosts.version.load(Ordering::Acquire);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.version != version {
            seen.map = self.hosts.current();
            seen.version = version;
            seen.last = None;
        }
        if let Some((name, cached)) = &seen.last
            && name.eq_ignore_ascii_case(host)
        {
            return Some(cached.table());
        }
        let lower;
        let key = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let live = seen.map.get(key)?.clone();
        let cached = Cached::new(live);
        let table = cached.table();
        seen.last = Some((key.into(), cached));
        Some(table)
    }
}

/// What a listener serves: one gateway (its port), or every gateway with virtual hosts (the
/// shared listener).
#[derive(Debug, Clone)]
pub(crate) enum Serves {
    /// The gateway of this port.
    Gateway(Live),
    /// The gateway the `Host` header names.
    Hosts(Arc<Hosts>),
}

/// Accepts connections until `stop` turns true; connections already open carry on with the
/// table of each of their requests. At most `limits.max_connections` at once; HTTP clients
/// get the header and idle timeouts.
///
/// Without `workers`, each connection is served on the runtime that accepts it. With them,
/// each goes to the worker serving the fewest at that moment (HAProxy's multi-queue accept),
/// rather than one `SO_REUSEPORT` listener per worker, where the kernel's hash of the
/// addresses decides — and splits 32 keep-alive connections 20/12 as readily as 16/16,
/// leaving one thread the busier for the connections' whole life.
pub(crate) async fn serve(
    listener: TcpListener,
    workers: Vec<Worker>,
    serves: Serves,
    client: Upstream,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = limits.slots();
    let connection = Connection {
        serves,
        client,
        builder: Arc::new(limits.http()),
        idle: limits.idle_timeout,
    };
    loop {
        let permit = tokio::select! {
            permit = slots.take() => permit,
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let connection = connection.clone();
        let Some(worker) = workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            tokio::spawn(async move {
                connection.serve(stream, peer).await;
                drop(permit);
            });
            continue;
        };
        // Moved to the worker's runtime: deregistered here, registered there.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let open = worker.open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        worker.handle.spawn(async move {
            if let Ok(stream) = TcpStream::from_std(stream) {
                connection.serve(stream, peer).await;
            }
            open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// What serving one accepted connection needs.
#[derive(Clone)]
struct Connection {
    serves: Serves,
    client: Upstream,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    idle: std::time::Duration,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let Connection {
            serves,
            client,
            builder,
            idle,
        } = self;
        match serves {
            Serves::Gateway(live) if current(&live).protocol == vamp_core::model::PortType::Tcp => {
                relay_tcp(stream, &live).await;
            }
            Serves::Gateway(live) => {
                let stream = IdleTimeout::new(stream, idle);
                serve_http(&builder, stream, peer, Cached::new(live), client).await;
            }
            Serves::Hosts(hosts) => {
                let stream = IdleTimeout::new(stream, idle);
                serve_http(&builder, stream, peer, HostCached::new(hosts), client).await;
            }
        }
    }
}

/// One of the router's worker threads as the acceptor sees it: where to send a connection,
/// and how many it serves now.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) open: Arc<std::sync::atomic::AtomicUsize>,
}

async fn serve_http(
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    stream: IdleTimeout<TcpStream>,
    peer: SocketAddr,
    tables: impl Tables,
    client: Upstream,
) {
    let upstreams = Arc::new(Upstreams::default());
    // Per connection: each request clones this one, not the router's shared `Arc`s; and the
    // client's address as a header value, written once rather than on every request.
    let client = Arc::new(Client {
        upstream: client,
        peer_ip: HeaderValue::from_str(&peer.ip().to_string()).ok(),
    });
    let service = hyper::service::service_fn(move |req| {
        let table = tables.table(&req);
        let upstreams = upstreams.clone();
        let client = client.clone();
        async move {
            Ok::<_, Infallible>(match table {
                Some(table) => handle(req, peer, &table, &upstreams, &client).await,
                None => plain(StatusCode::NOT_FOUND, "no gateway serves this host\n"),
            })
        }
    });
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, %peer, "client connection ended with an error");
    }
}

/// What one client connection's requests share.
struct Client {
    upstream: Upstream,
    /// The client's address for `X-Forwarded-For`.
    peer_ip: Option<HeaderValue>,
}

/// An instance's answer as it streams, or one of the router's own: no box per response.
type Body = http_body_util::Either<Incoming, Full<Bytes>>;

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(http_body_util::Either::Right(Full::new(
        Bytes::from_static(text.as_bytes()),
    )));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Header lines as the condition evaluator sees them.
struct Headers<'a>(&'a HeaderMap);

impl crate::condition::Request for Headers<'_> {
    fn header_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.get_all(name).iter().filter_map(|v| v.to_str().ok())
    }
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there are none: one pass over the few names there are, rather than a hashed
    // removal of each of the eight.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn handle(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    table: &Table,
    upstreams: &Upstreams,
    client: &Client,
) -> Response<Body> {
    let started = Instant::now();
    let Some(pick) = table.pick(&Headers(req.headers())) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no route takes this request\n",
        );
    };
    let Some(route) = table.routes.get(pick.route) else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no route\n");
    };
    let instance_sticky = table.sticky == Some(vamp_core::model::Sticky::Instance);
    let pinned = if instance_sticky {
        cookies(&Headers(req.headers()), &route.lookup)
            .next()
            .map(str::to_owned)
    } else {
        None
    };
    let Some((_, (target_name, host, port))) = route.target(pinned.as_deref()) else {
        route.stats.record(started.elapsed(), true);
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the route has no instances\n",
        );
    };
    let pin_instance = instance_sticky && pinned.as_deref() != Some(target_name.as_str());

    // Origin form (the connection already goes to the instance), rewritten if a rewrite
    // applies; an HTTP/1.1 request's target is that form already and is kept as it is.
    let rewritten = route
        .rewrites
        .iter()
        .find_map(|rw| rw.apply(req.uri().path(), req.uri().query()));
    let target = match rewritten {
        Some(path) => {
            let path_and_query = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            Some(path_and_query.parse::<Uri>())
        }
        None if req.uri().authority().is_some() => Some(Uri::try_from(
            req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
        )),
        None => None,
    };
    match target {
        Some(Ok(uri)) => *req.uri_mut() = uri,
        Some(Err(_)) => {
            route.stats.record(started.elapsed(), true);
            return plain(
                StatusCode::BAD_REQUEST,
                "the rewritten path is not a valid URI\n",
            );
        }
        None => {}
    }
    *req.version_mut() = hyper::Version::HTTP_11;
    // An HTTP/1.1 upgrade (WebSocket) keeps its `Upgrade` and goes over a connection of its
    // own, which becomes the tunnel.
    let upgrade = upgrade_of(&req);
    let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if !headers.contains_key(header::HOST) {
        // HTTP/2 clients send :authority instead of Host.
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        if let Ok(v) = HeaderValue::from_str(&authority) {
            headers.insert(header::HOST, v);
        }
    }
    let forwarded = match headers.get(X_FORWARDED_FOR).map(HeaderValue::to_str) {
        Some(Ok(prev)) => HeaderValue::from_str(&format!("{prev}, {}", peer.ip())).ok(),
        _ => client.peer_ip.clone(),
    };
    if let Some(v) = forwarded {
        headers.insert(X_FORWARDED_FOR, v);
    }

    // A mirrored request: a copy goes to the mirror, fire and forget (mirror.rs).
    let req = match &route.mirror {
        Some(m) if client_side.is_none() && m.takes() => {
            match mirror::copy(req, m, &client.upstream.mirroring).await {
                Ok(req) => req,
                Err(e) => {
                    tracing::debug!(error = %e, gateway = %table.gateway, "mirrored request unread");
                    route.stats.record(started.elapsed(), true);
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read\n",
                    );
                }
            }
        }
        _ => req.map(http_body_util::Either::Left),
    };
    let timeout = client.upstream.timeout;
    let sending = async {
        match client_side {
            Some(_) => upstreams.send_upgrade(host, *port, req).await,
            None => upstreams.send(host, *port, req).await,
        }
    };
    let Ok(answer) = tokio::time::timeout(timeout, sending).await else {
        tracing::debug!(gateway = %table.gateway, route = %route.path, "instance did not answer in time");
        route.stats.record(started.elapsed(), true);
        return plain(
            StatusCode::GATEWAY_TIMEOUT,
            "the instance did not answer in time\n",
        );
    };
    match answer {
        Ok(mut resp) => {
            let error = resp.status().is_server_error();
            let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(client_side)) = (switching, client_side) {
                tunnel(client_side, hyper::upgrade::on(&mut resp));
            }
            let mut resp = resp.map(http_body_util::Either::Left);
            let kept = switching.then(|| {
                (
                    resp.headers().get(header::UPGRADE).cloned(),
                    resp.headers().get(header::CONNECTION).cloned(),
                )
            });
            strip_hop_by_hop(resp.headers_mut());
            if let Some((upgrade, connection)) = kept {
                let h = resp.headers_mut();
                if let Some(v) = upgrade {
                    h.insert(header::UPGRADE, v);
                }
                if let Some(v) = connection {
                    h.insert(header::CONNECTION, v);
                }
            }
            if pick.pin
                && let Ok(v) =
                    HeaderValue::from_str(&format!("{}={}; path=/", table.cookie, route.lookup))
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            if pin_instance
                && let Ok(v) =
                    HeaderValue::from_str(&format!("{}={target_name}; path=/", route.lookup))
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            route.stats.record(started.elapsed(), error);
            resp
        }
        Err(e) => {
            tracing::debug!(error = %e, gateway = %table.gateway, route = %route.path, "upstream request failed");
            route.stats.record(started.elapsed(), true);
            plain(StatusCode::BAD_GATEWAY, "the instance did not answer\n")
        }
    }
}

/// The protocol an HTTP/1.1 request asks to switch to (`Connection: upgrade` with an
/// `Upgrade` header), if any.
fn upgrade_of(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.version() != hyper::Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Once both sides have switched protocols, relays bytes between the client and the instance
/// until either closes: the tunnel no longer looks at the gateway's table, so it outlives
/// table swaps.
fn tunnel(client: hyper::upgrade::OnUpgrade, instance: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        match tokio::try_join!(client, instance) {
            Ok((client, instance)) => {
                let mut client = TokioIo::new(client);
                let mut instance = TokioIo::new(instance);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut instance).await {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "the upgrade did not complete"),
        }
    });
}

/// TCP: a route by weight, a target round robin, then bytes both ways until either side closes.
async fn relay_tcp(mut inbound: TcpStream, live: &Live) {
    let started = Instant::now();
    let table = current(live);
    let no_headers = crate::condition::Headers::default();
    let Some(route) = table
        .pick(&no_headers)
        .and_then(|p| table.routes.get(p.route))
    else {
        return;
    };
    let Some((_, (_, host, port))) = route.target(None) else {
        route.stats.record(started.elapsed(), true);
        return;
    };
    match TcpStream::connect((host.as_str(), *port)).await {
        // Nobody listened and Linux connected the socket to itself (a port in the ephemeral
        // range): let the port go at once rather than relay into ourselves.
        Ok(outbound) if connected_to_itself(&outbound) => {
            tracing::debug!(gateway = %table.gateway, %port, "tcp target connected to itself: nobody listens");
            drop(outbound);
            route.stats.record(started.elapsed(), true);
        }
        Ok(mut outbound) => {
            let _ = outbound.set_nodelay(true);
            let result = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            route.stats.record(started.elapsed(), result.is_err());
        }
        Err(e) => {
            tracing::debug!(error = %e, gateway = %table.gateway, "tcp target unreachable");
            route.stats.record(started.elapsed(), true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::connected_to_itself;

    #[tokio::test]
    async fn a_socket_connected_to_itself_is_recognised() {
        // Bind a port, then connect from it to it: TCP's simultaneous open on one socket.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = socket.local_addr().unwrap();
        let itself = socket.connect(address).await.unwrap();
        assert!(connected_to_itself(&itself));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert!(!connected_to_itself(&other));
    }
}
