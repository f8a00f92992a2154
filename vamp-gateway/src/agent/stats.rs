//! HAProxy's per-route counters, published to the store for the server's rollouts and SLAs.

use super::*;

impl Agent {
    /// Writes HAProxy's per-route counters to `<root>/stats/<name>` when they changed since
    /// `last`; returns what it wrote.
    pub(super) async fn publish_stats(
        &self,
        last: Option<&[u8]>,
    ) -> vamp_core::Result<Option<Vec<u8>>> {
        let routes = self
            .router
            .stats()
            .await?
            .into_iter()
            .map(|r| wire::WireRouteStats {
                gateway: r.gateway,
                route: r.route,
                requests: r.requests,
                errors: r.errors,
                sum_ms: r.latency.sum_ms,
            })
            .collect::<Vec<_>>();
        let routes_json =
            serde_json::to_vec(&routes).map_err(|e| vamp_core::Error::backend("json", e))?;
        if last == Some(routes_json.as_slice()) {
            return Ok(None);
        }
        let stats = wire::AgentStats {
            at: chrono::Utc::now(),
            routes,
        };
        let value = serde_json::to_vec(&stats).map_err(|e| vamp_core::Error::backend("json", e))?;
        let key = format!(
            "{}{}",
            wire::stats_prefix(&self.config.root),
            vamp_core::traits::kv::encode_segment(&self.config.name)
        );
        self.kv.put(&key, &value).await?;
        Ok(Some(routes_json))
    }
}
