//! Faithful local fakes of servers that cannot run here, built from their public API
//! documentation, for tests and benches (feature `fakes`). Each speaks the wire protocol the
//! matching backend uses, with the server's semantics and limits, on a loopback port.

pub mod consul;
pub mod elasticsearch;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

/// Builds what an [`Endpoint`] serves: the app, and a task that runs beside it.
type Make = Box<dyn Fn() -> (axum::Router, BoxFuture<'static, ()>) + Send + Sync>;

/// A loopback port serving an axum app, that can be closed and opened again on the same port
/// (as a restarted server would be). Dropping it stops serving. Every fake derefs to its
/// endpoint: `fake.url()`, `fake.stop()`, `fake.resume()`.
pub struct Endpoint {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    make: Make,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Serves what `make` builds on a free loopback port.
    pub(crate) async fn start(make: Make) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut endpoint = Endpoint {
            address: listener.local_addr()?,
            stop: None,
            make,
        };
        endpoint.serve(listener);
        Ok(endpoint)
    }

    /// The loopback port it serves on.
    pub(crate) fn port(&self) -> u16 {
        self.address.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let (app, beside) = (self.make)();
        tokio::spawn(async move {
            // Small answers go out at once, as a real server's do.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::select! {
                _ = axum::serve(listener, app) => {}
                () = beside => {}
                _ = stopped => {}
            }
        });
        self.stop = Some(stop);
    }

    /// Closes the listener and every connection, and waits until the port refuses (the
    /// fake's data stays).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.address).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Listens again on the same port.
    ///
    /// # Errors
    /// When the port was taken meanwhile.
    pub async fn resume(&mut self) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.address).await?;
        self.serve(listener);
        Ok(())
    }
}

/// `Deref`/`DerefMut` from a fake (a struct with an `endpoint` field) to its [`Endpoint`].
macro_rules! serves_on_endpoint {
    ($fake:ty) => {
        impl std::ops::Deref for $fake {
            type Target = super::Endpoint;

            fn deref(&self) -> &super::Endpoint {
                &self.endpoint
            }
        }

        impl std::ops::DerefMut for $fake {
            fn deref_mut(&mut self) -> &mut super::Endpoint {
                &mut self.endpoint
            }
        }
    };
}
pub(crate) use serves_on_endpoint;

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `%XX` escapes decoded; `None` for bad escapes or bytes that are not UTF-8.
pub(crate) use vamp_core::traits::kv::decode_segment as percent_decode;

/// A query string's parameters (`+` is a space; a key without `=` has an empty value).
pub(crate) fn query(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((
                percent_decode(&k.replace('+', " "))?,
                percent_decode(&v.replace('+', " "))?,
            ))
        })
        .collect()
}
