//! The deployment engine's pure planners (spec §3): functions from model values to model
//! values, with no I/O, so they are unit- and property-tested without any backend.
//!
//! # Layout
//!
//! - [`merge()`]: a blueprint into a deployment (spec §3.3).
//! - [`slice()`]: services out of a deployment (spec §3.4), and [`finish_undeployment`] once a
//!   driver has removed them.
//! - [`Limits`]: bounds on instances, CPU, memory, gateways, routes and names.
//! - [`default_weights`]: route weights and condition strengths (spec §3.5).
//! - [`allocate_ports`] with [`PortAllocator`]: internal gateway ports, kept in
//!   `Deployment::ports` so a restart yields the same ports.
//! - [`gateways`]: the internal (`<deployment>/<cluster>/<port>`) and external
//!   (`<deployment>/<port>`) gateways a deployment owns, derived from it.
//! - [`resolve_gateways`]: gateways with their routes' concrete targets — what
//!   `Router::apply` takes (spec §3.5).
//! - [`resolve_environment`]: a service's environment with `$dependency…` references
//!   resolved through the dependencies' internal gateways (spec §3.6).
//! - [`converge()`]: one reconciliation step of a deployment against what the driver runs —
//!   the driver calls and events it needs (spec §3.2).
//!
//! A deployment is the source of truth for its gateways: each cluster keeps the specs of its
//! internal gateways (weights defaulted) and the deployment keeps their ports.

mod converge;
mod gateways;
mod limits;
mod merge;
mod ports;
mod resolve;
mod slice;
mod targets;
mod weights;

pub use converge::{ConvergeInput, DriverCall, Step, converge};
pub use gateways::{gateways, virtual_host};
pub use limits::Limits;
pub use merge::{allocate_ports, merge};
pub use ports::PortAllocator;
pub use resolve::{EnvironmentSources, resolve_environment};
pub use slice::{finish_undeployment, slice};
pub use targets::resolve_gateways;
pub use weights::default_weights;

use crate::model::{Cpu, Memory, Scale};

/// Settings of the planners.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The host services reach gateways on (`vamp.gateway-driver.host`); the value of
    /// `$dependency.host`.
    pub gateway_host: String,
    /// The scale of a service deployed without one (`vamp.operation.deployment.scale`).
    pub default_scale: Scale,
    /// Where internal gateway ports come from (`vamp.operation.gateway.port-range`).
    pub ports: PortAllocator,
    /// Whether gateways get a generated virtual host name (`<port>.<cluster>.<deployment>.vamp`).
    pub virtual_hosts: bool,
    /// Ports a gateway may be given explicitly (a standalone gateway, an external gateway of a
    /// blueprint); others are refused when validated. Internal gateways take theirs from
    /// [`ports`](Self::ports).
    pub allowed_ports: std::ops::RangeInclusive<u16>,
    /// Bounds on instances, CPU, memory, gateways, routes and names.
    pub limits: Limits,
}

impl Default for EngineConfig {
    /// Gateways on 127.0.0.1, ports 40000–45000, services at 1 instance of 0.2 CPU and 256 MB
    /// (the scale Vamp's images shipped with), generated virtual hosts on.
    fn default() -> Self {
        EngineConfig {
            gateway_host: "127.0.0.1".into(),
            default_scale: Scale {
                cpu: Cpu::from_millis(200),
                memory: Memory::from_bytes(256_000_000),
                instances: 1,
                ..Scale::default()
            },
            ports: PortAllocator::default(),
            virtual_hosts: true,
            allowed_ports: 1..=65535,
            limits: Limits::default(),
        }
    }
}

#[cfg(test)]
mod tests;
