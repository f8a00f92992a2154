//! The `vamp` object of JavaScript workflows: [`WorkflowHost`] answers its calls with the
//! [`Vamp`] facade, in-process (no HTTP round trip). The methods mirror the original node
//! client's (spec §5.6):
//!
//! | call | answer |
//! |---|---|
//! | `list(kind)` | every artifact of the kind (`breeds`, `deployments`, `gateways`, …) |
//! | `get(kind, name)` | the artifact, or `null` |
//! | `create(kind, artifact)`, `update(kind, name, artifact)` | the stored artifact (an object or DSL text; `kind` and `name` from the call) |
//! | `remove(kind, name)` | whether there was one (deployments: undeployed) |
//! | `deployments()`, `gateways()` | every deployment, every gateway |
//! | `setWeights(gateway, {route: weight})` | the gateway after the change (weights as `"10%"` or `10`) |
//! | `event(tags, value, type?)` | the stored event |
//! | `events(tags, type?)` | the newest 30 events carrying every tag, newest first |
//! | `stats()` | the router's counters per route: requests, errors, latency histogram |
//! | `count(gateway, route?)` | requests the router counted (since it started) |
//! | `average(gateway, route?)` | their mean response time, ms (`null` without requests) |
//! | `percentile(gateway, p, route?)` | the `p`th (0–100) percentile of response times, ms |
//! | `health(gateway, route?)`, `metrics(gateway, name, route?)` | the newest `health` / `metrics:<name>` event's value (spec §2.8), or `null` |

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::model::{Artifact, Event, Kind, Percentage};
use crate::traits::{EventFilter, Page, ScriptHost};
use crate::vamp::Vamp;
use crate::{Error, Result};

/// The host of one workflow's scripts.
#[derive(Debug, Clone)]
pub struct WorkflowHost {
    vamp: Vamp,
    workflow: String,
}

impl WorkflowHost {
    /// The `vamp` object of `workflow`'s scripts.
    pub fn new(vamp: Vamp, workflow: impl Into<String>) -> Self {
        WorkflowHost {
            vamp,
            workflow: workflow.into(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid {
        what: "vamp call",
        message: message.into(),
    }
}

fn text(args: &Value, i: usize, what: &str) -> Result<String> {
    args.get(i)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("argument {} ({what}) must be a string", i + 1)))
}

fn kind(args: &Value) -> Result<Kind> {
    let name = text(args, 0, "kind")?;
    Kind::parse(&name).filter(|k| k.is_stored()).ok_or_else(|| {
        invalid(format!(
            "'{name}' is not an artifact kind (breeds, deployments, gateways, …)"
        ))
    })
}

fn json_of(artifacts: &[Artifact]) -> Value {
    Value::Array(artifacts.iter().map(Artifact::to_json).collect())
}

impl WorkflowHost {
    /// The router's counts of `gateway` (its `route` only, when given), added up.
    async fn counts(&self, args: &Value, route_at: usize) -> Result<crate::rollout::Counts> {
        let gateway = text(args, 0, "gateway")?;
        let route = args.get(route_at).and_then(Value::as_str);
        let mut all = crate::rollout::Counts::default();
        for s in self.vamp.route_stats().await? {
            if s.gateway == gateway && route.is_none_or(|r| r == s.route) {
                all.add(&crate::rollout::Counts::from_stats(&s));
            }
        }
        Ok(all)
    }

