//! In-memory implementations: always built, used by tests and single-process setups.

mod kv;
mod persistence;

pub use kv::MemoryStore;
pub use persistence::MemoryPersistence;
