//! The SCIM 2.0 service provider (RFC 7643, RFC 7644): one base URL per tenant,
//! `/scim/v2/{tenant}`, where the tenant's IdP (Okta, Entra ID, …) provisions users and groups.
//!
//! - `auth`: per-tenant bearer tokens and the per-token rate limit; `tokens`: their admin API.
//! - `schema`, `attributes`: the User, Enterprise User and Group schemas; `discovery`: the
//!   endpoints that publish them.
//! - `filter`: the filter grammar and PATCH paths; `patch`: the PATCH engine.
//! - `resource`: schema checks and canonical form, `meta`, projections; `users`, `groups`: the
//!   resources over the directory; `list`: list queries, sorting, paging and the ListResponse;
//!   `search`: running a query over a resource type (index planning, evaluation).
//! - `error`: the SCIM error format, the layer's one error type.

pub mod attributes;
mod auth;
mod discovery;
mod error;
pub mod filter;
mod groups;
mod list;
pub mod patch;
mod refusals;
mod resource;
pub mod schema;
mod search;
mod tokens;
mod users;

use axum::{
    Extension, Router,
    body::Body,
    extract::{FromRequest, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::Value;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::{ScimClient, ScimRuntime};
pub use error::ScimError;

use crate::{app::AppState, http::middleware::RequestId};

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// The SCIM endpoints, to be nested under `/scim/v2/{tenant}`.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/Users", get(search::list::<users::Users>).post(users::create))
        .route("/Users/.search", post(search::search::<users::Users>))
        .route("/Users/{id}", get(users::show).put(users::replace).patch(users::patch).delete(users::remove))
        .route("/Groups", get(search::list::<groups::Groups>).post(groups::create))
        .route("/Groups/.search", post(search::search::<groups::Groups>))
        .route(
            "/Groups/{id}",
            get(groups::show).put(groups::replace).patch(groups::patch).delete(groups::remove),
        )
        .route("/.search", post(search::search_all))
        .merge(discovery::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the server-wide panic guard, so that a SCIM client gets a SCIM error.
        .layer(CatchPanicLayer::custom(|_| ScimError::internal("a SCIM handler panicked").into_response()))
        .layer(axum::middleware::from_fn_with_state(state, refusals::record))
}

/// The admin API's routes for SCIM tokens.
pub fn admin_router(state: AppState) -> Router<AppState> {
    tokens::router(state)
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

async fn method_not_allowed() -> ScimError {
    ScimError::method_not_allowed()
}

/// The request id, for the audit trail (always set by the request-id middleware).
pub type RequestContext = Extension<RequestId>;

/// A SCIM request body: JSON sent as `application/scim+json` or `application/json`, within
/// `scim_max_body_bytes`.
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if let Some(content_type) = content_type {
            let essence = content_type.split(';').next().unwrap_or_default().trim();
            if !["application/scim+json", "application/json"].iter().any(|t| essence.eq_ignore_ascii_case(t))
            {
                return Err(ScimError {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ..ScimError::invalid_syntax("send the body as application/scim+json")
                });
            }
        }
        let limit = state.config.scim_max_body_bytes;
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| ScimError::payload_too_large(limit))?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|err| ScimError::invalid_syntax(format!("the body is not valid JSON: {err}")))?;
        Ok(ScimBody(value))
    }
}

/// A SCIM response: JSON as `application/scim+json`, or no body for 204 and 304.
pub fn respond(status: StatusCode, body: &Value, etag: Option<&str>, location: Option<&str>) -> Response {
    let mut response = if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        status.into_response()
    } else {
        let mut response = (status, Body::from(body.to_string())).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
        response
    };
    let headers = response.headers_mut();
    for (name, value) in [(header::ETAG, etag), (header::LOCATION, location)] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// One resource, with its ETag; 304 when `If-None-Match` names its version.
pub fn respond_resource(headers: &HeaderMap, body: &Value, version: u64) -> Response {
    let etag = resource::etag(version);
    if precondition(headers, header::IF_NONE_MATCH).is_some_and(|accepted| version_matches(&accepted, &etag))
    {
        return respond(StatusCode::NOT_MODIFIED, &Value::Null, Some(&etag), None);
    }
    respond(StatusCode::OK, body, Some(&etag), None)
}

/// The versions an `If-Match` (or `If-None-Match`) header accepts: None when absent.
pub fn precondition(headers: &HeaderMap, name: header::HeaderName) -> Option<Vec<String>> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

/// Whether a version satisfies a precondition list (`*` matches any; weak comparison).
pub fn version_matches(accepted: &[String], etag: &str) -> bool {
    let strip = |v: &str| v.trim_start_matches("W/").to_owned();
    accepted.iter().any(|v| v == "*" || strip(v) == strip(etag))
}

/// Refuses a change when `If-Match` names another version of the resource (412).
pub fn check_if_match(accepted: Option<&[String]>, current_etag: &str) -> Result<(), ScimError> {
    match accepted {
        Some(accepted) if !version_matches(accepted, current_etag) => Err(ScimError::precondition_failed()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly_and_star_matches_anything() {
        assert!(version_matches(&["W/\"3\"".into()], "W/\"3\""));
        assert!(version_matches(&["\"3\"".into()], "W/\"3\""));
        assert!(version_matches(&["*".into()], "W/\"9\""));
        assert!(!version_matches(&["W/\"2\"".into()], "W/\"3\""));
        assert!(check_if_match(None, "W/\"3\"").is_ok());
        assert_eq!(check_if_match(Some(&["W/\"2\"".into()]), "W/\"3\"").unwrap_err().status, 412);
    }
}