    /// `vamp.traffic(seconds)`: every gateway's and route's traffic over the last `seconds`
    /// ([`Vamp::traffic`]) — `{seconds, counted, gateways: [{name, requests, errors, rate,
    /// responseTime, routes: [{name, …}]}]}`, `rate` per second over the seconds covered,
    /// `responseTime` the mean in ms (`null` when the router measures none). A router that
    /// counts nothing answers `counted: false` and no gateways.
    async fn traffic(&self, args: &Value) -> Result<Value> {
        let seconds = args
            .get(0)
            .and_then(Value::as_f64)
            .filter(|s| *s > 0.0)
            .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| {
                invalid("argument 1 (the window) must be a number of seconds above 0")
            })?;
        let traffic = match self.vamp.traffic(seconds).await {
            Ok(t) => t,
            Err(Error::Unsupported { .. }) => {
                return Ok(json!({"seconds": 0, "counted": false, "gateways": []}));
            }
            Err(e) => return Err(e),
        };
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let rate = |requests: u64| {
            if traffic.seconds > 0.0 {
                requests as f64 / traffic.seconds
            } else {
                0.0
            }
        };
        let mut gateways: Vec<Value> = Vec::new();
        for routes in traffic.routes.chunk_by(|a, b| a.gateway == b.gateway) {
            let Some(first) = routes.first() else {
                continue;
            };
            let mut all = crate::RouteTraffic {
                gateway: first.gateway.clone(),
                measured: routes.iter().all(|r| r.measured),
                ..crate::RouteTraffic::default()
            };
            let routes: Vec<Value> = routes
                .iter()
                .map(|r| {
                    all.requests += r.requests;
                    all.errors += r.errors;
                    all.sum_ms += r.sum_ms;
                    json!({
                        "name": r.route,
                        "requests": r.requests,
                        "errors": r.errors,
                        "rate": rate(r.requests),
                        "responseTime": r.mean_ms(),
                    })
                })
                .collect();
            gateways.push(json!({
                "name": all.gateway,
                "requests": all.requests,
                "errors": all.errors,
                "rate": rate(all.requests),
                "responseTime": all.mean_ms(),
                "routes": routes,
            }));
        }
        Ok(json!({"seconds": traffic.seconds, "counted": true, "gateways": gateways}))
    }

    /// Every artifact of `kind`; gateways as the router sees them (deployments' too).
    async fn all(&self, kind: Kind) -> Result<Vec<Artifact>> {
        if kind == Kind::Gateway {
            return Ok(self
                .vamp
                .gateways()
                .await?
                .into_iter()
                .map(Artifact::Gateway)
                .collect());
        }
        Ok(self.vamp.list(kind, Page::ALL).await?.items)
    }

    /// One artifact; a gateway may be a deployment's.
    async fn one(&self, kind: Kind, name: &str) -> Result<Value> {
        if kind == Kind::Gateway {
            return Ok(self
                .all(kind)
                .await?
                .iter()
                .find(|g| g.name() == name)
                .map_or(Value::Null, Artifact::to_json));
        }
        Ok(self
            .vamp
            .get(kind, name)
            .await?
            .map_or(Value::Null, |a| a.to_json()))
    }

    /// Stores `body` (an object or DSL text) as `kind` (named `name` when given); a
    /// deployment's body is its blueprint, deployed.
    async fn store(&self, kind: Kind, name: Option<String>, body: &Value) -> Result<Value> {
        let text = match body {
            Value::String(text) => text.clone(),
            Value::Object(map) => {
                let mut map = map.clone();
                if let Some(name) = name {
                    map.insert("name".into(), json!(name));
                }
                Value::Object(map).to_string()
            }
            _ => return Err(invalid("the artifact must be an object or DSL text")),
        };
        if kind == Kind::Deployment {
            let mut out = Value::Null;
            for a in self.vamp.read(&text, Some(Kind::Blueprint)).await? {
                if let Artifact::Blueprint(b) = a {
                    let d = self.vamp.deploy(&b.name.clone(), &b).await?;
                    out = Artifact::Deployment(d).to_json();
                }
            }
            return Ok(out);
        }
        let mut out = Value::Null;
        for a in self.vamp.read(&text, Some(kind)).await? {
            out = a.to_json();
            self.vamp.put(a).await?;
        }
        Ok(out)
    }
}

