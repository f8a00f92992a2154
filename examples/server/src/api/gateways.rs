//! Gateways (spec §2.5): the deployments' and standalone ones.

use super::*;

/// The gateway called `name`: a standalone one (one segment) read by its name, or one of the
/// gateways of the deployment its first segment names — never a scan of every gateway.
pub(super) async fn find_gateway(
    state: &AppState,
    name: &str,
) -> Result<Option<Artifact>, ApiError> {
    let Some((deployment, _)) = name.split_once('/') else {
        return Ok(state.vamp.get(Kind::Gateway, name).await?);
    };
    let Some(d) = state.vamp.deployment(deployment).await? else {
        return Ok(None);
    };
    let config = &state.vamp.config().engine;
    Ok(vamp_core::engine::gateways(&d, config)
        .into_iter()
        .find(|g| g.name == name)
        .map(Artifact::Gateway))
}

#[utoipa::path(get, path = "/gateways", tag = "gateways", params(("page" = Option<u64>, Query), ("per_page" = Option<u64>, Query)), responses((status = 200, description = "A page of gateways (the deployments' and standalone ones)", body = Vec<schemas::Gateway>)))]
pub(super) async fn list_gateways(
    State(state): State<AppState>,
    Query(paging): Query<Paging>,
    headers: HeaderMap,
) -> ApiResult {
    let mut all = state.vamp.gateways().await?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let all = all.into_iter().map(|g| Artifact::Gateway(g).to_json());
    Ok(page_of(&headers, "/api/v1/gateways", paging.page(), all))
}

#[utoipa::path(get, path = "/gateways/{*name}", tag = "gateways", params(("name" = String, Path, description = "may hold /")), responses((status = 200, description = "The gateway", body = schemas::Gateway), (status = 404, description = "No such gateway", body = schemas::ErrorBody)))]
pub(super) async fn get_gateway(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    found(StatusCode::OK, &headers, find_gateway(&state, &name).await?)
}

/// Stores a standalone gateway (spec §2.5): validated, weights defaulted, its port checked
/// against every other gateway's (`?validate_only=true`: checked only). 202 with the gateway.
/// A deployment's gateways (names with `/`) change through their deployment.
#[utoipa::path(post, path = "/gateways", tag = "gateways", params(("validate_only" = Option<bool>, Query)), request_body(content = schemas::Gateway, description = "A standalone gateway"), responses((status = 202, description = "The gateway", body = schemas::Gateway), (status = 400, description = "Does not read, check or fit", body = schemas::ErrorBody)))]
pub(super) async fn create_gateway(State(state): State<AppState>, write: Write) -> ApiResult {
    let gateway = one_artifact(&state, &write.text, Kind::Gateway).await?;
    let name = gateway.name().to_owned();
    if name.contains('/') {
        return Err(ApiError::bad_request(format!(
            "'{name}' names a deployment's gateway: change it with PUT /api/v1/gateways/<name> or in its deployment; a standalone gateway's name has no '/'"
        )));
    }
    if write.check_only {
        let checked = state.vamp.validate(&gateway).await?;
        return Ok(reply(
            StatusCode::ACCEPTED,
            &write.headers,
            &checked.to_json(),
        ));
    }
    state.vamp.put(gateway).await?;
    found(
        StatusCode::ACCEPTED,
        &write.headers,
        find_gateway(&state, &name).await?,
    )
}

/// Removes a standalone gateway (idempotent): 202. A deployment's gateway goes with its
/// deployment (spec §2.5): refused while the deployment exists.
#[utoipa::path(delete, path = "/gateways/{*name}", tag = "gateways", params(("name" = String, Path), ("validate_only" = Option<bool>, Query)), responses((status = 202, description = "Removed (or was not there)")))]
pub(super) async fn delete_gateway(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    let check_only = validate_only(&query)?;
    match name.split_once('/') {
        None => {
            if !check_only {
                state.vamp.delete(Kind::Gateway, &name).await?;
            }
        }
        Some((deployment, _)) => {
            if state.vamp.deployment(deployment).await?.is_some() {
                return Err(ApiError::bad_request(format!(
                    "'{name}' belongs to deployment '{deployment}': it goes when its services do (DELETE /api/v1/deployments/{deployment} with them)"
                )));
            }
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Changes a gateway (spec §2.5): a cluster gateway `<deployment>/<cluster>/<port>` through a
/// merge into its deployment (route weights, conditions, strengths; the services stay), a
/// standalone one by storing it. 202 with the gateway.
#[utoipa::path(put, path = "/gateways/{*name}", tag = "gateways", params(("name" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = schemas::Gateway, description = "The gateway: routes, weights, conditions; a deployment's through its deployment"), responses((status = 202, description = "The gateway", body = schemas::Gateway)))]
pub(super) async fn put_gateway(
    State(state): State<AppState>,
    Path(name): Path<String>,
    write: Write,
) -> ApiResult {
    let Artifact::Gateway(gateway) = one_artifact(&state, &write.text, Kind::Gateway).await? else {
        return Err(ApiError::bad_request("expected a gateway"));
    };
    if !gateway.name.is_empty() && gateway.name != name {
        return Err(ApiError::bad_request(format!(
            "InconsistentArtifactName: the body names '{}' but the path '{name}'; they must match",
            gateway.name
        )));
    }
    match name.split('/').collect::<Vec<_>>().as_slice() {
        [deployment, cluster, port] => {
            let current = state
                .vamp
                .deployment(deployment)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let services: Vec<String> = current
                .clusters
                .get(*cluster)
                .ok_or_else(ApiError::not_found)?
                .services
                .iter()
                .map(|s| s.breed.name.clone())
                .collect();
            // Routes are named by their service (a full `d/c/s/p` path names it third).
            let mut routes = serde_json::Map::new();
            for (key, route) in &gateway.routes {
                let service = match key.split('/').collect::<Vec<_>>().as_slice() {
                    [_, _, service, _] => (*service).to_owned(),
                    _ => key.clone(),
                };
                routes.insert(service, serde_json::to_value(route).unwrap_or(Value::Null));
            }
            let merge = json!({
                "name": deployment,
                "clusters": {*cluster: {"gateways": {*port: {"routes": routes}}, "services": services}},
            });
            let blueprint = blueprint(&state, &merge.to_string()).await?;
            if write.check_only {
                let d = state.vamp.preview(deployment, &blueprint, &[]).await?;
                let config = &state.vamp.config().engine;
                let shown = vamp_core::engine::gateways(&d, config)
                    .into_iter()
                    .find(|g| g.name == name)
                    .map(Artifact::Gateway);
                return found(StatusCode::ACCEPTED, &write.headers, shown);
            }
            state.vamp.deploy(deployment, &blueprint).await?;
        }
        [_] => {
            let mut gateway = gateway;
            gateway.name.clone_from(&name);
            if write.check_only {
                let checked = state.vamp.validate(&Artifact::Gateway(gateway)).await?;
                return Ok(reply(
                    StatusCode::ACCEPTED,
                    &write.headers,
                    &checked.to_json(),
                ));
            }
            state.vamp.put(Artifact::Gateway(gateway)).await?;
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "'{name}' is a deployment's own gateway: change it in its deployment's blueprint"
            )));
        }
    }
    found(
        StatusCode::ACCEPTED,
        &write.headers,
        find_gateway(&state, &name).await?,
    )
}
