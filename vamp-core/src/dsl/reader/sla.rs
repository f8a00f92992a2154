//! Scales, SLAs and escalations (spec §1.5.2, §1.9, §1.10).

use super::prelude::*;

impl Reader {
    pub(crate) fn scale(&mut self, node: &Node, path: &str, top: bool) -> R<Scale> {
        let (mut o, name, metadata) = self.header(
            node,
            path,
            top,
            "a scale (a map with cpu, memory and instances)",
        )?;
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

    /// A cluster's SLA: a stored one by name, an inline one, or a stored one by name with
    /// escalations of its own (`{reference: name, escalations: […]}`, as Vamp's reader takes
    /// it: a reference may carry `escalations` and nothing else).
    pub(super) fn cluster_sla(&mut self, node: &Node, path: &str) -> R<Ref<Sla>> {
        if let Value::Map(entries) = &node.value {
            let key = |k: &Node| k.scalar_text().unwrap_or_default();
            let reference = entries
                .iter()
                .find(|(k, _)| matches!(key(k).as_str(), "ref" | "reference"));
            let escalations = entries.iter().find(|(k, _)| key(k) == "escalations");
            if let (Some((rk, rv)), Some((_, ev)), 2) = (reference, escalations, entries.len()) {
                let rp = join(path, &key(rk));
                self.mark(&rp, rv);
                let name = string(rv, &rp)?;
                check_ref_name(&name, &rp, rv)?;
                let ep = join(path, "escalations");
                self.mark(&ep, ev);
                let escalations = self.escalation_list(ev, &ep)?;
                return Ok(Ref::Inline(Sla {
                    kind: SlaKind::Extends(name),
                    escalations: wrap_all(escalations),
                    ..Sla::default()
                }));
            }
        }
        self.anonymous_ref(node, path, |r, n, p| r.sla(n, p, false))
    }

    pub(super) fn sla(&mut self, node: &Node, path: &str, top: bool) -> R<Sla> {
        let (mut o, name, metadata) = self.header(node, path, top, "an SLA")?;
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

    pub(super) fn required_unsigned(&mut self, o: &mut Obj<'_>, key: &str) -> R<u64> {
        let (n, p) = o.required(&[key])?;
        self.mark(&p, n);
        unsigned(n, &p)
    }

    pub(super) fn escalation_list(&mut self, node: &Node, path: &str) -> R<Vec<Ref<Escalation>>> {
        self.mark(path, node);
        list_or_one(node)
            .into_iter()
            .map(|(i, n)| self.escalation_item(n, &index(path, i)))
            .collect()
    }

    /// An escalation list item: a reference, an inline escalation, or `to_all:`/`to_one:` shorthand.
    pub(super) fn escalation_item(&mut self, node: &Node, path: &str) -> R<Ref<Escalation>> {
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

    pub(super) fn escalation(&mut self, node: &Node, path: &str, top: bool) -> R<Escalation> {
        let (mut o, name, metadata) = self.header(node, path, top, "an escalation")?;
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
}

/// One `to_all` group when there is more than one escalation (spec §1.9).
pub(super) fn wrap_all(escalations: Vec<Ref<Escalation>>) -> Vec<Ref<Escalation>> {
    if escalations.len() > 1 {
        vec![Ref::Inline(Escalation {
            kind: EscalationKind::ToAll(escalations),
            ..Escalation::default()
        })]
    } else {
        escalations
    }
}
