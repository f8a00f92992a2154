//! Limits on what a client connection may hold (issue 15): how long it may take to send a
//! request's headers, how long it may stay silent, and how many connections a listener
//! serves at once. The REST API and the embedded router share them, so a slow client (500
//! sockets each sending half a header) cannot hold either open forever.
//!
//! The idle timeout is a small I/O wrapper written here: hyper has a header read timeout but
//! no idle timeout, and the one crate with read/write timeouts (`tokio-io-timeout`) times out
//! a pending read even while the server is writing — which would cut a Server-Sent Events
//! stream that only writes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Limits of one listener's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a connection may go without reading or writing a byte.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// 10 s for headers, 60 s idle, 1 024 connections.
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl ConnectionLimits {
    /// An HTTP/1.1 + h2 connection builder that enforces the header timeout.
    pub fn http(&self) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(self.idle_timeout));
        builder
    }

    /// The counter of a listener's connections: a permit per connection, waited for before
    /// accepting the next one.
    pub fn slots(&self) -> Slots {
        Slots(Arc::new(Semaphore::new(self.max_connections.max(1))))
    }
}

/// A listener's connection slots (see [`ConnectionLimits::slots`]).
#[derive(Debug, Clone)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    /// Waits for a free slot; the slot is free again when the permit is dropped.
    pub async fn take(&self) -> OwnedSemaphorePermit {
        loop {
            // The semaphore is never closed; should it be, a fresh permit keeps serving.
            if let Ok(permit) = self.0.clone().acquire_owned().await {
                return permit;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// An I/O stream that fails with [`io::ErrorKind::TimedOut`] once it has neither read nor
/// written a byte for the idle timeout.
///
/// Traffic only notes the time; the timer is moved lazily, when it fires before the
/// connection has been idle long enough — not on every read and write (on the router's hot
/// path that was a timer-wheel update per I/O call).
#[derive(Debug)]
pub struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// When the connection stops being idle-proof: the last traffic plus the timeout.
    deadline: Instant,
}

impl<S> IdleTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            deadline: Instant::now() + timeout,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn active(&mut self) {
        self.deadline = Instant::now() + self.timeout;
    }

    /// Traffic restarts the idle clock; waiting past it is an error.
    fn observe<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.active();
                Poll::Ready(result)
            }
            Poll::Pending => {
                self.expired(cx)?;
                Poll::Pending
            }
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            match self.sleep.as_mut().poll(cx) {
                // Traffic since the timer was set: it waits on until the new deadline.
                Poll::Ready(()) if self.sleep.deadline() < self.deadline => {
                    let deadline = self.deadline;
                    self.sleep.as_mut().reset(deadline);
                }
                Poll::Ready(()) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection was idle too long",
                    ));
                }
                Poll::Pending => return Ok(()),
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.observe(cx, polled)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.observe(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let flushed = ready!(Pin::new(&mut this.inner).poll_flush(cx));
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.observe(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_and_an_active_one_does_not() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut idle = IdleTimeout::new(a, Duration::from_secs(5));
        let mut buf = [0u8; 4];
        // Bytes every 3 s keep it open past the timeout.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(3)).await;
            b.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        // Silence: the read fails once 5 s have passed.
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
