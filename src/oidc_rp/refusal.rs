//! Why an OpenID Connect callback or logout token was refused: one variant per check, each with
//! a stable code for the audit trail and a sentence for the person and their IT admin.

use axum::{http::StatusCode, response::Response};

use crate::{
    app::AppState,
    directory::federated::{self, NotAdmitted},
    ids::TenantId,
    signin::pages,
    store::{
        StoreError,
        audit::{Actor, AuditRecord},
        journal::Subject,
    },
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no OpenID Connect connection here")]
    UnknownConnection,
    #[error("the OpenID Connect connection is disabled")]
    ConnectionDisabled,
    #[error("the OpenID Connect connection is not complete: {0}")]
    NotConfigured(String),
    #[error("the organisation is suspended")]
    TenantSuspended,
    #[error("the callback carries no `state`, or one this server never issued")]
    UnknownState,
    #[error("the callback came back to a different browser than the one that started the sign-in")]
    WrongBrowser,
    #[error("the sign-in was already completed; start again")]
    AlreadyAnswered,
    #[error("the sign-in took too long and expired; start again")]
    LoginExpired,
    #[error("the callback belongs to another connection")]
    WrongConnection,
    #[error("the identity provider refused the sign-in: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    IdpError { error: String, description: Option<String> },
    #[error("the callback names the issuer `{found}`, not `{expected}`")]
    IssuerParameter { found: String, expected: String },
    #[error("the callback does not name its issuer (`iss`), which this identity provider promises to do")]
    IssuerParameterMissing,
    #[error("the callback carries no authorization code")]
    MissingCode,
    #[error("the identity provider cannot be reached: {0}")]
    IdpUnreachable(String),
    #[error("the identity provider's token endpoint refused the code: {0}")]
    TokenEndpoint(String),
    #[error("the token response carries no ID token")]
    NoIdToken,
    #[error("the ID token is not readable: {0}")]
    IdTokenMalformed(String),
    #[error("the token is signed with an algorithm that is not allowed: {0}")]
    Algorithm(String),
    #[error("the token is signed with a key the identity provider does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    SignatureInvalid,
    #[error("the token's issuer is wrong: {0}")]
    Issuer(String),
    #[error("the token is not meant for this client: {0}")]
    Audience(String),
    #[error("the token's authorized party (`azp`) is not this client: {0}")]
    AuthorizedParty(String),
    #[error("the token has expired: {0}")]
    Expired(String),
    #[error("the token's issue time is not acceptable: {0}")]
    IssueTime(String),
    #[error("the ID token's nonce does not match the sign-in's")]
    Nonce,
    #[error("the identity provider did not authenticate the person again, as the application asked: {0}")]
    AuthTime(String),
    #[error("the ID token's `at_hash` does not match the access token")]
    AccessTokenHash,
    #[error("the userinfo endpoint failed: {0}")]
    UserInfo(String),
    #[error("the identity provider says the email address is not verified")]
    EmailUnverified,
    #[error("the identity provider sent no email address (claim `{0}`)")]
    NoEmail(String),
    #[error("no user `{0}` is provisioned in this organisation, and just-in-time creation is off")]
    UnknownUser(String),
    #[error("the user `{0}` is deactivated")]
    UserDeactivated(String),
    #[error("the user cannot be created: {0}")]
    CannotCreateUser(String),
    #[error("no organisation has an account for `{0}` that may sign in with Google")]
    NoAccount(String),
    #[error(
        "the Google account is not in the organisation's Google Workspace (`hd` is {found}, expected one of {expected})"
    )]
    HostedDomain { found: String, expected: String },
    #[error("{0} requires you to sign in through its own identity provider")]
    SsoRequired(String),
    #[error("the logout token is not acceptable: {0}")]
    LogoutToken(String),
    #[error("the logout token was already used")]
    LogoutReplayed,
    #[error("the service is unavailable; try again in a moment")]
    Unavailable,
}

