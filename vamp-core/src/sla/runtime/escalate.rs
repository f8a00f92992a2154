//! Step 3 of an SLA pass (spec §5.5): escalations — an SLA event's cluster rescaled as its
//! SLA's escalations plan ([`sla::plan`]).

use std::collections::HashMap;
use std::ops::Bound;

use chrono::{DateTime, Utc};

use crate::Result;
use crate::Vamp;
use crate::model::*;
use crate::sla::{self, Direction, Scales};
use crate::traits::{EventFilter, Page};
use crate::vamp::lock;

impl Vamp {
    pub(super) async fn resolve_sla(&self, sla: Option<&Ref<Sla>>) -> Result<Option<Sla>> {
        Ok(match sla {
            None => None,
            Some(Ref::Inline(Sla {
                kind: SlaKind::Extends(name),
                escalations,
                ..
            })) => match self.get(Kind::Sla, name).await? {
                Some(Artifact::Sla(mut s)) => {
                    s.escalations.extend(escalations.iter().cloned());
                    Some(s)
                }
                _ => {
                    tracing::warn!(sla = %name, "a cluster refers to an SLA that is not stored; it is not checked");
                    None
                }
            },
            Some(Ref::Inline(s)) => Some(s.clone()),
            Some(Ref::Reference(name)) => match self.get(Kind::Sla, name).await? {
                Some(Artifact::Sla(s)) => Some(s),
                _ => {
                    tracing::warn!(sla = %name, "a cluster refers to an SLA that is not stored; it is not checked");
                    None
                }
            },
        })
    }

    /// Escalations for the SLA events in (previous pass, now]: those posted through the API
    /// (the pass's own checks escalate at once).
    /// The stored escalations, by name (what SLAs refer to).
    pub(super) async fn stored_escalations(&self) -> Result<HashMap<String, Escalation>> {
        Ok(self
            .list(Kind::Escalation, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter_map(|a| match a {
                Artifact::Escalation(e) => Some((e.name.clone(), e)),
                _ => None,
            })
            .collect())
    }

    pub(super) async fn escalate(
        &self,
        now: DateTime<Utc>,
        escalations: &HashMap<String, Escalation>,
    ) -> Result<Vec<(String, String, String, Scale)>> {
        let from = lock(&self.inner.sla).escalated_until;
        if now <= from {
            return Ok(Vec::new());
        }
        let filter = EventFilter {
            tags: vec!["sla".into()],
            from: Bound::Excluded(from),
            until: Bound::Included(now),
            ..EventFilter::default()
        };
        let mut events = self.events(&filter, Page::ALL).await?.items;
        // Oldest first: escalations apply in the order they were asked for.
        events.sort_by_key(|e| e.id);
        let mut scaled = Vec::new();
        for e in events {
            let tag = |prefix: &str| {
                e.event
                    .tags
                    .iter()
                    .find_map(|t| t.strip_prefix(prefix).map(str::to_owned))
            };
            let (Some(deployment), Some(cluster), Some(direction)) = (
                tag("deployment:"),
                tag("cluster:"),
                Direction::from_tags(&e.event.tags),
            ) else {
                continue;
            };
            // Posted SLA events start the cooldown too.
            if let Some(last) = lock(&self.inner.sla)
                .last_sla
                .get_mut(&(deployment.clone(), cluster.clone()))
            {
                *last = Some(last.map_or(e.event.timestamp, |t| t.max(e.event.timestamp)));
            }
            match self
                .escalate_one(&deployment, &cluster, direction, escalations)
                .await
            {
                Ok(changes) => scaled.extend(changes),
                Err(err) => {
                    tracing::warn!(%deployment, %cluster, error = %err, "escalation not applied");
                }
            }
        }
        lock(&self.inner.sla).escalated_until = now;
        Ok(scaled)
    }

    pub(super) async fn escalate_one(
        &self,
        deployment: &str,
        cluster: &str,
        direction: Direction,
        escalations: &HashMap<String, Escalation>,
    ) -> Result<Vec<(String, String, String, Scale)>> {
        let Some(d) = self.deployment(deployment).await? else {
            return Ok(Vec::new());
        };
        let Some(sla) = self
            .resolve_sla(d.clusters.get(cluster).and_then(|c| c.sla.as_ref()))
            .await?
        else {
            return Ok(Vec::new());
        };
        let steps = sla::steps(&sla.escalations, escalations, 0);
        let default = &self.inner.config.engine.default_scale;
        let scales: Scales = d
            .clusters
            .iter()
            .filter_map(|(name, c)| {
                let first = c.services.first()?;
                Some((
                    name.clone(),
                    first.scale.clone().unwrap_or_else(|| default.clone()),
                ))
            })
            .collect();
        let mut out = Vec::new();
        for (target, scale) in sla::plan(&steps, direction, cluster, &scales) {
            let Some(service) = d
                .clusters
                .get(&target)
                .and_then(|c| c.services.first())
                .map(|s| s.breed.name.clone())
            else {
                continue;
            };
            tracing::info!(%deployment, cluster = %target, %service, ?direction, instances = scale.instances, "escalation: rescaling");
            self.scale(deployment, &target, &service, scale.clone())
                .await?;
            out.push((deployment.to_owned(), target, service, scale));
        }
        Ok(out)
    }
}
