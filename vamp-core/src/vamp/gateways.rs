//! Gateways: every deployment's and the standalone ones as the router sees them, one by the
//! name it goes by, route weights set in place (what rollouts and `update-gateway` write), and
//! the router's per-route counters.

use super::*;

impl Vamp {
    /// The gateways of all deployments and the standalone ones.
    pub async fn gateways(&self) -> Result<Vec<Gateway>> {
        let config = &self.inner.config.engine;
        let mut out: Vec<Gateway> = self
            .deployments()
            .await?
            .iter()
            .flat_map(|d| engine::gateways(d, config))
            .collect();
        for a in self.list(Kind::Gateway, Page::ALL).await?.items {
            if let Artifact::Gateway(g) = a {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// The configuration text the router has its proxy run (HAProxy's, from the HAProxy
    /// routers), `None` from the embedded router; see
    /// [`Router::rendered_config`](crate::traits::Router::rendered_config).
    ///
    /// # Errors
    /// When the router cannot read it.
    pub async fn rendered_config(&self) -> Result<Option<String>> {
        self.inner.router.rendered_config().await
    }

    /// The gateway `name` denotes (a standalone one, or a deployment's), as stored (routes by their full paths), with the
    /// deployment it belongs to; `None` when there is none.
    pub(crate) async fn gateway_named(
        &self,
        name: &str,
    ) -> Result<Option<(Gateway, Option<Deployment>)>> {
        let Some((deployment, _)) = name.split_once('/') else {
            return Ok(match self.get(Kind::Gateway, name).await? {
                Some(Artifact::Gateway(g)) => Some((g, None)),
                _ => None,
            });
        };
        let Some(d) = self.deployment(deployment).await? else {
            return Ok(None);
        };
        let config = &self.inner.config.engine;
        Ok(engine::gateways(&d, config)
            .into_iter()
            .find(|g| g.name == name)
            .map(|g| (g, Some(d))))
    }

    /// Sets the weights of some routes of a gateway (its other routes keep theirs): a
    /// standalone gateway is stored again, a deployment's gateway changes in its deployment.
    /// Routes are named as the gateway lists them. The change reaches the router at once.
    ///
    /// # Errors
    /// `ArtifactNotFound` for a missing gateway or route; the validation errors of the result
    /// (weights must still total 0% or 100%).
    pub async fn set_route_weights(
        &self,
        gateway: &str,
        weights: &[(String, Percentage)],
    ) -> Result<()> {
        let not_found = |what: String| {
            dsl_error(
                ErrorKind::ArtifactNotFound,
                "gateway",
                what,
                "check the gateway and route names (GET /api/v1/gateways)",
            )
        };
        let set = |routes: &mut crate::model::Map<Ref<Route>>, key: &str, w: Percentage| -> bool {
            let Some(route) = routes.get_mut(key) else {
                return false;
            };
            match route {
                Ref::Inline(r) => r.weight = Some(w),
                Ref::Reference(_) => {
                    *route = Ref::Inline(Route {
                        weight: Some(w),
                        ..Route::default()
                    });
                }
            }
            true
        };
        let segments: Vec<&str> = gateway.split('/').collect();
        match segments.as_slice() {
            [_] => {
                let Some(Artifact::Gateway(mut g)) = self.get(Kind::Gateway, gateway).await? else {
                    return Err(not_found(format!("gateway '{gateway}' does not exist")));
                };
                for (route, w) in weights {
                    if !set(&mut g.routes, route, *w) {
                        return Err(not_found(format!(
                            "gateway '{gateway}' has no route '{route}'"
                        )));
                    }
                }
                self.put(Artifact::Gateway(g)).await?;
            }
            [deployment, rest @ ..] => {
                let _writes = self.write_lock().await?;
                let (mut d, revision) = self.existing(deployment).await?;
                for (route, w) in weights {
                    let parts: Vec<&str> = route.split('/').collect();
                    let found = match (rest, parts.as_slice()) {
                        // An internal gateway d/c/port: routes are the cluster's services.
                        ([cluster, port], [_, _, service, _]) => d
                            .clusters
                            .get_mut(*cluster)
                            .and_then(|c| c.gateways.get_mut(*port))
                            .is_some_and(|g| set(&mut g.routes, service, *w)),
                        // An external gateway d/port: routes are `cluster/port`.
                        ([port], [_, cluster, route_port]) => {
                            let key = format!("{cluster}/{route_port}");
                            d.gateways
                                .iter_mut()
                                .find(|(k, _)| {
                                    crate::model::GatewayPort::parse(k)
                                        .is_ok_and(|p| p.number.to_string() == *port)
                                })
                                .is_some_and(|(_, g)| set(&mut g.routes, &key, *w))
                        }
                        _ => false,
                    };
                    if !found {
                        return Err(not_found(format!(
                            "gateway '{gateway}' has no route '{route}'"
                        )));
                    }
                }
                if let Some(e) = crate::dsl::validate::artifact(&Artifact::Deployment(d.clone()))
                    .into_iter()
                    .next()
                {
                    return Err(e.into());
                }
                self.save(&d, Some(revision), "update").await?;
            }
            [] => return Err(not_found("a gateway name is empty".into())),
        }
        Ok(())
    }
}
