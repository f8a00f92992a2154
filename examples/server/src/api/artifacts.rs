//! Static artifacts and workflows (spec §2.2, §2.6), the multi-document root, docker-compose import.

use super::*;

/// `?name=` of a compose import.
#[derive(Debug, Deserialize)]
pub(super) struct ComposeName {
    name: Option<String>,
    validate_only: Option<String>,
}

/// Converts a docker-compose file to a blueprint and stores it (spec §2.2): 201 with the
/// blueprint as YAML, preceded by `#` comments on what was ignored or adapted.
#[utoipa::path(post, path = "/docker-compose", tag = "artifacts", params(("name" = String, Query, description = "the blueprint's name")), request_body(content = String, content_type = "application/x-yaml", description = "A docker-compose file", example = json!("services:\n  web:\n    image: nginx:1.25\n    ports: ['8080:80']\n")), responses((status = 201, description = "The blueprint as YAML, after notes on what was ignored", body = String), (status = 400, description = "Not a compose file", body = schemas::ErrorBody)))]
pub(super) async fn docker_compose(
    State(state): State<AppState>,
    Query(query): Query<ComposeName>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = query.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("name the blueprint: POST /api/v1/docker-compose?name=<blueprint>")
    })?;
    let text = body_text(&headers, body)?;
    let import = vamp_core::compose::import(&text, &name).map_err(|e| ApiError::dsl(&e))?;
    let artifact = Artifact::Blueprint(import.blueprint);
    if query
        .validate_only
        .as_deref()
        .is_some_and(|v| matches!(v, "true" | "1" | ""))
    {
        state.vamp.validate(&artifact).await?;
    } else {
        state.vamp.put(artifact.clone()).await?;
    }
    let mut out = String::new();
    for note in &import.notes {
        out.push_str(&format!(
            "# line {}: {}: {}\n",
            note.line, note.path, note.message
        ));
    }
    out.push_str(
        &dsl::to_yaml_one(&artifact).map_err(|e| ApiError::from(Error::backend("yaml", e)))?,
    );
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/x-yaml")],
        out,
    )
        .into_response())
}

/// Every document of a multi-document body with the kind it declares; deployment documents
/// read as the blueprints to deploy (spec §2.2 `/api/v1`).
pub(super) async fn documents(
    state: &AppState,
    text: &str,
) -> Result<Vec<(Kind, Artifact)>, ApiError> {
    let read = state.vamp.read_deployable(text).await?;
    if read.is_empty() {
        return Err(ApiError::bad_request("the request body holds no document"));
    }
    Ok(read)
}

/// Stores every document (spec §2.2 `/api/v1`): 202 with what was stored. Deployment
/// documents are deployed (merged, like `PUT /api/v1/deployments/<name>`); they may refer to
/// breeds and blueprints of the same request. Everything is read and checked before anything
/// is stored, and if storing still fails, what this request stored is put back as it was, so
/// a rejected request changes nothing. `?validate_only=true` checks and stores nothing.
#[utoipa::path(method(post, put), path = "/", tag = "artifacts", params(("validate_only" = Option<bool>, Query, description = "check only")), request_body(content = Vec<Object>, description = "Documents of any kinds (YAML documents or a JSON list, each with `kind`)", example = json!([{"kind": "breeds", "name": "api:1.0.0", "deployable": {"type": "command", "definition": "python3 -m http.server $PORT"}}])), responses((status = 202, description = "What was stored", body = Vec<Object>), (status = 400, description = "A document does not read or check", body = schemas::ErrorBody)))]
pub(super) async fn root_put(State(state): State<AppState>, write: Write) -> ApiResult {
    let read = documents(&state, &write.text).await?;
    let mut statics = Vec::new();
    let mut deploys = Vec::new();
    for (kind, artifact) in read {
        match (kind, artifact) {
            (Kind::Deployment, Artifact::Blueprint(bp)) => deploys.push(bp),
            (Kind::Event | Kind::EventQuery, _) => {
                return Err(ApiError::bad_request(format!(
                    "an {} cannot be sent to /api/v1: POST events to /api/v1/events",
                    kind.singular()
                )));
            }
            (_, artifact) => statics.push(artifact),
        }
    }
    let statics = state.vamp.validate_all(&statics).await?;
    let mut previews = Vec::with_capacity(deploys.len());
    for bp in &deploys {
        previews.push(state.vamp.preview(&bp.name, bp, &statics).await?);
    }
    if write.check_only {
        let out = statics
            .into_iter()
            .chain(previews.into_iter().map(Artifact::Deployment))
            .map(|a| a.to_json())
            .collect();
        return Ok(reply(
            StatusCode::ACCEPTED,
            &write.headers,
            &Value::Array(out),
        ));
    }
    let mut undo = Undo::default();
    match store_all(&state, &mut undo, statics, deploys).await {
        Ok(out) => Ok(reply(
            StatusCode::ACCEPTED,
            &write.headers,
            &Value::Array(out),
        )),
        Err(e) => {
            undo.run(&state).await;
            Err(e)
        }
    }
}

