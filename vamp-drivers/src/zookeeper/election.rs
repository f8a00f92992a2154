//! [`ZookeeperElection`]: leader election on ZooKeeper (issue 24), the recipe of its manual —
//! each candidate holds an ephemeral sequential znode under `<root>/election`, and the
//! lowest one leads. The lease is the candidate's session: when it ends (the process died or
//! was paused past the session timeout), ZooKeeper deletes the znode and the next one leads.
//! The term is the leader's sequence number (plus one), which only grows under one parent.
//!
//! So the TTL that counts is the session timeout of the [`ZookeeperStore`] the election runs
//! on ([`ZookeeperConfig::session_timeout`](super::ZookeeperConfig::session_timeout)): make it
//! the election's TTL (`vamp-server` does). A campaign makes sure the candidate's znode
//! exists in the current session (a new session means a new znode, a new place in line),
//! then reads the line.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Mutex;
use vamp_core::traits::{Candidate, LeaderElection, Leadership};
use vamp_core::{Error, Result};
use zookeeper_client as zk;

use super::{CallError, ZookeeperStore};

/// The znodes of the line, under the store's root.
const ELECTION: &str = "election";
/// The prefix of each candidate's znode.
const PREFIX: &str = "n-";

/// Leader election under `<root>/election` on a [`ZookeeperStore`]'s session.
#[derive(Debug)]
pub struct ZookeeperElection {
    store: ZookeeperStore,
    /// The candidate's znode and the session it belongs to.
    own: Mutex<Option<(zk::SessionId, String)>>,
}

impl ZookeeperStore {
    /// Leader election among the servers sharing this store's root; the session timeout is
    /// the lease.
    pub fn election(&self) -> ZookeeperElection {
        ZookeeperElection {
            store: self.clone(),
            own: Mutex::new(None),
        }
    }
}

/// A znode's place in line, from 1 (ZooKeeper counts from 0; a term is above 0).
fn sequence_of(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .parse::<u64>()
        .ok()
        .map(|s| s + 1)
}

impl ZookeeperElection {
    fn fail(&self, operation: &'static str, e: CallError) -> Error {
        self.store.error(operation, e)
    }

    fn line(&self) -> String {
        self.store.node(ELECTION)
    }

    /// The candidate's znode in the current session, created when missing.
    async fn own_node(&self, client: &zk::Client, candidate: &Candidate) -> Result<String> {
        let mut own = self.own.lock().await;
        let session = client.session_id();
        if let Some((s, path)) = own.as_ref()
            && *s == session
        {
            match self.store.call("exists", client.check_stat(path)).await {
                Ok(Some(_)) => return Ok(path.clone()),
                Ok(None) => {}
                Err(e) => return Err(self.fail("exists", e)),
            }
        }
        let data = json!({"node": candidate.node, "url": candidate.url}).to_string();
        let prefix = format!("{}/{PREFIX}", self.line());
        let mode = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, sequence) = self
            .store
            .call("create", client.create(&prefix, data.as_bytes(), &mode))
            .await
            .map_err(|e| self.fail("create", e))?;
        let path = format!("{prefix}{sequence}");
        *own = Some((session, path.clone()));
        Ok(path)
    }
}

#[async_trait]
impl LeaderElection for ZookeeperElection {
    fn backend(&self) -> &'static str {
        "zookeeper"
    }

    /// A fencing token: the term (the znode's sequence number + 1) only grows under the
    /// line's parent, so the persistence refuses a write of a term smaller than one that wrote.
    fn fence(&self, node: &str, term: u64) -> Option<vamp_core::traits::Fence> {
        Some(vamp_core::traits::Fence::token(
            format!("zookeeper:{}", self.line()),
            node,
            term,
        ))
    }

    async fn campaign(&self, candidate: &Candidate, _ttl: Duration) -> Result<Leadership> {
        self.store.create_if_missing(&self.line()).await?;
        let client = self.store.client().await?;
        let own = self.own_node(&client, candidate).await?;
        let mut line: Vec<(u64, String)> = self
            .store
            .call("children", client.list_children(&self.line()))
            .await
            .map_err(|e| self.fail("children", e))?
            .into_iter()
            .filter_map(|name| sequence_of(&name).map(|s| (s, name)))
            .collect();
        line.sort();
        // The first of the line that still exists leads (one may go between two calls).
        for (term, name) in line {
            let path = format!("{}/{name}", self.line());
            let data = match self.store.call("get", client.get_data(&path)).await {
                Ok((data, _)) => data,
                Err(CallError::Zk(zk::Error::NoNode)) => continue,
                Err(e) => return Err(self.fail("get", e)),
            };
            let value: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
            let holder = Candidate {
                node: value["node"].as_str().unwrap_or_default().to_owned(),
                url: value["url"].as_str().unwrap_or_default().to_owned(),
            };
            return Ok(Leadership {
                leader: path == own,
                term,
                holder: Some(holder),
            });
        }
        Ok(Leadership::default())
    }

    async fn resign(&self, _candidate: &Candidate) -> Result<()> {
        let Some((_, path)) = self.own.lock().await.take() else {
            return Ok(());
        };
        let client = self.store.client().await?;
        match self.store.call("delete", client.delete(&path, None)).await {
            Ok(()) | Err(CallError::Zk(zk::Error::NoNode)) => Ok(()),
            Err(e) => Err(self.fail("delete", e)),
        }
    }
}
