//! OAuth 2.0 errors (RFC 6749 §5.2, RFC 6750 §3.1), the one place they become responses:
//! `{"error": "invalid_grant", "error_description": "…"}` with the status the RFCs give.
//! Descriptions say what the client did wrong and never why a check on our side failed.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_client() -> Self {
        Self::new("invalid_client", "client authentication failed")
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    pub fn invalid_token() -> Self {
        Self::new("invalid_token", "the access token is not active")
    }

    pub fn server_error() -> Self {
        Self::new("server_error", "the server could not handle the request; try again")
    }

    fn status(&self) -> StatusCode {
        match self.code {
            "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
            "insufficient_scope" => StatusCode::FORBIDDEN,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        tracing::error!(%err, "store failure in the OpenID Provider");
        match err {
            StoreError::Closed => {
                Self::new("temporarily_unavailable", "the server is shutting down; try again")
            }
            _ => Self::server_error(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = (status, Json(body)).into_response();
        let challenge = match self.code {
            // RFC 6749 §5.2: a failed Basic authentication is answered with a Basic challenge.
            "invalid_client" => Some(r#"Basic realm="portcullis""#.to_owned()),
            "invalid_token" | "insufficient_scope" => {
                Some(format!(r#"Bearer realm="portcullis", error="{}""#, self.code))
            }
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(OAuthError::invalid_client().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(OAuthError::invalid_grant("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(OAuthError::invalid_token().status(), StatusCode::UNAUTHORIZED);
        let response = OAuthError::invalid_client().into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], r#"Basic realm="portcullis""#);
    }
}
