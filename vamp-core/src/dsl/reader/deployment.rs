//! Deployments (spec §1.12).

use super::prelude::*;

impl Reader {
    pub(super) fn deployment(&mut self, node: &Node) -> R<Deployment> {
        let mut o = self.obj(node, "", "a deployment")?;
        o.ignore(&["kind", "lookup_name"]);
        let name = self.name(&mut o)?;
        let metadata = self.metadata(&mut o)?;
        let (c, cp) = o.required(&["clusters"])?;
        self.mark(&cp, c);
        let mut clusters = Map::new();
        for (k, v) in entries(c, &cp, "a map of clusters")? {
            let cname = key_text(k, &cp)?;
            let p = join(&cp, &cname);
            check_name(&cname, &p, k)?;
            clusters.insert(cname, self.deployment_cluster(v, &p)?);
        }
        let gateways = match o.take(&["gateways"]) {
            Some((n, p)) => self.blueprint_gateways(n, &p)?,
            None => Map::new(),
        };
        let ports = self.string_map(&mut o, "ports")?;
        let environment_variables = match o.take(&["environment_variables", "env"]) {
            Some((n, p)) => self.scoped_env(n, &p)?,
            None => Map::new(),
        };
        let hosts = self.string_map(&mut o, "hosts")?;
        let dialects = self.dialects(&mut o)?;
        o.finish()?;
        Ok(Deployment {
            name,
            metadata,
            clusters,
            gateways,
            ports,
            environment_variables,
            hosts,
            dialects,
        })
    }

    pub(super) fn string_map(&mut self, o: &mut Obj<'_>, key: &str) -> R<Map<String>> {
        let Some((n, p)) = o.take(&[key]) else {
            return Ok(Map::new());
        };
        self.mark(&p, n);
        entries(n, &p, "a map of strings")?
            .iter()
            .map(|(k, v)| {
                let key = key_text(k, &p)?;
                let value = string(v, &join(&p, &key))?;
                Ok((key, value))
            })
            .collect()
    }

    pub(super) fn deployment_cluster(&mut self, node: &Node, path: &str) -> R<DeploymentCluster> {
        let mut o = self.obj(node, path, "a deployment cluster")?;
        let metadata = self.metadata(&mut o)?;
        let (s, sp) = o.required(&["services"])?;
        self.mark(&sp, s);
        let services = list_or_one(s)
            .into_iter()
            .map(|(i, n)| self.deployment_service(n, &index(&sp, i)))
            .collect::<R<Vec<_>>>()?;
        let gateways = match o.take(&["gateways"]) {
            Some((n, p)) => self.cluster_gateways(n, &p)?,
            None => Map::new(),
        };
        let health_checks = match o.take(&["health_checks"]) {
            Some((n, p)) if !matches!(n.value, Value::Null) => Some(self.health_checks(n, &p)?),
            _ => None,
        };
        let network = self.opt_str(&mut o, "network")?;
        let sla = match o.take(&["sla"]) {
            Some((n, p)) if !matches!(n.value, Value::Null) => {
                Some(self.anonymous_ref(n, &p, |r, n, p| r.sla(n, p, false))?)
            }
            _ => None,
        };
        let dialects = self.dialects(&mut o)?;
        o.finish()?;
        Ok(DeploymentCluster {
            metadata,
            services,
            gateways,
            health_checks,
            network,
            sla,
            dialects,
        })
    }

