//! The events Vamp emits about itself (spec §3.8).

use crate::model::{Event, Kind};
use crate::traits::ServiceKey;

/// `synchronization` events of the reconciler: `deployed`, `redeploy`, `undeployed`, `failed`.
pub(super) fn synchronization(key: &ServiceKey, what: &str, value: serde_json::Value) -> Event {
    Event {
        kind: "synchronization".into(),
        ..Event::new(
            [
                format!("deployments:{}", key.deployment),
                format!("clusters:{}", key.cluster),
                format!("services:{}", key.service),
                format!("synchronization:{what}"),
            ],
            value,
        )
    }
}

/// `archive` events of artifact writes: `create`, `update`, `delete`.
pub(super) fn archive(kind: Kind, name: &str, what: &str, value: serde_json::Value) -> Event {
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
pub(super) fn gateway(name: &str, what: &str) -> Event {
    Event::new(
        [format!("gateways:{name}"), what.to_owned()],
        serde_json::Value::Null,
    )
}
