//! `vamp-server`: the Vamp REST API over an embedded Vamp.
//!
//! # Layout
//!
//! Nothing is built here yet: the server issue adds the `/api/v1` API, configuration, the
//! demo and `serve(listener, shutdown)`. Until then the binary says so and exits.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

/// What the binary prints until the server exists.
pub const NOT_YET: &str = "vamp-server is not built yet: the REST API and `--demo` arrive with \
the server issue. Today `vamp validate` checks artifact files offline (see README.md).";
