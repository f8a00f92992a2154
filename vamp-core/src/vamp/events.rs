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

/// How many of the newest matching events [`Vamp::newest_event_of_level`](super::Vamp::newest_event_of_level) looks through.
const LEVEL_SCAN: u64 = 256;

impl super::Vamp {
    /// Stores an event (and delivers it to subscribers).
    pub async fn publish(&self, event: &Event) -> Result<StoredEvent> {
        let stored = self.db().append_event(event).await?;
        self.mine(stored.id);
        Ok(stored)
    }

    /// Stores several events in order (in one write where the store can).
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<StoredEvent>> {
        let stored = self.db().append_events(events).await?;
        for s in &stored {
            self.mine(s.id);
        }
        Ok(stored)
    }

    /// A page of stored events, newest first.
    pub async fn events(&self, filter: &EventFilter, page: Page) -> Result<Paged<StoredEvent>> {
        self.db().query_events(filter, page).await
    }

    /// The newest stored event that passes `filter` (no total counted).
    pub async fn newest_event(&self, filter: &EventFilter) -> Result<Option<StoredEvent>> {
        self.db().newest_event(filter).await
    }

    /// The newest stored event that passes `filter` and carries no tag of the group `below`
    /// (e.g. `routes:`): a health or metrics lookup of one level (spec §2.8), where the
    /// events of the level below carry the same tags and more (the stock workflows tag a
    /// route's values with its gateway's tags too: spec §5.2, §5.3). Looks through the newest
    /// 256 matching events; the stock `metrics` workflow publishes a gateway's values before
    /// its routes', so a gateway of up to 255 routes is found.
    ///
    /// ```
    /// # async fn demo(vamp: vamp_core::Vamp) -> vamp_core::Result<()> {
    /// use vamp_core::traits::EventFilter;
    /// let filter = EventFilter::tags(["gateways:shop/web", "health"]);
    /// let gateway = vamp.newest_event_of_level(&filter, Some("routes:")).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn newest_event_of_level(
        &self,
        filter: &EventFilter,
        below: Option<&str>,
    ) -> Result<Option<StoredEvent>> {
        let Some(below) = below else {
            return self.newest_event(filter).await;
        };
        Ok(self
            .events(filter, Page::new(1, LEVEL_SCAN))
            .await?
            .items
            .into_iter()
            .find(|e| !e.event.tags.iter().any(|t| t.starts_with(below))))
    }

    /// Events from now on.
    pub async fn subscribe(&self) -> Result<EventStream> {
        self.db().subscribe().await
    }
}
