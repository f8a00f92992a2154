//! The drivers' one HTTP client, hyper-util's: rollouts' calls out (HTTPS through rustls with
//! the ring provider given explicitly, feature `http-calls`) and instances' health probes
//! (plain HTTP, features `process` and `docker`). One request, a timeout, a bounded body.
//!
//! Why not reqwest, which the Consul and Elasticsearch backends use: its TLS (rustls) either
//! brings aws-lc (a C build; one provider, ring, is kept) or needs a process-wide provider
//! installed before *any* reqwest client in the process is built — a panic otherwise.

use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use vamp_core::traits::CallError;

/// The most of an answer body read: numbers and small documents, not downloads.
const MAX_BODY: usize = 1 << 20;

/// An HTTP/1.1 client over the connector `C`.
#[derive(Clone)]
pub(crate) struct Http<C> {
    client: hyper_util::client::legacy::Client<C, http_body_util::Full<bytes::Bytes>>,
}

impl<C> std::fmt::Debug for Http<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

fn connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http
}

impl Http<HttpConnector> {
    /// Plain HTTP without a connection pool: health probes are few, and a pooled connection
    /// must not outlive the runtime that opened it.
    pub(crate) fn plain() -> Self {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector());
        Http { client }
    }
}

#[cfg(feature = "http-calls")]
impl Http<hyper_rustls::HttpsConnector<HttpConnector>> {
    /// HTTP and HTTPS: rustls with ring and the system's root certificates.
    pub(crate) fn tls() -> Result<Self, CallError> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates leave https unusable (each call says so), not the
        // server unable to start.
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "a system root certificate could not be read");
        }
        roots.add_parsable_certificates(native.certs);
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CallError::Unreachable {
                url: String::new(),
                message: format!("cannot set up TLS: {e}"),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = connector();
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Http { client })
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> Http<C> {
    /// One request: the status and the body (at most 1 MiB), within `timeout`.
    pub(crate) async fn request(
        &self,
        method: hyper::Method,
        url: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(hyper::StatusCode, Vec<u8>), CallError> {
        let answer = |message: String| CallError::Answer {
            url: url.to_owned(),
            message,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| answer(format!("not a URL: {e}")))?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(
                hyper::header::USER_AGENT,
                concat!("vamp/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(|e| answer(format!("cannot make the request: {e}")))?;
        let call = async {
            let response = self.client.request(request).await.map_err(|e| {
                // The innermost cause says most ("Connection refused").
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message = s.to_string();
                    source = s.source();
                }
                CallError::Unreachable {
                    url: url.to_owned(),
                    message,
                }
            })?;
            let status = response.status();
            let limited = http_body_util::Limited::new(response.into_body(), MAX_BODY);
            let bytes = limited
                .collect()
                .await
                .map_err(|e| {
                    answer(format!(
                        "the answer could not be read (at most {MAX_BODY} bytes): {e}"
                    ))
                })?
                .to_bytes();
            Ok((status, bytes.to_vec()))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| CallError::Timeout {
                url: url.to_owned(),
                timeout,
            })?
    }
}
