//! Upstream connections per client connection (issue 21, the profile work).
//!
//! Hand-written over hyper's `client::conn::http1` rather than hyper-util's pooled client:
//! that client hands each request to a shared pool (a checkout, a channel, a lock and a
//! key lookup per request, visible in the profile). Here each client connection keeps its
//! own upstream connections, by instance address, as HAProxy's `http-reuse safe` does: a
//! client's requests reuse the connections that client opened, and they close with it.
//! (Driving them in the client connection's own task instead of a task each measured no
//! better: docs/performance.md.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::proxy::connected_to_itself;

/// How long connecting to an instance may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle upstream connections one client connection keeps per instance.
const IDLE_PER_INSTANCE: usize = 4;

/// Why a request could not be sent upstream.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// Connecting failed (refused, timed out, or to itself: nobody listens).
    Connect(String),
    /// The connection failed while the request went or the answer came.
    Request(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "cannot connect: {e}"),
            UpstreamError::Request(e) => write!(f, "{e}"),
        }
    }
}

/// What goes upstream: the client's body as it streams in, or one read whole (a request
/// that is also mirrored, [`super::mirror`]).
pub(crate) type UpBody = http_body_util::Either<Incoming, http_body_util::Full<bytes::Bytes>>;

/// Idle connections by instance address.
type Idle = HashMap<(String, u16), Vec<SendRequest<UpBody>>>;

/// The upstream connections of one client connection: they close when it is dropped. (The
/// router's mirroring keeps one too, for its connections to mirrors.)
#[derive(Debug)]
pub(crate) struct Upstreams {
    idle: Mutex<Idle>,
    /// Idle connections kept per instance.
    keep: usize,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::keeping(IDLE_PER_INSTANCE)
    }
}

impl Upstreams {
    /// Connections that keep at most `keep` idle connections per instance.
    pub(crate) fn keeping(keep: usize) -> Self {
        Upstreams {
            idle: Mutex::default(),
            keep,
        }
    }

    /// Sends `req` to `host:port` over an idle connection to it, or a new one, and returns
    /// the answer's head (the body follows as the client reads it). The connection is kept
    /// for the next request once the answer has been read. A request that a reused
    /// connection could not take (the instance had closed it) goes again on a new one.
    pub(crate) async fn send(
        &self,
        host: &str,
        port: u16,
        req: hyper::Request<UpBody>,
    ) -> Result<hyper::Response<Incoming>, UpstreamError> {
        let key = (host.to_owned(), port);
        let req = match self.checkout(&key) {
            Some(mut sender) => match sender.try_send_request(req).await {
                Ok(answer) => {
                    self.checkin(key, sender);
                    return Ok(answer);
                }
                Err(mut e) => match e.take_message() {
                    Some(req) => req,
                    None => return Err(UpstreamError::Request(e.into_error())),
                },
            },
            None => req,
        };
        let mut sender = Self::open(host, port, false).await?;
        let answer = sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Request)?;
        self.checkin(key, sender);
        Ok(answer)
    }

    /// Sends an upgrade request (WebSocket) over a new connection of its own: if the
    /// instance switches protocols, that connection becomes the tunnel and is never reused.
    pub(crate) async fn send_upgrade(
        &self,
        host: &str,
        port: u16,
        req: hyper::Request<UpBody>,
    ) -> Result<hyper::Response<Incoming>, UpstreamError> {
        let mut sender = Self::open(host, port, true).await?;
        sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Request)
    }

    /// An idle connection to the instance that can take a request now.
    fn checkout(&self, key: &(String, u16)) -> Option<SendRequest<UpBody>> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let senders = idle.get_mut(key)?;
        // Closed ones go; one still reading its last answer stays for later.
        senders.retain(|s| !s.is_closed());
        let ready = senders.iter().position(SendRequest::is_ready)?;
        Some(senders.swap_remove(ready))
    }

    /// Keeps a connection for the next request (it is ready again once its answer is read).
    fn checkin(&self, key: (String, u16), sender: SendRequest<UpBody>) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let senders = idle.entry(key).or_default();
        senders.retain(|s| !s.is_closed());
        if senders.len() < self.keep {
            senders.push(sender);
        }
    }

    /// A new HTTP/1.1 connection to the instance (not to itself: nobody listens there then),
    /// its I/O in a task of its own, which ends when the sender is dropped or the instance
    /// closes it; `upgrades` lets it become a tunnel after a `101`.
    async fn open(
        host: &str,
        port: u16,
        upgrades: bool,
    ) -> Result<SendRequest<UpBody>, UpstreamError> {
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(UpstreamError::Connect(e.to_string())),
                Err(_) => {
                    return Err(UpstreamError::Connect(format!(
                        "no answer within {CONNECT_TIMEOUT:?}"
                    )));
                }
            };
        if connected_to_itself(&stream) {
            return Err(UpstreamError::Connect(
                "the connection went to itself: nobody listens there".into(),
            ));
        }
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Request)?;
        tokio::spawn(async move {
            let ended = if upgrades {
                connection.with_upgrades().await
            } else {
                connection.await
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}
