//! Vamp's data plane: the HAProxy configuration model, runtime-API client and process control,
//! the gateway agent, and the embedded router.
//!
//! # Layout
//!
//! - [`balance`]: smooth weighted round-robin, how the embedded router splits traffic.
//! - [`condition`]: route conditions evaluated in process (spec §1.7.2 semantics).
//! - [`select`]: which route takes a request: conditions, strength, weights (spec §4.2.2).
//! - [`haproxy`]: the HAProxy configuration model, renderer, runtime API and process control.
//! - [`embedded`] (feature `embedded`, default): the in-process router.
//! - [`listen`] (feature `embedded`): limits on client connections (header and idle
//!   timeouts, connections at once), shared by the router and `vamp-server`'s API.
//! - `testkit` (feature `testkit`): HTTP test helpers and the Router conformance kit.
//!
//! - [`wire`] (feature `haproxy-kv`): gateways as JSON in the key-value store.
//! - [`agent`] (feature `agent`): the gateway agent.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

#[cfg(feature = "agent")]
pub mod agent;
pub mod balance;
pub mod condition;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod haproxy;
#[cfg(feature = "embedded")]
pub mod listen;
pub mod select;
#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(feature = "haproxy-kv")]
pub mod wire;
