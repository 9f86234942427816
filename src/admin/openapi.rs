//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the admin API, written by hand in
//! `openapi.json` beside this file and embedded at build time. No credential is asked: it
//! describes the API and holds no data. `tests/it/openapi.rs` holds it to the routes that exist,
//! both ways, and to the answers the server gives.

use std::sync::OnceLock;

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

use crate::app::AppState;

const DOCUMENT: &str = include_str!("openapi.json");

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

/// The document's ETag: it changes only with the build, so it is computed once.
fn etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| format!("\"{}\"", hex::encode(&Sha256::digest(DOCUMENT.as_bytes())[..16])))
}

/// Revalidated on each use (`no-cache`, cheap with the ETag), so an upgrade shows at once, like
/// the dashboard's pages. The other security headers are the server-wide ones.
async fn serve(headers: HeaderMap) -> Response {
    let etag = etag();
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { DOCUMENT.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_of_this_version() {
        let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    }
}
