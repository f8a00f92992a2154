//! [`EtcdStore`]: the etcd v3 [`KeyValueStore`] (etcd-client over gRPC). Each value is stored
//! at its own key (no v2 `<key>/value` nesting); revisions are etcd's store revisions.
//!
//! - Every call is bounded by [`EtcdConfig::timeout`]; an unreachable server is
//!   `Error::Unavailable` (or `Error::Timeout`), never a hang.
//! - Watches run in a task that reconnects with backoff (100 ms doubling to 5 s, with jitter) and resumes
//!   from the revision after the last one delivered, so an outage neither loses nor repeats a
//!   change. If that revision was compacted meanwhile the stream yields `Error::Compacted` and
//!   ends. Dropping the stream stops the task.
//! - Authentication: user and password ([`EtcdConfig::user`]); TLS with a private CA and client
//!   certificates ([`EtcdConfig::tls`], `https://` endpoints) with the `etcd-tls` feature
//!   (rustls with ring, through tonic), not built by default.
//!
//! Verified against a real etcd 3.4 on loopback (the `KeyValueStore` conformance kit, and an
//! outage test that stops and restarts a private etcd during a watch and a write stream).
//!
//! One file: the trait, the transactions and the watch task share the client's connection
//! handling; each part is short.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, WatchOptions,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use vamp_core::traits::kv::check_key;
use vamp_core::traits::{KeyValueStore, KvEntry, KvEvent, KvEventKind, KvList, WatchStream};
use vamp_core::{Error, Result};

mod election;

pub use election::EtcdElection;

const BACKEND: &str = "etcd";

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Endpoints, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// User and password, when etcd has authentication on.
    pub user: Option<(String, String)>,
    /// The limit of one call.
    pub timeout: Duration,
    /// The limit of establishing a connection.
    pub connect_timeout: Duration,
    /// TLS settings for `https://` endpoints (feature `etcd-tls`).
    pub tls: Option<EtcdTls>,
}

/// TLS to etcd: the CA to trust and, for client-certificate authentication, a certificate and
/// its key. All PEM text.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's certificate (`--trusted-ca-file` on the server side).
    pub ca: Option<String>,
    /// A client certificate and its private key (etcd's `--client-cert-auth`).
    pub identity: Option<(String, String)>,
    /// The name to check etcd's certificate against (default: the endpoint's host).
    pub domain: Option<String>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field(
                "identity",
                &self.identity.as_ref().map(|_| "<pem, key hidden>"),
            )
            .field("domain", &self.domain)
            .finish()
    }
}

impl EtcdTls {
    /// Reads the CA and, when given, the client certificate and key from PEM files.
    ///
    /// # Errors
    /// `Error::Invalid` naming the file that cannot be read.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Self> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|e| Error::Invalid {
                what: "etcd TLS file",
                message: format!("{}: {e}", path.display()),
            })
        };
        Ok(EtcdTls {
            ca: ca.map(read).transpose()?,
            identity: match identity {
                Some((cert, key)) => Some((read(cert)?, read(key)?)),
                None => None,
            },
            domain: None,
        })
    }
}

impl EtcdConfig {
    /// One endpoint, no authentication, 5 s per call, 3 s to connect.
    ///
    /// ```
    /// let config = vamp_drivers::etcd::EtcdConfig::new("http://127.0.0.1:2379");
    /// assert_eq!(config.endpoints, ["http://127.0.0.1:2379"]);
    /// ```
    pub fn new(endpoint: impl Into<String>) -> Self {
        EtcdConfig {
            endpoints: vec![endpoint.into()],
            user: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            tls: None,
        }
    }
}

