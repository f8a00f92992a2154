//! The gateway ports in use, kept in memory: a standalone gateway's create checks its port,
//! or gets a free one, in time that does not grow with the number of gateways (issue 15: 2 000
//! gateways made each create 15× slower when every create listed them all).
//!
//! The index is built from the store the first time it is needed, then kept up to date by
//! this `Vamp`'s own writes (standalone gateways stored or deleted, deployments saved or
//! removed). Writes made by another server sharing the store reach it through the change
//! loop of a cluster (`cluster.rs`: their `archive` events), or when it is rebuilt
//! ([`Vamp::forget_ports`]). Two servers allocating at the same instant can still pick one
//! port (a store transaction per claim would close that: issue 24).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::Result;
use crate::engine::{self, EngineConfig};
use crate::model::{Artifact, Deployment, Gateway, Kind};

use super::Vamp;

/// Who claims ports: a standalone gateway, or a deployment (its internal and external
/// gateways).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Gateway(String),
    Deployment(String),
}

/// Ports by the gateways that claim them.
#[derive(Debug, Default)]
pub(crate) struct PortIndex {
    owners: HashMap<Owner, Vec<(u16, String)>>,
    by_port: BTreeMap<u16, BTreeSet<String>>,
    standalone: usize,
}

impl PortIndex {
    fn set(&mut self, owner: Owner, claims: Vec<(u16, String)>) {
        self.remove(&owner);
        for (port, gateway) in &claims {
            self.by_port
                .entry(*port)
                .or_default()
                .insert(gateway.clone());
        }
        if matches!(owner, Owner::Gateway(_)) {
            self.standalone += 1;
        }
        self.owners.insert(owner, claims);
    }

    fn remove(&mut self, owner: &Owner) {
        let Some(claims) = self.owners.remove(owner) else {
            return;
        };
        if matches!(owner, Owner::Gateway(_)) {
            self.standalone -= 1;
        }
        for (port, gateway) in claims {
            if let Some(names) = self.by_port.get_mut(&port) {
                names.remove(&gateway);
                if names.is_empty() {
                    self.by_port.remove(&port);
                }
            }
        }
    }

    /// The gateways that claim `port`.
    pub(crate) fn owners(&self, port: u16) -> Vec<String> {
        self.by_port
            .get(&port)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `port` is claimed.
    pub(crate) fn is_taken(&self, port: u16) -> bool {
        self.by_port.contains_key(&port)
    }

    /// Whether a standalone gateway of this name is stored.
    pub(crate) fn has_gateway(&self, name: &str) -> bool {
        self.owners.contains_key(&Owner::Gateway(name.to_owned()))
    }

    /// The number of standalone gateways.
    pub(crate) fn standalone(&self) -> usize {
        self.standalone
    }
}

/// The ports a standalone gateway claims.
fn gateway_claims(g: &Gateway) -> Vec<(u16, String)> {
    g.port
        .map(|p| p.number)
        .filter(|p| *p != 0)
        .map(|p| vec![(p, g.name.clone())])
        .unwrap_or_default()
}

/// The ports a deployment's gateways claim.
fn deployment_claims(d: &Deployment, config: &EngineConfig) -> Vec<(u16, String)> {
    engine::gateways(d, config)
        .into_iter()
        .filter_map(|g| g.port.map(|p| (p.number, g.name)))
        .filter(|(p, _)| *p != 0)
        .collect()
}

impl Vamp {
    /// Runs `f` on the index, built first if need be.
    pub(crate) async fn with_ports<T>(&self, f: impl FnOnce(&PortIndex) -> T) -> Result<T> {
        let mut index = self.inner.ports.lock().await;
        if index.is_none() {
            let mut built = PortIndex::default();
            for a in self.readable(Kind::Gateway).await? {
                if let Artifact::Gateway(g) = a {
                    built.set(Owner::Gateway(g.name.clone()), gateway_claims(&g));
                }
            }
            for d in self.deployments().await? {
                built.set(
                    Owner::Deployment(d.name.clone()),
                    deployment_claims(&d, &self.inner.config.engine),
                );
            }
            *index = Some(built);
        }
        Ok(f(index.get_or_insert_with(PortIndex::default)))
    }

    /// Records what a standalone gateway (`Some`) or its removal (`None`) claims.
    pub(crate) async fn index_gateway(&self, name: &str, gateway: Option<&Gateway>) {
        if let Some(index) = self.inner.ports.lock().await.as_mut() {
            let owner = Owner::Gateway(name.to_owned());
            match gateway {
                Some(g) => index.set(owner, gateway_claims(g)),
                None => index.remove(&owner),
            }
        }
    }

    /// Records what a deployment (`Some`) or its removal (`None`) claims.
    pub(crate) async fn index_deployment(&self, name: &str, d: Option<&Deployment>) {
        if let Some(index) = self.inner.ports.lock().await.as_mut() {
            let owner = Owner::Deployment(name.to_owned());
            match d {
                Some(d) => index.set(owner, deployment_claims(d, &self.inner.config.engine)),
                None => index.remove(&owner),
            }
        }
    }

    /// Drops the port index: the next check rebuilds it from the store (after writes made by
    /// another process sharing it).
    pub async fn forget_ports(&self) {
        *self.inner.ports.lock().await = None;
    }
}
