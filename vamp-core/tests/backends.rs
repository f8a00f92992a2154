//! The in-memory backends pass the conformance kits.

use vamp_core::memory::{MemoryPersistence, MemoryStore};
use vamp_core::testkit;

#[tokio::test]
async fn memory_store_conforms() {
    testkit::kv::run_all(&MemoryStore::default()).await;
}

#[tokio::test]
async fn memory_persistence_conforms() {
    testkit::persistence::run_all(&MemoryPersistence::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backends_conform_on_a_threaded_runtime() {
    testkit::kv::run_all(&MemoryStore::default()).await;
    testkit::persistence::run_all(&MemoryPersistence::default()).await;
}
