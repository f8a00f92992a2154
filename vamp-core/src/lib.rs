//! The core of Vamp in Rust: model, DSL, validation and the backend traits.
//!
//! # Layout
//!
//! - [`model`]: artifacts as plain Rust values (breeds, blueprints, gateways, …), units,
//!   references, names and the value interpolation grammar (spec §1).
//! - [`dsl`]: read YAML/JSON in every accepted form with errors that carry the artifact path,
//!   line and column; write the normalized form; expand references; validate.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

pub mod dsl;
pub mod model;
