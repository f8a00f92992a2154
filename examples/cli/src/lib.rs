//! The `vamp` command-line client.
//!
//! # Layout
//!
//! - [`offline`]: commands that need no server — `vamp validate` and `vamp fmt`.
//! - [`online`]: commands over a `vamp-server`'s REST API — create, delete, list, describe,
//!   deploy, merge, undeploy, update-gateway, emit, events, generate.
//! - [`rollout`]: `vamp rollout status [--watch]`, the rollout commands, and `vamp rollout
//!   simulate` (offline).
//!
//! - [`args`]: the command line (clap); [`run`]: what each command does.
//!
//! The binary (`src/main.rs`) only parses flags and calls [`run::run`], so every command is
//! testable without spawning a process.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

pub mod args;
pub mod offline;
pub mod online;
pub mod rollout;
pub mod run;
pub mod workflow;