/// What a multi-document write changed, to put back if a later document fails: each
/// artifact as it was before (`None`: it was new).
#[derive(Default)]
pub(super) struct Undo(Vec<(Kind, String, Option<Artifact>)>);

impl Undo {
    async fn run(self, state: &AppState) {
        for (kind, name, previous) in self.0.into_iter().rev() {
            let restored = match (previous, kind) {
                (Some(a), _) => state.vamp.restore(a).await,
                (None, Kind::Deployment) => state.vamp.undeploy(&name).await.map(|_| ()),
                (None, _) => state.vamp.delete(kind, &name).await.map(|_| ()),
            };
            if let Err(e) = restored {
                tracing::error!(error = %e, %kind, %name, "could not undo a stored document");
            }
        }
    }
}

/// Stores `statics`, then deploys `deploys`, noting in `undo` what each write replaced.
pub(super) async fn store_all(
    state: &AppState,
    undo: &mut Undo,
    statics: Vec<Artifact>,
    deploys: Vec<Blueprint>,
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for artifact in statics {
        let (kind, name) = (artifact.kind(), artifact.name().to_owned());
        let previous = state.vamp.get(kind, &name).await?;
        let stored = state.vamp.put(artifact).await?;
        for s in &stored {
            if (s.kind, s.name.as_str()) != (kind, name.as_str()) && s.revision == 1 {
                // Inline breeds of a blueprint: new ones go on failure.
                undo.0.push((s.kind, s.name.clone(), None));
            }
        }
        undo.0.push((kind, name.clone(), previous));
        if let Some(a) = state.vamp.get(kind, &name).await? {
            out.push(a.to_json());
        }
    }
    for bp in deploys {
        let previous = state.vamp.deployment(&bp.name).await?;
        let d = state.vamp.deploy(&bp.name, &bp).await?;
        undo.0.push((
            Kind::Deployment,
            bp.name.clone(),
            previous.map(Artifact::Deployment),
        ));
        out.push(Artifact::Deployment(d).to_json());
    }
    Ok(out)
}

