//! Opening a key-value store from typed settings: the one way `vamp-server` (its
//! `[key_value]` section) and `vamp-gateway-agent` (its flags) both reach etcd, ZooKeeper,
//! Consul or the in-memory store. Each binary turns its own input into a [`KeyValueBackend`]
//! and calls [`key_value`]; a backend this build lacks is a clear error naming its feature.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vamp_core::traits::KeyValueStore;

/// A key-value store and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeyValueBackend {
    /// In this process only (tests, a single server).
    #[default]
    Memory,
    /// etcd v3 (feature `etcd`).
    Etcd(EtcdSettings),
    /// ZooKeeper 3.6 or later (feature `zookeeper`).
    Zookeeper(ZookeeperSettings),
    /// Consul's KV API (feature `consul`).
    Consul(ConsulSettings),
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// Endpoints, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// User and password, when etcd has authentication on.
    pub user: Option<(String, String)>,
    /// The CA certificate (PEM file) that signed etcd's (feature `etcd-tls`).
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM files).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// How to reach ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZookeeperSettings {
    /// Servers, `host:port` separated by commas.
    pub servers: String,
    /// `digest` authentication, `user:password`.
    pub digest: Option<String>,
}

/// How to reach Consul.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulSettings {
    /// The agent's HTTP address, e.g. `http://127.0.0.1:8500`.
    pub address: String,
    /// The ACL token.
    pub token: Option<String>,
}

impl KeyValueBackend {
    /// What to call it in messages: `etcd http://127.0.0.1:2379`, `memory`, …
    ///
    /// ```
    /// use vamp_drivers::connect::{ConsulSettings, KeyValueBackend};
    /// let consul = KeyValueBackend::Consul(ConsulSettings { address: "http://127.0.0.1:8500".into(), token: None });
    /// assert_eq!(consul.describe(), "consul http://127.0.0.1:8500");
    /// ```
    pub fn describe(&self) -> String {
        match self {
            KeyValueBackend::Memory => "memory".into(),
            KeyValueBackend::Etcd(e) => format!("etcd {}", e.endpoints.join(",")),
            KeyValueBackend::Zookeeper(z) => format!("zookeeper {}", z.servers),
            KeyValueBackend::Consul(c) => format!("consul {}", c.address),
        }
    }
}

/// A store that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// This build has no client for the backend.
    #[error("{backend}: this build has no {backend} client (rebuild with --features {feature})")]
    NotBuilt {
        /// The backend.
        backend: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// The client refused the settings, or the store could not be reached.
    #[error("{backend}: {source}")]
    Store {
        /// The backend.
        backend: &'static str,
        /// Why.
        source: vamp_core::Error,
    },
}

/// Opens the store `backend` names. The clients connect lazily enough that a store that is
/// down is retried by their users; malformed settings are an error now.
///
/// # Errors
/// [`ConnectError::NotBuilt`] for a backend this build lacks; [`ConnectError::Store`] when the
/// client refuses the settings (e.g. an unreadable TLS file) or cannot connect.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use vamp_drivers::connect::{KeyValueBackend, key_value};
/// let store = key_value(&KeyValueBackend::Memory).await.unwrap();
/// assert_eq!(store.backend(), "memory");
/// # });
/// ```
pub async fn key_value(backend: &KeyValueBackend) -> Result<Arc<dyn KeyValueStore>, ConnectError> {
    match backend {
        KeyValueBackend::Memory => Ok(Arc::new(vamp_core::memory::MemoryStore::default())),
        KeyValueBackend::Etcd(settings) => etcd(settings).await,
        KeyValueBackend::Zookeeper(settings) => zookeeper(settings).await,
        KeyValueBackend::Consul(settings) => consul(settings).await,
    }
}

#[cfg(feature = "etcd")]
async fn etcd(settings: &EtcdSettings) -> Result<Arc<dyn KeyValueStore>, ConnectError> {
    Ok(Arc::new(etcd_store(settings).await?))
}

#[cfg(feature = "etcd")]
async fn etcd_store(settings: &EtcdSettings) -> Result<crate::etcd::EtcdStore, ConnectError> {
    use crate::etcd::{EtcdConfig, EtcdStore};
    let store = |source| ConnectError::Store {
        backend: "etcd",
        source,
    };
    let mut etcd = EtcdConfig::new(settings.endpoints.first().cloned().unwrap_or_default());
    etcd.endpoints.clone_from(&settings.endpoints);
    etcd.user.clone_from(&settings.user);
    if settings.ca.is_some() || settings.identity.is_some() {
        #[cfg(feature = "etcd-tls")]
        {
            let identity = settings
                .identity
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            etcd.tls = Some(
                crate::etcd::EtcdTls::from_files(settings.ca.as_deref(), identity)
                    .map_err(store)?,
            );
        }
        #[cfg(not(feature = "etcd-tls"))]
        return Err(ConnectError::NotBuilt {
            backend: "etcd over TLS",
            feature: "etcd-tls",
        });
    }
    EtcdStore::connect(etcd).await.map_err(store)
}

