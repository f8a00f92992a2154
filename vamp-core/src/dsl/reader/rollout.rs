//! Rollouts (issue 18, docs/rollouts.md).

use super::prelude::*;

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

    fn analysis(&mut self, node: &Node, path: &str) -> R<Analysis> {
        let mut o = self.obj(node, path, "the analysis settings")?;
        let defaults = Analysis::default();
        let interval = match o.take(&["interval"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let interval = Self::duration(n, &p)?;
                if interval.get() == 0 {
                    return Err(err(
                        ErrorKind::InvalidRolloutError,
                        &p,
                        n,
                        "the analysis interval must be at least 1s",
                        "write 'interval: 10s'",
                    ));
                }
                interval
            }
            None => defaults.interval,
        };
        let count = |o: &mut Obj<'_>, key: &str, r: &mut Self, default: u64| -> R<u64> {
            match o.take(&[key]) {
                Some((n, p)) => {
                    r.mark(&p, n);
                    unsigned(n, &p)
                }
                None => Ok(default),
            }
        };
        let min_requests = count(&mut o, "min_requests", self, defaults.min_requests)?;
        let limit = |v: u64, key: &str| u32::try_from(v).map_err(|_| key.to_owned());
        let failure_limit = count(&mut o, "failure_limit", self, defaults.failure_limit.into())?;
        let inconclusive_limit = count(
            &mut o,
            "inconclusive_limit",
            self,
            defaults.inconclusive_limit.into(),
        )?;
        let consecutive_error_limit = count(
            &mut o,
            "consecutive_error_limit",
            self,
            defaults.consecutive_error_limit.into(),
        )?;
        let (failure_limit, inconclusive_limit, consecutive_error_limit) = match (
            limit(failure_limit, "failure_limit"),
            limit(inconclusive_limit, "inconclusive_limit"),
            limit(consecutive_error_limit, "consecutive_error_limit"),
        ) {
            (Ok(f), Ok(i), Ok(e)) => (f, i, e),
            (Err(key), _, _) | (_, Err(key), _) | (_, _, Err(key)) => {
                return Err(err(
                    ErrorKind::InvalidRolloutError,
                    &join(path, &key),
                    node,
                    format!("{key} is too large"),
                    "use a count below 4 294 967 296",
                ));
            }
        };
        let metrics = match o.take(&["metrics"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                let Value::Seq(items) = &n.value else {
                    return Err(type_err(&p, n, "a list of metric checks"));
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, m)| self.metric_check(m, &index(&p, i)))
                    .collect::<R<Vec<_>>>()?
            }
            None => defaults.metrics,
        };
        o.finish()?;
        Ok(Analysis {
            interval,
            min_requests,
            failure_limit,
            inconclusive_limit,
            consecutive_error_limit,
            metrics,
        })
    }

    fn metric_check(&mut self, node: &Node, path: &str) -> R<Check> {
        let mut o = self.obj(node, path, "a metric check")?;
        if let Some((n, p)) = o.take(&["provider"]) {
            return self
                .provider_check(o, node, path, n, &p)
                .map(Check::Provider);
        }
        let (m, mp) = o.required(&["metric"])?;
        self.mark(&mp, m);
        let name = string(m, &mp)?;
        let Some(metric) = Metric::parse(&name) else {
            let known: Vec<String> = Metric::ALL.iter().map(|m| m.name()).collect();
            return Err(err(
                ErrorKind::UnsupportedRolloutMetric,
                &mp,
                m,
                format!("'{name}' is not a built-in metric"),
                format!("use one of: {}", known.join(", ")),
            ));
        };
        let mut bounds = Vec::new();
        for key in BOUNDS {
            if let Some((n, p)) = o.take(&[key]) {
                self.mark(&p, n);
                let value = Self::bound_value(metric, key, n, &p)?;
                bounds.push(match key {
                    "min" => MetricBound::Min(value),
                    "max" => MetricBound::Max(value),
                    "min_ratio" => MetricBound::MinRatio(value),
                    _ => MetricBound::MaxRatio(value),
                });
            }
        }
        let bound = match bounds.as_slice() {
            [one] => *one,
            _ => {
                return Err(err(
                    ErrorKind::InvalidRolloutError,
                    path,
                    node,
                    format!("a metric check has one bound, this has {}", bounds.len()),
                    "give exactly one of min, max, min_ratio or max_ratio (one check per bound)",
                ));
            }
        };
        let critical = self.critical(&mut o)?;
        o.finish()?;
        Ok(Check::BuiltIn(MetricCheck {
            metric,
            bound,
            critical,
        }))
    }

    fn provider_check(
        &mut self,
        mut o: Obj<'_>,
        node: &Node,
        path: &str,
        provider_node: &Node,
        provider_path: &str,
    ) -> R<ProviderCheck> {
        self.mark(provider_path, provider_node);
        let text = string(provider_node, provider_path)?;
        let provider = ProviderKind::parse(&text).ok_or_else(|| {
            err(
                ErrorKind::UnsupportedRolloutMetric,
                provider_path,
                provider_node,
                format!("'{text}' is not a metric provider"),
                "use prometheus or web",
            )
        })?;
        let name = match o.take(&["name"]) {
            Some((n, p)) => {
                self.mark(&p, n);
                Some(one_line(n, &p, ErrorKind::UnexpectedTypeError)?)
            }
            None => None,
        };
        let url = self.url(&mut o)?;
        let (key, hint) = match provider {
            ProviderKind::Prometheus => (
                "query",
                "write the PromQL query whose result is one number, e.g. sum(rate(…[{{interval}}]))",
            ),
            ProviderKind::Web => ("json_path", "write where the number is, e.g. $.value"),
        };
        let Some((q, qp)) = o.take(&[key]) else {
            return Err(err(
                ErrorKind::InvalidRolloutError,
                &join(path, key),
                node,
                format!("a {} check needs '{key}'", provider.as_str()),
                hint,
            ));
        };
        self.mark(&qp, q);
        let query = one_line(q, &qp, ErrorKind::UnexpectedTypeError)?;
        if query.trim().is_empty() {
            return Err(err(
                ErrorKind::InvalidRolloutError,
                &qp,
                q,
                format!("'{key}' is empty"),
                hint,
            ));
        }
        Self::template_variables(&query, q, &qp)?;
        let mut bounds = Vec::new();
        for key in BOUNDS {
            if let Some((n, p)) = o.take(&[key]) {
                self.mark(&p, n);
                if key.ends_with("_ratio") {
                    return Err(err(
                        ErrorKind::InvalidRolloutError,
                        &p,
                        n,
                        "a provider's number has no stable counterpart to compare with",
                        "bound it with min or max, and write the comparison with {{stable}} into the query",
                    ));
                }
                let v = number(n, &p)?;
                if !v.is_finite() {
                    return Err(err(
                        ErrorKind::UnsupportedUnitValue,
                        &p,
                        n,
                        format!("'{v}' is not a bound"),
                        "write a finite number",
                    ));
                }
                bounds.push(if key == "min" {
                    MetricBound::Min(v)
                } else {
                    MetricBound::Max(v)
                });
            }
        }
        let bound = match bounds.as_slice() {
            [one] => *one,
            _ => {
                return Err(err(
                    ErrorKind::InvalidRolloutError,
                    path,
                    node,
                    format!("a metric check has one bound, this has {}", bounds.len()),
                    "give exactly one of min or max (one check per bound)",
                ));
            }
        };
        let critical = self.critical(&mut o)?;
        let timeout = self.call_timeout(&mut o)?;
        o.finish()?;
        Ok(ProviderCheck {
            name,
            provider,
            url,
            query,
            bound,
            critical,
            timeout,
        })
    }

    /// A bound's number: rates as percentages (`99%`), latencies as durations (`500ms`, `1s`,
    /// or milliseconds), request rates and ratios as plain numbers.
    fn bound_value(metric: Metric, key: &str, node: &Node, path: &str) -> R<f64> {
        let bad = |hint: &str| {
            err(
                ErrorKind::UnsupportedUnitValue,
                path,
                node,
                format!(
                    "'{}' is not a value for {key} of {}",
                    node.scalar_text().unwrap_or_default(),
                    metric.name()
                ),
                hint.to_owned(),
            )
        };
        let value = if key.ends_with("_ratio") {
            number(node, path)?
        } else {
            match metric {
                Metric::SuccessRate | Metric::ErrorRate => {
                    let text = string(node, path)?;
                    let v = text
                        .trim()
                        .strip_suffix('%')
                        .and_then(|n| n.trim().parse::<f64>().ok())
                        .filter(|v| (0.0..=100.0).contains(v))
                        .ok_or_else(|| bad("write a percentage such as 99% or 99.9%"))?;
                    v / 100.0
                }
                Metric::Latency(_) | Metric::LatencyMean => match &node.value {
                    Value::Int(_) | Value::Float(_) => number(node, path)?,
                    _ => {
                        let text = string(node, path)?;
                        let t = text.trim();
                        let (n, factor) = if let Some(n) = t.strip_suffix("ms") {
                            (n, 1.0)
                        } else if let Some(n) = t.strip_suffix('s') {
                            (n, 1000.0)
                        } else {
                            (t, 1.0)
                        };
                        n.trim()
                            .parse::<f64>()
                            .map(|v| v * factor)
                            .map_err(|_| bad("write a time such as 500ms or 1.5s"))?
                    }
                },
                Metric::RequestRate => {
                    let text = node.scalar_text().unwrap_or_default();
                    text.trim()
                        .trim_end_matches("/s")
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| bad("write requests per second, such as 5"))?
                }
            }
        };
        if !value.is_finite() || value < 0.0 {
            return Err(bad("write a number of 0 or more"));
        }
        Ok(value)
    }
}
