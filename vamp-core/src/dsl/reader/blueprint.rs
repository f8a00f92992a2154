//! Blueprints and their clusters, services and gateways (spec §1.5).

use super::prelude::*;

/// Keys of a gateway body (used to tell an anonymous cluster gateway from a map of ports).
const GATEWAY_FIELDS: [&str; 5] = ["routes", "sticky", "virtual_hosts", "selector", "metadata"];

impl Reader {
    pub(super) fn blueprint(&mut self, node: &Node) -> R<Blueprint> {
        let mut o = self.obj(node, "", "a blueprint (a map with name and clusters)")?;
        o.ignore(&["kind", "lookup_name"]);
        let name = self.name(&mut o)?;
        let metadata = self.metadata(&mut o)?;
        let gateways = match o.take(&["gateways"]) {
            Some((n, p)) => self.blueprint_gateways(n, &p)?,
            None => Map::new(),
        };
        let environment_variables = match o.take(&["environment_variables", "env"]) {
            Some((n, p)) => self.scoped_env(n, &p)?,
            None => Map::new(),
        };
        let dialects = self.dialects(&mut o)?;
        // No clusters is a NoServiceError from validation, not a missing field.
        let clusters = match o.take(&["clusters"]) {
            Some((c, cp)) => self.clusters(c, &cp)?,
            None => Map::new(),
        };
        o.finish()?;
        Ok(Blueprint {
            name,
            metadata,
            gateways,
            environment_variables,
            dialects,
            clusters,
        })
    }

