//! In-memory implementations: always built, used by tests and single-process setups, and a
//! router that records instead of routing.

mod driver;
mod election;
mod kv;
mod persistence;
mod router;

pub use driver::MemoryDriver;
pub use election::{AlwaysLeader, MemoryElection};
pub use kv::MemoryStore;
pub use persistence::MemoryPersistence;
pub use router::RecordingRouter;
