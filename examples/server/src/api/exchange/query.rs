//! The query options every handler shares: paging (page, per_page, the Link and
//! X-Total-Count headers), validate_only and the Write extractor, and how artifacts are shown
//! (expand_references, only_references, as_blueprint).

use super::*;

/// `page` and `per_page` (spec §2.1: defaults 1 and 30, clamped).
#[derive(Debug, Deserialize)]
pub(in crate::api) struct Paging {
    pub(in crate::api) page: Option<i64>,
    pub(in crate::api) per_page: Option<i64>,
}

impl Paging {
    pub(in crate::api) fn page(&self) -> Page {
        let page = u64::try_from(self.page.unwrap_or(1).max(1)).unwrap_or(1);
        let per_page = u64::try_from(self.per_page.unwrap_or(30).clamp(1, 30)).unwrap_or(30);
        Page::new(page, per_page.min(MAX_PER_PAGE))
    }
}

/// `X-Total-Count` and `Link` (first, prev, next, last; prev/next clamped).
pub(in crate::api) fn paged(
    mut response: Response,
    path: &str,
    page: Page,
    total: u64,
) -> Response {
    let last = total.div_ceil(page.per_page).max(1);
    let link = |p: u64| format!("<{path}?page={p}&per_page={}>", page.per_page);
    let links = format!(
        "{}; rel=first, {}; rel=prev, {}; rel=next, {}; rel=last",
        link(1),
        link(page.page.saturating_sub(1).clamp(1, last)),
        link((page.page + 1).clamp(1, last)),
        link(last)
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        headers.insert("X-Total-Count", v);
    }
    if let Ok(v) = HeaderValue::from_str(&links) {
        headers.insert(header::LINK, v);
    }
    response
}

/// One page of `all`, with the paging headers.
pub(in crate::api) fn page_of(
    headers: &HeaderMap,
    path: &str,
    page: Page,
    all: impl ExactSizeIterator<Item = Value>,
) -> Response {
    let found = vamp_core::traits::Paged::of(all, page);
    let response = reply(StatusCode::OK, headers, &Value::Array(found.items));
    paged(response, path, page, found.total)
}

/// A boolean query parameter: absent is false; `true`/`1`/empty or `false`/`0`.
pub(in crate::api) fn flag(query: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    let given = query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    match given {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} = '{other}': use {name}=true or {name}=false"
        ))),
    }
}

/// `?validate_only=true` (spec §2.1): check, store nothing.
/// A write request as most write handlers take it: `?validate_only` (spec §2.1), the headers,
/// and the body as DSL text (JSON or YAML by `Content-Type`; an empty body is a 400).
pub(in crate::api) struct Write {
    /// `?validate_only=true`: check, store nothing.
    pub check_only: bool,
    /// The body.
    pub text: String,
    /// The headers (what the answer may be: JSON or YAML).
    pub headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Write {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::FromRequestParts as _;
        let (mut parts, body) = request.into_parts();
        let Query(query) = Query::<Vec<(String, String)>>::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let check_only = validate_only(&query)?;
        let headers = parts.headers.clone();
        let bytes = <Bytes as axum::extract::FromRequest<S>>::from_request(
            axum::extract::Request::from_parts(parts, body),
            state,
        )
        .await;
        let text = body_text(&headers, bytes)?;
        Ok(Write {
            check_only,
            text,
            headers,
        })
    }
}

pub(in crate::api) fn validate_only(query: &[(String, String)]) -> Result<bool, ApiError> {
    flag(query, "validate_only")
}

/// How artifacts are shown (spec §2.1): `?expand_references=true` inlines references to
/// stored artifacts, `?only_references=true` turns a blueprint's named inline breeds, scales
/// and SLAs into references, `?as_blueprint=true` shows a deployment as the blueprint that
/// makes it.
#[derive(Debug, Clone, Copy)]
pub(in crate::api) struct View {
    pub(in crate::api) expand: bool,
    pub(in crate::api) only_references: bool,
    pub(in crate::api) as_blueprint: bool,
}

impl View {
    pub(in crate::api) fn of(query: &[(String, String)]) -> Result<View, ApiError> {
        let view = View {
            expand: flag(query, "expand_references")?,
            only_references: flag(query, "only_references")?,
            as_blueprint: flag(query, "as_blueprint")?,
        };
        if view.expand && view.only_references {
            return Err(ApiError::bad_request(
                "expand_references and only_references ask for opposite things: use one",
            ));
        }
        Ok(view)
    }

    pub(in crate::api) async fn show(
        self,
        state: &AppState,
        artifacts: Vec<Artifact>,
    ) -> Result<Vec<Value>, ApiError> {
        let artifacts: Vec<Artifact> = artifacts
            .into_iter()
            .map(|a| match a {
                Artifact::Deployment(d) if self.as_blueprint => {
                    Artifact::Blueprint(d.as_blueprint())
                }
                a => a,
            })
            .collect();
        let artifacts = if self.expand {
            state.vamp.expand(artifacts).await?
        } else {
            artifacts
        };
        Ok(artifacts
            .into_iter()
            .map(|a| match a {
                Artifact::Blueprint(bp) if self.only_references => {
                    Artifact::Blueprint(bp.only_references())
                }
                a => a,
            })
            .map(|a| a.to_json())
            .collect())
    }

    /// One artifact shown, or 404.
    pub(in crate::api) async fn one(
        self,
        state: &AppState,
        headers: &HeaderMap,
        artifact: Option<Artifact>,
    ) -> ApiResult {
        let artifact = artifact.ok_or_else(ApiError::not_found)?;
        let value = self
            .show(state, vec![artifact])
            .await?
            .pop()
            .unwrap_or(Value::Null);
        Ok(reply(StatusCode::OK, headers, &value))
    }
}

pub(in crate::api) fn paging_of(query: &[(String, String)]) -> Paging {
    let number = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    };
    Paging {
        page: number("page"),
        per_page: number("per_page"),
    }
}
