//! The [`ContainerDriver`] trait over containers.

use super::*;

#[async_trait]
impl ContainerDriver for DockerDriver {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn supports(&self, deployable_type: &str) -> bool {
        common::supports(deployable_type)
    }

    async fn run_once(
        &self,
        spec: &vamp_core::traits::RunSpec,
        lines: vamp_core::traits::LineSink<'_>,
    ) -> Result<vamp_core::traits::RunOutcome> {
        run::run_container(&self.daemon, spec, lines).await
    }

    async fn deploy(&self, spec: &ServiceSpec) -> Result<()> {
        common::check_deployable(BACKEND, spec)?;
        let _writes = self.daemon.write(&spec.key).await;
        let fingerprint = spec.fingerprint();
        let mut keep = Vec::new();
        for c in self.containers(Some(&spec.key)).await? {
            if c.running && c.fingerprint == fingerprint {
                keep.push(c);
            } else {
                self.remove(&c.id).await;
            }
        }
        keep.sort_by_key(|c| c.index);
        let wanted = usize::try_from(spec.scale.instances).unwrap_or(usize::MAX);
        while keep.len() > wanted {
            if let Some(c) = keep.pop() {
                self.remove(&c.id).await;
            }
        }
        let mut used: BTreeSet<u16> = self
            .containers(None)
            .await?
            .iter()
            .flat_map(|c| c.ports.values().copied())
            .collect();
        let kept: Vec<u32> = keep.iter().map(|c| c.index).collect();
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
        for c in self.containers(Some(key)).await? {
            self.remove(&c.id).await;
        }
        Ok(())
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        let mut grouped: Vec<(ServiceKey, Vec<Container>)> = Vec::new();
        for c in self.containers(None).await? {
            match grouped.iter_mut().find(|(k, _)| *k == c.key) {
                Some((_, list)) => list.push(c),
                None => grouped.push((c.key.clone(), vec![c])),
            }
        }
        let mut out = Vec::new();
        for (key, containers) in grouped {
            let mut failure = lock(&self.daemon.failures)
                .get(&key)
                .map(|(_, reason)| reason.clone());
            for c in containers.iter().filter(|c| !c.running) {
                if failure.is_none() {
                    failure = self.early_exit(c).await;
                }
            }
            let running: Vec<&Container> = containers.iter().filter(|c| c.running).collect();
            let address = self.daemon.config.address.clone();
            let healthy = futures::future::join_all(running.iter().map(|c| {
                all_pass(
                    &c.checks,
                    &address,
                    &c.ports,
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
                    .map(|c| Instance {
                        name: c.id.chars().take(12).collect(),
                        host: address.clone(),
                        ports: c.ports.clone(),
                        deployed: true,
                    })
                    .collect(),
                fingerprint: containers.first().map(|c| c.fingerprint.clone()),
                health: Some(ServiceHealth {
                    staged: 0,
                    running: n,
                    healthy,
                    unhealthy: n - healthy,
                }),
                failure,
                key: Some(key),
            });
        }
        self.daemon.add_failures(&mut out);
        Ok(out)
    }
}
