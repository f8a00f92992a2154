//! What a rollout must agree with before it is stored: rules that need the store and the
//! router (the field-level ones are in the DSL reader).

use crate::dsl::ErrorKind;
use crate::model::*;
use crate::vamp::dsl_error;

use super::calls;
use crate::{Error, Result, Vamp};

impl Vamp {
    /// The rules of rollouts that depend on the store and the router: the gateway and both
    /// routes exist, no other rollout works on that gateway, the router can measure the
    /// metrics, and a progressing rollout is not changed under its feet.
    pub(crate) async fn rollout_rules(&self, rollout: &Rollout) -> Result<()> {
        let Some((gateway, _)) = self.gateway_named(&rollout.gateway).await? else {
            return Err(dsl_error(
                ErrorKind::UnresolvedRolloutRouteError,
                "gateway",
                format!("gateway '{}' does not exist", rollout.gateway),
                "name a standalone gateway or a deployment's gateway (GET /api/v1/gateways)",
            ));
        };
        for (field, route) in [("stable", &rollout.stable), ("canary", &rollout.canary)] {
            if !gateway.routes.contains_key(route.as_str()) {
                let known: Vec<&str> = gateway.routes.keys().map(String::as_str).collect();
                return Err(dsl_error(
                    ErrorKind::UnresolvedRolloutRouteError,
                    field,
                    format!("gateway '{}' has no route '{route}'", rollout.gateway),
                    &format!("use one of its routes: {}", known.join(", ")),
                ));
            }
        }
        for other in self.rollouts().await? {
            if other.name != rollout.name && other.gateway == rollout.gateway {
                return Err(dsl_error(
                    ErrorKind::RolloutConflictError,
                    "gateway",
                    format!(
                        "rollout '{}' already works on gateway '{}'",
                        other.name, rollout.gateway
                    ),
                    "delete that rollout first, or change it instead",
                ));
            }
        }
        for (i, check) in rollout.analysis.metrics.iter().enumerate() {
            if let Check::Provider(p) = check
                && !self.inner.providers.iter().any(|x| x.kind() == p.provider)
            {
                return Err(dsl_error(
                    ErrorKind::UnsupportedRolloutMetric,
                    &format!("analysis.metrics[{i}].provider"),
                    format!("this server has no {} provider", p.provider.as_str()),
                    "use a provider it has, or a built-in metric; vamp-server has them with its default features",
                ));
            }
        }
        let allowed = &self.inner.config.call_hosts;
        if !allowed.is_empty() {
            for (field, url) in calls::called_urls(rollout) {
                let host = calls::url_host(&url).unwrap_or_default();
                if !allowed.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                    return Err(dsl_error(
                        ErrorKind::InvalidRolloutError,
                        &field,
                        format!("'{host}' is not a host rollouts may call"),
                        &format!(
                            "call one of {} (the server's rollouts.call_hosts)",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        if !rollout.webhooks.is_empty() && self.inner.webhook_sender.is_none() {
            return Err(dsl_error(
                ErrorKind::InvalidRolloutError,
                "webhooks[0]",
                "this server sends no webhooks".into(),
                "leave the webhooks out, or run a server built with them (vamp-server's default features)",
            ));
        }
        if !self.inner.router.measures_percentiles()
            && let Some((i, m)) = rollout
                .analysis
                .metrics
                .iter()
                .enumerate()
                .find_map(|(i, c)| match c {
                    Check::BuiltIn(m) if m.metric.needs_percentiles() => Some((i, m)),
                    _ => None,
                })
        {
            return Err(dsl_error(
                ErrorKind::UnsupportedRolloutMetric,
                &format!("analysis.metrics[{i}].metric"),
                format!(
                    "the {} router cannot measure {}: it keeps no response-time distribution",
                    self.inner.router.backend(),
                    m.metric.name()
                ),
                "use latency-mean (the average HAProxy keeps), success-rate, error-rate or \
                 request-rate, or the embedded router",
            ));
        }
        if let Some(status) = self.rollout_status(&rollout.name).await?
            && status.phase == crate::rollout::Phase::Progressing
            && self.rollout(&rollout.name).await?.as_ref() != Some(rollout)
        {
            return Err(Error::Refused {
                what: format!("rollout '{}'", rollout.name),
                message: "it is progressing: pause it (POST /api/v1/rollouts/<name>/pause) or let it end before changing it".into(),
            });
        }
        Ok(())
    }
}