/// Deletes every document's artifact: 202.
#[utoipa::path(delete, path = "/", tag = "artifacts", params(("validate_only" = Option<bool>, Query, description = "check only")), request_body(content = Vec<Object>, description = "Documents naming what to delete"), responses((status = 202, description = "Deleted")))]
pub(super) async fn root_delete(
    State(state): State<AppState>,
    Write {
        check_only, text, ..
    }: Write,
) -> ApiResult {
    let all = documents(&state, &text).await?;
    if let Some((kind, _)) = all.iter().find(|(k, _)| !k.is_stored()) {
        return Err(ApiError::bad_request(format!(
            "an {} cannot be deleted through /api/v1",
            kind.singular()
        )));
    }
    if check_only {
        // Every removal checked as it would be made; nothing removed (issue 17).
        for (kind, artifact) in &all {
            if let (Kind::Deployment, Artifact::Blueprint(bp)) = (kind, artifact) {
                state.vamp.slice_preview(&bp.name, bp).await?;
            }
        }
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    for (kind, artifact) in all {
        match (kind, artifact) {
            // A deployment document removes the services it names (spec §3.4).
            (Kind::Deployment, Artifact::Blueprint(bp)) => {
                state.vamp.slice(&bp.name, &bp).await?;
            }
            (kind, artifact) => {
                state.vamp.delete(kind, artifact.name()).await?;
            }
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[utoipa::path(get, path = "/{kind}", tag = "artifacts", params(("kind" = String, Path, description = "breeds, blueprints, scales, slas, escalations, routes, conditions, rewrites, templates, workflows, …"), ("page" = Option<u64>, Query), ("per_page" = Option<u64>, Query)), responses((status = 200, description = "A page of artifacts of the kind", body = Vec<Object>)))]
pub(super) async fn list_artifacts(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let view = View::of(&query)?;
    let page = paging_of(&query).page();
    let found = state.vamp.list(kind, page).await?;
    let items = view.show(&state, found.items).await?;
    let response = reply(StatusCode::OK, &headers, &Value::Array(items));
    Ok(paged(
        response,
        &format!("/api/v1/{}", kind.plural()),
        page,
        found.total,
    ))
}

/// The status of a write (spec §2.1): static artifacts answer 201 / 200 / 204, runtime ones
/// (workflows) 202 Accepted, as what they ask for happens later.
pub(super) fn written(kind: Kind, status: StatusCode) -> StatusCode {
    if matches!(kind, Kind::Workflow | Kind::Rollout) {
        StatusCode::ACCEPTED
    } else {
        status
    }
}

#[utoipa::path(post, path = "/{kind}", tag = "artifacts", params(("kind" = String, Path, description = "the artifacts' kind, plural"), ("validate_only" = Option<bool>, Query, description = "check only")), request_body(content = Object, description = "One artifact of the path's kind (schemas: Breed, Blueprint, Scale, Sla, Escalation, Route, Condition, Rewrite, Template, Workflow)", examples(("breeds" = (value = json!({"name": "web:1.0.0", "deployable": {"type": "command", "definition": "python3 -m http.server $PORT"}, "ports": {"web": "8080/http"}}))), ("blueprints" = (value = json!({"name": "shop", "clusters": {"web": {"services": [{"breed": {"name": "web:1.0.0", "deployable": {"type": "command", "definition": "python3 -m http.server $PORT"}, "ports": {"web": "8080/http"}}}]}}}))), ("scales" = (value = json!({"name": "small", "cpu": 0.2, "memory": "128MB", "instances": 2}))), ("slas" = (value = json!({"name": "fast", "type": "response_time_sliding_window", "window": {"interval": 600, "cooldown": 600}, "threshold": {"upper": 1000, "lower": 100}}))), ("escalations" = (value = json!({"name": "more", "type": "scale_instances", "minimum": 1, "maximum": 4, "scale_by": 1}))), ("routes" = (value = json!({"name": "beta-users", "weight": "10%", "condition": "cookie group has beta"}))), ("conditions" = (value = json!({"name": "android", "condition": "user-agent == Android"}))), ("rewrites" = (value = json!({"name": "to-beta", "path": "/beta/%[path] if { path_beg /beta }"}))), ("templates" = (value = json!({"name": "base", "definition": {"ports": {"web": "8080/http"}}}))), ("workflows" = (value = json!({"name": "tick", "breed": {"name": "tick:1", "deployable": {"type": "command", "definition": "/bin/true"}}, "schedule": {"time": "PT30S"}}))))), responses((status = 201, description = "Stored (workflows: 202)", body = Object), (status = 400, description = "Does not read or check", body = schemas::ErrorBody)))]
pub(super) async fn create_artifact(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    write: Write,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let artifact = one_artifact(&state, &write.text, kind).await?;
    let status = written(kind, StatusCode::CREATED);
    store(&state, &write.headers, artifact, status, write.check_only).await
}

/// Stores one artifact (or only checks it, `check_only`) and answers with what was stored.
pub(super) async fn store(
    state: &AppState,
    headers: &HeaderMap,
    artifact: Artifact,
    status: StatusCode,
    check_only: bool,
) -> ApiResult {
    if check_only {
        let checked = state.vamp.validate(&artifact).await?;
        return Ok(reply(status, headers, &checked.to_json()));
    }
    let kind = artifact.kind();
    let name = artifact.name().to_owned();
    let stored = state.vamp.put(artifact).await?;
    // A blueprint with inline breeds stores those too: then every stored artifact is returned.
    let mut out = Vec::with_capacity(stored.len());
    for s in &stored {
        if let Some(a) = state.vamp.get(s.kind, &s.name).await? {
            out.push(a);
        }
    }
    let value = match out.as_slice() {
        [one] if one.kind() == kind && one.name() == name => one.to_json(),
        many => Value::Array(many.iter().map(Artifact::to_json).collect()),
    };
    Ok(reply(status, headers, &value))
}

#[utoipa::path(get, path = "/{kind}/{*name}", tag = "artifacts", params(("kind" = String, Path), ("name" = String, Path, description = "the name; `<name>/revisions` lists its revisions"), ("expand_references" = Option<bool>, Query), ("only_references" = Option<bool>, Query)), responses((status = 200, description = "The artifact, or with `/revisions` its revisions, oldest first: `[{revision, at, deleted, value}]`", body = Object), (status = 404, description = "Not stored", body = schemas::ErrorBody)))]
pub(super) async fn get_artifact(
    State(state): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    // Artifact names hold no `/` (spec §1.1), so `<name>/revisions` is never a name (issue 23).
    if let Some(name) = name.strip_suffix("/revisions") {
        return revisions(&state, &headers, kind, name).await;
    }
    let view = View::of(&query)?;
    let artifact = state.vamp.get(kind, &name).await?;
    view.one(&state, &headers, artifact).await
}

#[utoipa::path(put, path = "/{kind}/{*name}", tag = "artifacts", params(("kind" = String, Path), ("name" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = Object, description = "The artifact; its name must be the path's"), responses((status = 200, description = "Stored", body = Object), (status = 400, description = "Does not read or check", body = schemas::ErrorBody)))]
pub(super) async fn put_artifact(
    State(state): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let check_only = validate_only(&query)?;
    // A JavaScript breed may be sent as the script itself (spec §2.2).
    let allowed: &[Media] = if kind == Kind::Breed {
        &[Media::Dsl, Media::JavaScript]
    } else {
        &[Media::Dsl]
    };
    let artifact = match body_as(&headers, body, allowed)? {
        None => return Err(ApiError::bad_request("the request body is empty")),
        Some((Media::JavaScript, script)) => {
            let breed = json!({
                "name": name,
                "deployable": {"type": "application/javascript", "definition": script},
            });
            one_artifact(&state, &breed.to_string(), kind).await?
        }
        Some((_, text)) => one_artifact(&state, &text, kind).await?,
    };
    if artifact.name() != name {
        return Err(ApiError::bad_request(format!(
            "InconsistentArtifactName: the body names '{}' but the path '{name}'; they must match",
            artifact.name()
        )));
    }
    let status = written(kind, StatusCode::OK);
    store(&state, &headers, artifact, status, check_only).await
}

/// Deletes an artifact (idempotent). A workflow is stopped first (spec §2.6): it turns
/// `stopping` (202) and the workflow runtime deletes it once its run in progress, if any,
/// ends; where no runtime runs workflows (`workflows.period = 0`) it goes at once.
#[utoipa::path(delete, path = "/{kind}/{*name}", tag = "artifacts", params(("kind" = String, Path), ("name" = String, Path)), responses((status = 204, description = "Deleted (or was not there)"), (status = 202, description = "A workflow: stopping, deleted once stopped")))]
pub(super) async fn delete_artifact(
    State(state): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult {
    let kind = static_kind(&kind)?;
    let check_only = validate_only(&query)?;
    let runs = state.vamp.config().workflows.period.is_some();
    if kind == Kind::Workflow && runs {
        // `validate_only` never changes anything (issue 17): the answer a delete would give.
        let stopping = if check_only {
            state.vamp.workflow(&name).await?.is_some()
        } else {
            state
                .vamp
                .set_workflow_status(&name, WorkflowStatus::Stopping)
                .await?
                .is_some()
        };
        let code = if stopping {
            StatusCode::ACCEPTED
        } else {
            StatusCode::NO_CONTENT
        };
        return Ok(code.into_response());
    }
    if !check_only {
        state.vamp.delete(kind, &name).await?;
    }
    Ok(written(kind, StatusCode::NO_CONTENT).into_response())
}

/// A workflow's status as a string (spec §2.6).
#[utoipa::path(get, path = "/workflows/{name}/status", tag = "artifacts", params(("name" = String, Path)), responses((status = 200, description = "The status", body = String)))]
pub(super) async fn get_workflow_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let w = state
        .vamp
        .workflow(&name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(reply(StatusCode::OK, &headers, &json!(w.status.as_str())))
}

/// A workflow's last runs and last failed runs (16 each, newest first) with their output,
/// and its counts (issue 22).
#[utoipa::path(get, path = "/workflows/{name}/executions", tag = "artifacts", params(("name" = String, Path)), responses((status = 200, description = "The executions", body = Object), (status = 404, description = "No such workflow, and none ran here")))]
pub(super) async fn get_workflow_executions(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let executions = state.vamp.workflow_executions(&name);
    if executions.last.is_empty() && state.vamp.workflow(&name).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let body = serde_json::to_value(&executions)
        .map_err(|e| ApiError::from(vamp_core::Error::backend("json", e)))?;
    Ok(reply(StatusCode::OK, &headers, &body))
}

/// Sets a workflow's status; the body is the status, as plain text or a JSON/YAML string
/// (`suspended`, `"restarting"`). 202 with the workflow.
#[utoipa::path(put, path = "/workflows/{name}/status", tag = "artifacts", params(("name" = String, Path), ("validate_only" = Option<bool>, Query)), request_body(content = String, content_type = "text/plain", description = "The status, e.g. suspended"), responses((status = 202, description = "Set", body = String)))]
pub(super) async fn put_workflow_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let check_only = validate_only(&query)?;
    // The status as plain text, or as a JSON/YAML string (spec §2.6).
    let (_, text) = body_as(&headers, body, &[Media::Dsl, Media::Text])?
        .ok_or_else(|| ApiError::bad_request("the request body is empty: send a status"))?;
    let wanted = text.trim().trim_matches('"');
    let status = WorkflowStatus::parse(wanted).ok_or_else(|| {
        let all: Vec<&str> = WorkflowStatus::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::bad_request(format!(
            "error[IllegalWorkflowStatus]: '{wanted}' is not a workflow status (send one of: {})",
            all.join(", ")
        ))
    })?;
    let w = if check_only {
        state.vamp.workflow(&name).await?.map(|mut w| {
            w.status = status;
            w
        })
    } else {
        state.vamp.set_workflow_status(&name, status).await?
    }
    .ok_or_else(ApiError::not_found)?;
    Ok(reply(
        StatusCode::ACCEPTED,
        &headers,
        &Artifact::Workflow(w).to_json(),
    ))
}

/// `GET /{kind}/{name}/revisions`: every stored revision of an artifact, oldest first, as
/// `{revision, at, deleted, value}` (`value` null for the revision that deleted it); 404 when
/// nothing was ever stored under the name.
async fn revisions(state: &AppState, headers: &HeaderMap, kind: Kind, name: &str) -> ApiResult {
    let history = state.vamp.history(kind, name).await?;
    if history.is_empty() {
        return Err(ApiError::not_found());
    }
    let list: Vec<Value> = history
        .into_iter()
        .map(|r| {
            json!({
                "revision": r.revision,
                "at": r.at,
                "deleted": r.value.is_none(),
                "value": r.value,
            })
        })
        .collect();
    Ok(reply(StatusCode::OK, headers, &Value::Array(list)))
}
