//! The four backend traits: [`ContainerDriver`], [`KeyValueStore`], [`Persistence`], [`Router`],
//! and the two ways rollouts reach the outside: [`MetricProvider`] and [`WebhookSender`].
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
mod election;
pub mod kv;
mod outside;
mod persistence;
mod router;
mod script;

pub use driver::{
    ContainerDriver, GatewayEndpoint, LineSink, LogLine, RunOutcome, RunSpec, ServiceKey,
    ServiceSpec, ServiceState,
};
pub use election::{Candidate, Fence, FenceCheck, LeaderElection, Leadership};
pub use kv::{KeyValueStore, KvEntry, KvEvent, KvEventKind, KvList, WatchStream};
pub use outside::{CallError, MetricProvider, Reading, WebhookSender};
pub use persistence::{
    EventFilter, EventStream, Page, Paged, Persistence, Precondition, Published, Retention,
    RetentionRule, Revision, SharedLock, StoredArtifact, StoredEvent, check_artifact_name,
};
pub use router::{
    ApplyReport, Balance, LatencyHistogram, ResolvedCondition, ResolvedGateway, ResolvedMirror,
    ResolvedRewrite, ResolvedRoute, RouteStats, RouteTarget, Router,
};
pub use script::{ScriptHost, ScriptRun, ScriptRuntime};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Breed, Deployable, Map, Scale};

    /// The engine holds every backend as `Arc<dyn Trait>`; this only compiles while all four
    /// traits stay object-safe.
    #[test]
    fn traits_are_object_safe() {
        let kv: Arc<dyn KeyValueStore> = Arc::new(crate::memory::MemoryStore::default());
        let db: Arc<dyn Persistence> = Arc::new(crate::memory::MemoryPersistence::default());
        let drivers: Vec<Arc<dyn ContainerDriver>> = Vec::new();
        let routers: Vec<Arc<dyn Router>> = Vec::new();
        assert_eq!((kv.backend(), db.backend()), ("memory", "memory"));
        assert!(drivers.is_empty() && routers.is_empty());
    }

    fn spec() -> ServiceSpec {
        ServiceSpec {
            key: ServiceKey {
                deployment: "shop".into(),
                cluster: "web".into(),
                service: "web:1".into(),
            },
            breed: Breed {
                name: "web:1".into(),
                deployable: Deployable {
                    kind: "command".into(),
                    definition: "./web".into(),
                },
                ..Breed::default()
            },
            scale: Scale {
                instances: 1,
                ..Scale::default()
            },
            environment: Map::from_iter([("A".to_owned(), "1".to_owned())]),
            arguments: Vec::new(),
            health_checks: Vec::new(),
            network: None,
            dialect: None,
        }
    }

    #[test]
    fn fingerprints_track_what_needs_a_redeploy() {
        let a = spec();
        assert_eq!(a.fingerprint(), spec().fingerprint(), "stable");
        assert_eq!(a.fingerprint().len(), 40);
        let mut scaled = spec();
        scaled.scale.instances = 5;
        assert_eq!(
            a.fingerprint(),
            scaled.fingerprint(),
            "scaling is not a redeploy"
        );
        let mut changed = spec();
        changed.environment.insert("A".into(), "2".into());
        assert_ne!(
            a.fingerprint(),
            changed.fingerprint(),
            "new environment, new fingerprint"
        );
    }
}
