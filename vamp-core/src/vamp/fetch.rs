//! What a check needs from the store, fetched as it asks, instead of a snapshot of every
//! stored artifact: validating a write then costs what it refers to, not the size of the
//! store.
//!
//! A check (a pure function of an [`ArtifactSource`]) runs against what was fetched so far;
//! what it asked for and did not find fetched is fetched, and it runs again, until it asks
//! for nothing new. Only the last run counts, and it saw everything it looked at, so the
//! answer is the one a full snapshot would give. References form a finite graph and every
//! round fetches something new, so the rounds end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::dsl::ArtifactSource;
use crate::model::{Artifact, Kind};
use crate::traits::Page;
use crate::{Error, Result};

use super::{Vamp, lock};

/// Rounds after which a check that keeps asking is a bug, not a deep reference chain.
const MAX_ROUNDS: usize = 64;

#[derive(Default)]
struct Fetched {
    one: BTreeMap<(Kind, String), Option<Artifact>>,
    all: BTreeMap<Kind, Vec<Artifact>>,
}

/// What a round asked for and had not been fetched: single artifacts, and whole kinds.
#[derive(Default)]
struct Lacked {
    one: BTreeSet<(Kind, String)>,
    all: BTreeSet<Kind>,
}

/// The source a round sees: `alongside` over what was fetched; it notes what it lacked.
struct Asking<'a> {
    fetched: &'a Fetched,
    alongside: &'a [Artifact],
    /// The stored claimants of the ports the checked gateways use (from the port index).
    ports: &'a BTreeMap<u16, Vec<String>>,
    lacked: Mutex<Lacked>,
}

impl ArtifactSource for Asking<'_> {
    fn artifact(&self, kind: Kind, name: &str) -> Option<Artifact> {
        if let Some(a) = self
            .alongside
            .iter()
            .find(|a| a.kind() == kind && a.name() == name)
        {
            return Some(a.clone());
        }
        if let Some(all) = self.fetched.all.get(&kind) {
            return all.iter().find(|a| a.name() == name).cloned();
        }
        match self.fetched.one.get(&(kind, name.to_owned())) {
            Some(found) => found.clone(),
            None => {
                lock(&self.lacked).one.insert((kind, name.to_owned()));
                None
            }
        }
    }

    fn port_owners(&self, port: u16) -> Option<Vec<String>> {
        let stored = self.ports.get(&port)?;
        // Gateways sent alongside replace the stored ones of their name.
        let replaced = |name: &String| {
            self.alongside
                .iter()
                .any(|a| a.kind() == Kind::Gateway && a.name() == name)
        };
        let mut owners: Vec<String> = stored.iter().filter(|n| !replaced(n)).cloned().collect();
        for a in self.alongside {
            if let Artifact::Gateway(g) = a
                && g.port.is_some_and(|p| p.number == port)
            {
                owners.push(g.name.clone());
            }
        }
        Some(owners)
    }

    fn artifacts(&self, kind: Kind) -> Vec<Artifact> {
        let mut out = match self.fetched.all.get(&kind) {
            Some(all) => all.clone(),
            None => {
                lock(&self.lacked).all.insert(kind);
                Vec::new()
            }
        };
        for a in self.alongside.iter().filter(|a| a.kind() == kind) {
            out.retain(|o| o.name() != a.name());
            out.push(a.clone());
        }
        out
    }
}

impl Vamp {
    /// Runs `check` against the store as it would be with `alongside` stored too, fetching
    /// only what the check asks for (see the module docs). The ports of the gateways among
    /// `alongside` are looked up in the port index, not by listing every gateway.
    pub(crate) async fn checked<T>(
        &self,
        alongside: &[Artifact],
        check: impl Fn(&dyn ArtifactSource) -> T,
    ) -> Result<T> {
        let wanted: Vec<u16> = alongside
            .iter()
            .filter_map(|a| match a {
                Artifact::Gateway(g) => g.port.map(|p| p.number).filter(|p| *p != 0),
                _ => None,
            })
            .collect();
        let ports: BTreeMap<u16, Vec<String>> = if wanted.is_empty() {
            BTreeMap::new()
        } else {
            self.with_ports(|index| wanted.iter().map(|p| (*p, index.owners(*p))).collect())
                .await?
        };
        let mut fetched = Fetched::default();
        for _ in 0..MAX_ROUNDS {
            let asking = Asking {
                fetched: &fetched,
                alongside,
                ports: &ports,
                lacked: Mutex::default(),
            };
            let out = check(&asking);
            let Lacked {
                one: ones,
                all: kinds,
            } = asking
                .lacked
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if ones.is_empty() && kinds.is_empty() {
                return Ok(out);
            }
            for kind in kinds {
                let all = self.readable(kind).await?;
                fetched.all.insert(kind, all);
            }
            for (kind, name) in ones {
                let found = match self.get(kind, &name).await {
                    Ok(found) => found,
                    // A record that no longer reads is left out, as in `snapshot`.
                    Err(e @ Error::Corrupt { .. }) => {
                        tracing::warn!(error = %e, "left out of validation");
                        None
                    }
                    Err(e) => return Err(e),
                };
                fetched.one.insert((kind, name), found);
            }
        }
        Err(Error::Invalid {
            what: "validation",
            message: format!("a check kept asking for more after {MAX_ROUNDS} rounds"),
        })
    }

    /// Every artifact of `kind` that reads back (the others are logged and left out).
    pub(crate) async fn readable(&self, kind: Kind) -> Result<Vec<Artifact>> {
        let mut out = Vec::new();
        for stored in self.db().list(kind, Page::ALL).await?.items {
            // One record that no longer reads (written by hand or by something else
            // sharing the store) must not block every write: it is left out of the
            // references writes are checked against, and named in the log.
            match self.decode(kind, &stored) {
                Ok(artifact) => out.push(artifact),
                Err(e) => {
                    tracing::warn!(error = %e, "a stored artifact that does not read back is left out")
                }
            }
        }
        Ok(out)
    }
}
