//! Deployments (spec §2.4): create-or-merge, slice, and their scale and SLA sub-resources.

use super::*;

#[utoipa::path(get, path = "/deployments", tag = "deployments", params(("page" = Option<u64>, Query), ("per_page" = Option<u64>, Query)), responses((status = 200, description = "A page of deployments", body = Vec<schemas::Deployment>)))]
pub(super) async fn list_deployments(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let view = View::of(&query)?;
    let page = paging_of(&query).page();
    let all: Vec<Artifact> = state
        .vamp
        .deployments()
        .await?
        .into_iter()
        .map(Artifact::Deployment)
        .collect();
    let total = all.len() as u64;
    let start = usize::try_from((page.page - 1) * page.per_page).unwrap_or(usize::MAX);
    let per_page = usize::try_from(page.per_page).unwrap_or(usize::MAX);
    let shown = view
        .show(&state, all.into_iter().skip(start).take(per_page).collect())
        .await?;
    let response = reply(StatusCode::OK, &headers, &Value::Array(shown));
    Ok(paged(response, "/api/v1/deployments", page, total))
}

#[utoipa::path(get, path = "/deployments/{name}", tag = "deployments", params(("name" = String, Path), ("as_blueprint" = Option<bool>, Query)), responses((status = 200, description = "The deployment", body = schemas::Deployment), (status = 404, description = "No such deployment", body = schemas::ErrorBody)))]
pub(super) async fn get_deployment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let view = View::of(&query)?;
    let d = state.vamp.deployment(&name).await?;
    view.one(&state, &headers, d.map(Artifact::Deployment))
        .await
}

pub(super) async fn blueprint(state: &AppState, text: &str) -> Result<Blueprint, ApiError> {
    match one_artifact(state, text, Kind::Blueprint).await? {
        Artifact::Blueprint(b) => Ok(b),
        other => Err(ApiError::bad_request(format!(
            "expected a blueprint, got a {}",
            other.kind().singular()
        ))),
    }
}

/// Deploys (or with `validate_only`, previews) the write's blueprint as deployment `name`;
/// `None` names it after the blueprint.
pub(super) async fn deploy(state: &AppState, write: &Write, name: Option<&str>) -> ApiResult {
    let blueprint = blueprint(state, &write.text).await?;
    let name = name.unwrap_or(&blueprint.name);
    let d = if write.check_only {
        state.vamp.preview(name, &blueprint, &[]).await?
    } else {
        state.vamp.deploy(name, &blueprint).await?
    };
    Ok(accepted(&write.headers, d))
}

#[utoipa::path(post, path = "/deployments", tag = "deployments", params(("validate_only" = Option<bool>, Query)), request_body(content = schemas::Blueprint, description = "The blueprint to deploy, under its name"), responses((status = 202, description = "The deployment", body = schemas::Deployment), (status = 400, description = "Does not read, check or fit", body = schemas::ErrorBody)))]
pub(super) async fn create_deployment(State(state): State<AppState>, write: Write) -> ApiResult {
    deploy(&state, &write, None).await
}

#[utoipa::path(put, path = "/deployments/{name}", tag = "deployments", params(("name" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = schemas::Blueprint, description = "A blueprint merged into the deployment (created if new)"), responses((status = 202, description = "The deployment", body = schemas::Deployment), (status = 400, description = "Does not read, check or fit", body = schemas::ErrorBody)))]
pub(super) async fn put_deployment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    write: Write,
) -> ApiResult {
    deploy(&state, &write, Some(&name)).await
}

#[utoipa::path(delete, path = "/deployments/{name}", tag = "deployments", params(("name" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = schemas::Blueprint, description = "What to remove (the deployment as a blueprint removes everything); empty: nothing"), responses((status = 202, description = "The deployment", body = schemas::Deployment)))]
pub(super) async fn delete_deployment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let check_only = validate_only(&query)?;
    // An empty body is a no-op returning the deployment (spec §2.2).
    let d = match optional_body(&headers, body)? {
        None => state.vamp.deployment(&name).await?,
        Some(text) if check_only => {
            state
                .vamp
                .slice_preview(&name, &blueprint(&state, &text).await?)
                .await?
        }
        Some(text) => {
            state
                .vamp
                .slice(&name, &blueprint(&state, &text).await?)
                .await?
        }
    };
    found(StatusCode::ACCEPTED, &headers, d.map(Artifact::Deployment))
}

