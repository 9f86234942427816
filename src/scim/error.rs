//! The SCIM layer's error and its one mapping to a response, in the protocol's own format
//! (RFC 7644 §3.12):
//!
//! ```text
//! {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409",
//!  "scimType": "uniqueness", "detail": "userName `ada@acme.com` is taken"}
//! ```

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::{SCIM_CONTENT_TYPE, filter::FilterError, patch::PatchError};
use crate::{directory::DirectoryError, store::StoreError, store::directory::Conflict};

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Debug, Clone, PartialEq)]
pub struct ScimError {
    pub status: StatusCode,
    /// RFC 7644 Table 9, for 400s (and `uniqueness` for 409).
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Seconds a rate-limited client should wait.
    pub retry_after: Option<u64>,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into(), retry_after: None }
    }

    pub fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidValue", detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidSyntax", detail)
    }

    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }

    /// A conflict that is not a uniqueness violation (the resource changed under the request).
    pub fn new_conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, None, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, detail)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, None, "this method is not allowed on this resource")
    }

    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, None, detail)
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "the resource has changed since the version in If-Match; fetch it again",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!(
                "the request body is larger than the {limit} bytes this server accepts (setting scim_max_body_bytes)"
            ),
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, None, "too many requests with this token; retry later")
        }
    }

    pub fn timed_out() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the request took longer than the server allows (setting request_timeout_secs)",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "the server is not ready; try again shortly")
    }

    /// A fault on this side: the cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "SCIM request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the server failed to handle this request; the x-request-id header finds the cause in its log",
        )
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        let mut response = (self.status, body.to_string()).into_response();
        // For the audit record of the refusal (`refusals`).
        response.extensions_mut().insert(self.clone());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ScimError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Closed => ScimError::unavailable(),
            other => ScimError::internal(other),
        }
    }
}

impl From<DirectoryError> for ScimError {
    fn from(err: DirectoryError) -> Self {
        match err {
            DirectoryError::Conflict(Conflict::UserName(_)) => {
                ScimError::uniqueness("another user of this tenant has this userName")
            }
            DirectoryError::Conflict(Conflict::Email(_)) => {
                ScimError::uniqueness("another user of this tenant signs in with this email address")
            }
            DirectoryError::Conflict(Conflict::GroupName(_)) => {
                ScimError::uniqueness("another group of this tenant has this displayName")
            }
            DirectoryError::SeatLimit { limit } => ScimError::forbidden(format!(
                "the tenant's seat limit of {limit} active users is reached; deactivate a user or raise the limit"
            )),
            DirectoryError::TenantClosed => ScimError::forbidden("this tenant is suspended or deleted"),
            DirectoryError::Store(err) => err.into(),
        }
    }
}

impl From<FilterError> for ScimError {
    fn from(err: FilterError) -> Self {
        ScimError::bad_request("invalidFilter", err.to_string())
    }
}

impl From<PatchError> for ScimError {
    fn from(err: PatchError) -> Self {
        ScimError::bad_request(err.scim_type(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(error: ScimError) -> (u16, serde_json::Value, Response) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 4096).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap(),
            Response::from_parts(parts, axum::body::Body::empty()),
        )
    }

    #[tokio::test]
    async fn errors_have_the_scim_shape() {
        let (status, json, response) = body(ScimError::uniqueness("taken")).await;
        assert_eq!(status, 409);
        assert_eq!(
            json,
            json!({"schemas": [ERROR_SCHEMA], "status": "409", "scimType": "uniqueness", "detail": "taken"})
        );
        assert_eq!(response.headers()[header::CONTENT_TYPE], SCIM_CONTENT_TYPE);
    }

    #[tokio::test]
    async fn rate_limits_and_challenges_carry_their_headers() {
        let (_, _, response) = body(ScimError::rate_limited(3)).await;
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let (_, json, response) = body(ScimError::unauthorized("no")).await;
        assert!(json.get("scimType").is_none());
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn internal_causes_are_not_shown() {
        let (status, json, _) = body(ScimError::internal("/var/secret")).await;
        assert_eq!(status, 500);
        assert!(!json.to_string().contains("/var/secret"));
    }
}
