//! Events and event queries (spec §1.14).

use super::prelude::*;

impl Reader {
    pub(super) fn event(&mut self, node: &Node) -> R<Event> {
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

    pub(super) fn tags(&mut self, node: &Node, path: &str) -> R<Vec<String>> {
        self.mark(path, node);
        list_or_one(node)
            .into_iter()
            .map(|(i, t)| item_string(t, &index(path, i)))
            .collect()
    }

    pub(super) fn event_query(&mut self, node: &Node) -> R<EventQuery> {
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
}
