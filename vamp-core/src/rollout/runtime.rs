//! The rollout runtime (issue 18): each pass reads the router's counters once, observes every
//! rollout's gateway, feeds the pure planner (`crate::rollout::plan`) and applies its actions
//! — weights through the same path as any weight change (so they reach the router at once),
//! events through the persistence (so the SSE stream carries them), the status persisted at
//! every change (so a restarted server goes on from the same step).

use chrono::{DateTime, Utc};

use super::calls;
use crate::Vamp;
use crate::dsl::ErrorKind;
use crate::model::{
    Artifact, Deployment, Event, Kind, Percentage, PhaseName, Rollout, Webhook, WebhookKind,
};
use crate::rollout::plan::{self, Command};
use crate::rollout::{Action, Counts, Observation, RolloutStatus, Weights};
use crate::traits::{Page, Precondition, RouteStats};
use crate::vamp::{dsl_error, lock};
use crate::{Error, Result};

/// What a rollout pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutReport {
    /// Rollouts ticked.
    pub ticked: usize,
    /// Weight changes applied.
    pub weight_changes: usize,
    /// Rollouts whose tick failed (logged).
    pub failed: usize,
}

/// The event type of rollout events.
pub const ROLLOUT_EVENT_TYPE: &str = "rollout";

impl Vamp {
    /// Every stored rollout.
    pub async fn rollouts(&self) -> Result<Vec<Rollout>> {
        Ok(self
            .list(Kind::Rollout, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter_map(|a| match a {
                Artifact::Rollout(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// A rollout by name.
    pub async fn rollout(&self, name: &str) -> Result<Option<Rollout>> {
        Ok(match self.get(Kind::Rollout, name).await? {
            Some(Artifact::Rollout(r)) => Some(r),
            _ => None,
        })
    }

    /// A rollout's status; `None` before its first tick.
    pub async fn rollout_status(&self, name: &str) -> Result<Option<RolloutStatus>> {
        let Some(stored) = self.db().get(Kind::RolloutStatus, name).await? else {
            return Ok(None);
        };
        serde_json::from_value(stored.value)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                backend: "persistence",
                message: format!("the status of rollout '{name}' does not read back: {e}"),
            })
    }

    async fn save_rollout_status(&self, name: &str, status: &RolloutStatus) -> Result<()> {
        let value = serde_json::to_value(status).map_err(|e| Error::backend("json", e))?;
        self.put_stored(Kind::RolloutStatus, name, &value, Precondition::Any)
            .await?;
        Ok(())
    }

    /// Forgets a rollout's status (when the rollout is deleted, or replaced after it ended).
    pub(crate) async fn forget_rollout_status(&self, name: &str) -> Result<()> {
        self.db()
            .delete(Kind::RolloutStatus, name, Precondition::Any)
            .await?;
        Ok(())
    }

    /// One pass over every rollout at the current time.
    ///
    /// # Errors
    /// When the store cannot be read; a rollout whose tick fails is logged and counted.
    pub async fn rollout_pass(&self) -> Result<RolloutReport> {
        self.rollout_pass_at(Utc::now()).await
    }

    /// One pass over every rollout at `now`.
    ///
    /// # Errors
    /// As [`rollout_pass`](Self::rollout_pass).
    pub async fn rollout_pass_at(&self, now: DateTime<Utc>) -> Result<RolloutReport> {
        let _one = self.inner.rollouts.lock().await;
        let rollouts = self.rollouts().await?;
        let mut report = RolloutReport::default();
        if rollouts.is_empty() {
            return Ok(report);
        }
        let stats = match self.route_stats().await {
            Ok(stats) => Some(stats),
            Err(Error::Unsupported { .. }) => None,
            Err(e) => return Err(e),
        };
        for rollout in rollouts {
            let status = self.rollout_status(&rollout.name).await?;
            if status.as_ref().is_some_and(|s| s.phase.is_final()) {
                lock(&self.inner.asks).forget(&rollout.name);
                continue;
            }
            report.ticked += 1;
            if status.is_none() {
                self.check_collection_periods(&rollout);
            }
            let mut observed = self.observe(&rollout, stats.as_deref()).await?;
            let wanted = plan::wants(&rollout, status.as_ref(), now);
            self.answers_for(&rollout, status.as_ref(), wanted, &mut observed, now);
            let (next, actions) = plan::tick(&rollout, status.as_ref(), &observed, now);
            match self
                .apply_rollout(&rollout, status.as_ref(), &next, actions)
                .await
            {
                Ok(changes) => report.weight_changes += changes,
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(rollout = %rollout.name, error = %e, "rollout tick failed");
                }
            }
        }
        Ok(report)
    }

    /// Applies a user's command to a rollout (promote, abort, pause, resume, retry) and
    /// returns its status.
    ///
    /// # Errors
    /// `ArtifactNotFound` for a missing rollout; `RolloutConflictError` (as
    /// [`Error::Conflict`]) when the command does not fit the phase.
    pub async fn rollout_command(&self, name: &str, command: Command) -> Result<RolloutStatus> {
        self.rollout_command_at(name, command, Utc::now()).await
    }

    /// [`rollout_command`](Self::rollout_command) at `now` (a virtual clock, as
    /// [`rollout_pass_at`](Self::rollout_pass_at)).
    ///
    /// # Errors
    /// As [`rollout_command`](Self::rollout_command).
    pub async fn rollout_command_at(
        &self,
        name: &str,
        command: Command,
        now: DateTime<Utc>,
    ) -> Result<RolloutStatus> {
        let _one = self.inner.rollouts.lock().await;
        let rollout = self.rollout(name).await?.ok_or_else(|| {
            dsl_error(
                ErrorKind::ArtifactNotFound,
                "name",
                format!("rollout '{name}' does not exist"),
                "create it first (POST /api/v1/rollouts)",
            )
        })?;
        let status = self.rollout_status(name).await?;
        let observed = self.observe(&rollout, None).await?;
        let (mut next, actions) =
            plan::command(&rollout, status.as_ref(), command, observed.weights, now).map_err(
                |e| Error::Refused {
                    what: format!("rollout '{name}'"),
                    message: e.message,
                },
            )?;
        if next.baseline.is_none() {
            next.baseline = observed.counts;
        }
        self.apply_rollout(&rollout, status.as_ref(), &next, actions)
            .await?;
        Ok(next)
    }

    /// Sets weights and publishes events as the planner asked, then persists the status when
    /// it changed. Returns how many weight changes the planner asked for (of several in one
    /// tick, only the last is set: the earlier ones would hold for no request).
    ///
    /// A weight change is written ahead (issue 24): the new status is stored first with the
    /// weights the gateway had ([`RolloutStatus::previous`]), then the weights are set, then
    /// the status is stored without them — so a leader that stops anywhere in between leaves
    /// its successor a status that says what to finish, never a step done twice or taken for
    /// a hand edit.
    async fn apply_rollout(
        &self,
        rollout: &Rollout,
        before: Option<&RolloutStatus>,
        next: &RolloutStatus,
        actions: Vec<Action>,
    ) -> Result<usize> {
        let mut changes = 0;
        let mut set = None;
        let mut events = Vec::new();
        for action in actions {
            match action {
                Action::SetWeights(w) => {
                    set = Some(w);
                    changes += 1;
                }
                Action::Event { tags, value } => {
                    if tags.first().is_some_and(|t| t == "phase") {
                        let hooks: Vec<Webhook> =
                            rollout.webhooks_of(WebhookKind::Event).cloned().collect();
                        let text = value.get("text").and_then(|t| t.as_str());
                        let mut body =
                            calls::webhook_body(rollout, WebhookKind::Event, Some(next), text);
                        // As it was when the change happened (a tick may make several).
                        for key in ["phase", "step", "weights"] {
                            if let Some(v) = value.get(key) {
                                body[key] = v.clone();
                            }
                        }
                        body["reason"] = value.get("reason").cloned().unwrap_or_default();
                        body["event"] = serde_json::json!(tags.join(" "));
                        self.deliver(rollout, hooks, body);
                    }
                    let mut all = vec![
                        "rollouts".to_owned(),
                        format!("rollouts:{}", rollout.name),
                        format!("gateways:{}", rollout.gateway),
                    ];
                    all.extend(tags);
                    let mut event = Event::new(all, value);
                    event.kind = ROLLOUT_EVENT_TYPE.into();
                    events.push(event);
                }
            }
        }
        if let Some(w) = set {
            let had = before.map(|b| b.previous.unwrap_or(b.weights));
            if let Some(had) = had.filter(|had| *had != w) {
                let mut ahead = next.clone();
                ahead.previous = Some(had);
                self.save_rollout_status(&rollout.name, &ahead).await?;
            }
            let weights = [
                (
                    rollout.stable.clone(),
                    Percentage::new(w.stable).unwrap_or(Percentage::ZERO),
                ),
                (
                    rollout.canary.clone(),
                    Percentage::new(w.canary).unwrap_or(Percentage::ZERO),
                ),
            ];
            self.set_route_weights(&rollout.gateway, &weights).await?;
            // Served before the status saying so is stored: a rollout that reads `Succeeded`
            // has its traffic on the canary, and an analysis interval starts with the step's
            // weights in force.
            if let Err(e) = self.route_now().await {
                tracing::warn!(rollout = %rollout.name, error = %e, "the new weights reach the router on the next pass");
            }
        }
        if before != Some(next) {
            self.save_rollout_status(&rollout.name, next).await?;
        }
        if next.phase.is_final() && !before.is_some_and(|b| b.phase.is_final()) {
            let hooks: Vec<Webhook> = rollout
                .webhooks_of(WebhookKind::PostRollout)
                .cloned()
                .collect();
            let body = calls::webhook_body(rollout, WebhookKind::PostRollout, Some(next), None);
            self.deliver(rollout, hooks, body);
        }
        if !events.is_empty() {
            self.publish_all(&events).await?;
        }
        Ok(changes)
    }

    /// What a rollout's gateway looks like now: the two routes' weights, whether anything
    /// it needs is gone, the router's counters and whether the canary is ready.
    async fn observe(
        &self,
        rollout: &Rollout,
        stats: Option<&[RouteStats]>,
    ) -> Result<Observation> {
        let found = self.gateway_named(&rollout.gateway).await?;
        let counts = stats.map(|all| {
            let of = |route: &str| {
                all.iter()
                    .find(|s| s.gateway == rollout.gateway && s.route == route)
                    .map(Counts::from_stats)
                    .unwrap_or_default()
            };
            (of(&rollout.stable), of(&rollout.canary))
        });
        let Some((gateway, deployment)) = found else {
            return Ok(Observation {
                missing: Some(format!("gateway '{}' is gone", rollout.gateway)),
                counts,
                ..Observation::default()
            });
        };
        let weight = |route: &str| -> Option<u8> {
            gateway
                .routes
                .get(route)
                .map(|r| r.inline().and_then(|r| r.weight).map_or(0, Percentage::get))
        };
        let missing = [&rollout.stable, &rollout.canary]
            .into_iter()
            .find(|r| weight(r).is_none())
            .map(|r| format!("route '{r}' of gateway '{}' is gone", rollout.gateway));
        if missing.is_some() {
            return Ok(Observation {
                missing,
                counts,
                ..Observation::default()
            });
        }
        let weights = Weights {
            stable: weight(&rollout.stable).unwrap_or(0),
            canary: weight(&rollout.canary).unwrap_or(0),
        };
        let canary_ready = deployment
            .as_ref()
            .is_none_or(|d| service_ready(d, &rollout.canary));
        Ok(Observation {
            weights: Some(weights),
            counts,
            canary_ready,
            ..Observation::default()
        })
    }
}

/// Whether the service a route of a deployment's gateway names runs: deployed, healthy.
fn service_ready(d: &Deployment, route: &str) -> bool {
    let parts: Vec<&str> = route.split('/').collect();
    let [_, cluster, service, _] = parts.as_slice() else {
        // External routes and routes to other gateways: nothing to wait for.
        return true;
    };
    d.clusters.get(*cluster).is_some_and(|c| {
        c.services.iter().any(|s| {
            s.breed.name == *service
                && s.status.phase.name == PhaseName::Done
                && !s.instances.is_empty()
                && s.instances.iter().all(|i| i.deployed)
        })
    })
}
