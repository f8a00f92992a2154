//! The core of Vamp in Rust: model, DSL, validation and the backend traits.
//!
//! # Layout
//!
//! - [`model`]: artifacts as plain Rust values (breeds, blueprints, gateways, …), units,
//!   references, names, the value interpolation grammar and the condition grammar (spec §1).
//! - [`dsl`]: read YAML/JSON in every accepted form with errors that carry the artifact path,
//!   line and column; write the normalized form; expand references; validate.
//! - [`traits`]: the four backend traits — [`ContainerDriver`](traits::ContainerDriver),
//!   [`KeyValueStore`](traits::KeyValueStore), [`Persistence`](traits::Persistence),
//!   [`Router`](traits::Router) — and their contracts.
//! - [`engine`]: the deployment engine's pure planners — merge, slice, weights, ports,
//!   gateways, environment resolution (spec §3).
//! - [`memory`]: in-memory [`KeyValueStore`](traits::KeyValueStore) and
//!   [`Persistence`](traits::Persistence).
//! - [`rollout`]: automated canary releases — the pure planner and the sequential verdict;
//!   the runtime is part of [`Vamp`].
//! - [`events`]: the in-process event bus.
//! - [`compose`]: docker-compose v2 files to blueprints.
//! - [`Vamp`]: the facade an application holds — artifacts, deploy / merge / slice / scale /
//!   undeploy, events — and the reconciler that makes the driver and router follow.
//! - `testkit` (feature `testkit`): the conformance kits every backend runs.
//!
//! Nothing here knows about Docker, etcd, HAProxy, HTTP servers or SQL: those live in
//! `vamp-drivers` and `vamp-gateway`.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

pub mod compose;
pub mod dsl;
pub mod engine;
mod error;
pub mod events;
pub mod memory;
pub mod model;
pub mod retry;
pub mod rollout;
#[cfg(feature = "signal")]
pub mod signal;
pub mod sla;
pub mod traits;
mod vamp;
pub mod workflow;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{BoxError, Error, Result};
pub use rollout::{ROLLOUT_EVENT_TYPE, RolloutReport};
pub use sla::SlaReport;
pub use vamp::{
    Background, ClusterState, Report, RouteTraffic, Traffic, Vamp, VampBuilder, VampConfig,
};
