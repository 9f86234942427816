//! The admin API's error: every failure of a JSON endpoint becomes one of these, and this file is
//! the one place where each becomes a status code and a JSON body:
//!
//! ```text
//! {"error": {"code": "slug_taken", "message": "the slug `acme` is taken", "field": "slug"}}
//! ```
//!
//! Server-side failures answer with a generic message; their cause goes to the log, where the
//! request id (also in the `x-request-id` response header) finds it.

use std::borrow::Cow;

use axum::{
    Json,
    extract::rejection::{JsonRejection, QueryRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    admin::AdminError,
    audit::AuditError,
    store::{StoreError, admin_keys::KeyScope},
    tenants::TenantError,
};

#[derive(Debug, PartialEq)]
pub enum ApiError {
    /// The request is well-formed but a value is not acceptable.
    Invalid {
        /// The offending field: a name, or a path into the body (`rules[2].when.group`).
        field: Option<Cow<'static, str>>,
        message: String,
    },
    /// The body or query could not be read as the endpoint's input.
    Malformed(String),
    /// No credentials, or credentials that are not (or no longer) valid.
    Unauthenticated {
        code: &'static str,
        message: &'static str,
    },
    /// The credentials are valid but do not allow this request.
    Forbidden {
        code: &'static str,
        message: String,
    },
    NotFound(String),
    MethodNotAllowed,
    /// The change contradicts the current state (a taken slug, a domain of another tenant).
    Conflict {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },
    /// An `If-Match` names a version that is no longer the current one.
    PreconditionFailed(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    /// The server is shutting down or its store is not available.
    Unavailable,
    /// The request took longer than the configured time limit.
    TimedOut,
    /// A fault on this side; the cause is logged, never shown.
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid { field: Some(Cow::Borrowed(field)), message: message.into() }
    }

    /// A value deep inside the body is not acceptable: `path` says which.
    pub fn invalid_at(path: String, message: impl Into<String>) -> Self {
        ApiError::Invalid { field: Some(Cow::Owned(path)), message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_value"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_request"),
            ApiError::Unauthenticated { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::TimedOut => (StatusCode::SERVICE_UNAVAILABLE, "timed_out"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Invalid { message, .. }
            | ApiError::Malformed(message)
            | ApiError::NotFound(message)
            | ApiError::Conflict { message, .. }
            | ApiError::Forbidden { message, .. }
            | ApiError::PreconditionFailed(message)
            | ApiError::PayloadTooLarge(message)
            | ApiError::UnsupportedMediaType(message) => message.clone(),
            ApiError::Unauthenticated { message, .. } => (*message).to_owned(),
            ApiError::MethodNotAllowed => "this method is not allowed on this resource".into(),
            ApiError::Unavailable => "the server is not ready; try again shortly".into(),
            ApiError::TimedOut => "the request took longer than the server allows (setting request_timeout_secs)".into(),
            ApiError::Internal(_) => {
                "the server failed to handle this request; the request id in the x-request-id header finds the cause in its log".into()
            }
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { field, .. } => field.as_deref(),
            ApiError::Conflict { field, .. } => *field,
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let mut error = json!({ "code": code, "message": self.message() });
        if let Some(field) = self.field() {
            error["field"] = json!(field);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a request without credentials gets a challenge without an error code.
            let challenge = match code {
                "unauthenticated" => "Bearer realm=\"portcullis\"".to_owned(),
                code => format!("Bearer realm=\"portcullis\", error=\"{code}\""),
            };
            if let Ok(value) = challenge.parse() {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Closed => ApiError::Unavailable,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
                "the request body is larger than this server accepts (setting max_body_bytes)".into(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ),
            _ => ApiError::Malformed(message),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Malformed(rejection.body_text())
    }
}

impl From<TenantError> for ApiError {
    fn from(err: TenantError) -> Self {
        match err {
            TenantError::Invalid { field, message } => ApiError::invalid(field, message),
            TenantError::NotFound(reference) => ApiError::NotFound(format!("no tenant `{reference}`")),
            TenantError::DomainNotFound(domain) => {
                ApiError::NotFound(format!("the tenant has no domain `{domain}`"))
            }
            TenantError::SlugTaken(slug) => ApiError::Conflict {
                code: "slug_taken",
                field: Some("slug"),
                message: format!("the slug `{slug}` belongs to another tenant"),
            },
            TenantError::DomainTaken { domain, owner } => ApiError::Conflict {
                code: "domain_taken",
                field: Some("domain"),
                message: format!("the domain `{domain}` belongs to tenant {owner}"),
            },
            TenantError::DomainAlreadyAdded(domain) => ApiError::Conflict {
                code: "domain_exists",
                field: Some("domain"),
                message: format!("the tenant already has the domain `{domain}`"),
            },
            TenantError::VerificationFailed(message) => {
                ApiError::Conflict { code: "verification_failed", field: None, message }
            }
            TenantError::DnsUnavailable(message) => {
                ApiError::Conflict { code: "dns_unavailable", field: None, message }
            }
            TenantError::ManualVerificationRefused => ApiError::Forbidden {
                code: "insufficient_scope",
                message: "only an operator may mark a domain verified without DNS; publish the TXT record and check it"
                    .into(),
            },
            TenantError::Store(err) => err.into(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::MissingCredentials => ApiError::Unauthenticated {
                code: "unauthenticated",
                message: "send an admin API key as `Authorization: Bearer <key>`",
            },
            AdminError::InvalidCredentials => ApiError::Unauthenticated {
                code: "invalid_token",
                message: "the admin API key is not valid or has been revoked",
            },
            AdminError::Invalid { field, message } => ApiError::invalid(field, message),
            AdminError::KeyNotFound(id) => ApiError::NotFound(format!("no admin API key `{id}`")),
            AdminError::OutOfScope(scope) => ApiError::Forbidden {
                code: "insufficient_scope",
                message: match scope {
                    KeyScope::EventsRead => {
                        "this admin API key has the scope `events:read`: it may only read the events feed"
                    }
                    KeyScope::MetricsRead => {
                        "this admin API key has the scope `metrics:read`: it may only read /metrics"
                    }
                    KeyScope::Admin => "this admin API key may not make this request",
                }
                .into(),
            },
            AdminError::OutsideSetup => ApiError::Forbidden {
                code: "insufficient_scope",
                message: "a setup link reaches only the setup of its own tenant".into(),
            },
            AdminError::SessionEnded => ApiError::Unauthenticated {
                code: "session_expired",
                message: "the dashboard session has ended (signed out, expired, idle too long, or its key or link revoked): sign in again",
            },
            AdminError::CsrfMismatch => ApiError::Forbidden {
                code: "csrf_mismatch",
                message: "a dashboard request that changes something must carry the session's X-CSRF-Token"
                    .into(),
            },
            AdminError::LastKey => ApiError::Conflict {
                code: "last_admin_key",
                field: None,
                message: "this is the last active admin API key; create another before revoking it".into(),
            },
            AdminError::Store(err) => err.into(),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> Self {
        match err {
            AuditError::BadQuery(message) => ApiError::invalid("q", message),
            AuditError::Index(message) => ApiError::Internal(message),
            AuditError::Store(err) => err.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (ApiError::invalid("slug", "x"), 400),
            (ApiError::Malformed("x".into()), 400),
            (AdminError::MissingCredentials.into(), 401),
            (AdminError::InvalidCredentials.into(), 401),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::MethodNotAllowed, 405),
            (TenantError::SlugTaken("a".into()).into(), 409),
            (AdminError::LastKey.into(), 409),
            (ApiError::PayloadTooLarge("x".into()), 413),
            (ApiError::UnsupportedMediaType("x".into()), 415),
            (ApiError::Internal("disk on fire".into()), 500),
            (StoreError::Closed.into(), 503),
            (ApiError::TimedOut, 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.into_response().status().as_u16(), status);
        }
    }

    #[tokio::test]
    async fn internal_causes_are_not_shown() {
        let response = ApiError::Internal("secret path /var/x".into()).into_response();
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("/var/x"), "{text}");
        assert!(text.contains("internal_error"));
    }

    #[test]
    fn unauthenticated_answers_carry_a_bearer_challenge() {
        let response = ApiError::from(AdminError::InvalidCredentials).into_response();
        let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(challenge, "Bearer realm=\"portcullis\", error=\"invalid_token\"");
        let response = ApiError::from(AdminError::MissingCredentials).into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer realm=\"portcullis\"");
    }
}
