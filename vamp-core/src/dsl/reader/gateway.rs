//! Gateways, routes, conditions and rewrites (spec §1.6–1.8).
//!
//! One file: gateways, routes, conditions and rewrites are read together and share one path
//! scheme for errors.

use super::prelude::*;

impl Reader {
    pub(super) fn gateway(&mut self, node: &Node) -> R<Gateway> {
        self.gateway_body(node, "", true)
    }

    pub(super) fn gateway_body(&mut self, node: &Node, path: &str, top: bool) -> R<Gateway> {
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
                    Some(GatewayPort::parse(&text).map_err(invalid)?)
                }
                // Left out: one is assigned when stored — or none, on a shared
                // virtual-host listener (`Vamp::put`).
                None => None,
            };
            (name, port)
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

    pub(super) fn check_selector(
        selector: &str,
        path: &str,
        mark: crate::dsl::node::Mark,
    ) -> R<()> {
        crate::dsl::selector::check(selector).map_err(|m| {
            DslError::new(
                ErrorKind::InvalidSelectorError,
                path,
                mark,
                format!("invalid selector '{selector}': {m}"),
                "use operands like name(re), label(k)(v), image(re), port(N) with and/or/not",
            )
        })
    }

    pub(super) fn virtual_hosts(&mut self, node: &Node, path: &str) -> R<Vec<String>> {
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
        let host = |n: &Node, p: &str| -> R<String> {
            let text = one_line(n, p, ErrorKind::IllegalGatewayVirtualHosts)?;
            // A host name, maybe with a port or a wildcard: what a Host header can hold.
            let host_char =
                |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | ':');
            if text.is_empty() || !text.chars().all(host_char) {
                return Err(err(
                    ErrorKind::IllegalGatewayVirtualHosts,
                    p,
                    n,
                    format!("'{}' is not a host name", text.escape_debug()),
                    "write a host name such as shop.example.com (letters, digits, '.', '-', '*', and ':port')",
                ));
            }
            Ok(text)
        };
        match &node.value {
            Value::Str(_) => Ok(vec![host(node, path)?]),
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| match &n.value {
                    Value::Str(_) => host(n, &format!("{path}[{i}]")),
                    _ => Err(bad()),
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            _ => Err(bad()),
        }
    }

    pub(super) fn routes(&mut self, node: &Node, path: &str) -> R<Map<Ref<Route>>> {
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

    pub(super) fn check_route_selector(&self, route: &Route, key: &str, path: &str) -> R<()> {
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
    pub(super) fn route_error(&self, weight: bool) -> ErrorKind {
        match (self.cluster_gateway, weight) {
            (true, true) => ErrorKind::RouteWeightError,
            (true, false) => ErrorKind::RouteConditionStrengthError,
            (false, true) => ErrorKind::GatewayRouteWeightError,
            (false, false) => ErrorKind::GatewayRouteConditionStrengthError,
        }
    }

    pub(super) fn route(&mut self, node: &Node, path: &str, top: bool) -> R<Route> {
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
        let mirror = match o.take(&["mirror"]) {
            Some((n, p)) => self.mirror(n, &p)?,
            None => None,
        };
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
            mirror,
        })
    }

    /// `mirror: {target: host:port, percentage: 100%}` (percentage optional, default 100%).
    fn mirror(&mut self, node: &Node, path: &str) -> R<Option<Mirror>> {
        self.mark(path, node);
        if matches!(node.value, Value::Null) {
            return Ok(None);
        }
        let mut o = self.obj(node, path, "a mirror")?;
        let (n, p) = o.required(&["target"])?;
        self.mark(&p, n);
        let target = string(n, &p)?;
        let bare = names::external_target(&target)
            .unwrap_or(&target)
            .to_owned();
        let valid = names::host_port(&bare).is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.chars().any(|c| c.is_whitespace() || c.is_control())
                && port != 0
        });
        if !valid {
            return Err(err(
                ErrorKind::UnexpectedTypeError,
                &p,
                n,
                format!("mirror target '{target}' is not host:port"),
                "write the address copies go to, e.g. target: 10.0.0.9:8080",
            ));
        }
        let percentage = match o.take(&["percentage"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                percentage(n, &p, ErrorKind::GatewayRouteWeightError)?
            }
            None => Percentage::FULL,
        };
        o.finish()?;
        Ok(Some(Mirror {
            target: bare,
            percentage,
        }))
    }

    /// `condition: <expr> | {condition: <expr>} | {ref: name}`; an empty string is no condition.
    pub(super) fn route_condition(&mut self, node: &Node, path: &str) -> R<Option<Ref<Condition>>> {
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
                let text = one_line(node, path, ErrorKind::ParserError)?;
                Ok((!text.trim().is_empty()).then(|| {
                    Ref::Inline(Condition {
                        definition: text,
                        ..Condition::default()
                    })
                }))
            }
        }
    }

    pub(super) fn condition_artifact(
        &mut self,
        node: &Node,
        path: &str,
        top: bool,
    ) -> R<Condition> {
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
        let definition = one_line(d, &dp, ErrorKind::ParserError)?;
        o.finish()?;
        Ok(Condition {
            name,
            metadata,
            definition,
        })
    }

    pub(super) fn rewrite(&mut self, node: &Node, path: &str, top: bool) -> R<Rewrite> {
        let (mut o, name, metadata) =
            self.header(node, path, top, "a rewrite (a map with path)")?;
        let (pn, pp) = o.required(&["path"])?;
        self.mark(&pp, pn);
        let rewrite = Rewrite {
            name,
            metadata,
            path: one_line(pn, &pp, ErrorKind::UnsupportedPathRewriteError)?,
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
}
