//! Vamp's data plane: the HAProxy configuration model, runtime-API client and process control,
//! the gateway agent, and the embedded router.
//!
//! # Layout
//!
//! - [`balance`]: smooth weighted round-robin, how the embedded router splits traffic.
//! - [`condition`]: route conditions evaluated in process (spec §1.7.2 semantics).
//! - [`select`]: which route takes a request: conditions, strength, weights (spec §4.2.2).
//! - [`haproxy`]: the HAProxy configuration model and renderer.
//!
//! Still to come with the gateway issue: `haproxy::{runtime, process}`, `agent` and
//! `embedded`, all consuming `vamp_core::traits::ResolvedGateway` and implementing
//! `vamp_core::traits::Router`.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

pub mod balance;
pub mod condition;
pub mod haproxy;
pub mod select;
