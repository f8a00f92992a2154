//! The [`ContainerDriver`] trait over Swarm services.

use super::*;

#[async_trait]
impl ContainerDriver for SwarmDriver {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn supports(&self, deployable_type: &str) -> bool {
        common::supports(deployable_type)
    }

    /// A run to completion (a workflow's) is one container on the manager this driver talks
    /// to, as on the Docker driver: a one-shot Swarm service would place its task on any node
    /// and its output would come back through the service log, later and without order
    /// between the two streams.
    async fn run_once(
        &self,
        spec: &vamp_core::traits::RunSpec,
        lines: vamp_core::traits::LineSink<'_>,
    ) -> Result<vamp_core::traits::RunOutcome> {
        crate::docker::run::run_container(&self.daemon, spec, lines).await
    }

    async fn deploy(&self, spec: &ServiceSpec) -> Result<()> {
        common::check_deployable(BACKEND, spec)?;
        let _writes = self.daemon.write(&spec.key).await;
        let fingerprint = spec.fingerprint();
        let (mut keep, mut drop): (Vec<Unit>, Vec<Unit>) = self
            .units(Some(&spec.key))
            .await?
            .into_iter()
            .partition(|u| u.described.fingerprint == fingerprint);
        keep.sort_by_key(|u| u.described.index);
        let wanted = usize::try_from(spec.scale.instances).unwrap_or(usize::MAX);
        if keep.len() > wanted {
            drop.extend(keep.split_off(wanted));
        }
        // A task takes Swarm about 3 s to stop: all at once.
        futures::future::join_all(drop.iter().map(|u| self.remove(u))).await;
        let mut used: BTreeSet<u16> = self
            .units(None)
            .await?
            .iter()
            .flat_map(|u| u.described.ports.values().copied())
            .collect();
        let kept: Vec<u32> = keep.iter().map(|u| u.described.index).collect();
        for index in common::free_indexes(&kept, wanted) {
            if let Err(reason) = self.start(spec, index, &mut used).await {
                self.daemon.failed(spec, &fingerprint, reason);
                break;
            }
        }
        Ok(())
    }

    async fn undeploy(&self, key: &ServiceKey) -> Result<()> {
        let _writes = self.daemon.write(key).await;
        let units = self.units(Some(key)).await?;
        futures::future::join_all(units.iter().map(|u| self.remove(u))).await;
        Ok(())
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        let units = self.units(None).await?;
        let tasks = self.tasks(units.iter().map(|u| u.id.clone())).await?;
        let nodes = if units.is_empty() {
            HashMap::new()
        } else {
            self.node_addresses().await?
        };
        let mut grouped: Vec<(ServiceKey, Vec<Unit>)> = Vec::new();
        for u in units {
            match grouped.iter_mut().find(|(k, _)| *k == u.described.key) {
                Some((_, list)) => list.push(u),
                None => grouped.push((u.described.key.clone(), vec![u])),
            }
        }
        let mut out = Vec::new();
        for (key, mut units) in grouped {
            units.sort_by_key(|u| u.described.index);
            let mut failure_reason = lock(&self.daemon.failures)
                .get(&key)
                .map(|(_, reason)| reason.clone());
            let mut running = Vec::new();
            for u in &units {
                let mine: Vec<&Task> = tasks
                    .iter()
                    .filter(|t| t.service_id.as_deref() == Some(u.id.as_str()))
                    .collect();
                if let Some(task) = mine
                    .iter()
                    .find(|t| task_state(t) == Some(TaskState::RUNNING))
                {
                    let host = task
                        .node_id
                        .as_ref()
                        .and_then(|n| nodes.get(n))
                        .cloned()
                        .unwrap_or_else(|| self.daemon.config.address.clone());
                    running.push((u, host));
                } else if failure_reason.is_none() {
                    failure_reason = failure(u, &mine);
                }
            }
            let healthy = futures::future::join_all(running.iter().map(|(u, host)| {
                all_pass(
                    &u.described.checks,
                    host,
                    &u.described.ports,
                    self.daemon.config.health_timeout,
                )
            }))
            .await
            .into_iter()
            .filter(|h| *h)
            .count();
            let n = u32::try_from(running.len()).unwrap_or(u32::MAX);
            let healthy = u32::try_from(healthy).unwrap_or(u32::MAX);
            out.push(ServiceState {
                instances: running
                    .iter()
                    .map(|(u, host)| Instance {
                        name: u.name.clone(),
                        host: host.clone(),
                        ports: u.described.ports.clone(),
                        deployed: true,
                    })
                    .collect(),
                fingerprint: units.first().map(|u| u.described.fingerprint.clone()),
                health: Some(ServiceHealth {
                    staged: u32::try_from(units.len())
                        .unwrap_or(u32::MAX)
                        .saturating_sub(n),
                    running: n,
                    healthy,
                    unhealthy: n - healthy,
                }),
                failure: failure_reason,
                key: Some(key),
            });
        }
        self.daemon.add_failures(&mut out);
        Ok(out)
    }
}
