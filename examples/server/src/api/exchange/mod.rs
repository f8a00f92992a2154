//! What every handler shares: errors, reading bodies (by Content-Type), answering (by
//! Accept), paging, and the query options (validate_only, expand_references, only_references,
//! as_blueprint).

use super::*;

mod query;
pub(super) use query::*;

/// An API error: a status and `{"message": …}` (404 bodies are empty, as Vamp's).
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    /// A DSL error's kind, path, line, column and hint, for programs.
    pub(super) details: Option<Value>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    /// A DSL error: 400 with where it is (line and column of the request body) and the fix.
    pub(super) fn dsl(e: &dsl::DslError) -> Self {
        let message = if e.line > 0 {
            format!(
                "request body, line {}, column {}: error[{}]: {e}",
                e.line, e.column, e.kind
            )
        } else {
            format!("error[{}]: {e}", e.kind)
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message,
            details: Some(e.to_json()),
        }
    }

    pub(super) fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "")
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        if let Error::Dsl(d) = &e {
            return ApiError::dsl(d);
        }
        let status = match &e {
            Error::Dsl(_) | Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Conflict { .. } | Error::Refused { .. } => StatusCode::CONFLICT,
            Error::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            // A leader-only write of a server that lost the lead: the new leader takes over.
            Error::Unavailable { .. } | Error::Timeout { .. } | Error::Fenced { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
            return ApiError::new(status, "Internal server error.");
        }
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_FOUND && self.message.is_empty() {
            return self.status.into_response();
        }
        let body = match self.details {
            Some(details) => json!({"message": self.message, "error": details}),
            None => json!({"message": self.message}),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

/// An artifact with `status`, or 404 (with an empty body) when there is none.
pub(super) fn found(
    status: StatusCode,
    headers: &HeaderMap,
    artifact: Option<Artifact>,
) -> ApiResult {
    match artifact {
        Some(a) => Ok(reply(status, headers, &a.to_json())),
        None => Err(ApiError::not_found()),
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` on every answer (spec §2.1).
pub(super) async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Bounds request bodies by `server.body_limit` as it is now (a dynamic setting): reading
/// more fails, which the body extractors answer with 413.
pub(super) async fn limit_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.settings.current().server.body_limit;
    let request =
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

/// Whether the client asked for YAML.
pub(super) fn wants_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("yaml") && !a.contains("json"))
}

/// A JSON value as the client wants it.
pub(super) fn reply(status: StatusCode, headers: &HeaderMap, value: &Value) -> Response {
    if wants_yaml(headers) {
        match serde_saphyr::to_string(value) {
            Ok(text) => {
                (status, [(header::CONTENT_TYPE, "application/x-yaml")], text).into_response()
            }
            Err(e) => ApiError::from(Error::backend("yaml", e)).into_response(),
        }
    } else {
        (status, axum::Json(value.clone())).into_response()
    }
}

/// What a request body may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    /// JSON or YAML (every artifact, spec §2.1).
    Dsl,
    /// `application/javascript` (a JavaScript breed, spec §2.2).
    JavaScript,
    /// `text/plain` (a workflow status, spec §2.6).
    Text,
}

impl Media {
    pub(super) fn of(content_type: &str) -> Option<Media> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/javascript" | "text/javascript" => Some(Media::JavaScript),
            "text/plain" => Some(Media::Text),
            m if m.ends_with("json") || m.ends_with("yaml") => Some(Media::Dsl),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Media::Dsl => "application/json or application/x-yaml",
            Media::JavaScript => "application/javascript",
            Media::Text => "text/plain",
        }
    }
}

/// The body as JSON or YAML text: UTF-8, within the size limit, not empty.
pub(super) fn body_text(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, ApiError> {
    optional_body(headers, body)?.ok_or_else(|| ApiError::bad_request("the request body is empty"))
}

/// Like [`body_text`], with `None` for an empty body.
pub(super) fn optional_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<String>, ApiError> {
    Ok(body_as(headers, body, &[Media::Dsl])?.map(|(_, text)| text))
}

/// The body as text of one of the `allowed` media types (by `Content-Type`, which a body
/// must have: a page's form post or a `text/plain` body is refused, issue 15), with the type
/// it was sent as; `None` for an empty body.
pub(super) fn body_as(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    allowed: &[Media],
) -> Result<Option<(Media, String)>, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the server accepts (server.body_limit)",
            )
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let supported = || {
        allowed
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", or ")
    };
    let media = match headers.get(header::CONTENT_TYPE) {
        None => {
            return Err(ApiError::bad_request(format!(
                "the request has a body but no Content-Type: send it as {}",
                supported()
            )));
        }
        Some(v) => {
            let given = String::from_utf8_lossy(v.as_bytes()).into_owned();
            Media::of(&given)
                .filter(|m| allowed.contains(m))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Only the following media types are supported here: {} (Content-Type: {given})",
                        supported()
                    ))
                })?
        }
    };
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    Ok(Some((media, text)))
}

/// The one artifact of kind `kind` in `text` (imports resolve against stored artifacts too).
pub(super) async fn one_artifact(
    state: &AppState,
    text: &str,
    kind: Kind,
) -> Result<Artifact, ApiError> {
    let mut read = state.vamp.read(text, Some(kind)).await?;
    match read.len() {
        1 => Ok(read.remove(0)),
        n => Err(ApiError::bad_request(format!(
            "expected one {} document, got {n}: send several to POST /api/v1",
            kind.singular()
        ))),
    }
}

pub(super) fn static_kind(text: &str) -> Result<Kind, ApiError> {
    match Kind::parse(text).ok_or_else(ApiError::not_found)? {
        Kind::Deployment | Kind::Gateway | Kind::Event | Kind::EventQuery => {
            Err(ApiError::not_found())
        }
        kind => Ok(kind),
    }
}