impl Refusal {
    /// The stable name of the failed check, for the audit trail and support.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownConnection => "unknown_connection",
            Refusal::ConnectionDisabled => "connection_disabled",
            Refusal::NotConfigured(_) => "not_configured",
            Refusal::TenantSuspended => "tenant_suspended",
            Refusal::UnknownState => "unknown_state",
            Refusal::WrongBrowser => "wrong_browser",
            Refusal::AlreadyAnswered => "already_answered",
            Refusal::LoginExpired => "login_expired",
            Refusal::WrongConnection => "wrong_connection",
            Refusal::IdpError { .. } => "idp_error",
            Refusal::IssuerParameter { .. } => "issuer_parameter",
            Refusal::IssuerParameterMissing => "issuer_parameter_missing",
            Refusal::MissingCode => "missing_code",
            Refusal::IdpUnreachable(_) => "idp_unreachable",
            Refusal::TokenEndpoint(_) => "token_endpoint",
            Refusal::NoIdToken => "no_id_token",
            Refusal::IdTokenMalformed(_) => "id_token_malformed",
            Refusal::Algorithm(_) => "algorithm",
            Refusal::UnknownKey => "unknown_key",
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::Issuer(_) => "issuer",
            Refusal::Audience(_) => "audience",
            Refusal::AuthorizedParty(_) => "authorized_party",
            Refusal::Expired(_) => "expired",
            Refusal::IssueTime(_) => "issue_time",
            Refusal::Nonce => "nonce",
            Refusal::AuthTime(_) => "auth_time",
            Refusal::AccessTokenHash => "at_hash",
            Refusal::UserInfo(_) => "userinfo",
            Refusal::EmailUnverified => "email_unverified",
            Refusal::NoEmail(_) => "no_email",
            Refusal::UnknownUser(_) => "unknown_user",
            Refusal::UserDeactivated(_) => "user_deactivated",
            Refusal::CannotCreateUser(_) => "cannot_create_user",
            Refusal::NoAccount(_) => "no_account",
            Refusal::HostedDomain { .. } => "hosted_domain",
            Refusal::SsoRequired(_) => "sso_required",
            Refusal::LogoutToken(_) => "logout_token",
            Refusal::LogoutReplayed => "logout_replayed",
            Refusal::Unavailable => "unavailable",
        }
    }

    /// What the browser is told: the sentence of the check, except for the token's
    /// cryptography, which is not told apart (nothing to learn for a forger).
    pub fn public_message(&self) -> String {
        let mut message = match self {
            Refusal::Algorithm(_) | Refusal::UnknownKey | Refusal::SignatureInvalid => {
                "The identity provider's answer could not be verified".to_owned()
            }
            other => other.to_string(),
        };
        if let Some(first) = message.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        message.push('.');
        message
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::UnknownConnection => StatusCode::NOT_FOUND,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::IdpUnreachable(_) => StatusCode::BAD_GATEWAY,
            Refusal::UnknownState | Refusal::MissingCode => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }

    pub fn page(&self, request_id: &str) -> Response {
        pages::sso_refused(self.status(), &self.public_message(), self.code(), request_id)
    }
}

impl From<NotAdmitted> for Refusal {
    fn from(refused: NotAdmitted) -> Self {
        match refused {
            NotAdmitted::CannotCreateUser(why) => Refusal::CannotCreateUser(why),
            NotAdmitted::UserDeactivated(name) => Refusal::UserDeactivated(name),
            NotAdmitted::TenantSuspended => Refusal::TenantSuspended,
        }
    }
}

/// A store failure, logged here; the browser is told to try again.
pub fn unavailable(err: StoreError) -> Refusal {
    tracing::error!(%err, "the store failed during an OpenID Connect exchange");
    Refusal::Unavailable
}

/// Who an upstream IdP is in the audit trail (`oidc:<connection>` or `google`).
pub fn idp_actor(upstream: &str) -> Actor {
    Actor { kind: "idp".into(), id: upstream.to_owned(), label: None }
}

/// Where a refusal happened, for its audit record.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub tenant: Option<TenantId>,
    /// `oidc:<connection>` or `google`, when known.
    pub upstream: Option<String>,
    pub detail: serde_json::Value,
    /// The connection test this login runs for, if it is one: it ends with the refusal.
    pub test_ticket: Option<String>,
}

/// Appends the audit record of a refusal (`action`): the exact check and reason, and the
/// context's detail. A refusal changes nothing else, so this is its own write.
pub async fn record(state: &AppState, action: &str, refusal: &Refusal, context: &Context, request_id: &str) {
    let actor = context.upstream.as_deref().map_or_else(Actor::anonymous, idp_actor);
    let subject = context.upstream.as_ref().map(|upstream| Subject {
        kind: "oidc_connection".into(),
        id: upstream.clone(),
        label: None,
    });
    let record = AuditRecord::new(
        context.tenant,
        actor,
        action,
        subject,
        context.detail.clone(),
        state.clock.now(),
        Some(request_id.to_owned()),
    );
    federated::record_refusal(state, refusal.code(), refusal.to_string(), record).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_failures_share_one_sentence_and_keep_their_codes() {
        let public: Vec<String> =
            [Refusal::Algorithm("none".into()), Refusal::UnknownKey, Refusal::SignatureInvalid]
                .iter()
                .map(Refusal::public_message)
                .collect();
        assert!(public.iter().all(|m| m == &public[0]));
        assert_ne!(Refusal::UnknownKey.code(), Refusal::SignatureInvalid.code());
        assert_eq!(Refusal::Nonce.public_message(), "The ID token's nonce does not match the sign-in's.");
    }
}