    pub(super) fn deployment_service(&mut self, node: &Node, path: &str) -> R<DeploymentService> {
        let mut o = self.obj(node, path, "a deployment service")?;
        let status = match o.take(&["status"]) {
            Some((n, p)) => self.service_status(n, &p)?,
            None => ServiceStatus::default(),
        };
        let (b, bp) = o.required(&["breed"])?;
        let breed = self.breed(b, &bp, false)?;
        let environment_variables = match o.take(&["environment_variables", "env"]) {
            Some((n, p)) => {
                self.map_of(n, &p, "a map of environment variables", |_, _, at, _, v| {
                    trait_value(v, at)
                })?
            }
            None => Map::new(),
        };
        let interpolated = match o.take(&["interpolated"]) {
            Some((n, p)) => {
                Some(self.map_of(n, &p, "a map of values", |_, _, at, _, v| string(v, at))?)
            }
            None => None,
        };
        let scale = match o.take(&["scale"]) {
            Some((n, p)) if !matches!(n.value, Value::Null) => Some(self.scale(n, &p, false)?),
            _ => None,
        };
        let instances = match o.take(&["instances"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                list_or_one(n)
                    .into_iter()
                    .map(|(i, item)| self.instance(item, &index(&p, i)))
                    .collect::<R<Vec<_>>>()?
            }
            None => Vec::new(),
        };
        let arguments = match o.take(&["arguments"]) {
            Some((n, p)) => self.arguments(n, &p)?,
            None => Vec::new(),
        };
        let health_checks = match o.take(&["health_checks"]) {
            Some((n, p)) if !matches!(n.value, Value::Null) => Some(self.health_checks(n, &p)?),
            _ => None,
        };
        let network = self.opt_str(&mut o, "network")?;
        let dependencies = self.string_map(&mut o, "dependencies")?;
        let dialects = self.dialects(&mut o)?;
        let health = match o.take(&["health"]) {
            Some((n, p)) if !matches!(n.value, Value::Null) => {
                let mut ho = self.obj(n, &p, "scheduler health counts")?;
                let count = |o: &mut Obj<'_>, key: &str| -> R<u32> {
                    match o.take(&[key]) {
                        Some((n, p)) => {
                            u32::try_from(unsigned(n, &p)?).map_err(|_| type_err(&p, n, "a count"))
                        }
                        None => Ok(0),
                    }
                };
                let h = ServiceHealth {
                    staged: count(&mut ho, "staged")?,
                    running: count(&mut ho, "running")?,
                    healthy: count(&mut ho, "healthy")?,
                    unhealthy: count(&mut ho, "unhealthy")?,
                };
                ho.finish()?;
                Some(h)
            }
            _ => None,
        };
        o.finish()?;
        Ok(DeploymentService {
            status,
            breed,
            environment_variables,
            interpolated,
            scale,
            instances,
            arguments,
            health_checks,
            network,
            dependencies,
            dialects,
            health,
        })
    }

    pub(super) fn service_status(&mut self, node: &Node, path: &str) -> R<ServiceStatus> {
        let mut o = self.obj(node, path, "a service status")?;
        let (i, ip) = o.required(&["intention"])?;
        let intention = match string(i, &ip)?.as_str() {
            "Deployment" | "deployment" | "Deploy" | "deploy" => Intention::Deployment,
            "Undeployment" | "undeployment" | "Undeploy" | "undeploy" => Intention::Undeployment,
            other => {
                return Err(err(
                    ErrorKind::UnexpectedTypeError,
                    &ip,
                    i,
                    format!("intention '{other}' is unknown"),
                    "use Deployment or Undeployment",
                ));
            }
        };
        let since = self.required_time(&mut o, "since")?;
        let (ph, pp) = o.required(&["phase"])?;
        let mut po = self.obj(ph, &pp, "a phase")?;
        let (n, np) = po.required(&["name"])?;
        let name = match string(n, &np)?.as_str() {
            "Initiated" => PhaseName::Initiated,
            "Updating" => PhaseName::Updating,
            "Done" => PhaseName::Done,
            "Failed" => PhaseName::Failed,
            other => {
                return Err(err(
                    ErrorKind::UnexpectedTypeError,
                    &np,
                    n,
                    format!("phase '{other}' is unknown"),
                    "use Initiated, Updating, Done or Failed",
                ));
            }
        };
        let phase_since = self.required_time(&mut po, "since")?;
        let notification = self.opt_str(&mut po, "notification")?;
        po.finish()?;
        o.finish()?;
        Ok(ServiceStatus {
            intention,
            since,
            phase: Phase {
                name,
                since: phase_since,
                notification,
            },
        })
    }

    pub(super) fn required_time(
        &mut self,
        o: &mut Obj<'_>,
        key: &str,
    ) -> R<chrono::DateTime<chrono::Utc>> {
        let (n, p) = o.required(&[key])?;
        self.mark(&p, n);
        timestamp(n).ok_or_else(|| type_err(&p, n, "an ISO-8601 time"))
    }

    pub(super) fn instance(&mut self, node: &Node, path: &str) -> R<Instance> {
        let mut o = self.obj(node, path, "an instance")?;
        let (n, np) = o.required(&["name"])?;
        let name = string(n, &np)?;
        let (h, hp) = o.required(&["host"])?;
        let host = string(h, &hp)?;
        let mut ports = Map::new();
        if let Some((pn, pp)) = o.take(&["ports"]) {
            for (k, v) in entries(pn, &pp, "a map of port names to numbers")? {
                let key = key_text(k, &pp)?;
                let kp = join(&pp, &key);
                let number =
                    u16::try_from(unsigned(v, &kp)?).map_err(|_| type_err(&kp, v, "a port"))?;
                ports.insert(key, number);
            }
        }
        let deployed = match o.take(&["deployed"]) {
            Some((d, dp)) => boolean(d).ok_or_else(|| type_err(&dp, d, "true or false"))?,
            None => false,
        };
        o.finish()?;
        Ok(Instance {
            name,
            host,
            ports,
            deployed,
        })
    }
}
