//! The web UI (issue 23; spec §7.1), served at `/ui/` from files embedded in the binary
//! (`examples/server/ui/`: plain ES modules with vendored Preact and htm, no build step, so
//! `cargo build` needs no Node toolchain).
//!
//! - `/` and `/ui` redirect to `/ui/`;
//! - `/ui/` is `index.html`, `no-cache` with an `ETag`, naming its assets under
//!   `/ui/<version>/…`, where `<version>` is a hash of every embedded file;
//! - `/ui/<version>/<file>` is cached for a year (`immutable`): a new build has a new version,
//!   so browsers never mix old and new files. An asset asked for under another version is
//!   served `no-cache`.
//! - answers are compressed (gzip or brotli, as the browser accepts), and carry a
//!   `Content-Security-Policy` allowing this origin's scripts, styles and API only.
//!
//! The UI needs no token to load; the API calls it makes do (the UI asks for the token).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "ui/"]
struct Assets;

/// Where the UI is served.
pub const PATH: &str = "/ui/";

/// What pages may load: this origin's scripts, styles, images and API; no frames.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The hash of every embedded file (first 12 hex digits): the assets' path segment.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        // Each file's SHA-256 (computed by rust-embed at build time), folded in name order.
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        for name in &names {
            name.hash(&mut digest);
            if let Some(file) = Assets::get(name) {
                file.metadata.sha256_hash().hash(&mut digest);
            }
        }
        format!("{:012x}", digest.finish() & 0xffff_ffff_ffff)
    })
}

/// The UI's routes (no state; the API's guards apply around them).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::permanent(PATH) }))
        .route("/ui", get(|| async { Redirect::permanent(PATH) }))
        .route("/ui/", get(index))
        .route("/ui/{version}/{*path}", get(asset))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::map_response(protect))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such file in the UI").into_response()
}

/// The security headers of every UI answer.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

/// `index.html` with its assets' paths under the current version.
async fn index(headers: HeaderMap) -> Response {
    let etag = format!("\"{}\"", version());
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let Some(file) = Assets::get("index.html") else {
        return not_found().await;
    };
    let text =
        String::from_utf8_lossy(&file.data).replace("{{BASE}}", &format!("{PATH}{}/", version()));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::ETAG, etag),
        ],
        text,
    )
        .into_response()
}

async fn asset(Path((wanted, path)): Path<(String, String)>) -> Response {
    let Some(file) = Assets::get(&path).filter(|_| path != "index.html") else {
        return not_found().await;
    };
    let cache = if wanted == version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, content_type(&path)),
            (header::CACHE_CONTROL, cache),
        ],
        file.data.into_owned(),
    )
        .into_response()
}