/// The scale a service runs at (its own, or the default the planner gave it).
#[utoipa::path(get, path = "/deployments/{name}/clusters/{cluster}/services/{service}/scale", tag = "deployments", params(("name" = String, Path), ("cluster" = String, Path), ("service" = String, Path)), responses((status = 200, description = "The scale", body = schemas::Scale)))]
pub(super) async fn get_scale(
    State(state): State<AppState>,
    Path((name, cluster, service)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let d = existing(&state, &name).await?;
    let s = d
        .clusters
        .get(&cluster)
        .and_then(|c| c.services.iter().find(|s| s.breed.name == service))
        .ok_or_else(ApiError::not_found)?;
    let scale = s.scale.clone().unwrap_or_default();
    Ok(reply(
        StatusCode::OK,
        &headers,
        &Artifact::Scale(scale).to_json(),
    ))
}

/// A sub-resource body (a service's scale, a cluster's SLA): a bare name refers to a stored
/// artifact; anything else is read as an inline one of `kind`, its name optional.
pub(super) enum Given {
    Name(String),
    Inline(Box<Artifact>),
}

pub(super) async fn given(state: &AppState, text: &str, kind: Kind) -> Result<Given, ApiError> {
    // A bare name (one line, not a mapping) refers to a stored artifact.
    let reference = text.trim().trim_matches('"');
    let is_name =
        !reference.contains(": ") && !reference.contains('\n') && !reference.starts_with('{');
    if is_name {
        return Ok(Given::Name(reference.to_owned()));
    }
    // An inline definition needs no name: give it one for the reader (what it is set on
    // keeps none).
    let named = match text.trim_start().strip_prefix('{') {
        Some(rest) if !text.contains("\"name\"") => format!("{{\"name\": \"inline\", {rest}"),
        // Appended, so the lines of errors stay those of the body.
        None if !text.lines().any(|l| l.starts_with("name:")) => {
            format!("{}\nname: inline\n", text.trim_end())
        }
        _ => text.to_owned(),
    };
    one_artifact(state, &named, kind)
        .await
        .map(|a| Given::Inline(Box::new(a)))
}

/// Sets a service's scale (inline, or the name of a stored scale): it redeploys. 202.
#[utoipa::path(put, path = "/deployments/{name}/clusters/{cluster}/services/{service}/scale", tag = "deployments", params(("name" = String, Path), ("cluster" = String, Path), ("service" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = schemas::Scale, description = "An inline scale or a stored scale's name", example = json!({"cpu": 0.2, "memory": "128MB", "instances": 2})), responses((status = 202, description = "The deployment", body = schemas::Deployment)))]
pub(super) async fn put_scale(
    State(state): State<AppState>,
    Path((name, cluster, service)): Path<(String, String, String)>,
    write: Write,
) -> ApiResult {
    let scale = match given(&state, &write.text, Kind::Scale).await? {
        Given::Name(reference) => match state.vamp.get(Kind::Scale, &reference).await? {
            Some(Artifact::Scale(s)) => s,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "no stored scale '{reference}': send one inline (cpu, memory, instances)"
                )));
            }
        },
        Given::Inline(a) => match *a {
            Artifact::Scale(s) => s,
            _ => return Err(ApiError::bad_request("expected a scale")),
        },
    };
    let d = if write.check_only {
        state
            .vamp
            .scale_preview(&name, &cluster, &service, scale)
            .await?
    } else {
        state.vamp.scale(&name, &cluster, &service, scale).await?
    };
    Ok(accepted(&write.headers, d))
}

/// A cluster's SLA as its deployment holds it; 404 when the deployment, the cluster or the
/// SLA is missing.
#[utoipa::path(get, path = "/deployments/{name}/clusters/{cluster}/sla", tag = "deployments", params(("name" = String, Path), ("cluster" = String, Path)), responses((status = 200, description = "The SLA", body = schemas::Sla), (status = 404, description = "None", body = schemas::ErrorBody)))]
pub(super) async fn get_sla(
    State(state): State<AppState>,
    Path((name, cluster)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let d = existing(&state, &name).await?;
    let sla = d
        .clusters
        .get(&cluster)
        .and_then(|c| c.sla.as_ref())
        .ok_or_else(ApiError::not_found)?;
    let value = serde_json::to_value(sla).map_err(|e| Error::backend("json", e))?;
    Ok(reply(StatusCode::OK, &headers, &value))
}

/// Sets a cluster's SLA (spec §2.2): inline, or the name of a stored SLA. 202 with the
/// deployment.
#[utoipa::path(method(post, put), path = "/deployments/{name}/clusters/{cluster}/sla", tag = "deployments", params(("name" = String, Path), ("cluster" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = schemas::Sla, description = "An inline SLA or a stored SLA's name", example = json!({"type": "response_time_sliding_window", "window": {"interval": 600, "cooldown": 600}, "threshold": {"upper": 1000, "lower": 100}})), responses((status = 202, description = "The deployment", body = schemas::Deployment)))]
pub(super) async fn put_sla(
    State(state): State<AppState>,
    Path((name, cluster)): Path<(String, String)>,
    write: Write,
) -> ApiResult {
    let sla = match given(&state, &write.text, Kind::Sla).await? {
        Given::Name(reference) => Ref::Reference(reference),
        Given::Inline(a) => match *a {
            Artifact::Sla(s) => Ref::Inline(s),
            _ => return Err(ApiError::bad_request("expected an SLA")),
        },
    };
    let d = if write.check_only {
        state
            .vamp
            .cluster_sla_preview(&name, &cluster, Some(sla))
            .await?
    } else {
        state
            .vamp
            .set_cluster_sla(&name, &cluster, Some(sla))
            .await?
    };
    Ok(accepted(&write.headers, d))
}

/// Removes a cluster's SLA: 204 (also when it had none); 404 for a missing deployment or
/// cluster.
#[utoipa::path(delete, path = "/deployments/{name}/clusters/{cluster}/sla", tag = "deployments", params(("name" = String, Path), ("cluster" = String, Path)), responses((status = 204, description = "Removed")))]
pub(super) async fn delete_sla(
    State(state): State<AppState>,
    Path((name, cluster)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    let d = state.vamp.deployment(&name).await?;
    if !d.is_some_and(|d| d.clusters.contains_key(&cluster)) {
        return Err(ApiError::not_found());
    }
    if !validate_only(&query)? {
        state.vamp.set_cluster_sla(&name, &cluster, None).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 202 with the deployment a change made.
fn accepted(headers: &HeaderMap, d: vamp_core::model::Deployment) -> Response {
    reply(
        StatusCode::ACCEPTED,
        headers,
        &Artifact::Deployment(d).to_json(),
    )
}

/// The deployment called `name`, or 404.
async fn existing(state: &AppState, name: &str) -> Result<vamp_core::model::Deployment, ApiError> {
    state
        .vamp
        .deployment(name)
        .await?
        .ok_or_else(ApiError::not_found)
}
