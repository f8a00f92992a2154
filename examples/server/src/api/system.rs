//! Info, stats, the configuration (with dynamic changes), and the health and metrics lookups (spec §2.8).

use super::*;

#[utoipa::path(get, path = "/info", tag = "system", responses((status = 200, description = "Version, uptime, backends", body = Object)))]
pub(super) async fn info(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let value = json!({
        "message": "Hi, I'm Vamp! How are you?",
        "version": env!("CARGO_PKG_VERSION"),
        "uuid": state.uuid,
        "running_since": state.running_since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "uptime": format!("{}s", state.started.elapsed().as_secs()),
        "persistence": {"type": state.config.persistence.kind},
        "key_value": {"type": state.config.key_value.kind},
        "container_driver": {"type": state.config.driver.kind(), "runs_commands": state.config.driver.commands_enabled()},
        "gateway_driver": {"type": state.config.router.kind},
        "cluster": cluster(&state),
    });
    Ok(reply(StatusCode::OK, &headers, &value))
}

/// This server among the servers sharing the stores (issue 24): `{node, leader, term,
/// leader_node, leader_url, election}`.
fn cluster(state: &AppState) -> Value {
    let c = state.vamp.cluster();
    json!({
        "node": c.node,
        "leader": c.leader,
        "term": c.term,
        "leader_node": c.leader_node,
        "leader_url": c.leader_url,
        "election": state.config.election.kind,
    })
}

/// How many artifacts of each kind are stored, and how many events (spec §2.2 `/stats`).
#[utoipa::path(get, path = "/stats", tag = "system", responses((status = 200, description = "Artifacts of each kind and events stored", body = Object)))]
pub(super) async fn stats(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let mut out = serde_json::Map::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.is_stored()) {
        let total = state.vamp.list(kind, Page::new(1, 1)).await?.total;
        out.insert(kind.plural().to_owned(), json!(total));
    }
    let events = state
        .vamp
        .events(&EventFilter::default(), Page::new(1, 1))
        .await?
        .total;
    out.insert("events".into(), json!(events));
    Ok(reply(StatusCode::OK, &headers, &Value::Object(out)))
}

/// The configuration (spec §2.2): `?type=applied` (default: in force, secrets hidden),
/// `startup` (as started) or `dynamic` (the changes made through the API);
/// `?flatten=true` gives `section.key` keys.
#[utoipa::path(get, path = "/config", tag = "system", params(("type" = Option<String>, Query, description = "applied (default), startup or dynamic"), ("flatten" = Option<bool>, Query, description = "keys as section.key")), responses((status = 200, description = "The configuration", body = Object)))]
pub(super) async fn config(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let as_json = |config: &ServerConfig| -> Value {
        toml::from_str::<toml::Table>(&config.to_toml())
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(Value::Null)
    };
    let value = match param("type").unwrap_or("applied") {
        "applied" => as_json(&state.settings.current()),
        "startup" => as_json(state.settings.start()),
        "dynamic" => {
            let mut changes = state.settings.changes();
            hide_tokens(&mut changes);
            return Ok(reply(StatusCode::OK, &headers, &json!(changes)));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "type = '{other}': use applied, startup or dynamic"
            )));
        }
    };
    let value = if matches!(param("flatten"), Some("true" | "1" | "")) {
        let mut flat = serde_json::Map::new();
        if let Value::Object(sections) = value {
            for (section, keys) in sections {
                if let Value::Object(keys) = keys {
                    for (key, v) in keys {
                        flat.insert(format!("{section}.{key}"), v);
                    }
                }
            }
        }
        Value::Object(flat)
    } else {
        value
    };
    Ok(reply(StatusCode::OK, &headers, &value))
}

