//! Who may call the API (issue 15, docs/security.md): the checks every request passes before
//! a handler sees it.
//!
//! - **Host**: while no token is set, the `Host` must be a loopback name (`localhost`,
//!   `127.0.0.1`, `[::1]`, …) or one of `server.allowed_hosts`, so a page whose name resolves
//!   to 127.0.0.1 (DNS rebinding) is refused.
//! - **Origin**: a request that carries an `Origin` — every cross-origin `POST` a browser
//!   sends does — is refused unless that origin is in `server.cors_origins` or is the
//!   server's own. A web page cannot store a `command` breed any more.
//! - **Token**: with tokens set, `Authorization: Bearer <token>` (scheme in any case), the
//!   token compared in constant time against each configured one and against each
//!   workflow's own (`VAMP_API_TOKEN` of its runs, valid while the workflow exists).
//! - **Accept**: JSON or YAML answers only (spec §2.1); anything else is a 400 naming them.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::config::Server;

/// The media types answers come in (spec §2.1).
pub(super) const ANSWER_TYPES: &str = "application/json, application/x-yaml";

/// Whether `host` (a `Host` header, maybe with a port) names this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:8080`
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `host` is one of the allowed names (with or without the port).
fn is_allowed_host(host: &str, allowed: &[String]) -> bool {
    let bare = host.rsplit_once(':').map_or(host, |(name, _)| name);
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(bare))
}

fn refuse(status: StatusCode, message: String) -> Response {
    ApiError::new(status, message).into_response()
}

/// The `Host` and `Origin` checks.
pub(super) async fn check_caller(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let settings = state.settings.current();
    let server = &settings.server;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(axum::http::uri::Authority::as_str)
        })
        .map(str::to_owned);
    if !server.has_tokens()
        && let Some(host) = &host
        && !is_loopback_host(host)
        && !is_allowed_host(host, &server.allowed_hosts)
    {
        tracing::warn!(%host, "refused a request for a foreign Host");
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Host '{host}' is not this server's: without a token only loopback names are served (add it to server.allowed_hosts, or set server.token)"
            ),
        );
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, host.as_deref(), server) {
            tracing::warn!(%origin, "refused a cross-origin request");
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin requests from '{origin}' are refused: list the origin in server.cors_origins to let its pages call the API"
                ),
            );
        }
    }
    next.run(request).await
}

/// Whether a page of `origin` may call: it is listed, or it is this server itself.
fn origin_allowed(origin: &str, host: Option<&str>, server: &Server) -> bool {
    if server.cors_origins.iter().any(|o| o == origin) {
        return true;
    }
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((own, host), (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host))
}

/// Requires `Authorization: Bearer <token>` when tokens are configured.
pub(super) async fn authorize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let settings = state.settings.current();
    if settings.server.has_tokens() {
        let given = bearer(request.headers());
        let matched = given.and_then(|given| {
            // Every token is compared, so the time taken tells nothing about which matched.
            let mut found = None;
            for (name, token) in settings.server.all_tokens() {
                if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                    found = Some(name.to_owned());
                }
            }
            // Each workflow's own token (`VAMP_API_TOKEN` of its runs), while it exists.
            for (workflow, token) in state.vamp.workflow_tokens() {
                if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                    found = Some(format!("workflow {workflow}"));
                }
            }
            found
        });
        let Some(name) = matched else {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send 'Authorization: Bearer <token>'",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        };
        tracing::debug!(token = %name, "authorized");
    }
    next.run(request).await
}

/// The credentials of `Authorization: Bearer <token>`, the scheme in any case (RFC 9110).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whether an `Accept` value takes JSON or YAML (or `text/event-stream`, when `stream`).
pub(super) fn accepts(accept: &str, stream: bool) -> bool {
    accept.split(',').any(|range| {
        let media = range
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(media.as_str(), "" | "*/*" | "application/*" | "text/*")
            || media.contains("json")
            || media.contains("yaml")
            || (stream && media == "text/event-stream")
    })
}

/// Refuses an `Accept` that takes neither JSON nor YAML (spec §2.1). No `Accept` takes JSON.
pub(super) async fn check_accept(request: Request, next: Next) -> Response {
    let stream = request.uri().path().ends_with("/events/stream");
    if let Some(accept) = request.headers().get(header::ACCEPT) {
        let ok = accept.to_str().is_ok_and(|a| accepts(a, stream));
        if !ok {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "Only the following media types are supported: {ANSWER_TYPES}{} (Accept: {})",
                    if stream { ", text/event-stream" } else { "" },
                    String::from_utf8_lossy(accept.as_bytes())
                ),
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_and_without_ports() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.9.9.9:1",
            "[::1]:8080",
            "[::1]",
            "app.localhost:80",
            "localhost.",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:8080",
            "localhost.evil.example",
            "[::2]:80",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bEaReR  abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn answers_are_json_or_yaml() {
        assert!(accepts("application/json", false));
        assert!(accepts("text/html, */*;q=0.1", false));
        assert!(accepts("application/x-yaml", false));
        assert!(!accepts("text/html", false));
        assert!(!accepts("image/png", false));
        assert!(accepts("text/event-stream", true));
        assert!(!accepts("text/event-stream", false));
    }
}
