//! [`EtcdElection`]: leader election on etcd (issue 24) — the leader's key under a lease;
//! the term is the key's create revision (etcd's store revision when it was created), which
//! only grows.
//!
//! Unary calls only (no keep-alive stream to babysit): a campaign reads the key; when it is
//! free or the candidate's own, it grants a fresh lease and, in one transaction, puts the key
//! under it if it is still free or still the candidate's; the holder's previous lease is then
//! revoked. Renewing moves the key to the new lease, so its create revision — the term —
//! stays. etcd's smallest lease is about 2 s: shorter TTLs are rounded up to whole seconds
//! and at least that.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde_json::json;
use tokio::sync::Mutex;
use vamp_core::Result;
use vamp_core::traits::{Candidate, LeaderElection, Leadership};

use super::EtcdStore;

/// Leader election at `<root>/leader` on an [`EtcdStore`]'s connection.
#[derive(Debug)]
pub struct EtcdElection {
    store: EtcdStore,
    key: String,
    /// The lease the candidate's key is under, while it leads.
    lease: Mutex<Option<i64>>,
}

impl EtcdStore {
    /// Leader election among the servers sharing `root` (e.g. `/vamp/default`): the leader's
    /// key is `<root>/leader`.
    pub fn election(&self, root: &str) -> EtcdElection {
        EtcdElection {
            store: self.clone(),
            key: format!("{}/leader", root.trim_end_matches('/')),
            lease: Mutex::new(None),
        }
    }
}

fn value_of(candidate: &Candidate) -> String {
    json!({"node": candidate.node, "url": candidate.url}).to_string()
}

/// The holder and term in a read of the key.
fn holder(kv: Option<&etcd_client::KeyValue>) -> (Option<Candidate>, u64) {
    let Some(kv) = kv else {
        return (None, 0);
    };
    let value: serde_json::Value = serde_json::from_slice(kv.value()).unwrap_or_default();
    let candidate = value["node"].as_str().map(|node| Candidate {
        node: node.to_owned(),
        url: value["url"].as_str().unwrap_or_default().to_owned(),
    });
    (candidate, u64::try_from(kv.create_revision()).unwrap_or(0))
}

fn outcome(candidate: &Candidate, holder: Option<Candidate>, term: u64) -> Leadership {
    Leadership {
        leader: holder.as_ref().is_some_and(|h| h.node == candidate.node),
        term,
        holder,
    }
}

impl EtcdElection {
    async fn revoke(&self, lease: i64) {
        let mut leases = self.store.client.lease_client();
        if let Err(e) = self.store.call("lease revoke", leases.revoke(lease)).await {
            tracing::debug!(error = %e, lease, "an unused lease expires by itself");
        }
    }
}

#[async_trait]
impl LeaderElection for EtcdElection {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    /// A fencing token: the term (the key's create revision) only grows, so the persistence
    /// refuses a write of a term smaller than one that wrote.
    fn fence(&self, node: &str, term: u64) -> Option<vamp_core::traits::Fence> {
        Some(vamp_core::traits::Fence::token(
            format!("etcd:{}", self.key),
            node,
            term,
        ))
    }

    async fn campaign(&self, candidate: &Candidate, ttl: Duration) -> Result<Leadership> {
        let mut kv = self.store.client.kv_client();
        let read = self
            .store
            .call("get", kv.get(self.key.as_str(), None))
            .await?;
        let (current, term) = holder(read.kvs().first());
        if current.as_ref().is_some_and(|h| h.node != candidate.node) {
            return Ok(outcome(candidate, current, term));
        }
        let whole = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let seconds = i64::try_from(whole).unwrap_or(i64::MAX).max(2);
        let mut leases = self.store.client.lease_client();
        let lease = self
            .store
            .call("lease grant", leases.grant(seconds, None))
            .await?
            .id();
        let value = value_of(candidate);
        // Still free, or still ours: then under the new lease.
        let still = match current {
            None => Compare::create_revision(self.key.as_str(), CompareOp::Equal, 0),
            Some(_) => Compare::value(self.key.as_str(), CompareOp::Equal, value.as_str()),
        };
        let txn = Txn::new()
            .when([still])
            .and_then([
                TxnOp::put(
                    self.key.as_str(),
                    value.as_str(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
                TxnOp::get(self.key.as_str(), None),
            ])
            .or_else([TxnOp::get(self.key.as_str(), None)]);
        let answer = match self.store.call("txn", kv.txn(txn)).await {
            Ok(answer) => answer,
            Err(e) => {
                self.revoke(lease).await;
                return Err(e);
            }
        };
        let won = answer.succeeded();
        let (now, term) = answer
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(g) => Some(holder(g.kvs().first())),
                _ => None,
            })
            .unwrap_or((None, 0));
        let previous = std::mem::replace(&mut *self.lease.lock().await, won.then_some(lease));
        match previous {
            Some(old) if old != lease => self.revoke(old).await,
            _ => {}
        }
        if !won {
            self.revoke(lease).await;
        }
        Ok(outcome(candidate, now, term))
    }

    async fn resign(&self, candidate: &Candidate) -> Result<()> {
        let value = value_of(candidate);
        let txn = Txn::new()
            .when([Compare::value(
                self.key.as_str(),
                CompareOp::Equal,
                value.as_str(),
            )])
            .and_then([TxnOp::delete(self.key.as_str(), None)]);
        let mut kv = self.store.client.kv_client();
        self.store.call("txn", kv.txn(txn)).await?;
        if let Some(lease) = self.lease.lock().await.take() {
            self.revoke(lease).await;
        }
        Ok(())
    }
}