/// A connection to etcd. Clones share it.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    config: EtcdConfig,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.config.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects (bounded by `connect_timeout`).
    ///
    /// # Errors
    /// `Error::Unavailable` when no endpoint answers, `Error::Invalid` for a bad endpoint.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let mut options = ConnectOptions::new()
            .with_timeout(config.timeout)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some((user, password)) = &config.user {
            options = options.with_user(user.clone(), password.clone());
        }
        options = tls_options(options, &config)?;
        let address = config.endpoints.join(",");
        let connect = Client::connect(config.endpoints.clone(), Some(options));
        let client = tokio::time::timeout(config.connect_timeout + Duration::from_secs(1), connect)
            .await
            .map_err(|_| Error::Timeout {
                backend: BACKEND,
                address: address.clone(),
                operation: "connect",
                timeout: config.connect_timeout,
            })?
            .map_err(|e| convert(&address, "connect", e))?;
        Ok(EtcdStore { client, config })
    }

    fn address(&self) -> String {
        self.config.endpoints.join(",")
    }

    /// Runs one call under the configured limit.
    async fn call<T>(
        &self,
        operation: &'static str,
        f: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(convert(&self.address(), operation, e)),
            Err(_) => Err(Error::Timeout {
                backend: BACKEND,
                address: self.address(),
                operation,
                timeout: self.config.timeout,
            }),
        }
    }
}

#[cfg(feature = "etcd-tls")]
fn tls_options(options: ConnectOptions, config: &EtcdConfig) -> Result<ConnectOptions> {
    use etcd_client::{Certificate, Identity, TlsOptions};
    let Some(tls) = &config.tls else {
        return Ok(options);
    };
    let mut settings = TlsOptions::new();
    if let Some(ca) = &tls.ca {
        settings = settings.ca_certificate(Certificate::from_pem(ca));
    }
    if let Some((cert, key)) = &tls.identity {
        settings = settings.identity(Identity::from_pem(cert, key));
    }
    if let Some(domain) = &tls.domain {
        settings = settings.domain_name(domain.clone());
    }
    Ok(options.with_tls(settings))
}

#[cfg(not(feature = "etcd-tls"))]
fn tls_options(options: ConnectOptions, config: &EtcdConfig) -> Result<ConnectOptions> {
    if config.tls.is_some() || config.endpoints.iter().any(|e| e.starts_with("https://")) {
        return Err(Error::Invalid {
            what: "etcd endpoint",
            message: "TLS to etcd needs vamp-drivers built with the `etcd-tls` feature".into(),
        });
    }
    Ok(options)
}

fn convert(address: &str, operation: &'static str, e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    let unavailable = match &e {
        E::TransportError(_) | E::IoError(_) => true,
        E::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
        ),
        _ => false,
    };
    if let E::InvalidArgs(_) | E::InvalidUri(_) = &e {
        return Error::Invalid {
            what: "etcd endpoint",
            message: e.to_string(),
        };
    }
    if unavailable {
        Error::Unavailable {
            backend: BACKEND,
            address: address.to_owned(),
            message: format!("{operation}: {e}"),
            cause: Some(Box::new(e)),
        }
    } else {
        Error::Backend {
            backend: BACKEND,
            message: format!("{operation}: {e}"),
            cause: Some(Box::new(e)),
        }
    }
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0))
}

