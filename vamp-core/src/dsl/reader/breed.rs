//! Breeds (spec §1.3) and health checks (spec §1.5.6).

use super::prelude::*;

impl Reader {
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

    pub(super) fn deployable(&mut self, node: &Node, path: &str) -> R<Deployable> {
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

    pub(super) fn ports(&mut self, node: &Node, path: &str) -> R<Map<Port>> {
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

    pub(super) fn breed_env(&mut self, node: &Node, path: &str) -> R<Map<EnvVar>> {
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

    pub(super) fn constants(&mut self, node: &Node, path: &str) -> R<Map<String>> {
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

    pub(super) fn arguments(&mut self, node: &Node, path: &str) -> R<Vec<Argument>> {
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

    pub(super) fn dependencies(&mut self, node: &Node, path: &str) -> R<Map<Ref<Breed>>> {
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

    pub(super) fn health_checks(&mut self, node: &Node, path: &str) -> R<Vec<HealthCheck>> {
        self.mark(path, node);
        list_or_one(node)
            .into_iter()
            .map(|(i, n)| self.health_check(n, &index(path, i)))
            .collect()
    }

    pub(super) fn health_check(&mut self, node: &Node, path: &str) -> R<HealthCheck> {
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
}
