//! Rollouts (issue 18, docs/rollouts.md).

use super::prelude::*;

mod analysis;

/// The fields a metric check may have.
const BOUNDS: [&str; 4] = ["min", "max", "min_ratio", "max_ratio"];
/// The most retries a webhook may ask for.
const MAX_RETRIES: u32 = 10;
/// The longest timeout of one webhook call or provider request, seconds.
const MAX_CALL_TIMEOUT: u64 = 60;

impl Reader {
    pub(super) fn rollout(&mut self, node: &Node) -> R<Rollout> {
        let mut o = self.obj(node, "", "a rollout")?;
        o.ignore(&["kind", "status"]);
        let name = self.name(&mut o)?;
        let metadata = self.metadata(&mut o)?;
        let text = |o: &mut Obj<'_>, key: &str, r: &mut Self| -> R<(String, String)> {
            let (n, p) = o.required(&[key])?;
            r.mark(&p, n);
            Ok((one_line(n, &p, ErrorKind::UnexpectedTypeError)?, p))
        };
        let (gateway, gp) = text(&mut o, "gateway", self)?;
        if !names::is_valid_gateway_name(&gateway) {
            return Err(err(
                ErrorKind::UnsupportedGatewayNameError,
                &gp,
                node,
                format!("'{gateway}' is not a gateway name"),
                "name a standalone gateway or a deployment's (shop/web/port, shop/9050)",
            ));
        }
        let (stable, sp) = text(&mut o, "stable", self)?;
        let (canary, cp) = text(&mut o, "canary", self)?;
        for (route, p) in [(&stable, &sp), (&canary, &cp)] {
            if !names::is_valid_route_path(route) {
                return Err(err(
                    ErrorKind::UnsupportedRoutePathError,
                    p,
                    node,
                    format!("'{route}' is not a route path"),
                    "write the route exactly as the gateway lists it, e.g. shop/web/sava:1.0.0/web",
                ));
            }
        }
        if stable == canary {
            return Err(err(
                ErrorKind::InvalidRolloutError,
                &cp,
                node,
                "the canary is the stable route",
                "name two different routes of the gateway",
            ));
        }
        let (sn, stp) = o.required(&["steps"])?;
        self.mark(&stp, sn);
        let Value::Seq(items) = &sn.value else {
            return Err(type_err(&stp, sn, "a list of steps"));
        };
        if items.is_empty() {
            return Err(err(
                ErrorKind::InvalidRolloutError,
                &stp,
                sn,
                "a rollout needs at least one step",
                "add steps such as '- weight: 10%', '- analysis: {}', '- pause: 30s'",
            ));
        }
        let steps = items
            .iter()
            .enumerate()
            .map(|(i, n)| self.rollout_step(n, &index(&stp, i)))
            .collect::<R<Vec<_>>>()?;
        let analysis = match o.take(&["analysis"]) {
            Some((n, p)) => self.analysis(n, &p)?,
            None => Analysis::default(),
        };
        let webhooks = match o.take(&["webhooks"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let Value::Seq(items) = &n.value else {
                    return Err(type_err(&p, n, "a list of webhooks"));
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, w)| self.webhook(w, &index(&p, i)))
                    .collect::<R<Vec<_>>>()?
            }
            None => Vec::new(),
        };
        o.finish()?;
        Ok(Rollout {
            name,
            metadata,
            gateway,
            stable,
            canary,
            steps,
            analysis,
            webhooks,
        })
    }

    fn webhook(&mut self, node: &Node, path: &str) -> R<Webhook> {
        let mut o = self.obj(node, path, "a webhook")?;
        let (t, tp) = o.required(&["type"])?;
        self.mark(&tp, t);
        let name = string(t, &tp)?;
        let kind = WebhookKind::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = WebhookKind::ALL.iter().map(|k| k.as_str()).collect();
            err(
                ErrorKind::InvalidRolloutError,
                &tp,
                t,
                format!("'{name}' is not a webhook type"),
                format!("use one of: {}", known.join(", ")),
            )
        })?;
        let url = self.url(&mut o)?;
        let timeout = self.call_timeout(&mut o)?;
        let retries = match o.take(&["retries"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let v = unsigned(n, &p)?;
                u32::try_from(v)
                    .ok()
                    .filter(|v| *v <= MAX_RETRIES)
                    .ok_or_else(|| {
                        err(
                            ErrorKind::InvalidRolloutError,
                            &p,
                            n,
                            format!("{v} retries are too many"),
                            format!("use at most {MAX_RETRIES}"),
                        )
                    })?
            }
            None => 2,
        };
        o.finish()?;
        Ok(Webhook {
            kind,
            url,
            timeout,
            retries,
        })
    }

    /// `url`: an absolute http(s) URL on one line, with known template variables only.
    fn url(&mut self, o: &mut Obj<'_>) -> R<String> {
        let (n, p) = o.required(&["url"])?;
        self.mark(&p, n);
        let url = one_line(n, &p, ErrorKind::UnexpectedTypeError)?;
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
        if host.is_none_or(str::is_empty) || url.chars().any(char::is_whitespace) {
            return Err(err(
                ErrorKind::InvalidRolloutError,
                &p,
                n,
                format!("'{url}' is not an http or https URL"),
                "write an absolute URL such as http://127.0.0.1:9090",
            ));
        }
        Self::template_variables(&url, n, &p)?;
        Ok(url)
    }

    /// Refuses `{{variables}}` other than the known ones.
    fn template_variables(text: &str, node: &Node, path: &str) -> R<()> {
        render_template(text, |_| String::new())
            .map(|_| ())
            .map_err(|name| {
                let known: Vec<String> = TEMPLATE_VARIABLES
                    .iter()
                    .map(|v| format!("{{{{{v}}}}}"))
                    .collect();
                err(
                    ErrorKind::InvalidRolloutError,
                    path,
                    node,
                    format!("'{{{{{name}}}}}' is not a template variable"),
                    format!("use {}", known.join(", ")),
                )
            })
    }

    /// `critical: true|false` (default false).
    fn critical(&mut self, o: &mut Obj<'_>) -> R<bool> {
        match o.take(&["critical"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                boolean(n).ok_or_else(|| type_err(&p, n, "true or false"))
            }
            None => Ok(false),
        }
    }

    fn call_timeout(&mut self, o: &mut Obj<'_>) -> R<Seconds> {
        match o.take(&["timeout"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let t = Self::duration(n, &p)?;
                if t.get() == 0 || t.get() > MAX_CALL_TIMEOUT {
                    return Err(err(
                        ErrorKind::InvalidRolloutError,
                        &p,
                        n,
                        format!("a timeout of {}s", t.get()),
                        format!("use 1s to {MAX_CALL_TIMEOUT}s"),
                    ));
                }
                Ok(t)
            }
            None => Ok(Seconds::new(DEFAULT_CALL_TIMEOUT)),
        }
    }

    fn rollout_step(&mut self, node: &Node, path: &str) -> R<RolloutStep> {
        self.mark(path, node);
        let bad = || {
            err(
                ErrorKind::InvalidRolloutError,
                path,
                node,
                "a step is one of weight, analysis or pause",
                "write '- weight: 10%', '- analysis: {}', '- pause: 30s' or '- pause: {}'",
            )
        };
        let Value::Map(entries) = &node.value else {
            return Err(bad());
        };
        let [(k, v)] = entries.as_slice() else {
            return Err(bad());
        };
        let key = k.scalar_text().unwrap_or_default();
        let p = join(path, &key);
        self.mark(&p, v);
        match key.as_str() {
            "weight" => Ok(RolloutStep::Weight(percentage(
                v,
                &p,
                ErrorKind::RouteWeightError,
            )?)),
            "analysis" => match &v.value {
                Value::Null => Ok(RolloutStep::Analysis),
                Value::Map(m) if m.is_empty() => Ok(RolloutStep::Analysis),
                _ => Err(err(
                    ErrorKind::InvalidRolloutError,
                    &p,
                    v,
                    "an analysis step takes no settings: they are the rollout's 'analysis'",
                    "write '- analysis: {}'",
                )),
            },
            "pause" => match &v.value {
                Value::Null => Ok(RolloutStep::Pause(None)),
                Value::Map(m) if m.is_empty() => Ok(RolloutStep::Pause(None)),
                _ => Ok(RolloutStep::Pause(Some(Self::duration(v, &p)?))),
            },
            _ => Err(bad()),
        }
    }

    fn duration(node: &Node, path: &str) -> R<Seconds> {
        let text = string(node, path)?;
        Seconds::parse(&text).map_err(|e| {
            err(
                ErrorKind::UnsupportedUnitValue,
                path,
                node,
                e.0,
                "write a duration like 30s, 5m or 1h",
            )
        })
    }
}
