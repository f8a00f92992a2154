//! Bounds on what one request can make Vamp do (issue 15): instances, CPU and memory per
//! service and per deployment, standalone gateways, routes per gateway, name lengths. A value
//! over a bound is refused when it is validated — so `validate_only` tells — never accepted
//! and left for the driver to fail on.

use crate::dsl::{DslError, ErrorKind, Mark};
use crate::model::{Deployment, Gateway, Scale};

/// The bounds. The defaults fit a laptop and a small cluster alike; raise them where a real
/// deployment needs more. As `vamp-server`'s `[limits]` section, unknown keys are refused.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Instances of one service.
    pub instances: u32,
    /// Instances of all the services of one deployment.
    pub deployment_instances: u32,
    /// CPUs of one instance.
    pub cpu: f64,
    /// Memory of one instance, in MB.
    pub memory_mb: u64,
    /// Standalone gateways.
    pub gateways: usize,
    /// Routes of one gateway.
    pub routes: usize,
    /// Characters of one name (an artifact, cluster, port or route segment).
    pub name_length: usize,
}

impl Default for Limits {
    /// 64 instances a service, 1 024 a deployment, 64 CPUs and 64 GiB an instance, 20 000
    /// standalone gateways, 100 routes a gateway, names of at most 128 characters.
    fn default() -> Self {
        Limits {
            instances: 64,
            deployment_instances: 1024,
            cpu: 64.0,
            memory_mb: 65_536,
            gateways: 20_000,
            routes: 100,
            name_length: 128,
        }
    }
}

fn over(path: &str, message: String, hint: &str) -> DslError {
    DslError::new(
        ErrorKind::LimitExceededError,
        path,
        Mark::default(),
        message,
        hint,
    )
}

const RAISE: &str = "stay within the server's limits, or raise them in its configuration ([limits] in vamp.toml, docs/server.md)";

impl Limits {
    /// Checks one scale; `path` names where it is written.
    ///
    /// ```
    /// use vamp_core::engine::Limits;
    /// use vamp_core::model::Scale;
    /// let limits = Limits::default();
    /// let huge = Scale { instances: 1_000_000, ..Scale::default() };
    /// let err = limits.check_scale(&huge, "clusters.web.scale").unwrap_err();
    /// assert!(err.to_string().contains("clusters.web.scale.instances"));
    /// ```
    ///
    /// # Errors
    /// `LimitExceededError` naming the field.
    pub fn check_scale(&self, scale: &Scale, path: &str) -> Result<(), DslError> {
        let join = |field: &str| {
            if path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            }
        };
        if scale.instances > self.instances {
            return Err(over(
                &join("instances"),
                format!(
                    "{} instances is more than the {} a service may have",
                    scale.instances, self.instances
                ),
                RAISE,
            ));
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "millicores far below 2^52 compare exactly"
        )]
        let cpu = scale.cpu.millis() as f64 / 1000.0;
        if cpu > self.cpu {
            return Err(over(
                &join("cpu"),
                format!(
                    "{cpu} CPUs is more than the {} an instance may have",
                    self.cpu
                ),
                RAISE,
            ));
        }
        let mb = scale.memory.bytes() / 1_000_000;
        if mb > self.memory_mb {
            return Err(over(
                &join("memory"),
                format!(
                    "{mb} MB is more than the {} MB an instance may have",
                    self.memory_mb
                ),
                RAISE,
            ));
        }
        Ok(())
    }

    /// Checks every service of a deployment (its scale, or `default_scale` when it has
    /// none), the deployment's total of instances, its names and its gateways' routes.
    ///
    /// # Errors
    /// `LimitExceededError` naming the first field over a bound.
    pub fn check_deployment(&self, d: &Deployment, default_scale: &Scale) -> Result<(), DslError> {
        self.check_name(&d.name, "name")?;
        let mut total: u64 = 0;
        for (c, cluster) in &d.clusters {
            self.check_name(c, &format!("clusters.{c}"))?;
            for s in &cluster.services {
                let scale = s.scale.as_ref().unwrap_or(default_scale);
                self.check_scale(
                    scale,
                    &format!("clusters.{c}.services.{}.scale", s.breed.name),
                )?;
                total += u64::from(scale.instances);
            }
            for (port, g) in &cluster.gateways {
                self.check_routes(g, &format!("clusters.{c}.gateways.{port}"))?;
            }
        }
        if total > u64::from(self.deployment_instances) {
            return Err(over(
                "clusters",
                format!(
                    "{total} instances in all is more than the {} a deployment may have",
                    self.deployment_instances
                ),
                RAISE,
            ));
        }
        for (port, g) in &d.gateways {
            self.check_routes(g, &format!("gateways.{port}"))?;
        }
        Ok(())
    }

    /// Checks a gateway's number of routes and the length of its name's segments.
    ///
    /// # Errors
    /// `LimitExceededError` naming the field.
    pub fn check_gateway(&self, g: &Gateway) -> Result<(), DslError> {
        for segment in g.name.split('/') {
            self.check_name(segment, "name")?;
        }
        self.check_routes(g, "routes")
    }

    fn check_routes(&self, g: &Gateway, path: &str) -> Result<(), DslError> {
        if g.routes.len() > self.routes {
            return Err(over(
                path,
                format!(
                    "{} routes is more than the {} a gateway may have",
                    g.routes.len(),
                    self.routes
                ),
                RAISE,
            ));
        }
        Ok(())
    }

    /// Checks the length of one name.
    ///
    /// # Errors
    /// `LimitExceededError` naming the field.
    pub fn check_name(&self, name: &str, path: &str) -> Result<(), DslError> {
        let length = name.chars().count();
        if length > self.name_length {
            return Err(over(
                path,
                format!(
                    "a name of {length} characters is longer than the {} allowed",
                    self.name_length
                ),
                "use a shorter name",
            ));
        }
        Ok(())
    }
}