/// Changes dynamic settings (spec §2.2 `PUT /api/v1/config`): a map such as
/// `{"server.body_limit": 1048576}` (`null` drops a change). Applied at once and kept in the
/// key-value store; 202 with the dynamic changes in force.
#[utoipa::path(method(put, post), path = "/config", tag = "system", params(("validate_only" = Option<bool>, Query, description = "check only")), request_body(content = Object, description = "Dynamic settings, e.g. {\"server.body_limit\": 1048576}", example = json!({"server.body_limit": 1048576})), responses((status = 202, description = "The dynamic changes in force", body = Object), (status = 400, description = "Not a dynamic setting", body = schemas::ErrorBody)))]
pub(super) async fn set_config(State(state): State<AppState>, write: Write) -> ApiResult {
    let value = match dsl::parse_documents(&write.text)
        .map_err(|e| ApiError::dsl(&e))?
        .as_slice()
    {
        [one] => one.to_json(),
        _ => return Err(ApiError::bad_request("send one map of settings")),
    };
    let mut changes = if write.check_only {
        state
            .settings
            .changed(&value)
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .0
    } else {
        state.settings.change(&value).await.map_err(|e| match e {
            crate::dynamic::DynamicError::Invalid(e) => ApiError::bad_request(e.to_string()),
            crate::dynamic::DynamicError::Store(e) => ApiError::from(e),
        })?
    };
    hide_tokens(&mut changes);
    Ok(reply(StatusCode::ACCEPTED, &write.headers, &json!(changes)))
}

/// The window of a health or metrics lookup (`?window=<seconds>`, default 120 s).
#[derive(Debug, Deserialize)]
pub(super) struct Window {
    window: Option<u64>,
}

/// What a health or metrics lookup asks for: the tags of spec §2.8, and the tag group of
/// the level below it — a gateway's lookup skips its routes' events, which carry the
/// gateway's tags too (the stock workflows tag them as Vamp's did: spec §5.2, §5.3).
#[derive(Debug, PartialEq)]
pub(super) struct Lookup {
    tags: Vec<String>,
    /// The tag group of the level below (e.g. `routes:`): events carrying one are that
    /// level's.
    below: Option<&'static str>,
}

/// The lookup a health (`metric = false`) or metrics path stands for (spec §2.8), or `None`
/// for paths that never have a value (instances) or are not lookups.
pub(super) fn lookup_tags(segments: &[String], metric: bool) -> Option<Lookup> {
    let mut parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let metric = if metric { Some(parts.pop()?) } else { None };
    let mut tags = Vec::new();
    let below = match parts.as_slice() {
        ["gateways", g] => {
            tags.push(format!("gateways:{g}"));
            Some("routes:")
        }
        ["gateways", g, "routes", r] => {
            tags.extend([format!("gateways:{g}"), format!("routes:{r}")]);
            None
        }
        ["deployments", d] if metric.is_none() => {
            tags.push(format!("deployments:{d}"));
            Some("clusters:")
        }
        ["deployments", d, "clusters", c] if metric.is_none() => {
            tags.extend([format!("deployments:{d}"), format!("clusters:{c}")]);
            Some("services:")
        }
        ["deployments", d, "clusters", c, "services", s] if metric.is_none() => {
            tags.extend([
                format!("deployments:{d}"),
                format!("clusters:{c}"),
                format!("services:{s}"),
            ]);
            None
        }
        // Cluster and service ports are measured on their gateways (spec §2.8, Q6); a
        // service's route in its cluster's gateway is `<d>/<c>/<s>/<p>`.
        ["deployments", d, "clusters", c, "ports", p] => {
            tags.push(format!("gateways:{d}/{c}/{p}"));
            Some("routes:")
        }
        ["deployments", d, "clusters", c, "services", s, "ports", p] => {
            tags.extend([
                format!("gateways:{d}/{c}/{p}"),
                format!("routes:{d}/{c}/{s}/{p}"),
            ]);
            None
        }
        _ => return None,
    };
    tags.push(match metric {
        Some(m) => format!("metrics:{m}"),
        None => "health".to_owned(),
    });
    Some(Lookup { tags, below })
}

/// The value of the newest event of the lookup within the window, as a JSON value; 404 if
/// none.
pub(super) async fn latest(
    state: &AppState,
    headers: &HeaderMap,
    lookup: Option<Lookup>,
    window: Window,
) -> ApiResult {
    let lookup = lookup.ok_or_else(ApiError::not_found)?;
    let mut filter = EventFilter::tags(lookup.tags);
    let since = chrono::Utc::now()
        - chrono::Duration::seconds(i64::try_from(window.window.unwrap_or(120)).unwrap_or(120));
    filter.from = std::ops::Bound::Included(since);
    let found = state
        .vamp
        .newest_event_of_level(&filter, lookup.below)
        .await?;
    match found {
        Some(e) => Ok(reply(StatusCode::OK, headers, &e.event.value)),
        None => Err(ApiError::not_found()),
    }
}