#[async_trait]
impl ScriptHost for WorkflowHost {
    async fn call(&self, method: &str, args: Value) -> Result<Value> {
        tracing::debug!(workflow = %self.workflow, method, "vamp call");
        match method {
            "list" => Ok(json_of(&self.all(kind(&args)?).await?)),
            "get" => self.one(kind(&args)?, &text(&args, 1, "name")?).await,
            "create" => {
                self.store(kind(&args)?, None, args.get(1).unwrap_or(&Value::Null))
                    .await
            }
            "update" => {
                self.store(
                    kind(&args)?,
                    Some(text(&args, 1, "name")?),
                    args.get(2).unwrap_or(&Value::Null),
                )
                .await
            }
            "remove" => {
                let (kind, name) = (kind(&args)?, text(&args, 1, "name")?);
                if kind == Kind::Deployment {
                    Ok(json!(self.vamp.undeploy(&name).await?.is_some()))
                } else {
                    Ok(json!(self.vamp.delete(kind, &name).await?))
                }
            }
            "deployments" => Ok(json_of(
                &self
                    .vamp
                    .deployments()
                    .await?
                    .into_iter()
                    .map(Artifact::Deployment)
                    .collect::<Vec<_>>(),
            )),
            "gateways" => Ok(json_of(&self.all(Kind::Gateway).await?)),
            "setWeights" => {
                let gateway = text(&args, 0, "gateway")?;
                let Some(routes) = args.get(1).and_then(Value::as_object) else {
                    return Err(invalid("argument 2 must be an object {route: weight}"));
                };
                let mut weights = Vec::new();
                for (route, w) in routes {
                    let weight = match w {
                        Value::Number(n) => n
                            .as_u64()
                            .and_then(|n| u8::try_from(n).ok())
                            .and_then(Percentage::new),
                        Value::String(s) => Percentage::parse(s).ok(),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        invalid(format!(
                            "the weight of '{route}' must be 0–100 or \"0%\"–\"100%\""
                        ))
                    })?;
                    weights.push((route.clone(), weight));
                }
                self.vamp.set_route_weights(&gateway, &weights).await?;
                self.one(Kind::Gateway, &gateway).await
            }
            "event" => {
                let tags: Vec<String> =
                    serde_json::from_value(args.get(0).cloned().unwrap_or_default())
                        .map_err(|_| invalid("argument 1 (tags) must be an array of strings"))?;
                if tags.is_empty() {
                    return Err(invalid("an event needs at least one tag"));
                }
                let mut event = Event::new(tags, args.get(1).cloned().unwrap_or(Value::Null));
                if let Some(kind) = args.get(2).and_then(Value::as_str) {
                    kind.clone_into(&mut event.kind);
                }
                Ok(self.vamp.publish(&event).await?.to_json())
            }
            "events" => {
                let tags: Vec<String> =
                    serde_json::from_value(args.get(0).cloned().unwrap_or_default())
                        .map_err(|_| invalid("argument 1 (tags) must be an array of strings"))?;
                let filter = EventFilter {
                    tags,
                    kind: args.get(1).and_then(Value::as_str).map(str::to_owned),
                    ..EventFilter::default()
                };
                let page = self.vamp.events(&filter, Page::new(1, 30)).await?;
                Ok(Value::Array(
                    page.items.iter().map(|e| e.to_json()).collect(),
                ))
            }
            "stats" => Ok(Value::Array(
                self.vamp
                    .route_stats()
                    .await?
                    .iter()
                    .map(|r| {
                        json!({
                            "gateway": r.gateway,
                            "route": r.route,
                            "requests": r.requests,
                            "errors": r.errors,
                            // `[upper bound in ms (null: no bound), count]`
                            "latency": r.latency.buckets.iter()
                                .map(|(b, n)| json!([b.is_finite().then_some(*b), n]))
                                .collect::<Vec<_>>(),
                            "latency_sum_ms": r.latency.sum_ms,
                        })
                    })
                    .collect(),
            )),
            "traffic" => self.traffic(&args).await,
            "count" => Ok(json!(self.counts(&args, 1).await?.requests)),
            "average" => Ok(json!(self.counts(&args, 1).await?.mean_ms())),
            "percentile" => {
                let p = args
                    .get(1)
                    .and_then(Value::as_f64)
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| invalid("argument 2 (the percentile) must be a number 0–100"))?;
                Ok(json!(self.counts(&args, 2).await?.percentile(p / 100.0)))
            }
            "health" | "metrics" => {
                let gateway = text(&args, 0, "gateway")?;
                let mut tags = vec![format!("gateways:{gateway}")];
                let route_at = if method == "health" {
                    tags.push("health".into());
                    1
                } else {
                    tags.push(format!("metrics:{}", text(&args, 1, "metric")?));
                    2
                };
                let below = match args.get(route_at).and_then(Value::as_str) {
                    Some(route) => {
                        tags.push(format!("routes:{route}"));
                        None
                    }
                    // The gateway's own value, not one of its routes'.
                    None => Some("routes:"),
                };
                Ok(self
                    .vamp
                    .newest_event_of_level(&EventFilter::tags(tags), below)
                    .await?
                    .map_or(Value::Null, |e| e.event.value))
            }
            other => Err(invalid(format!(
                "vamp.{other} is not a method (list, get, create, update, remove, deployments, gateways, setWeights, event, events, stats, traffic, count, average, percentile, health, metrics)"
            ))),
        }
    }
}