    pub(super) fn clusters(&mut self, node: &Node, path: &str) -> R<Map<Cluster>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in entries(node, path, "a map of cluster names to clusters")? {
            let name = key_text(k, path)?;
            let p = join(path, &name);
            check_name(&name, &p, k)?;
            out.insert(name, self.cluster(v, &p)?);
        }
        Ok(out)
    }

    /// Every cluster form of spec §1.5.1.
    pub(super) fn cluster(&mut self, node: &Node, path: &str) -> R<Cluster> {
        self.mark(path, node);
        match &node.value {
            Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => Ok(Cluster {
                services: vec![self.service(node, &join(path, "services[0]"))?],
                ..Cluster::default()
            }),
            Value::Seq(items) => {
                let sp = join(path, "services");
                let services = items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.service(n, &index(&sp, i)))
                    .collect::<R<Vec<_>>>()?;
                Ok(Cluster {
                    services,
                    ..Cluster::default()
                })
            }
            Value::Map(entries) => {
                let has_services = entries
                    .iter()
                    .any(|(k, _)| k.scalar_text().as_deref() == Some("services"));
                if has_services {
                    self.long_cluster(node, path)
                } else {
                    self.service_cluster(node, path)
                }
            }
            Value::Null => Err(err(
                ErrorKind::NoServiceError,
                path,
                node,
                "the cluster has no services",
                "add a breed, e.g. 'my-cluster: my-breed:1.0.0'",
            )),
        }
    }

    pub(super) fn long_cluster(&mut self, node: &Node, path: &str) -> R<Cluster> {
        let mut o = self.obj(node, path, "a cluster")?;
        let metadata = self.metadata(&mut o)?;
        let (s, sp) = o.required(&["services"])?;
        self.mark(&sp, s);
        let services = list_or_one(s)
            .into_iter()
            .map(|(i, n)| self.service(n, &index(&sp, i)))
            .collect::<R<Vec<_>>>()?;
        let gateways = match o.take(&["gateways"]) {
            Some((n, p)) => self.cluster_gateways(n, &p)?,
            None => Map::new(),
        };
        let sla = match o.take(&["sla"]) {
            Some((n, p)) => Some(self.cluster_sla(n, &p)?),
            None => None,
        };
        let health_checks = match o.take(&["health_checks"]) {
            Some((n, p)) => Some(self.health_checks(n, &p)?),
            None => None,
        };
        let network = self.opt_str(&mut o, "network")?;
        let dialects = self.dialects(&mut o)?;
        o.finish()?;
        Ok(Cluster {
            metadata,
            services,
            gateways,
            sla,
            health_checks,
            network,
            dialects,
        })
    }

    /// A cluster map without `services`: everything but `sla` and `gateways` is one service.
    pub(super) fn service_cluster(&mut self, node: &Node, path: &str) -> R<Cluster> {
        let Value::Map(entries) = &node.value else {
            return Err(type_err(path, node, "a cluster"));
        };
        let mut service_entries = Vec::new();
        let mut gateways = Map::new();
        let mut sla = None;
        for (k, v) in entries {
            match k.scalar_text().as_deref() {
                Some("gateways") => gateways = self.cluster_gateways(v, &join(path, "gateways"))?,
                Some("sla") => {
                    let p = join(path, "sla");
                    sla = Some(self.cluster_sla(v, &p)?);
                }
                _ => service_entries.push((k.clone(), v.clone())),
            }
        }
        let service_node = Node {
            value: Value::Map(service_entries),
            mark: node.mark,
        };
        // The service's fields are reported under the cluster path, where the user wrote them;
        // validation speaks of `services[0]`, which the alias maps back.
        self.source.alias(&join(path, "services[0]"), path);
        let service = self.service_at(&service_node, path)?;
        Ok(Cluster {
            services: vec![service],
            gateways,
            sla,
            ..Cluster::default()
        })
    }

    pub(super) fn service(&mut self, node: &Node, path: &str) -> R<Service> {
        self.mark(path, node);
        match &node.value {
            Value::Map(_) => self.service_at(node, path),
            _ => Ok(Service {
                breed: self.breed_ref(node, &join(path, "breed"))?,
                ..Service::default()
            }),
        }
    }

    pub(super) fn service_at(&mut self, node: &Node, path: &str) -> R<Service> {
        let o = Obj::new(node, path, "a service")?;
        if !o.has("breed") {
            if let Value::Map(entries) = &node.value
                && entries.len() > 1
                && let Some(i) = entries.iter().position(|(k, _)| {
                    matches!(k.scalar_text().as_deref(), Some("ref" | "reference"))
                })
            {
                // `{reference: breed, scale: …}`: the reference names the breed.
                let mut rewritten = entries.clone();
                rewritten[i].0 = Node {
                    value: Value::Str("breed".into()),
                    mark: entries[i].0.mark,
                };
                let node = Node {
                    value: Value::Map(rewritten),
                    mark: node.mark,
                };
                return self.service_at(&node, path);
            }
            // `{ref: x}` or a whole inline breed (a map with `name`).
            return Ok(Service {
                breed: self.breed_ref(node, path)?,
                ..Service::default()
            });
        }
        let mut o = self.obj(node, path, "a service")?;
        let (b, bp) = o.required(&["breed"])?;
        let breed = self.breed_ref(b, &bp)?;
        let scale = match o.take(&["scale"]) {
            Some((n, p)) => Some(self.anonymous_ref(n, &p, |r, n, p| r.scale(n, p, false))?),
            None => None,
        };
        let environment_variables = match o.take(&["environment_variables", "env"]) {
            Some((n, p)) => self.service_env(n, &p)?,
            None => Map::new(),
        };
        let arguments = match o.take(&["arguments"]) {
            Some((n, p)) => self.arguments(n, &p)?,
            None => Vec::new(),
        };
        let health_checks = match o.take(&["health_checks"]) {
            Some((n, p)) => Some(self.health_checks(n, &p)?),
            None => None,
        };
        let network = self.opt_str(&mut o, "network")?;
        let dialects = self.dialects(&mut o)?;
        o.ignore(&["health"]);
        o.finish()?;
        Ok(Service {
            breed,
            scale,
            environment_variables,
            arguments,
            health_checks,
            network,
            dialects,
        })
    }

    pub(super) fn service_env(&mut self, node: &Node, path: &str) -> R<Map<String>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in entries(node, path, "a map of environment variables")? {
            let key = key_text(k, path)?;
            // An alias (`HEAP[JAVA_HEAP]`) belongs to the breed; here only the name counts.
            let name = key
                .strip_suffix(']')
                .and_then(|s| s.split_once('['))
                .map_or(key.clone(), |(n, _)| n.to_owned());
            let p = join(path, &name);
            self.mark(&p, v);
            check_name(&name, &p, k)?;
            let value = trait_value(v, &p)?.ok_or_else(|| {
                err(
                    ErrorKind::MissingEnvironmentVariableError,
                    &p,
                    v,
                    format!("environment variable '{name}' has no value"),
                    "give it a value, or remove it to keep the breed's",
                )
            })?;
            out.insert(name, value);
        }
        Ok(out)
    }

    /// Blueprint-scope variables; `<cluster>.<NAME>` is stored as
    /// `<cluster>.environment_variables.<NAME>` (decision Q1).
    pub(super) fn scoped_env(&mut self, node: &Node, path: &str) -> R<Map<Option<String>>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in entries(node, path, "a map of '<cluster>.<NAME>: value' entries")? {
            let key = key_text(k, path)?;
            let p = join(path, &key);
            self.mark(&p, k);
            let parts: Vec<&str> = key.splitn(3, '.').collect();
            let long = match parts.as_slice() {
                [cluster, name] => format!("{cluster}.environment_variables.{name}"),
                [_, "environment_variables" | "ports" | "constants", _] => key.clone(),
                [cluster, rest @ ..] if !cluster.is_empty() => {
                    format!("{cluster}.environment_variables.{}", rest.join("."))
                }
                _ => {
                    return Err(err(
                        ErrorKind::UnresolvedEnvironmentVariableError,
                        &p,
                        k,
                        format!("'{key}' does not name a cluster variable"),
                        "write '<cluster>.<NAME>' or '<cluster>.environment_variables.<NAME>'",
                    ));
                }
            };
            out.insert(long, trait_value(v, &p)?);
        }
        Ok(out)
    }

    pub(super) fn blueprint_gateways(&mut self, node: &Node, path: &str) -> R<Map<Gateway>> {
        self.mark(path, node);
        let mut out: Map<Gateway> = Map::new();
        for (k, v) in entries(node, path, "a map of ports to gateways")? {
            let key = key_text(k, path)?;
            let p = join(path, &key);
            self.mark(&p, v);
            // A gateway may be keyed by a name and carry its port inside.
            let inner_port = match &v.value {
                Value::Map(e) => e
                    .iter()
                    .find(|(k, _)| k.scalar_text().as_deref() == Some("port"))
                    .map(|(_, n)| (string(n, &join(&p, "port")), n)),
                _ => None,
            };
            let (key, k) = match inner_port {
                Some((text, n)) if GatewayPort::parse(&key).is_err() => (text?, n),
                _ => (key, k),
            };
            let port = GatewayPort::parse(&key).map_err(|m| {
                err(
                    ErrorKind::InvalidGatewayPortError,
                    &p,
                    k,
                    m,
                    "use keys like 9050 or 9060/tcp",
                )
            })?;
            let normalized = port.to_string();
            // Validation speaks of the normalized key (`9050/http`).
            let p = join(path, &normalized);
            self.mark(&p, v);
            if out
                .keys()
                .any(|existing| GatewayPort::parse(existing).is_ok_and(|e| e.number == port.number))
            {
                return Err(err(
                    ErrorKind::DuplicateGatewayPortError,
                    &p,
                    k,
                    format!("port {} is used by more than one gateway", port.number),
                    "give every external gateway its own port",
                ));
            }
            let gateway = match &v.value {
                Value::Map(entries) => {
                    let without_port = Node {
                        value: Value::Map(
                            entries
                                .iter()
                                .filter(|(k, _)| k.scalar_text().as_deref() != Some("port"))
                                .cloned()
                                .collect(),
                        ),
                        mark: v.mark,
                    };
                    self.gateway_body(&without_port, &p, false)?
                }
                _ => {
                    let target = string(v, &p)?;
                    let mut routes = Map::new();
                    routes.insert(target, Ref::Inline(Route::default()));
                    Gateway {
                        routes,
                        ..Gateway::default()
                    }
                }
            };
            out.insert(normalized, gateway);
        }
        Ok(out)
    }

    /// Cluster gateways by port name, or one anonymous gateway (key "").
    pub(super) fn cluster_gateways(&mut self, node: &Node, path: &str) -> R<Map<Gateway>> {
        self.mark(path, node);
        let entries = entries(node, path, "a map of port names to gateways")?;
        let anonymous = entries.iter().any(|(k, _)| {
            k.scalar_text()
                .is_some_and(|k| GATEWAY_FIELDS.contains(&k.as_str()) || k == "port")
        });
        let mut out = Map::new();
        self.cluster_gateway = true;
        let result = (|| {
            if anonymous {
                out.insert(String::new(), self.gateway_body(node, path, false)?);
                return Ok(());
            }
            for (k, v) in entries {
                let name = key_text(k, path)?;
                let p = join(path, &name);
                check_strict_name(&name, &p, k)?;
                out.insert(name, self.gateway_body(v, &p, false)?);
            }
            Ok(())
        })();
        self.cluster_gateway = false;
        result.map(|()| out)
    }
}
