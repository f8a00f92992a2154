//! The `vamp` command-line client.
//!
//! # Layout
//!
//! - [`offline`]: commands that need no server — `vamp validate` and `vamp fmt`.
//!
//! The binary (`src/main.rs`) only parses flags and calls into this library, so every
//! command is testable without spawning a process.
#![cfg_attr(
    not(test),
    warn(missing_docs, clippy::unwrap_used, clippy::expect_used)
)]

pub mod offline;
