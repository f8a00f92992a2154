//! [`OutageStore`]: a key-value store that can be switched off, to test what survives an
//! outage.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;
use vamp_core::traits::{KeyValueStore, KvEntry, KvList, WatchStream};

/// Wraps a store; while [`set_down(true)`](Self::set_down) every call fails with
/// `Error::Unavailable` and open watches end with that error, as when the server goes away.
/// Others may keep writing to the wrapped store meanwhile.
#[derive(Debug, Clone)]
pub struct OutageStore {
    inner: Arc<dyn KeyValueStore>,
    down: watch::Sender<bool>,
}

impl OutageStore {
    /// A switchable view of `inner`, up.
    pub fn new(inner: Arc<dyn KeyValueStore>) -> Self {
        OutageStore {
            inner,
            down: watch::channel(false).0,
        }
    }

    /// Takes the store down or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    fn check(&self) -> vamp_core::Result<()> {
        if *self.down.borrow() {
            Err(unavailable())
        } else {
            Ok(())
        }
    }
}

fn unavailable() -> vamp_core::Error {
    vamp_core::Error::Unavailable {
        backend: "outage",
        address: "test".into(),
        message: "the store is down".into(),
        cause: None,
    }
}

#[async_trait]
impl KeyValueStore for OutageStore {
    fn backend(&self) -> &'static str {
        "outage"
    }

    async fn get(&self, key: &str) -> vamp_core::Result<Option<KvEntry>> {
        self.check()?;
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: &[u8]) -> vamp_core::Result<u64> {
        self.check()?;
        self.inner.put(key, value).await
    }

    async fn delete(&self, key: &str) -> vamp_core::Result<bool> {
        self.check()?;
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> vamp_core::Result<KvList> {
        self.check()?;
        self.inner.list(prefix).await
    }

    async fn watch(&self, prefix: &str, after: Option<u64>) -> vamp_core::Result<WatchStream> {
        self.check()?;
        let stream = self.inner.watch(prefix, after).await?;
        let mut down = self.down.subscribe();
        let gone = async move {
            let _ = down.wait_for(|d| *d).await;
        };
        Ok(stream
            .take_until(gone)
            .chain(futures::stream::once(async { Err(unavailable()) }))
            .boxed())
    }
}