#[cfg(not(feature = "etcd"))]
async fn etcd(_: &EtcdSettings) -> Result<Arc<dyn KeyValueStore>, ConnectError> {
    Err(ConnectError::NotBuilt {
        backend: "etcd",
        feature: "etcd",
    })
}

#[cfg(feature = "zookeeper")]
async fn zookeeper(settings: &ZookeeperSettings) -> Result<Arc<dyn KeyValueStore>, ConnectError> {
    Ok(Arc::new(zookeeper_store(settings, |_| {}).await?))
}

#[cfg(feature = "zookeeper")]
async fn zookeeper_store(
    settings: &ZookeeperSettings,
    adjust: impl FnOnce(&mut crate::zookeeper::ZookeeperConfig),
) -> Result<crate::zookeeper::ZookeeperStore, ConnectError> {
    use crate::zookeeper::{ZookeeperConfig, ZookeeperStore};
    let mut zk = ZookeeperConfig::new(settings.servers.trim());
    zk.digest.clone_from(&settings.digest);
    adjust(&mut zk);
    ZookeeperStore::connect(zk)
        .await
        .map_err(|source| ConnectError::Store {
            backend: "zookeeper",
            source,
        })
}

#[cfg(not(feature = "zookeeper"))]
async fn zookeeper(_: &ZookeeperSettings) -> Result<Arc<dyn KeyValueStore>, ConnectError> {
    Err(ConnectError::NotBuilt {
        backend: "zookeeper",
        feature: "zookeeper",
    })
}

#[cfg(feature = "consul")]
async fn consul(settings: &ConsulSettings) -> Result<Arc<dyn KeyValueStore>, ConnectError> {
    use crate::consul::{ConsulConfig, ConsulStore};
    let mut consul = ConsulConfig::new(settings.address.trim());
    consul.token.clone_from(&settings.token);
    let store = ConsulStore::connect(consul)
        .await
        .map_err(|source| ConnectError::Store {
            backend: "consul",
            source,
        })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "consul"))]
async fn consul(_: &ConsulSettings) -> Result<Arc<dyn KeyValueStore>, ConnectError> {
    Err(ConnectError::NotBuilt {
        backend: "consul",
        feature: "consul",
    })
}

/// Leader election (issue 24) on the store `backend` names, on a connection of its own,
/// among the servers sharing `root` (e.g. `/vamp/default`): etcd's key `<root>/leader` under a
/// lease, or ZooKeeper's ephemeral znodes under `<root>/election` in a session whose timeout
/// is `ttl` (the lease). The memory and Consul stores elect nothing.
///
/// # Errors
/// [`ConnectError::NotBuilt`] for a backend this build lacks or that cannot elect;
/// [`ConnectError::Store`] when the store cannot be reached.
#[cfg_attr(
    not(any(feature = "etcd", feature = "zookeeper")),
    allow(unused_variables)
)]
pub async fn election(
    backend: &KeyValueBackend,
    root: &str,
    ttl: std::time::Duration,
) -> Result<Arc<dyn vamp_core::traits::LeaderElection>, ConnectError> {
    match backend {
        #[cfg(feature = "etcd")]
        KeyValueBackend::Etcd(settings) => Ok(Arc::new(etcd_store(settings).await?.election(root))),
        #[cfg(feature = "zookeeper")]
        KeyValueBackend::Zookeeper(settings) => {
            let store = zookeeper_store(settings, |zk| {
                zk.root = root.to_owned();
                zk.session_timeout = ttl;
            })
            .await?;
            Ok(Arc::new(store.election()))
        }
        #[cfg(not(feature = "etcd"))]
        KeyValueBackend::Etcd(_) => Err(ConnectError::NotBuilt {
            backend: "etcd",
            feature: "etcd",
        }),
        #[cfg(not(feature = "zookeeper"))]
        KeyValueBackend::Zookeeper(_) => Err(ConnectError::NotBuilt {
            backend: "zookeeper",
            feature: "zookeeper",
        }),
        KeyValueBackend::Memory | KeyValueBackend::Consul(_) => Err(ConnectError::NotBuilt {
            backend: "an election on this key-value store",
            feature: "etcd or zookeeper, with key_value.kind set to it",
        }),
    }
}
