//! Rollouts (issue 18, docs/rollouts.md): the artifact with its status, and the commands.
//! Writes go through the artifact routes (`POST /api/v1/rollouts`, `PUT`/`DELETE
//! /api/v1/rollouts/{name}`); reads here add the status.

use super::*;

/// A rollout with its status (`status: null` before its first tick).
async fn with_status(state: &AppState, r: vamp_core::model::Rollout) -> Result<Value, ApiError> {
    let status = state.vamp.rollout_status(&r.name).await?;
    let mut value = Artifact::Rollout(r).to_json();
    if let Value::Object(m) = &mut value {
        m.insert(
            "status".into(),
            serde_json::to_value(status).map_err(|e| Error::backend("json", e))?,
        );
    }
    Ok(value)
}

#[utoipa::path(get, path = "/rollouts", tag = "rollouts", responses((status = 200, description = "Rollouts with their status", body = Vec<schemas::Rollout>)))]
pub(super) async fn list_rollouts(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let page = paging_of(&query).page();
    let found = state.vamp.list(Kind::Rollout, page).await?;
    let mut items = Vec::with_capacity(found.items.len());
    for a in found.items {
        if let Artifact::Rollout(r) = a {
            items.push(with_status(&state, r).await?);
        }
    }
    let response = reply(StatusCode::OK, &headers, &Value::Array(items));
    Ok(paged(response, "/api/v1/rollouts", page, found.total))
}

#[utoipa::path(get, path = "/rollouts/{name}", tag = "rollouts", params(("name" = String, Path)), responses((status = 200, description = "The rollout and its status", body = schemas::Rollout), (status = 404, description = "No such rollout", body = schemas::ErrorBody)))]
pub(super) async fn get_rollout(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    shown(&state, &name, StatusCode::OK, &headers).await
}

/// `POST /api/v1/rollouts/{name}/{promote|abort|pause|resume|retry}` (`promote?full=true`
/// skips the remaining steps): 202 with the rollout and its new status; 409 when the command
/// does not fit the phase.
#[utoipa::path(post, path = "/rollouts/{name}/{command}", tag = "rollouts", params(("name" = String, Path), ("command" = String, Path, description = "promote, abort, pause, resume or retry"), ("full" = Option<bool>, Query, description = "promote: skip every remaining step")), responses((status = 202, description = "The status after the command", body = schemas::RolloutStatus), (status = 409, description = "The command does not fit the phase", body = schemas::ErrorBody)))]
pub(super) async fn rollout_command(
    State(state): State<AppState>,
    Path((name, command)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let full = flag(&query, "full")?;
    let command =
        vamp_core::rollout::Command::parse(&command, full).ok_or_else(ApiError::not_found)?;
    if validate_only(&query)? {
        let r = state
            .vamp
            .rollout(&name)
            .await?
            .ok_or_else(ApiError::not_found)?;
        return Ok(reply(
            StatusCode::ACCEPTED,
            &headers,
            &with_status(&state, r).await?,
        ));
    }
    if state.vamp.rollout(&name).await?.is_none() {
        return Err(ApiError::not_found());
    }
    state.vamp.rollout_command(&name, command).await?;
    shown(&state, &name, StatusCode::ACCEPTED, &headers).await
}

#[utoipa::path(post, path = "/rollouts", tag = "rollouts", params(("validate_only" = Option<bool>, Query)), request_body(content = schemas::Rollout, description = "The rollout; it starts at once"), responses((status = 201, description = "Stored", body = schemas::Rollout), (status = 400, description = "Does not read or check", body = schemas::ErrorBody)))]
pub(super) async fn create_rollout(state: State<AppState>, write: Write) -> ApiResult {
    create_artifact(state, Path("rollouts".to_owned()), write).await
}

#[utoipa::path(put, path = "/rollouts/{name}", tag = "rollouts", params(("name" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = schemas::Rollout), responses((status = 200, description = "Stored", body = schemas::Rollout)))]
pub(super) async fn put_rollout(
    state: State<AppState>,
    Path(name): Path<String>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_artifact(
        state,
        Path(("rollouts".to_owned(), name)),
        query,
        headers,
        body,
    )
    .await
}

#[utoipa::path(delete, path = "/rollouts/{name}", tag = "rollouts", params(("name" = String, Path)), responses((status = 204, description = "Deleted")))]
pub(super) async fn delete_rollout(
    state: State<AppState>,
    Path(name): Path<String>,
    query: Query<Vec<(String, String)>>,
) -> ApiResult {
    delete_artifact(state, Path(("rollouts".to_owned(), name)), query).await
}

/// The rollout `name` with its status, answered with `status`; 404 when there is none.
async fn shown(state: &AppState, name: &str, status: StatusCode, headers: &HeaderMap) -> ApiResult {
    let r = state
        .vamp
        .rollout(name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(reply(status, headers, &with_status(state, r).await?))
}
