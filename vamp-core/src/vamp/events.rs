//! The events Vamp emits about itself (spec §3.8).

use crate::Result;
use crate::model::{Event, Kind};
use crate::traits::{EventFilter, EventStream, Page, Paged, StoredEvent};

/// `archive` events of artifact writes: `create`, `update`, `delete`.
pub(crate) fn archive(kind: Kind, name: &str, what: &str, value: serde_json::Value) -> Event {
    Event {
        kind: "archive".into(),
        ..Event::new(
            [
                kind.plural().to_owned(),
                format!("{}:{name}", kind.plural()),
                "archive".to_owned(),
                format!("archive:{what}"),
            ],
            value,
        )
    }
}

/// Gateway `deployed` / `undeployed` events.
pub(crate) fn gateway(name: &str, what: &str) -> Event {
    Event::new(
        [format!("gateways:{name}"), what.to_owned()],
        serde_json::Value::Null,
    )
}

impl super::Vamp {
    /// Stores an event (and delivers it to subscribers).
    pub async fn publish(&self, event: &Event) -> Result<StoredEvent> {
        self.db().append_event(event).await
    }

    /// Stores several events in order (in one write where the store can).
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<StoredEvent>> {
        self.db().append_events(events).await
    }

    /// A page of stored events, newest first.
    pub async fn events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        self.db().query_events(filter, page).await
    }

    /// The newest stored event that passes `filter` (no total counted).
    pub async fn newest_event(&self, filter: &EventFilter) -> Result<Option<StoredEvent>> {
        self.db().newest_event(filter).await
    }

    /// Events from now on.
    pub async fn subscribe(&self) -> Result<EventStream> {
        self.db().subscribe().await
    }
}