fn rev(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

fn range(prefix: &str) -> GetOptions {
    if prefix.is_empty() {
        GetOptions::new().with_all_keys()
    } else {
        GetOptions::new().with_prefix()
    }
}

#[async_trait]
impl KeyValueStore for EtcdStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<KvEntry>> {
        check_key(key)?;
        let mut kv = self.client.kv_client();
        let resp = self.call("get", kv.get(key, None)).await?;
        Ok(resp.kvs().first().map(|e| KvEntry {
            key: key.to_owned(),
            value: e.value().to_vec(),
            revision: rev(e.mod_revision()),
        }))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<u64> {
        check_key(key)?;
        let mut kv = self.client.kv_client();
        let resp = self.call("put", kv.put(key, value, None)).await?;
        Ok(revision(resp.header()))
    }

    async fn put_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64> {
        check_key(key)?;
        let compare = match expected {
            Some(r) => {
                Compare::mod_revision(key, CompareOp::Equal, i64::try_from(r).unwrap_or(i64::MAX))
            }
            None => Compare::version(key, CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let mut kv = self.client.kv_client();
        let resp = self.call("put_if", kv.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(revision(resp.header()));
        }
        let actual = resp.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => {
                Some(g.kvs().first().map(|e| rev(e.mod_revision())))
            }
            _ => None,
        });
        let show = |r: Option<u64>| r.map_or("absent".to_owned(), |r| format!("revision {r}"));
        Err(Error::Conflict {
            what: key.to_owned(),
            expected: show(expected),
            actual: show(actual.flatten()),
        })
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let mut kv = self.client.kv_client();
        let resp = self.call("delete", kv.delete(key, None)).await?;
        Ok(resp.deleted() > 0)
    }

    async fn list(&self, prefix: &str) -> Result<KvList> {
        let mut kv = self.client.kv_client();
        let key = if prefix.is_empty() { "\0" } else { prefix };
        let resp = self.call("list", kv.get(key, Some(range(prefix)))).await?;
        let mut entries = Vec::with_capacity(resp.kvs().len());
        for e in resp.kvs() {
            let key = e.key_str().map_err(|err| Error::Corrupt {
                backend: BACKEND,
                message: format!("a key under '{prefix}' is not UTF-8: {err}"),
            })?;
            entries.push(KvEntry {
                key: key.to_owned(),
                value: e.value().to_vec(),
                revision: rev(e.mod_revision()),
            });
        }
        Ok(KvList {
            entries,
            revision: revision(resp.header()),
        })
    }

    async fn watch(&self, prefix: &str, after: Option<u64>) -> Result<WatchStream> {
        let start = match after {
            Some(r) => r + 1,
            None => {
                let mut kv = self.client.kv_client();
                let key = if prefix.is_empty() { "\0" } else { prefix };
                let resp = self
                    .call("watch", kv.get(key, Some(range(prefix).with_count_only())))
                    .await?;
                revision(resp.header()) + 1
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let store = self.clone();
        let prefix = prefix.to_owned();
        tokio::spawn(async move { store.follow(prefix, start, tx).await });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

impl EtcdStore {
    /// Delivers every change from revision `next` on, reconnecting as needed, until the
    /// receiver is dropped or the history is compacted.
    async fn follow(self, prefix: String, mut next: u64, tx: mpsc::Sender<Result<KvEvent>>) {
        let policy =
            || vamp_core::retry::backoff(Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = policy();
        loop {
            let mut options =
                WatchOptions::new().with_start_revision(i64::try_from(next).unwrap_or(i64::MAX));
            options = if prefix.is_empty() {
                options.with_all_keys()
            } else {
                options.with_prefix()
            };
            let key = if prefix.is_empty() {
                "\0".to_owned()
            } else {
                prefix.clone()
            };
            let mut watch_client = self.client.watch_client();
            let opened = tokio::select! {
                () = tx.closed() => return,
                r = tokio::time::timeout(self.config.timeout, watch_client.watch(key, Some(options))) => r,
            };
            match opened {
                Ok(Ok(mut stream)) => loop {
                    let message = tokio::select! {
                        () = tx.closed() => return,
                        m = stream.next() => m,
                    };
                    let Some(Ok(resp)) = message else {
                        tracing::debug!(%prefix, next, "etcd watch interrupted; resuming");
                        break;
                    };
                    if resp.compact_revision() > 0 || resp.canceled() {
                        let _ = tx
                            .send(Err(Error::Compacted {
                                requested: next.saturating_sub(1),
                                oldest: rev(resp.compact_revision()),
                            }))
                            .await;
                        return;
                    }
                    backoff = policy();
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let Ok(key) = kv.key_str() else { continue };
                        let delete = matches!(ev.event_type(), etcd_client::EventType::Delete);
                        let event = KvEvent {
                            kind: if delete {
                                KvEventKind::Delete
                            } else {
                                KvEventKind::Put
                            },
                            key: key.to_owned(),
                            value: (!delete).then(|| kv.value().to_vec()),
                            revision: rev(kv.mod_revision()),
                        };
                        next = event.revision + 1;
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                },
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %prefix, "etcd watch could not open; retrying")
                }
                Err(_) => tracing::debug!(%prefix, "etcd watch did not open in time; retrying"),
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(backoff.delay()) => {}
            }
        }
    }
}
