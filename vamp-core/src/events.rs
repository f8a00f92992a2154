//! An in-process broadcast bus for stored events: persistence backends publish here, and SSE
//! streams, workflows and tests subscribe.

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::Error;
use crate::traits::{EventStream, StoredEvent};

/// How many events a subscriber may fall behind before it gets [`Error::Lagged`].
pub const DEFAULT_CAPACITY: usize = 4096;

/// A broadcast bus of stored events.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use futures::StreamExt;
/// use vamp_core::events::EventBus;
/// use vamp_core::model::Event;
/// use vamp_core::traits::StoredEvent;
///
/// let bus = EventBus::default();
/// let mut stream = bus.subscribe();
/// bus.publish(StoredEvent { id: 1, event: Event::new(["a"], serde_json::Value::Null) });
/// assert_eq!(stream.next().await.unwrap().unwrap().id, 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<StoredEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(DEFAULT_CAPACITY)
    }
}

impl EventBus {
    /// A bus that lets subscribers fall `capacity` events behind.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus { sender }
    }

    /// Sends an event to every current subscriber (none listening is fine).
    pub fn publish(&self, event: StoredEvent) {
        let _ = self.sender.send(event);
    }

    /// Events published from now on.
    pub fn subscribe(&self) -> EventStream {
        BroadcastStream::new(self.sender.subscribe())
            .map(|item| {
                item.map_err(|BroadcastStreamRecvError::Lagged(missed)| Error::Lagged { missed })
            })
            .boxed()
    }
}
