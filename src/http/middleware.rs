//! Middleware every response passes through.

use std::time::{Duration, Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use super::{ApiError, client_ip::ClientIp};
use crate::store::audit::RequestOrigin;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How much of a user agent the audit trail keeps.
const MAX_USER_AGENT_CHARS: usize = 200;

/// The id of the request being served, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Gives each request an id (a caller's own `x-request-id` is kept if it is short and plain,
/// so ids can follow a request across a proxy), serves it inside a span carrying that id and
/// with its origin (id, client address, user agent) set for the audit records it writes, logs its
/// outcome, and returns the id in the response. Only the path is logged: query strings can hold
/// codes and tokens.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
        .map(str::to_owned)
        // From the thread's own generator: `new_v4` would ask the kernel for every request.
        .unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid().simple().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route);
    let origin = RequestOrigin {
        request_id: id.clone(),
        // Resolved by `client_ip::resolve`: behind a trusted proxy, the address the proxy saw.
        source_ip: request.extensions().get::<ClientIp>().map(|client| client.0.to_string()),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_USER_AGENT_CHARS).collect()),
    };
    let started = Instant::now();
    let mut response = origin.scope(next.run(request).instrument(span.clone())).await;
    span.in_scope(|| {
        let status = response.status().as_u16();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::error!(status, elapsed_ms, "served");
        } else {
            tracing::debug!(status, elapsed_ms, "served");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Counts and times each request for `/metrics` (`Metrics::observe_request`): by method, route
/// template (read from axum's `MatchedPath`, so it runs inside the router) and status.
pub async fn measure(
    State(metrics): State<std::sync::Arc<crate::metrics::Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = crate::metrics::labels::method(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.observe_request(method, route, response.status(), started.elapsed());
    response
}

/// Answers 503 when a request takes longer than `request_timeout_secs`, in the error format of
/// the protocol the path belongs to (SCIM clients get a SCIM error). A write already queued still
/// commits: the time limit bounds how long the client waits, not what the server finishes.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let scim = request.uri().path().starts_with("/scim/");
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) if scim => crate::scim::ScimError::timed_out().into_response(),
        Err(_) => ApiError::TimedOut.into_response(),
    }
}

fn is_plain_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Headers that make responses safe by default: nothing is sniffed, framed, cached or leaked in
/// a referrer. Features that serve pages set their own Content-Security-Policy and caching.
pub fn security_headers() -> [(HeaderName, HeaderValue); 6] {
    [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(is_plain_id("abc-123_x.y"));
        assert!(!is_plain_id(""));
        assert!(!is_plain_id("a b"));
        assert!(!is_plain_id("a\nb"));
        assert!(!is_plain_id(&"a".repeat(65)));
    }
}
