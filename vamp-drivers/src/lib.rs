//! Real backends for the traits of `vamp-core`, one module per backend, each behind the cargo
//! feature of the same name.
//!
//! # Layout
//!
//! - `consul` (feature `consul`): [`consul::ConsulStore`], the Consul
//!   [`KeyValueStore`](vamp_core::traits::KeyValueStore) over its HTTP API (tested against
//!   [`fakes::consul`], a local fake: no Consul server runs here).
//! - `docker` (feature `docker`): [`docker::DockerDriver`], containers for `container/docker`
//!   deployables through the Docker Engine API.
//! - `elasticsearch` (feature `elasticsearch`): [`elasticsearch::ElasticsearchPersistence`],
//!   artifacts and events in Elasticsearch or OpenSearch (tested against
//!   [`fakes::elasticsearch`], a local fake: no Elasticsearch runs here).
//! - `etcd` (feature `etcd`): [`etcd::EtcdStore`], the etcd v3
//!   [`KeyValueStore`](vamp_core::traits::KeyValueStore).
//! - `fakes` (feature `fakes`): local fakes of the wire protocols of servers that cannot run
//!   here, for tests and benches.
//! - `javascript` (feature `javascript`): [`javascript::QuickJs`], JavaScript workflows in a
//!   sandboxed, embedded QuickJS.
//! - `kv` (feature `kv`): [`kv::KvPersistence`], artifacts and events in any
//!   [`KeyValueStore`](vamp_core::traits::KeyValueStore).
//! - `outside` (features `prometheus`, `web-metrics`, `webhooks`): what rollouts call —
//!   [`outside::PrometheusProvider`] (tested against a real Prometheus),
//!   [`outside::WebProvider`], [`outside::HttpWebhooks`].
//! - `postgres` (feature `postgres`): [`postgres::PostgresPersistence`], artifacts and events
//!   in PostgreSQL.
//! - `process` (feature `process`, default): [`process::ProcessDriver`], local processes for
//!   `command` deployables — the embedded default
//!   [`ContainerDriver`](vamp_core::traits::ContainerDriver).
//! - `swarm` (feature `swarm`): [`swarm::SwarmDriver`], Docker Swarm services for
//!   `container/docker` deployables, one per instance, through a manager node's API.
//! - `zookeeper` (feature `zookeeper`): [`zookeeper::ZookeeperStore`], the ZooKeeper
//!   [`KeyValueStore`](vamp_core::traits::KeyValueStore) (3.6 or later).
//! - `sqlite` (feature `sqlite`, default): [`sqlite::SqlitePersistence`], file-backed
//!   [`Persistence`](vamp_core::traits::Persistence), the embedded default.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

#[cfg(any(feature = "zookeeper", feature = "consul"))]
mod changelog;
pub mod connect;
#[cfg(feature = "consul")]
pub mod consul;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "elasticsearch")]
pub mod elasticsearch;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "fakes")]
pub mod fakes;
#[cfg(any(feature = "process", feature = "docker"))]
mod health;
#[cfg(feature = "http-client")]
mod http;
#[cfg(feature = "javascript")]
pub mod javascript;
#[cfg(any(feature = "zookeeper", feature = "consul"))]
mod keypath;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
#[cfg(feature = "kv")]
pub mod kv;
#[cfg(any(feature = "process", feature = "docker"))]
mod lines;
#[cfg(feature = "http-calls")]
pub mod outside;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "process")]
pub mod process;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "swarm")]
pub mod swarm;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;

#[cfg(any(feature = "process", feature = "docker"))]
pub mod command;
