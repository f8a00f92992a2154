//! Workflows and their schedules (spec §1.13).

use super::prelude::*;

impl Reader {
    pub(super) fn workflow(&mut self, node: &Node) -> R<Workflow> {
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
            Some((n, p)) => self.map_of(
                n,
                &p,
                "a map of environment variables",
                |reader, key, kp, k, v| {
                    reader.mark(kp, v);
                    check_name(key, kp, k)?;
                    let value = trait_value(v, kp)?.ok_or_else(|| {
                        err(
                            ErrorKind::MissingEnvironmentVariableError,
                            kp,
                            v,
                            format!("environment variable '{key}' has no value"),
                            "give it a value, or remove it to keep the breed's",
                        )
                    })?;
                    Ok(Some(value))
                },
            )?,
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

    pub(super) fn schedule(&mut self, node: &Node, path: &str) -> R<Schedule> {
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
}
