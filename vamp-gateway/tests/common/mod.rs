//! The shared helpers and the Router kit live in `vamp_gateway::testkit`.
#![allow(unused_imports, unreachable_pub)]

pub use vamp_gateway::testkit::router as kit;
pub use vamp_gateway::testkit::*;
