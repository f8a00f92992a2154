//! HAProxy as Vamp's data plane (spec §4): the configuration model and renderer, the
//! runtime-API client and process control.
//!
//! - [`text`]: names and quoted values that cannot inject configuration.
//! - [`acl`]: conditions as ACLs in disjunctive normal form (spec §1.7.2).
//! - [`config`]: the typed configuration and its `Display`.
//! - [`render`]: gateways → configuration in Vamp's layout (spec §4.2.2).
//! - [`runtime`]: the runtime API (weights, server states, statistics) over the admin socket.
//! - [`process`]: master-worker start, `haproxy -c`, seamless reload, read-back.
//! - [`local`] (feature `haproxy-local`): a `Router` driving one local HAProxy.
//! - [`kv`] (feature `haproxy-kv`): a `Router` publishing gateways for agents.

pub mod acl;
pub mod config;
#[cfg(feature = "haproxy-kv")]
pub mod kv;
#[cfg(feature = "haproxy-local")]
pub mod local;
pub mod process;
pub mod render;
pub mod runtime;
pub mod text;
