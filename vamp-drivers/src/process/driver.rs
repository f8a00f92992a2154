//! The [`ContainerDriver`] trait over the processes.

use super::*;

#[async_trait]
impl ContainerDriver for ProcessDriver {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn supports(&self, deployable_type: &str) -> bool {
        matches!(deployable_type, "command" | "cmd")
    }

    fn check_deployable(
        &self,
        deployable: &vamp_core::model::Deployable,
    ) -> std::result::Result<(), String> {
        let kind = &deployable.kind;
        if !self.supports(kind) {
            return Err(format!(
                "the process driver runs 'command' deployables, not '{kind}'"
            ));
        }
        if !self.config.run_commands {
            return Err("the process driver runs commands only where it is chosen explicitly (driver.kind = \"process\" in vamp.toml, VAMP_DRIVER__KIND=process, or --demo): a command breed runs any program as the server's user".into());
        }
        Ok(())
    }

    async fn run_once(
        &self,
        spec: &vamp_core::traits::RunSpec,
        lines: vamp_core::traits::LineSink<'_>,
    ) -> Result<vamp_core::traits::RunOutcome> {
        self.run_command(spec, lines).await
    }

    async fn deploy(&self, spec: &ServiceSpec) -> Result<()> {
        if let Err(message) = self.check_deployable(&spec.breed.deployable) {
            return Err(Error::Invalid {
                what: "deployable",
                message,
            });
        }
        let mut inner = self.inner.lock().await;
        let mut all = self.load()?;
        let key = state::Key::from(&spec.key);
        let mut record = match all.iter().position(|r| r.key == key) {
            Some(i) => all.swap_remove(i),
            None => ServiceRecord {
                key,
                fingerprint: String::new(),
                health_checks: Vec::new(),
                instances: Vec::new(),
                failure: None,
            },
        };
        Self::recover_pending(&mut record);
        let _ = self.reap(&mut inner, &mut record);
        let fingerprint = spec.fingerprint();
        if record.fingerprint != fingerprint {
            for i in std::mem::take(&mut record.instances) {
                self.stop(&mut inner, &i).await;
            }
        }
        record.fingerprint = fingerprint;
        record.health_checks = spec
            .health_checks
            .iter()
            .map(crate::health::Check::from)
            .collect();
        record.failure = None;
        let wanted = usize::try_from(spec.scale.instances).unwrap_or(usize::MAX);
        record.instances.sort_by_key(|i| i.index);
        while record.instances.len() > wanted {
            if let Some(i) = record.instances.pop() {
                self.stop(&mut inner, &i).await;
            }
        }
        if record.instances.len() < wanted {
            let argv = match command::split(&spec.breed.deployable.definition) {
                Ok(argv) => argv,
                Err(e) => {
                    record.failure = Some(e.to_string());
                    return self.save(&record);
                }
            };
            let mut used: BTreeSet<u16> = all
                .iter()
                .chain(std::iter::once(&record))
                .flat_map(|r| r.instances.iter().flat_map(|i| i.ports.values().copied()))
                .collect();
            let mut index = 0;
            while record.instances.len() < wanted {
                while record.instances.iter().any(|i| i.index == index) {
                    index += 1;
                }
                match self
                    .start(&mut inner, &mut record, spec, &argv, index, &mut used)
                    .await
                {
                    Ok(()) => {}
                    Err(reason) => {
                        tracing::warn!(service = %spec.key, %reason, "cannot start instance");
                        record.failure = Some(reason);
                        break;
                    }
                }
            }
        }
        self.save(&record)
    }

    async fn undeploy(&self, key: &ServiceKey) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let wanted = state::Key::from(key);
        if let Some(mut record) = self.load()?.into_iter().find(|r| r.key == wanted) {
            Self::recover_pending(&mut record);
            for i in &record.instances {
                self.stop(&mut inner, i).await;
            }
        }
        state::remove(&self.services_dir(), key).map_err(|e| io_error(&self.config, e))
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        let mut inner = self.inner.lock().await;
        let mut out = Vec::new();
        for mut record in self.load()? {
            let before = record.instances.len();
            let recovered = Self::recover_pending(&mut record);
            if let Some(reason) = self.reap(&mut inner, &mut record) {
                record.failure = Some(reason);
            }
            if recovered || record.instances.len() != before {
                self.save(&record)?;
            }
            let host = self.config.host.clone();
            let checks = futures::future::join_all(record.instances.iter().map(|i| {
                crate::health::all_pass(
                    &record.health_checks,
                    &host,
                    &i.ports,
                    self.config.health_timeout,
                )
            }))
            .await;
            let healthy = u32::try_from(checks.iter().filter(|h| **h).count()).unwrap_or(u32::MAX);
            let running = u32::try_from(record.instances.len()).unwrap_or(u32::MAX);
            let key = ServiceKey::from(&record.key);
            out.push(ServiceState {
                instances: record
                    .instances
                    .iter()
                    .map(|i| Instance {
                        name: format!("{key}/{}", i.index),
                        host: host.clone(),
                        ports: i.ports.clone(),
                        deployed: true,
                    })
                    .collect(),
                key: Some(key),
                health: Some(ServiceHealth {
                    staged: 0,
                    running,
                    healthy,
                    unhealthy: running - healthy,
                }),
                fingerprint: Some(record.fingerprint.clone()),
                failure: record.failure.clone(),
            });
        }
        Ok(out)
    }
}
