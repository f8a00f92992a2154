//! Faithful local fakes of servers that cannot run here, built from their public API
//! documentation, for tests and benches (feature `fakes`). Each speaks the wire protocol the
//! matching backend uses, with the server's semantics and limits, on a loopback port.

pub mod consul;
pub mod elasticsearch;