/// The path segments after `/api/v1/<what>/`, each percent-decoded on its own: gateway names
/// hold `/`, so they arrive as one `%2F`-encoded segment (spec §2.8).
pub(super) fn segments_after(uri: &axum::http::Uri, what: &str) -> Option<Vec<String>> {
    let marker = format!("/api/v1/{what}/");
    let raw = uri.path().split_once(&marker)?.1;
    raw.split('/').map(decode_segment).collect()
}

#[utoipa::path(get, path = "/health/{*path}", tag = "system", params(("path" = String, Path, description = "gateways/<g>[/routes/<r>] or deployments/<d>/clusters/<c>[/services/<s>]")), responses((status = 200, description = "The newest health value", body = Object)))]
pub(super) async fn health(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(window): Query<Window>,
    headers: HeaderMap,
) -> ApiResult {
    let tags = segments_after(&uri, "health").and_then(|s| lookup_tags(&s, false));
    latest(&state, &headers, tags, window).await
}

#[utoipa::path(get, path = "/metrics/{*path}", tag = "system", params(("path" = String, Path, description = "gateways/<g>[/routes/<r>]/<metric> or deployments/…/ports/<p>/<metric>")), responses((status = 200, description = "The newest value of the metric", body = Object)))]
pub(super) async fn metrics(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(window): Query<Window>,
    headers: HeaderMap,
) -> ApiResult {
    let tags = segments_after(&uri, "metrics").and_then(|s| lookup_tags(&s, true));
    latest(&state, &headers, tags, window).await
}

/// Dynamic changes as shown: tokens hidden.
fn hide_tokens(changes: &mut std::collections::BTreeMap<String, Value>) {
    if let Some(token) = changes.get_mut("server.token") {
        *token = json!("<hidden>");
    }
    if let Some(Value::Object(tokens)) = changes.get_mut("server.tokens") {
        for token in tokens.values_mut() {
            *token = json!("<hidden>");
        }
    }
}

/// `/info` under its other name (spec §2.2).
#[utoipa::path(get, path = "/information", tag = "system", responses((status = 200, description = "As /info", body = Object)))]
pub(super) async fn information(state: State<AppState>, headers: HeaderMap) -> ApiResult {
    info(state, headers).await
}

/// `/stats` under its other name (spec §2.2).
#[utoipa::path(get, path = "/statistics", tag = "system", responses((status = 200, description = "As /stats", body = Object)))]
pub(super) async fn statistics(state: State<AppState>, headers: HeaderMap) -> ApiResult {
    stats(state, headers).await
}

/// `GET /config` under its other name (spec §2.2).
#[utoipa::path(get, path = "/configuration", tag = "system", params(("type" = Option<String>, Query), ("flatten" = Option<bool>, Query)), responses((status = 200, description = "As GET /config", body = Object)))]
pub(super) async fn configuration(
    state: State<AppState>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult {
    config(state, query, headers).await
}

/// `PUT /config` under its other name (spec §2.2).
#[utoipa::path(method(put, post), path = "/configuration", tag = "system", params(("validate_only" = Option<bool>, Query)), request_body(content = Object, example = json!({"server.body_limit": 1048576})), responses((status = 202, description = "As PUT /config", body = Object)))]
pub(super) async fn set_configuration(state: State<AppState>, write: Write) -> ApiResult {
    set_config(state, write).await
}

/// The HAProxy configuration the router runs (issue 23; the web UI's admin page):
/// `{router, configuration}` from the HAProxy routers, 404 saying why from the others.
#[utoipa::path(get, path = "/haproxy/configuration", tag = "system", responses((status = 200, description = "`{router, configuration}`: the text HAProxy runs (haproxy-local) or agents apply (haproxy-kv)", body = Object), (status = 404, description = "The router runs no HAProxy", body = schemas::ErrorBody)))]
pub(super) async fn haproxy_configuration(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult {
    let router = &state.config.router.kind;
    match state.vamp.rendered_config().await? {
        Some(text) => Ok(reply(
            StatusCode::OK,
            &headers,
            &json!({"router": router, "configuration": text}),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "router.kind = '{router}' runs no HAProxy configuration (haproxy-local and haproxy-kv do)"
            ),
        )),
    }
}
