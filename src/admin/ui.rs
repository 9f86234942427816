//! The dashboard's pages, embedded from `ui/` at build time (a debug build reads the folder at
//! run time instead, so the pages can be edited without rebuilding). One page app under
//! `/admin/`: any path below it that is not a file (`/admin/setup`) gets `index.html`, whose
//! script routes. The pages run under a strict Content Security Policy: scripts, styles and
//! requests from this origin only, no inline code.

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use rust_embed::RustEmbed;

use crate::{app::AppState, http::ApiError};

#[derive(RustEmbed)]
#[folder = "ui/"]
#[exclude = "README.md"]
struct Pages;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/admin/{*path}", get(page))
        // Browsers ask for it on every page without an icon link (the sign-in pages).
        .route("/favicon.ico", get(|headers: HeaderMap| async move { serve("favicon.svg", &headers) }))
}

async fn page(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path == "api" || path.starts_with("api/") {
        return ApiError::NotFound(format!("nothing is served at /admin/{path}")).into_response();
    }
    if Pages::get(&path).is_some() {
        serve(&path, &headers)
    } else if path.rsplit('/').next().is_some_and(|last| last.contains('.')) {
        // A missing file (a stale script name), not a page: say so rather than send HTML.
        ApiError::NotFound(format!("no file /admin/{path}")).into_response()
    } else {
        serve("index.html", &headers)
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Pages::get(path) else {
        return ApiError::NotFound(format!("no file /admin/{path}")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { file.data.into_owned().into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    // Revalidated on every load (cheap with the ETag), so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}
