//! Readers: one function per artifact kind, accepting every form of spec §1.

use super::cursor::{
    Obj, SourceMap, boolean, check_name, check_strict_name, entries, err, index, integer,
    item_string, join, json_map, key_text, list_or_one, metadata, number, opt_string, percentage,
    string, type_err, unsigned,
};
use super::error::{DslError, ErrorKind};
use super::node::{Node, Value};
use crate::model::*;

/// Keys of a gateway body (used to tell an anonymous cluster gateway from a map of ports).
const GATEWAY_FIELDS: [&str; 5] = ["routes", "sticky", "virtual_hosts", "selector", "metadata"];

/// Reads artifacts and records where every path was found.
#[derive(Default)]
pub(crate) struct Reader {
    pub(crate) source: SourceMap,
    /// Inside a cluster gateway, route errors are `Route*Error`; elsewhere `GatewayRoute*Error`.
    cluster_gateway: bool,
}

type R<T> = Result<T, DslError>;

impl Reader {
    fn obj<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> R<Obj<'n>> {
        self.source.record(path, node.mark);
        Obj::new(node, path, what)
    }

    fn mark(&mut self, path: &str, node: &Node) {
        self.source.record(path, node.mark);
    }

    /// Reads one artifact of `kind` from a document node.
    pub(crate) fn artifact(&mut self, kind: Kind, node: &Node) -> R<Artifact> {
        Ok(match kind {
            Kind::Breed => Artifact::Breed(self.breed(node, "", true)?),
            Kind::Blueprint => Artifact::Blueprint(self.blueprint(node)?),
            Kind::Deployment => Artifact::Deployment(self.deployment(node)?),
            Kind::Gateway => Artifact::Gateway(self.gateway(node)?),
            Kind::Route => Artifact::Route(self.route(node, "", true)?),
            Kind::Condition => Artifact::Condition(self.condition_artifact(node, "", true)?),
            Kind::Rewrite => Artifact::Rewrite(self.rewrite(node, "", true)?),
            Kind::Scale => Artifact::Scale(self.scale(node, "", true)?),
            Kind::Sla => Artifact::Sla(self.sla(node, "", true)?),
            Kind::Escalation => Artifact::Escalation(self.escalation(node, "", true)?),
            Kind::Workflow => Artifact::Workflow(self.workflow(node)?),
            Kind::Event => Artifact::Event(self.event(node)?),
            Kind::EventQuery => Artifact::EventQuery(self.event_query(node)?),
            Kind::Template => Artifact::Template(self.template(node)?),
        })
    }

    /// `name` of a top-level or named inline artifact.
    fn name(&mut self, o: &mut Obj<'_>) -> R<String> {
        let (n, p) = o.required(&["name"])?;
        self.mark(&p, n);
        let name = string(n, &p)?;
        check_name(&name, &p, n)?;
        Ok(name)
    }

    fn metadata(&mut self, o: &mut Obj<'_>) -> R<Metadata> {
        match o.take(&["metadata"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                metadata(n, &p)
            }
            None => Ok(Metadata::default()),
        }
    }

    fn dialects(&mut self, o: &mut Obj<'_>) -> R<Dialects> {
        match o.take(&["dialects", "dialect"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                json_map(n, &p)
            }
            None => Ok(Dialects::default()),
        }
    }

    fn opt_str(&mut self, o: &mut Obj<'_>, key: &str) -> R<Option<String>> {
        match o.take(&[key]) {
            Some((n, p)) => {
                self.mark(&p, n);
                opt_string(n, &p)
            }
            None => Ok(None),
        }
    }

    // ---------------------------------------------------------------- breeds (spec §1.3)

    pub(crate) fn breed(&mut self, node: &Node, path: &str, top: bool) -> R<Breed> {
        let mut o = self.obj(node, path, "a breed (a map with name and deployable)")?;
        if top {
            o.ignore(&["kind"]);
        }
        o.ignore(&["lookup_name"]);
        let name = self.name(&mut o)?;
        let metadata = self.metadata(&mut o)?;
        let (d, dp) = o.required(&["deployable"])?;
        let deployable = self.deployable(d, &dp)?;
        let ports = match o.take(&["ports"]) {
            Some((n, p)) => self.ports(n, &p)?,
            None => Map::new(),
        };
        let environment_variables = match o.take(&["environment_variables", "env"]) {
            Some((n, p)) => self.breed_env(n, &p)?,
            None => Map::new(),
        };
        let constants = match o.take(&["constants"]) {
            Some((n, p)) => self.constants(n, &p)?,
            None => Map::new(),
        };
        let arguments = match o.take(&["arguments"]) {
            Some((n, p)) => self.arguments(n, &p)?,
            None => Vec::new(),
        };
        let dependencies = match o.take(&["dependencies"]) {
            Some((n, p)) => self.dependencies(n, &p)?,
            None => Map::new(),
        };
        let health_checks = match o.take(&["health_checks"]) {
            Some((n, p)) => Some(self.health_checks(n, &p)?),
            None => None,
        };
        o.finish()?;
        Ok(Breed {
            name,
            metadata,
            deployable,
            ports,
            environment_variables,
            constants,
            arguments,
            dependencies,
            health_checks,
        })
    }

    fn deployable(&mut self, node: &Node, path: &str) -> R<Deployable> {
        self.mark(path, node);
        if let Value::Map(_) = node.value {
            let mut o = self.obj(node, path, "a deployable")?;
            let kind = match o.take(&["type"]) {
                Some((n, p)) => Deployable::normalize_type(&string(n, &p)?),
                None => DEFAULT_DEPLOYABLE_TYPE.to_owned(),
            };
            let (d, dp) = o.required(&["definition"])?;
            let definition = string(d, &dp)?;
            o.finish()?;
            return Ok(Deployable { kind, definition });
        }
        let text = string(node, path)?;
        // The old `docker://image` / `cmd://…` prefix form, for known types only.
        if let Some((prefix, rest)) = text.split_once("://") {
            let kind = Deployable::normalize_type(prefix);
            if matches!(
                kind.as_str(),
                "container/docker" | "container/rkt" | "command" | "application/javascript"
            ) {
                return Ok(Deployable {
                    kind,
                    definition: rest.to_owned(),
                });
            }
        }
        Ok(Deployable {
            kind: DEFAULT_DEPLOYABLE_TYPE.to_owned(),
            definition: text,
        })
    }

    fn ports(&mut self, node: &Node, path: &str) -> R<Map<Port>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in entries(node, path, "a map of port names to ports")? {
            let name = key_text(k, path)?;
            let p = join(path, &name);
            self.mark(&p, v);
            check_strict_name(&name, &p, k)?;
            let text = match &v.value {
                Value::Null => {
                    return Err(err(
                        ErrorKind::MissingPortValueError,
                        &p,
                        v,
                        format!("port '{name}' has no value"),
                        "give the port a number, e.g. 8080/http",
                    ));
                }
                Value::Map(_) | Value::Seq(_) => return Err(malformed(&p, v)),
                _ => string(v, &p)?,
            };
            let port = Port::parse(&text).map_err(|m| {
                err(
                    ErrorKind::UnexpectedTypeError,
                    &p,
                    v,
                    m,
                    "write <number>[/http|/tcp]",
                )
            })?;
            out.insert(name, port);
        }
        Ok(out)
    }

    fn breed_env(&mut self, node: &Node, path: &str) -> R<Map<EnvVar>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in entries(node, path, "a map of environment variables")? {
            let key = key_text(k, path)?;
            let (name, alias) = match key.strip_suffix(']').and_then(|s| s.split_once('[')) {
                Some((name, alias)) => (name.to_owned(), Some(alias.to_owned())),
                None => (key.clone(), None),
            };
            let p = join(path, &name);
            self.mark(&p, v);
            check_name(&name, &p, k)?;
            if let Some(a) = &alias {
                check_name(a, &p, k)?;
            }
            let value = trait_value(v, &p)?;
            out.insert(name, EnvVar { alias, value });
        }
        Ok(out)
    }

    fn constants(&mut self, node: &Node, path: &str) -> R<Map<String>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in entries(node, path, "a map of constants")? {
            let name = key_text(k, path)?;
            let p = join(path, &name);
            self.mark(&p, v);
            check_strict_name(&name, &p, k)?;
            let value = trait_value(v, &p)?.ok_or_else(|| {
                err(
                    ErrorKind::MissingConstantValueError,
                    &p,
                    v,
                    format!("constant '{name}' has no value"),
                    "give the constant a value",
                )
            })?;
            out.insert(name, value);
        }
        Ok(out)
    }

    fn arguments(&mut self, node: &Node, path: &str) -> R<Vec<Argument>> {
        self.mark(path, node);
        let mut out = Vec::new();
        // A single map with several keys is one argument per key.
        let split: Vec<Node>;
        let items: Vec<(usize, &Node)> = match &node.value {
            Value::Map(entries) if entries.len() > 1 => {
                split = entries
                    .iter()
                    .map(|(k, v)| Node {
                        value: Value::Map(vec![(k.clone(), v.clone())]),
                        mark: k.mark,
                    })
                    .collect();
                split.iter().enumerate().collect()
            }
            _ => list_or_one(node),
        };
        for (i, item) in items {
            let p = index(path, i);
            self.mark(&p, item);
            let invalid = || {
                err(
                    ErrorKind::InvalidArgumentError,
                    &p,
                    item,
                    "an argument must be a single 'key: value' pair",
                    "write arguments as a list: '- privileged: true'",
                )
            };
            let Value::Map(entries) = &item.value else {
                return Err(invalid());
            };
            let [(k, v)] = entries.as_slice() else {
                return Err(invalid());
            };
            let key = k.scalar_text().ok_or_else(invalid)?;
            let value = match &v.value {
                Value::Map(_) | Value::Seq(_) => return Err(invalid()),
                _ => v.to_json(),
            };
            if key == "privileged" && boolean(v).is_none() {
                return Err(err(
                    ErrorKind::InvalidArgumentValueError,
                    &join(&p, "privileged"),
                    v,
                    format!("'privileged' must be true or false, found {v}"),
                    "write 'privileged: true' or 'privileged: false'",
                ));
            }
            let value = if key == "privileged" {
                serde_json::Value::Bool(boolean(v).unwrap_or(false))
            } else {
                value
            };
            out.push(Argument { key, value });
        }
        Ok(out)
    }

    fn dependencies(&mut self, node: &Node, path: &str) -> R<Map<Ref<Breed>>> {
        self.mark(path, node);
        let mut out = Map::new();
        for (k, v) in entries(node, path, "a map of dependency aliases to breeds")? {
            let alias = key_text(k, path)?;
            let p = join(path, &alias);
            check_name(&alias, &p, k)?;
            // `{breed: …}` wraps the reference or inline breed.
            let dep = match &v.value {
                Value::Map(e)
                    if e.len() == 1 && e[0].0.scalar_text().as_deref() == Some("breed") =>
                {
                    self.breed_ref(&e[0].1, &join(&p, "breed"))?
                }
                _ => self.breed_ref(v, &p)?,
            };
            out.insert(alias, dep);
        }
        Ok(out)
    }

    /// A breed reference or inline breed (spec §1.1).
    pub(crate) fn breed_ref(&mut self, node: &Node, path: &str) -> R<Ref<Breed>> {
        self.mark(path, node);
        match &node.value {
            Value::Map(_) => {
                if let Some(name) = self.reference(node, path)? {
                    return Ok(Ref::Reference(name));
                }
                let o = Obj::new(node, path, "a breed")?;
                if !o.has("name") {
                    return Err(err(
                        ErrorKind::NotAnonymousError,
                        path,
                        node,
                        "an inline breed needs a name",
                        "add 'name: <breed>:<version>' or refer to a stored breed by name",
                    ));
                }
                Ok(Ref::Inline(self.breed(node, path, false)?))
            }
            _ => {
                let name = string(node, path)?;
                check_ref_name(&name, path, node)?;
                Ok(Ref::Reference(name))
            }
        }
    }

    /// If the map is `{ref: x}` / `{reference: x}`, the name; a reference with a body is an error.
    fn reference(&mut self, node: &Node, path: &str) -> R<Option<String>> {
        let Value::Map(entries) = &node.value else {
            return Ok(None);
        };
        let Some((k, v)) = entries
            .iter()
            .find(|(k, _)| matches!(k.scalar_text().as_deref(), Some("ref" | "reference")))
        else {
            return Ok(None);
        };
        let key = k.scalar_text().unwrap_or_default();
        let p = join(path, &key);
        if entries.len() > 1 {
            return Err(err(
                ErrorKind::EitherReferenceOrAnonymous,
                path,
                node,
                "either a reference or an inline definition, not both",
                format!("keep only '{key}: <name>' or drop '{key}' and define it inline"),
            ));
        }
        self.mark(&p, v);
        let name = string(v, &p)?;
        check_ref_name(&name, &p, v)?;
        Ok(Some(name))
    }

    /// An anonymous-or-reference value: `x`, `{ref: x}` or an inline body without `name`.
    fn anonymous_ref<T>(
        &mut self,
        node: &Node,
        path: &str,
        read: impl FnOnce(&mut Self, &Node, &str) -> R<T>,
    ) -> R<Ref<T>> {
        self.mark(path, node);
        match &node.value {
            Value::Map(_) => {
                if let Some(name) = self.reference(node, path)? {
                    return Ok(Ref::Reference(name));
                }
                if Obj::new(node, path, "")?.has("name") {
                    return Err(err(
                        ErrorKind::EitherReferenceOrAnonymous,
                        path,
                        node,
                        "a named definition is not allowed here",
                        "refer to a stored artifact by name, or drop 'name' for an inline definition",
                    ));
                }
                Ok(Ref::Inline(read(self, node, path)?))
            }
            _ => {
                let name = string(node, path)?;
                check_ref_name(&name, path, node)?;
                Ok(Ref::Reference(name))
            }
        }
    }

    fn health_checks(&mut self, node: &Node, path: &str) -> R<Vec<HealthCheck>> {
        self.mark(path, node);
        list_or_one(node)
            .into_iter()
            .map(|(i, n)| self.health_check(n, &index(path, i)))
            .collect()
    }

    fn health_check(&mut self, node: &Node, path: &str) -> R<HealthCheck> {
        let mut o = self.obj(node, path, "a health check")?;
        let path_value = self
            .opt_str(&mut o, "path")?
            .unwrap_or_else(|| "/".to_owned());
        let (pn, pp) = o.required(&["port"])?;
        self.mark(&pp, pn);
        let port = string(pn, &pp)?;
        let mut secs = |o: &mut Obj<'_>, key: &str| -> R<Seconds> {
            let (n, p) = o.required(&[key])?;
            self.mark(&p, n);
            let text = string(n, &p)?;
            Seconds::parse(&text).map_err(|e| {
                err(
                    ErrorKind::UnexpectedTypeError,
                    &p,
                    n,
                    e.0,
                    "write a duration like 10s",
                )
            })
        };
        let initial_delay = secs(&mut o, "initial_delay")?;
        let timeout = secs(&mut o, "timeout")?;
        let interval = secs(&mut o, "interval")?;
        let (fnode, fp) = o.required(&["failures"])?;
        self.mark(&fp, fnode);
        let failures = integer(fnode, &fp)?;
        if failures < 0 {
            return Err(err(
                ErrorKind::NegativeFailuresNumberError,
                &fp,
                fnode,
                format!("failures must be 0 or more, found {failures}"),
                "set failures to a number >= 0",
            ));
        }
        let protocol = self
            .opt_str(&mut o, "protocol")?
            .unwrap_or_else(|| "HTTP".to_owned());
        o.finish()?;
        Ok(HealthCheck {
            path: path_value,
            port,
            initial_delay,
            timeout,
            interval,
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            protocol,
        })
    }

    // ------------------------------------------------------------ blueprints (spec §1.5)

    fn blueprint(&mut self, node: &Node) -> R<Blueprint> {
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

    fn clusters(&mut self, node: &Node, path: &str) -> R<Map<Cluster>> {
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
    fn cluster(&mut self, node: &Node, path: &str) -> R<Cluster> {
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

    fn long_cluster(&mut self, node: &Node, path: &str) -> R<Cluster> {
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
            Some((n, p)) => Some(self.anonymous_ref(n, &p, |r, n, p| r.sla(n, p, false))?),
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
    fn service_cluster(&mut self, node: &Node, path: &str) -> R<Cluster> {
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
                    sla = Some(self.anonymous_ref(v, &p, |r, n, p| r.sla(n, p, false))?);
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

    fn service(&mut self, node: &Node, path: &str) -> R<Service> {
        self.mark(path, node);
        match &node.value {
            Value::Map(_) => self.service_at(node, path),
            _ => Ok(Service {
                breed: self.breed_ref(node, &join(path, "breed"))?,
                ..Service::default()
            }),
        }
    }

    fn service_at(&mut self, node: &Node, path: &str) -> R<Service> {
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

    fn service_env(&mut self, node: &Node, path: &str) -> R<Map<String>> {
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
    fn scoped_env(&mut self, node: &Node, path: &str) -> R<Map<Option<String>>> {
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

    fn blueprint_gateways(&mut self, node: &Node, path: &str) -> R<Map<Gateway>> {
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
    fn cluster_gateways(&mut self, node: &Node, path: &str) -> R<Map<Gateway>> {
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

    // --------------------------------------------------------------- gateways (spec §1.6)

    fn gateway(&mut self, node: &Node) -> R<Gateway> {
        self.gateway_body(node, "", true)
    }

    fn gateway_body(&mut self, node: &Node, path: &str, top: bool) -> R<Gateway> {
        let mut o = self.obj(node, path, "a gateway")?;
        o.ignore(&["internal", "proxy", "deployed", "service", "lookup_name"]);
        let (name, port) = if top {
            o.ignore(&["kind"]);
            let (n, p) = o.required(&["name"])?;
            self.mark(&p, n);
            let name = string(n, &p)?;
            if !names::is_valid_gateway_name(&name) {
                return Err(err(
                    ErrorKind::UnsupportedGatewayNameError,
                    &p,
                    n,
                    format!("unsupported gateway name '{name}'"),
                    "use 1-4 '/'-separated segments without blanks, '[' or ']'",
                ));
            }
            let port = match o.take(&["port"]) {
                Some((n, p)) => {
                    self.mark(&p, n);
                    let text = match &n.value {
                        Value::Null => "0".to_owned(),
                        _ => string(n, &p)?,
                    };
                    let invalid = |m: String| {
                        err(
                            ErrorKind::InvalidGatewayPortError,
                            &p,
                            n,
                            m,
                            "use a port 0-65535, e.g. 9070/http",
                        )
                    };
                    if let Value::Int(i) = n.value
                        && !(0..=65535).contains(&i)
                    {
                        return Err(invalid(format!("gateway port {i} is outside 0-65535")));
                    }
                    GatewayPort::parse(&text).map_err(invalid)?
                }
                None => GatewayPort::default(),
            };
            (name, Some(port))
        } else {
            if let Some((n, p)) = o.take(&["port"]) {
                return Err(err(
                    ErrorKind::UnexpectedElement,
                    &p,
                    n,
                    "'port' is not allowed here: the port comes from the gateway's key",
                    "remove 'port'",
                ));
            }
            (String::new(), None)
        };
        let metadata = self.metadata(&mut o)?;
        let sticky = match o.take(&["sticky"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                match &n.value {
                    Value::Null => None,
                    _ => match string(n, &p)?.as_str() {
                        "route" => Some(Sticky::Route),
                        "instance" => Some(Sticky::Instance),
                        "none" => None,
                        other => {
                            return Err(err(
                                ErrorKind::IllegalGatewayStickyValue,
                                &p,
                                n,
                                format!("sticky '{other}' is unknown"),
                                "use route, instance or none",
                            ));
                        }
                    },
                }
            }
            None => None,
        };
        let virtual_hosts = match o.take(&["virtual_hosts"]) {
            Some((n, p)) => self.virtual_hosts(n, &p)?,
            None => Vec::new(),
        };
        let selector = self.opt_str(&mut o, "selector")?;
        if let Some(s) = &selector {
            let p = join(path, "selector");
            Self::check_selector(s, &p, self.source.locate(&p))?;
        }
        let routes = match o.take(&["routes"]) {
            Some((n, p)) => self.routes(n, &p)?,
            None => Map::new(),
        };
        o.finish()?;
        Ok(Gateway {
            name,
            metadata,
            port,
            sticky,
            virtual_hosts,
            selector,
            routes,
        })
    }

    fn check_selector(selector: &str, path: &str, mark: super::node::Mark) -> R<()> {
        super::selector::check(selector).map_err(|m| {
            DslError::new(
                ErrorKind::InvalidSelectorError,
                path,
                mark,
                format!("invalid selector '{selector}': {m}"),
                "use operands like name(re), label(k)(v), image(re), port(N) with and/or/not",
            )
        })
    }

    fn virtual_hosts(&mut self, node: &Node, path: &str) -> R<Vec<String>> {
        self.mark(path, node);
        let bad = || {
            err(
                ErrorKind::IllegalGatewayVirtualHosts,
                path,
                node,
                "virtual_hosts must be a host name or a list of host names",
                "write 'virtual_hosts: [shop.example.com]'",
            )
        };
        match &node.value {
            Value::Str(s) => Ok(vec![s.clone()]),
            Value::Seq(items) => items
                .iter()
                .map(|i| match &i.value {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(bad()),
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            _ => Err(bad()),
        }
    }

    fn routes(&mut self, node: &Node, path: &str) -> R<Map<Ref<Route>>> {
        self.mark(path, node);
        let mut out = Map::new();
        let mut add = |r: &mut Self, key: String, k: &Node, v: Option<&Node>| -> R<()> {
            let p = join(path, &key);
            if !names::is_valid_route_path(&key) {
                return Err(err(
                    ErrorKind::UnsupportedRoutePathError,
                    &p,
                    k,
                    format!("unsupported route path '{key}'"),
                    "use 1-4 '/'-separated names, or an external target '[host:port]'",
                ));
            }
            if out.contains_key(&key) {
                return Err(err(
                    ErrorKind::UnsupportedRoutePathError,
                    &p,
                    k,
                    format!("route '{key}' is defined twice"),
                    "merge the two definitions into one",
                ));
            }
            let route = match v {
                Some(v) if matches!(v.value, Value::Str(_)) => {
                    // `route: name` refers to a stored route.
                    let name = string(v, &p)?;
                    check_name(&name, &p, v)?;
                    Ref::Reference(name)
                }
                Some(v) if !matches!(v.value, Value::Null) => {
                    if let Some(name) = r.reference(v, &p)? {
                        Ref::Reference(name)
                    } else {
                        let route = r.route(v, &p, false)?;
                        r.check_route_selector(&route, &key, &p)?;
                        Ref::Inline(route)
                    }
                }
                _ => Ref::Inline(Route::default()),
            };
            out.insert(key, route);
            Ok(())
        };
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let key = key_text(k, path)?;
                    add(self, key, k, Some(v))?;
                }
            }
            Value::Seq(items) => {
                for item in items {
                    match &item.value {
                        // `- path: {weight: …}`
                        Value::Map(entries) if entries.len() == 1 => {
                            let (k, v) = &entries[0];
                            add(self, key_text(k, path)?, k, Some(v))?;
                        }
                        _ => add(self, string(item, path)?, item, None)?,
                    }
                }
            }
            Value::Str(_) => add(self, string(node, path)?, node, None)?,
            Value::Null => {}
            _ => return Err(type_err(path, node, "a map of route paths to routes")),
        }
        Ok(out)
    }

    fn check_route_selector(&self, route: &Route, key: &str, path: &str) -> R<()> {
        let Some(selector) = &route.selector else {
            return Ok(());
        };
        let p = join(path, "selector");
        let mark = self.source.locate(&p);
        if names::external_target(key).is_some() {
            return Err(DslError::new(
                ErrorKind::RouteSelectorExternalTargetError,
                &p,
                mark,
                "a route to an external target cannot have a selector",
                "remove the selector or the '[host:port]' target",
            ));
        }
        if names::segments(key) != Some(1) {
            return Err(DslError::new(
                ErrorKind::RouteSelectorOnlyRouteError,
                &p,
                mark,
                "only single-segment routes can have a selector",
                "move the selector to a route named with one segment",
            ));
        }
        Self::check_selector(selector, &p, mark)
    }

    /// The error kind for a weight (`true`) or condition strength out of range.
    fn route_error(&self, weight: bool) -> ErrorKind {
        match (self.cluster_gateway, weight) {
            (true, true) => ErrorKind::RouteWeightError,
            (true, false) => ErrorKind::RouteConditionStrengthError,
            (false, true) => ErrorKind::GatewayRouteWeightError,
            (false, false) => ErrorKind::GatewayRouteConditionStrengthError,
        }
    }

    fn route(&mut self, node: &Node, path: &str, top: bool) -> R<Route> {
        let mut o = self.obj(node, path, "a route")?;
        o.ignore(&["targets", "lookup_name"]);
        let name = if top {
            o.ignore(&["kind"]);
            self.name(&mut o)?
        } else {
            if let Some((n, p)) = o.take(&["name"]) {
                return Err(err(
                    ErrorKind::EitherReferenceOrAnonymous,
                    &p,
                    n,
                    "a route inside a gateway is either a reference or an anonymous definition",
                    "drop 'name', or refer to a stored route with 'reference: <name>'",
                ));
            }
            String::new()
        };
        let metadata = self.metadata(&mut o)?;
        let weight = match o.take(&["weight"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                match n.value {
                    Value::Null => None,
                    _ => Some(percentage(n, &p, self.route_error(true))?),
                }
            }
            None => None,
        };
        let condition = match o.take(&["condition", "filter", "filters"]) {
            Some((n, p)) => self.route_condition(n, &p)?,
            None => None,
        };
        let condition_strength = match o.take(&["condition_strength"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                match n.value {
                    Value::Null => None,
                    _ => Some(percentage(n, &p, self.route_error(false))?),
                }
            }
            None => None,
        };
        let rewrites = match o.take(&["rewrites"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                list_or_one(n)
                    .into_iter()
                    .map(|(i, item)| {
                        let ip = index(&p, i);
                        self.anonymous_ref(item, &ip, |r, n, p| r.rewrite(n, p, false))
                    })
                    .collect::<R<Vec<_>>>()?
            }
            None => Vec::new(),
        };
        let balance = self.opt_str(&mut o, "balance")?;
        let selector = self.opt_str(&mut o, "selector")?;
        o.finish()?;
        Ok(Route {
            name,
            metadata,
            weight,
            condition,
            condition_strength,
            rewrites,
            balance,
            selector,
        })
    }

    /// `condition: <expr> | {condition: <expr>} | {ref: name}`; an empty string is no condition.
    fn route_condition(&mut self, node: &Node, path: &str) -> R<Option<Ref<Condition>>> {
        self.mark(path, node);
        match &node.value {
            Value::Null => Ok(None),
            Value::Map(_) => {
                if let Some(name) = self.reference(node, path)? {
                    return Ok(Some(Ref::Reference(name)));
                }
                let c = self.condition_artifact(node, path, false)?;
                Ok((!c.definition.trim().is_empty()).then_some(Ref::Inline(c)))
            }
            _ => {
                let text = string(node, path)?;
                Ok((!text.trim().is_empty()).then(|| {
                    Ref::Inline(Condition {
                        definition: text,
                        ..Condition::default()
                    })
                }))
            }
        }
    }

    fn condition_artifact(&mut self, node: &Node, path: &str, top: bool) -> R<Condition> {
        let mut o = self.obj(node, path, "a condition (a map with condition)")?;
        if top {
            o.ignore(&["kind"]);
        }
        let name = if top || o.has("name") {
            self.name(&mut o)?
        } else {
            String::new()
        };
        let metadata = self.metadata(&mut o)?;
        let (d, dp) = o.required(&["condition", "definition"])?;
        self.mark(&dp, d);
        let definition = string(d, &dp)?;
        o.finish()?;
        Ok(Condition {
            name,
            metadata,
            definition,
        })
    }

    fn rewrite(&mut self, node: &Node, path: &str, top: bool) -> R<Rewrite> {
        let mut o = self.obj(node, path, "a rewrite (a map with path)")?;
        if top {
            o.ignore(&["kind"]);
        }
        let name = if top {
            self.name(&mut o)?
        } else {
            String::new()
        };
        let metadata = self.metadata(&mut o)?;
        let (pn, pp) = o.required(&["path"])?;
        self.mark(&pp, pn);
        let rewrite = Rewrite {
            name,
            metadata,
            path: string(pn, &pp)?,
        };
        if rewrite.parts().is_none() {
            return Err(err(
                ErrorKind::UnsupportedPathRewriteError,
                &pp,
                pn,
                format!("unsupported path rewrite '{}'", rewrite.path),
                "write '<new path> if <condition>', e.g. '/api/%[path] if { path_beg /v1 }'",
            ));
        }
        o.finish()?;
        Ok(rewrite)
    }

    // --------------------------------------------------- scales, SLAs, escalations (§1.5.2, 1.9, 1.10)

    pub(crate) fn scale(&mut self, node: &Node, path: &str, top: bool) -> R<Scale> {
        let mut o = self.obj(node, path, "a scale (a map with cpu, memory and instances)")?;
        if top {
            o.ignore(&["kind"]);
        }
        let name = if top {
            self.name(&mut o)?
        } else {
            String::new()
        };
        let metadata = self.metadata(&mut o)?;
        let (c, cp) = o.required(&["cpu"])?;
        self.mark(&cp, c);
        let cpu = match &c.value {
            Value::Int(_) | Value::Float(_) => Cpu::from_cores(number(c, &cp)?),
            _ => Cpu::parse(&string(c, &cp)?),
        }
        .map_err(|e| {
            err(
                ErrorKind::UnsupportedUnitValue,
                &cp,
                c,
                e.0,
                "write cpu like 0.5 or 500m",
            )
        })?;
        let (m, mp) = o.required(&["memory"])?;
        self.mark(&mp, m);
        let memory = match &m.value {
            Value::Str(s) => Memory::parse(s),
            _ => Err(UnitError(format!(
                "memory needs a unit, found {}",
                m.value.type_name()
            ))),
        }
        .map_err(|e| {
            err(
                ErrorKind::UnsupportedUnitValue,
                &mp,
                m,
                e.0,
                "write memory like 256MB or 1Gi",
            )
        })?;
        let instances = match o.take(&["instances"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                u32::try_from(unsigned(n, &p)?)
                    .map_err(|_| type_err(&p, n, "a number of instances"))?
            }
            None => 1,
        };
        o.finish()?;
        Ok(Scale {
            name,
            metadata,
            cpu,
            memory,
            instances,
        })
    }

    fn sla(&mut self, node: &Node, path: &str, top: bool) -> R<Sla> {
        let mut o = self.obj(node, path, "an SLA")?;
        if top {
            o.ignore(&["kind"]);
        }
        let name = if top {
            self.name(&mut o)?
        } else {
            String::new()
        };
        let metadata = self.metadata(&mut o)?;
        let (t, tp) = o.required(&["type"])?;
        self.mark(&tp, t);
        let kind = match string(t, &tp)?.as_str() {
            "response_time_sliding_window" => {
                let (th, thp) = o.required(&["threshold"])?;
                let mut to = self.obj(th, &thp, "a threshold map with upper and lower")?;
                let upper = self.required_unsigned(&mut to, "upper")?;
                let lower = self.required_unsigned(&mut to, "lower")?;
                to.finish()?;
                let (w, wp) = o.required(&["window"])?;
                let mut wo = self.obj(w, &wp, "a window map with interval and cooldown")?;
                let interval = self.required_unsigned(&mut wo, "interval")?;
                let cooldown = self.required_unsigned(&mut wo, "cooldown")?;
                wo.finish()?;
                SlaKind::ResponseTimeSlidingWindow {
                    upper,
                    lower,
                    interval,
                    cooldown,
                }
            }
            "escalation_only" => SlaKind::EscalationOnly,
            other => {
                let other = other.to_owned();
                let escalations = match o.take(&["escalations"]) {
                    Some((n, p)) => self.escalation_list(n, &p)?,
                    None => Vec::new(),
                };
                let mut parameters = Map::new();
                for (k, v) in o.rest() {
                    parameters.insert(key_text(k, path)?, v.to_json());
                }
                o.finish()?;
                return Ok(Sla {
                    name,
                    metadata,
                    kind: SlaKind::Generic {
                        kind: other,
                        parameters,
                    },
                    escalations: wrap_all(escalations),
                });
            }
        };
        let escalations = match o.take(&["escalations"]) {
            Some((n, p)) => self.escalation_list(n, &p)?,
            None => Vec::new(),
        };
        o.finish()?;
        Ok(Sla {
            name,
            metadata,
            kind,
            escalations: wrap_all(escalations),
        })
    }

    fn required_unsigned(&mut self, o: &mut Obj<'_>, key: &str) -> R<u64> {
        let (n, p) = o.required(&[key])?;
        self.mark(&p, n);
        unsigned(n, &p)
    }

    fn escalation_list(&mut self, node: &Node, path: &str) -> R<Vec<Ref<Escalation>>> {
        self.mark(path, node);
        list_or_one(node)
            .into_iter()
            .map(|(i, n)| self.escalation_item(n, &index(path, i)))
            .collect()
    }

    /// An escalation list item: a reference, an inline escalation, or `to_all:`/`to_one:` shorthand.
    fn escalation_item(&mut self, node: &Node, path: &str) -> R<Ref<Escalation>> {
        self.mark(path, node);
        if let Value::Map(entries) = &node.value
            && let [(k, v)] = entries.as_slice()
            && let Some(group @ ("to_all" | "to_one")) = k.scalar_text().as_deref()
        {
            let p = join(path, group);
            let list_node = match &v.value {
                Value::Map(_) => {
                    let mut o = self.obj(v, &p, "a group of escalations")?;
                    let (l, _) = o.required(&["escalations"])?;
                    o.finish()?;
                    l
                }
                _ => v,
            };
            let list = self.escalation_list(list_node, &join(&p, "escalations"))?;
            let kind = if group == "to_all" {
                EscalationKind::ToAll(list)
            } else {
                EscalationKind::ToOne(list)
            };
            return Ok(Ref::Inline(Escalation {
                kind,
                ..Escalation::default()
            }));
        }
        self.anonymous_ref(node, path, |r, n, p| r.escalation(n, p, false))
    }

    fn escalation(&mut self, node: &Node, path: &str, top: bool) -> R<Escalation> {
        let mut o = self.obj(node, path, "an escalation")?;
        if top {
            o.ignore(&["kind"]);
        }
        let name = if top {
            self.name(&mut o)?
        } else {
            String::new()
        };
        let metadata = self.metadata(&mut o)?;
        let (t, tp) = o.required(&["type"])?;
        self.mark(&tp, t);
        let kind_name = string(t, &tp)?;
        let kind = match kind_name.as_str() {
            "scale_instances" => {
                let mut int = |o: &mut Obj<'_>, key: &str| -> R<i64> {
                    let (n, p) = o.required(&[key])?;
                    self.mark(&p, n);
                    integer(n, &p)
                };
                let minimum = int(&mut o, "minimum")?;
                let maximum = int(&mut o, "maximum")?;
                let scale_by = int(&mut o, "scale_by")?;
                let target = self.opt_str(&mut o, "target")?;
                EscalationKind::ScaleInstances(ScaleBy {
                    minimum,
                    maximum,
                    scale_by,
                    target,
                })
            }
            "scale_cpu" | "scale_memory" => {
                let mut num = |o: &mut Obj<'_>, key: &str| -> R<f64> {
                    let (n, p) = o.required(&[key])?;
                    self.mark(&p, n);
                    number(n, &p)
                };
                let params = ScaleBy {
                    minimum: num(&mut o, "minimum")?,
                    maximum: num(&mut o, "maximum")?,
                    scale_by: num(&mut o, "scale_by")?,
                    target: self.opt_str(&mut o, "target")?,
                };
                if kind_name == "scale_cpu" {
                    EscalationKind::ScaleCpu(params)
                } else {
                    EscalationKind::ScaleMemory(params)
                }
            }
            "to_all" | "to_one" => {
                let (l, lp) = o.required(&["escalations"])?;
                let list = self.escalation_list(l, &lp)?;
                if kind_name == "to_all" {
                    EscalationKind::ToAll(list)
                } else {
                    EscalationKind::ToOne(list)
                }
            }
            other => {
                let mut parameters = Map::new();
                for (k, v) in o.rest() {
                    parameters.insert(key_text(k, path)?, v.to_json());
                }
                EscalationKind::Generic {
                    kind: other.to_owned(),
                    parameters,
                }
            }
        };
        o.finish()?;
        Ok(Escalation {
            name,
            metadata,
            kind,
        })
    }

    // -------------------------------------------------------------- workflows (spec §1.13)

    fn workflow(&mut self, node: &Node) -> R<Workflow> {
        let mut o = self.obj(node, "", "a workflow")?;
        o.ignore(&["kind", "lookup_name", "health", "instances"]);
        let name = self.name(&mut o)?;
        let metadata = self.metadata(&mut o)?;
        let (b, bp) = o.required(&["breed"])?;
        let breed = self.breed_ref(b, &bp)?;
        let schedule = match o.take(&["schedule"]) {
            Some((n, p)) => self.schedule(n, &p)?,
            None => {
                return Err(err(
                    ErrorKind::UndefinedWorkflowScheduleError,
                    "schedule",
                    node,
                    "the workflow has no schedule",
                    "add 'schedule: daemon', 'schedule: {event: [tag]}' or 'schedule: {time: PT1M}'",
                ));
            }
        };
        let status = match o.take(&["status"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let text = string(n, &p)?;
                WorkflowStatus::parse(&text).ok_or_else(|| {
                    err(
                        ErrorKind::IllegalWorkflowStatus,
                        &p,
                        n,
                        format!("workflow status '{text}' is unknown"),
                        "use starting, running, stopping, suspending, suspended or restarting",
                    )
                })?
            }
            None => WorkflowStatus::Starting,
        };
        let environment_variables = match o.take(&["environment_variables", "env"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let mut out = Map::new();
                for (k, v) in entries(n, &p, "a map of environment variables")? {
                    let key = key_text(k, &p)?;
                    let kp = join(&p, &key);
                    self.mark(&kp, v);
                    check_name(&key, &kp, k)?;
                    let value = trait_value(v, &kp)?.ok_or_else(|| {
                        err(
                            ErrorKind::MissingEnvironmentVariableError,
                            &kp,
                            v,
                            format!("environment variable '{key}' has no value"),
                            "give it a value, or remove it to keep the breed's",
                        )
                    })?;
                    out.insert(key, Some(value));
                }
                out
            }
            None => Map::new(),
        };
        let scale = match o.take(&["scale"]) {
            Some((n, p)) => Some(self.anonymous_ref(n, &p, |r, n, p| r.scale(n, p, false))?),
            None => None,
        };
        let arguments = match o.take(&["arguments"]) {
            Some((n, p)) => self.arguments(n, &p)?,
            None => Vec::new(),
        };
        let network = self.opt_str(&mut o, "network")?;
        let health_checks = match o.take(&["health_checks"]) {
            Some((n, p)) => Some(self.health_checks(n, &p)?),
            None => None,
        };
        let dialects = self.dialects(&mut o)?;
        o.finish()?;
        Ok(Workflow {
            name,
            metadata,
            breed,
            schedule,
            status,
            environment_variables,
            scale,
            arguments,
            network,
            health_checks,
            dialects,
        })
    }

    fn schedule(&mut self, node: &Node, path: &str) -> R<Schedule> {
        self.mark(path, node);
        let undefined = || {
            err(
                ErrorKind::UndefinedWorkflowScheduleError,
                path,
                node,
                "unknown workflow schedule",
                "use 'daemon', {event: [tags]} or {time: <ISO-8601 period>}",
            )
        };
        match &node.value {
            Value::Str(s) if s == "daemon" => Ok(Schedule::Daemon),
            Value::Map(entries) => {
                let [(k, v)] = entries.as_slice() else {
                    return Err(undefined());
                };
                match k.scalar_text().as_deref() {
                    Some("event") => {
                        let p = join(path, "event");
                        let tags_node = match &v.value {
                            Value::Map(_) => {
                                let mut o = self.obj(v, &p, "an event schedule")?;
                                let (t, _) = o.required(&["tags"])?;
                                o.finish()?;
                                t
                            }
                            _ => v,
                        };
                        let tags = list_or_one(tags_node)
                            .into_iter()
                            .map(|(i, t)| item_string(t, &index(&p, i)))
                            .collect::<R<Vec<_>>>()?;
                        if tags.is_empty() {
                            return Err(undefined());
                        }
                        Ok(Schedule::Event(tags))
                    }
                    Some("time") => {
                        let p = join(path, "time");
                        let (period_node, period_path, start, repeat) = match &v.value {
                            Value::Map(_) => {
                                let mut o = self.obj(v, &p, "a time schedule")?;
                                let (pn, pp) = o.required(&["period"])?;
                                let start = self.opt_str(&mut o, "start")?;
                                let repeat = match o.take(&["repeat"]) {
                                    Some((n, rp)) => Some(
                                        u32::try_from(unsigned(n, &rp)?)
                                            .map_err(|_| type_err(&rp, n, "a repeat count"))?,
                                    ),
                                    None => None,
                                };
                                o.finish()?;
                                (pn, pp, start, repeat)
                            }
                            _ => (v, p.clone(), None, None),
                        };
                        let period = string(period_node, &period_path)?;
                        if !is_valid_period(&period) {
                            return Err(err(
                                ErrorKind::IllegalWorkflowSchedulePeriod,
                                &period_path,
                                period_node,
                                format!("'{period}' is not an ISO-8601 period"),
                                "write a period like PT1M, PT30S or P1DT2H",
                            ));
                        }
                        Ok(Schedule::Time {
                            period,
                            start,
                            repeat,
                        })
                    }
                    _ => Err(undefined()),
                }
            }
            _ => Err(undefined()),
        }
    }

    // --------------------------------------------------------------- events (spec §1.14)

    fn event(&mut self, node: &Node) -> R<Event> {
        let mut o = self.obj(node, "", "an event")?;
        o.ignore(&["kind", "id", "version", "digest"]);
        let (t, tp) = o.required(&["tags"])?;
        let tags = self.tags(t, &tp)?;
        if tags.is_empty() {
            return Err(err(
                ErrorKind::NoTagEventError,
                "tags",
                t,
                "an event needs at least one tag",
                "add 'tags: [my-tag]'",
            ));
        }
        let value = o
            .take(&["value"])
            .map_or(serde_json::Value::Null, |(n, _)| n.to_json());
        let kind = match o.take(&["type"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let t = string(n, &p)?;
                if !names::is_valid_event_type(&t) {
                    return Err(err(
                        ErrorKind::EventTypeError,
                        &p,
                        n,
                        format!("illegal event type '{t}'"),
                        "use letters, digits, '-' and '_' only",
                    ));
                }
                t
            }
            None => DEFAULT_EVENT_TYPE.to_owned(),
        };
        let timestamp = match o.take(&["timestamp"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                timestamp(n).ok_or_else(|| {
                    err(
                        ErrorKind::EventTimestampError,
                        &p,
                        n,
                        format!("cannot read timestamp {n}"),
                        "use ISO-8601, e.g. 2026-01-05T14:53:18Z, or epoch milliseconds",
                    )
                })?
            }
            None => chrono::Utc::now(),
        };
        o.finish()?;
        Ok(Event {
            tags,
            value,
            kind,
            timestamp,
        })
    }

    fn tags(&mut self, node: &Node, path: &str) -> R<Vec<String>> {
        self.mark(path, node);
        list_or_one(node)
            .into_iter()
            .map(|(i, t)| item_string(t, &index(path, i)))
            .collect()
    }

    fn event_query(&mut self, node: &Node) -> R<EventQuery> {
        let mut o = self.obj(node, "", "an event query")?;
        o.ignore(&["kind"]);
        let tags = match o.take(&["tags"]) {
            Some((n, p)) => self.tags(n, &p)?,
            None => Vec::new(),
        };
        let kind = self.opt_str(&mut o, "type")?;
        let timestamp = match o.take(&["timestamp"]) {
            Some((n, p)) => {
                let mut to = self.obj(n, &p, "a time range with lt/lte/gt/gte")?;
                let range = TimeRange {
                    lt: self.opt_str(&mut to, "lt")?,
                    lte: self.opt_str(&mut to, "lte")?,
                    gt: self.opt_str(&mut to, "gt")?,
                    gte: self.opt_str(&mut to, "gte")?,
                };
                to.finish()?;
                if (range.lt.is_some() && range.lte.is_some())
                    || (range.gt.is_some() && range.gte.is_some())
                {
                    return Err(err(
                        ErrorKind::EventQueryTimeError,
                        &p,
                        n,
                        "use either lt or lte, and either gt or gte",
                        "remove one of each pair",
                    ));
                }
                range
            }
            None => TimeRange::default(),
        };
        let aggregator = match o.take(&["aggregator"]) {
            Some((n, p)) => {
                let mut ao = self.obj(n, &p, "an aggregator with type and field")?;
                let (t, tp) = ao.required(&["type"])?;
                self.mark(&tp, t);
                let text = string(t, &tp)?;
                let kind = AggregatorType::parse(&text).ok_or_else(|| {
                    err(
                        ErrorKind::UnsupportedAggregatorError,
                        &tp,
                        t,
                        format!("aggregator '{text}' is unknown"),
                        "use min, max, average, sum or count",
                    )
                })?;
                let field = self.opt_str(&mut ao, "field")?;
                ao.finish()?;
                Some(Aggregator { kind, field })
            }
            None => None,
        };
        o.finish()?;
        Ok(EventQuery {
            tags,
            kind,
            timestamp,
            aggregator,
        })
    }

    fn template(&mut self, node: &Node) -> R<Template> {
        let mut o = self.obj(node, "", "a template")?;
        o.ignore(&["kind"]);
        let name = self.name(&mut o)?;
        let metadata = self.metadata(&mut o)?;
        let (d, dp) = o.required(&["definition", "def"])?;
        self.mark(&dp, d);
        let definition = json_map(d, &dp)?;
        o.finish()?;
        Ok(Template {
            name,
            metadata,
            definition,
        })
    }

    // ------------------------------------------------------------ deployments (spec §1.12)

    fn deployment(&mut self, node: &Node) -> R<Deployment> {
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

    fn string_map(&mut self, o: &mut Obj<'_>, key: &str) -> R<Map<String>> {
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

    fn deployment_cluster(&mut self, node: &Node, path: &str) -> R<DeploymentCluster> {
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

    fn deployment_service(&mut self, node: &Node, path: &str) -> R<DeploymentService> {
        let mut o = self.obj(node, path, "a deployment service")?;
        let status = match o.take(&["status"]) {
            Some((n, p)) => self.service_status(n, &p)?,
            None => ServiceStatus::default(),
        };
        let (b, bp) = o.required(&["breed"])?;
        let breed = self.breed(b, &bp, false)?;
        let environment_variables = match o.take(&["environment_variables", "env"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let mut out = Map::new();
                for (k, v) in entries(n, &p, "a map of environment variables")? {
                    let key = key_text(k, &p)?;
                    out.insert(key.clone(), trait_value(v, &join(&p, &key))?);
                }
                out
            }
            None => Map::new(),
        };
        let interpolated = match o.take(&["interpolated"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let mut out = Map::new();
                for (k, v) in entries(n, &p, "a map of values")? {
                    let key = key_text(k, &p)?;
                    out.insert(key.clone(), string(v, &join(&p, &key))?);
                }
                Some(out)
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

    fn service_status(&mut self, node: &Node, path: &str) -> R<ServiceStatus> {
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

    fn required_time(&mut self, o: &mut Obj<'_>, key: &str) -> R<chrono::DateTime<chrono::Utc>> {
        let (n, p) = o.required(&[key])?;
        self.mark(&p, n);
        timestamp(n).ok_or_else(|| type_err(&p, n, "an ISO-8601 time"))
    }

    fn instance(&mut self, node: &Node, path: &str) -> R<Instance> {
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

/// One `to_all` group when there is more than one escalation (spec §1.9).
fn wrap_all(escalations: Vec<Ref<Escalation>>) -> Vec<Ref<Escalation>> {
    if escalations.len() > 1 {
        vec![Ref::Inline(Escalation {
            kind: EscalationKind::ToAll(escalations),
            ..Escalation::default()
        })]
    } else {
        escalations
    }
}

fn malformed(path: &str, node: &Node) -> DslError {
    err(
        ErrorKind::MalformedTraitError,
        path,
        node,
        format!(
            "a trait value must be a scalar, found {}",
            node.value.type_name()
        ),
        "write a single value, quoted if it contains special characters",
    )
}

/// A trait value: scalar (as text) or null; maps and lists are malformed (spec §1.1).
fn trait_value(node: &Node, path: &str) -> R<Option<String>> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Map(_) | Value::Seq(_) => Err(malformed(path, node)),
        _ => opt_string(node, path),
    }
}

/// Reference names: the generic rule, plus a trailing `*` prefix match for dependencies.
fn check_ref_name(name: &str, path: &str, node: &Node) -> R<()> {
    check_name(
        name.strip_suffix('*')
            .filter(|s| !s.is_empty())
            .unwrap_or(name),
        path,
        node,
    )
}

fn timestamp(node: &Node) -> Option<chrono::DateTime<chrono::Utc>> {
    match &node.value {
        Value::Str(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc())
            }),
        Value::Int(ms) => chrono::DateTime::from_timestamp_millis(*ms),
        _ => None,
    }
}
