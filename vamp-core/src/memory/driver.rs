//! [`MemoryDriver`]: a [`ContainerDriver`] whose services start at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::Result;
use crate::model::{Instance, Map, ServiceHealth};
use crate::traits::{ContainerDriver, ServiceKey, ServiceSpec, ServiceState};

/// Runs nothing: every deployed service has its instances at once, all deployed and healthy,
/// on made-up loopback ports. For tests of the engine and for measuring it without a
/// scheduler. Clones share the services.
#[derive(Debug, Clone, Default)]
pub struct MemoryDriver {
    services: Arc<Mutex<BTreeMap<ServiceKey, ServiceState>>>,
    capacity: Option<u32>,
}

impl MemoryDriver {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<ServiceKey, ServiceState>> {
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A driver that starts at most `instances` instances of a service, and reports the
    /// service failed (with the instances it did start) when asked for more — as a real
    /// scheduler does when it runs out of ports or nodes.
    ///
    /// ```
    /// let driver = vamp_core::memory::MemoryDriver::with_capacity(2);
    /// assert!(driver.is_empty());
    /// ```
    pub fn with_capacity(instances: u32) -> Self {
        MemoryDriver {
            capacity: Some(instances),
            ..MemoryDriver::default()
        }
    }

    /// How many services run.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing runs.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[async_trait]
impl ContainerDriver for MemoryDriver {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn supports(&self, _deployable_type: &str) -> bool {
        true
    }

    async fn deploy(&self, spec: &ServiceSpec) -> Result<()> {
        let mut services = self.lock();
        let base = 20000 + 10 * (services.len() as u16 % 4000);
        let started = self
            .capacity
            .map_or(spec.scale.instances, |c| c.min(spec.scale.instances));
        let failure = (started < spec.scale.instances).then(|| {
            format!(
                "started {started} of {} instances: no capacity left",
                spec.scale.instances
            )
        });
        let instances: Vec<Instance> = (0..started)
            .map(|i| Instance {
                name: format!("{}/{i}", spec.key),
                host: "127.0.0.1".into(),
                ports: spec
                    .breed
                    .ports
                    .keys()
                    .enumerate()
                    .map(|(p, name)| (name.clone(), base + i as u16 * 2 + p as u16))
                    .collect::<Map<u16>>(),
                deployed: true,
            })
            .collect();
        let n = u32::try_from(instances.len()).unwrap_or(u32::MAX);
        services.insert(
            spec.key.clone(),
            ServiceState {
                key: Some(spec.key.clone()),
                instances,
                health: Some(ServiceHealth {
                    staged: 0,
                    running: n,
                    healthy: n,
                    unhealthy: 0,
                }),
                fingerprint: Some(spec.fingerprint()),
                failure,
            },
        );
        Ok(())
    }

    async fn undeploy(&self, key: &ServiceKey) -> Result<()> {
        self.lock().remove(key);
        Ok(())
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        Ok(self.lock().values().cloned().collect())
    }
}
