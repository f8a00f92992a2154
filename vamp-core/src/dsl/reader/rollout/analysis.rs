//! A rollout's analysis: its interval, metric checks, provider checks and their bounds.

use super::*;

impl Reader {
    pub(super) fn analysis(&mut self, node: &Node, path: &str) -> R<Analysis> {
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

    pub(super) fn metric_check(&mut self, node: &Node, path: &str) -> R<Check> {
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
        let bound = one_bound(
            &bounds,
            node,
            path,
            "give exactly one of min, max, min_ratio or max_ratio (one check per bound)",
        )?;
        let critical = self.critical(&mut o)?;
        o.finish()?;
        Ok(Check::BuiltIn(MetricCheck {
            metric,
            bound,
            critical,
        }))
    }

    pub(super) fn provider_check(
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
        let bound = one_bound(
            &bounds,
            node,
            path,
            "give exactly one of min or max (one check per bound)",
        )?;
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
    pub(super) fn bound_value(metric: Metric, key: &str, node: &Node, path: &str) -> R<f64> {
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

/// The one bound of a check, or an error saying how many it has and `hint`.
fn one_bound(bounds: &[MetricBound], node: &Node, path: &str, hint: &str) -> R<MetricBound> {
    match bounds {
        [one] => Ok(*one),
        _ => Err(err(
            ErrorKind::InvalidRolloutError,
            path,
            node,
            format!("a metric check has one bound, this has {}", bounds.len()),
            hint,
        )),
    }
}
