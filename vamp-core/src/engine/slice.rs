//! Removing services from a deployment (spec §3.4) and finishing their removal.

use chrono::{DateTime, Utc};

use super::merge::{initiated, running, sync_gateways};
use crate::dsl::{DslError, ErrorKind, Mark};
use crate::model::*;

/// Marks the services `blueprint` names (by breed, per cluster) for undeployment, spec §3.4.
///
/// Allowed only when, for every gateway whose traffic the removed services carry (weight above
/// 0%), the services that remain hold 100% of the weight (or none remain) — else
/// `InvalidRouteWeight`: move the traffic first.
/// Their routes leave the internal gateways; a cluster with nothing left running loses its
/// gateways. The services stay in the deployment as `(Undeployment, Initiated)` until the
/// driver has removed them ([`finish_undeployment`]). Services or clusters the deployment
/// does not have are ignored; an empty blueprint changes nothing.
pub fn slice(
    current: &Deployment,
    blueprint: &Blueprint,
    now: DateTime<Utc>,
) -> Result<Deployment, DslError> {
    let mut d = current.clone();
    for (cname, bc) in &blueprint.clusters {
        let Some(cluster) = d.clusters.get_mut(cname) else {
            continue;
        };
        let doomed: Vec<String> = bc
            .services
            .iter()
            .map(|s| s.breed.name().to_owned())
            .collect();
        let remaining: Vec<String> = running(cluster)
            .map(|s| s.breed.name.clone())
            .filter(|n| !doomed.contains(n))
            .collect();
        for (port, spec) in &cluster.gateways {
            let left: Vec<&Ref<Route>> = spec
                .routes
                .iter()
                .filter(|(k, _)| remaining.contains(k))
                .map(|(_, r)| r)
                .collect();
            let total: u32 = left
                .iter()
                .filter_map(|r| r.inline().and_then(|r| r.weight))
                .map(|w| u32::from(w.get()))
                .sum();
            // Routes without traffic may go whatever the others hold (a gateway can sit at
            // 0% while it waits for its first weights): only removing traffic is refused.
            let removed: u32 = spec
                .routes
                .iter()
                .filter(|(k, _)| doomed.contains(k))
                .filter_map(|(_, r)| r.inline().and_then(|r| r.weight))
                .map(|w| u32::from(w.get()))
                .sum();
            if removed > 0 && !left.is_empty() && total != 100 {
                return Err(DslError::new(
                    ErrorKind::InvalidRouteWeight,
                    format!("clusters.{cname}.gateways.{port}.routes"),
                    Mark::default(),
                    format!(
                        "after removing {}, the remaining routes of gateway '{}/{cname}/{port}' \
                         would carry {total}% of the traffic; it must be 100%",
                        doomed.join(", "),
                        d.name
                    ),
                    "move all traffic to the services that stay (update the gateway weights), then remove",
                ));
            }
        }
        for s in &mut cluster.services {
            if doomed.contains(&s.breed.name) && s.status.intention == Intention::Deployment {
                s.status = initiated(Intention::Undeployment, now);
            }
        }
    }
    sync_gateways(&mut d)?;
    Ok(d)
}

/// Removes a service the driver has finished undeploying (spec §3.2): the cluster goes when it
/// is empty. Returns true when the deployment has no clusters left (it can be deleted).
pub fn finish_undeployment(d: &mut Deployment, cluster: &str, service: &str) -> bool {
    if let Some(c) = d.clusters.get_mut(cluster) {
        c.services.retain(|s| {
            !(s.breed.name == service && s.status.intention == Intention::Undeployment)
        });
        if c.services.is_empty() {
            d.clusters.shift_remove(cluster);
            d.hosts.shift_remove(cluster);
            let prefix = format!("{cluster}.");
            d.ports.retain(|k, _| !k.starts_with(&prefix));
        }
    }
    d.clusters.is_empty()
}
