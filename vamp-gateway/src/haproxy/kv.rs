//! `haproxy-kv`: a [`Router`] that publishes gateways to a key-value store for gateway agents
//! ([`crate::agent`]) to apply (ARCHITECTURE, "KV layout"; spec §4.1).
//!
//! `apply` writes, in this order: each changed gateway at `<root>/gateways/<name>` (JSON),
//! the rendered HAProxy text at `<root>/gateways/haproxy/2.6/configuration` (for agents that
//! apply text, and for humans), deletes the entries of removed gateways, and last the list of
//! names at `<root>/gateways`. Agents apply a state only when the list and the entries agree,
//! so they never see half an update. Unchanged values are not rewritten. Gateways that cannot
//! be rendered are reported and not published.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use vamp_core::traits::{ApplyReport, KeyValueStore, ResolvedGateway, Router};

use super::render::{RenderOptions, render};
use crate::wire::{self, WireGateway};

/// Publishes gateways under `root` (e.g. `/vamp/default`) in `kv`.
#[derive(Debug, Clone)]
pub struct KvRouter {
    kv: Arc<dyn KeyValueStore>,
    root: String,
    options: RenderOptions,
}

impl KvRouter {
    /// A router writing under `root`; `options` only shapes the published text.
    pub fn new(
        kv: Arc<dyn KeyValueStore>,
        root: impl Into<String>,
        options: RenderOptions,
    ) -> Self {
        KvRouter {
            kv,
            root: root.into(),
            options,
        }
    }

    /// The root of the keys.
    pub fn root(&self) -> &str {
        &self.root
    }

    async fn put_if_changed(&self, key: &str, value: &[u8]) -> vamp_core::Result<()> {
        if self.kv.get(key).await?.is_some_and(|e| e.value == value) {
            return Ok(());
        }
        self.kv.put(key, value).await.map(|_| ())
    }
}

#[async_trait]
impl Router for KvRouter {
    fn backend(&self) -> &'static str {
        "haproxy-kv"
    }

    /// The virtual-host frontend of the published text; agents listen where their own
    /// `--vhost-listen` says.
    fn shared_listener(&self) -> Option<std::net::SocketAddr> {
        self.options.virtual_hosts
    }

    /// The counters every gateway agent publishes under `<root>/stats/`, added up per route
    /// (requests, errors, response-time sums; no histogram).
    async fn stats(&self) -> vamp_core::Result<Vec<vamp_core::traits::RouteStats>> {
        let listing = self.kv.list(&wire::stats_prefix(&self.root)).await?;
        let mut all = Vec::with_capacity(listing.entries.len());
        for e in listing.entries {
            match serde_json::from_slice::<wire::AgentStats>(&e.value) {
                Ok(stats) => all.push(stats),
                Err(err) => {
                    tracing::warn!(key = %e.key, error = %err, "agent counters that do not read; left out")
                }
            }
        }
        Ok(wire::sum_stats(&all))
    }

    /// The text last published for agents (`<root>/gateways/haproxy/2.6/configuration`).
    async fn rendered_config(&self) -> vamp_core::Result<Option<String>> {
        Ok(self
            .kv
            .get(&wire::configuration_key(&self.root))
            .await?
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    async fn apply(&self, gateways: &[ResolvedGateway]) -> vamp_core::Result<ApplyReport> {
        let mut report = ApplyReport::default();
        let rendered = render(gateways, &self.options);
        let refused: BTreeSet<&str> = rendered.failed.iter().map(|e| e.gateway.as_str()).collect();
        for e in &rendered.failed {
            report.failed.push((e.gateway.clone(), e.to_string()));
        }
        let publish: Vec<&ResolvedGateway> = gateways
            .iter()
            .filter(|g| !refused.contains(g.name.as_str()))
            .collect();
        for g in &publish {
            self.put_if_changed(
                &wire::gateway_key(&self.root, &g.name),
                &WireGateway::from(*g).to_json(),
            )
            .await?;
        }
        self.put_if_changed(
            &wire::configuration_key(&self.root),
            rendered.config.text().as_bytes(),
        )
        .await?;
        let keep: BTreeSet<String> = publish.iter().map(|g| g.name.clone()).collect();
        for entry in self.kv.list(&wire::prefix(&self.root)).await?.entries {
            if let Some(name) = wire::name_of(&self.root, &entry.key)
                && !keep.contains(&name)
            {
                self.kv.delete(&entry.key).await?;
            }
        }
        let names: Vec<&String> = keep.iter().collect();
        let list = serde_json::to_vec(&names).unwrap_or_default();
        self.put_if_changed(&wire::list_key(&self.root), &list)
            .await?;
        report.applied = publish.iter().map(|g| g.name.clone()).collect();
        Ok(report)
    }
}
