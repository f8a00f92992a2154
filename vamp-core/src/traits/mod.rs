//! The four backend traits: [`ContainerDriver`], [`KeyValueStore`], [`Persistence`], [`Router`].
//!
//! Each is small, async and object-safe: the engine holds them as `Arc<dyn Trait>`. Every
//! implementation runs the conformance kit of its trait (`vamp_core::testkit`, feature
//! `testkit`). Shared contract:
//!
//! - An unreachable backend is an [`Error::Unavailable`](crate::Error::Unavailable) or
//!   [`Error::Timeout`](crate::Error::Timeout) naming the backend and address — never a panic
//!   or a hang: every network call has a timeout.
//! - "Not found" is `Ok(None)` / `Ok(false)`, never an error.
//! - Nothing is written that was not asked for; keys and values round-trip byte-exact.
//! - A capability the backend truly lacks is [`Error::Unsupported`](crate::Error::Unsupported),
//!   documented on the implementation.

mod driver;
mod kv;
mod persistence;
mod router;

pub use driver::{ContainerDriver, GatewayEndpoint, ServiceKey, ServiceSpec, ServiceState};
pub use kv::{KeyValueStore, KvEntry, KvEvent, KvEventKind, KvList, WatchStream};
pub use persistence::{
    EventFilter, EventStream, Page, Paged, Persistence, Precondition, Revision, StoredArtifact,
    StoredEvent,
};
pub use router::{
    ApplyReport, Balance, LatencyHistogram, ResolvedCondition, ResolvedGateway, ResolvedRewrite,
    ResolvedRoute, RouteStats, RouteTarget, Router,
};
