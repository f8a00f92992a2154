//! Traffic mirroring (issue 21): a route copies a share of its requests to another address
//! and throws the answers away. The client's answer and latency never depend on the mirror:
//!
//! - the share is exact over every 100 requests (a counter, not a coin);
//! - a copy goes in a task of its own, fire and forget, over a kept-alive connection to the
//!   mirror (reused; a new one only when none is free); at most
//!   [`IN_FLIGHT`] copies are out at once per router — beyond that a copy is dropped and
//!   counted, so a slow mirror holds a bounded amount of memory and sockets;
//! - a request body is copied only up to [`BODY_LIMIT`] bytes with a `Content-Length`: it
//!   is then read whole before the request goes on (the instance gets the same bytes); longer
//!   or chunked bodies stream to the instance as usual and are not mirrored (counted);
//! - upgrades (WebSocket) are never mirrored.
//!
//! Hand-written: no crate mirrors hyper requests; this is a copy of the head, a bounded
//! `collect` of the body and a spawned send.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Either, Full, Limited};
use hyper::Request;
use hyper::body::Incoming;
use hyper::header;
use tokio::sync::Semaphore;

use super::upstream::{UpBody, Upstreams};

/// Copies out at once per router; more are dropped.
pub const IN_FLIGHT: usize = 256;

/// The longest request body copied.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// How long a copy may take, answer included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What the router's mirrors did since it started ([`super::EmbeddedRouter::mirrored`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MirrorCounts {
    /// Copies sent.
    pub sent: u64,
    /// Copies dropped: [`IN_FLIGHT`] were out already.
    pub dropped: u64,
    /// Requests not copied because of their body (longer than [`BODY_LIMIT`], or chunked).
    pub skipped: u64,
    /// Copies that failed (unreachable mirror, timeout); their requests were served.
    pub failed: u64,
}

/// The router's mirroring: the in-flight bound, the connections to mirrors (kept alive and
/// reused, up to [`IN_FLIGHT`] per mirror, so a busy mirror costs no connection setup per
/// copy) and the counts.
#[derive(Debug)]
pub(crate) struct Mirroring {
    slots: Arc<Semaphore>,
    connections: Upstreams,
    sent: AtomicU64,
    dropped: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

impl Default for Mirroring {
    fn default() -> Self {
        Mirroring {
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            connections: Upstreams::keeping(IN_FLIGHT),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

impl Mirroring {
    pub(crate) fn counts(&self) -> MirrorCounts {
        MirrorCounts {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// One route's mirror: where copies go and which requests are copied.
#[derive(Debug)]
pub(crate) struct Mirror {
    host: String,
    port: u16,
    percentage: u64,
    seen: AtomicU64,
}

impl Mirror {
    pub(crate) fn new(m: &vamp_core::traits::ResolvedMirror) -> Self {
        Mirror {
            host: m.host.clone(),
            port: m.port,
            percentage: u64::from(m.percentage.get()),
            seen: AtomicU64::new(0),
        }
    }

    /// Whether this request is copied: `percentage` of every 100, spread evenly.
    pub(crate) fn takes(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        (n + 1) * self.percentage / 100 != n * self.percentage / 100
    }
}

/// Sends a copy of `req` to the mirror (if a slot is free) and gives back the request for
/// the instance; `Err` when the body could not be read (the client went away or lied about
/// its length).
pub(crate) async fn copy(
    req: Request<Incoming>,
    mirror: &Mirror,
    mirroring: &Arc<Mirroring>,
) -> Result<Request<UpBody>, String> {
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let (head, body) = req.into_parts();
    let (primary, copied) = match (length, chunked) {
        (None | Some(0), false) => (Either::Left(body), Bytes::new()),
        (Some(n), false) if n <= BODY_LIMIT => {
            let limit = usize::try_from(BODY_LIMIT).unwrap_or(usize::MAX);
            let bytes = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| format!("the request body could not be read: {e}"))?
                .to_bytes();
            (Either::Right(Full::new(bytes.clone())), bytes)
        }
        _ => {
            mirroring.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(Request::from_parts(head, Either::Left(body)));
        }
    };
    match mirroring.slots.clone().try_acquire_owned() {
        Ok(slot) => {
            let mut copy = Request::new(Either::Right(Full::new(copied)));
            *copy.method_mut() = head.method.clone();
            *copy.uri_mut() = head.uri.clone();
            *copy.headers_mut() = head.headers.clone();
            let (host, port) = (mirror.host.clone(), mirror.port);
            let mirroring = mirroring.clone();
            tokio::spawn(async move {
                let sent = tokio::time::timeout(TIMEOUT, send(&mirroring, &host, port, copy)).await;
                let counter = match sent {
                    Ok(Ok(())) => &mirroring.sent,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %host, port, "mirrored request failed");
                        &mirroring.failed
                    }
                    Err(_) => &mirroring.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                drop(slot);
            });
        }
        Err(_) => {
            mirroring.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Request::from_parts(head, primary))
}

/// One copy, on a kept connection to the mirror or a new one; the answer is read and thrown
/// away (the connection is kept for the next copy once it is).
async fn send(
    mirroring: &Mirroring,
    host: &str,
    port: u16,
    req: Request<UpBody>,
) -> Result<(), String> {
    let answer = mirroring
        .connections
        .send(host, port, req)
        .await
        .map_err(|e| e.to_string())?;
    answer
        .into_body()
        .collect()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
