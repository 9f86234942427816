//! Why a SAML message was refused: one variant per check, each with a stable code for the audit
//! trail and a sentence for the person and their IT admin.
//!
//! Cryptographic failures share one public sentence: telling "could not decrypt" apart from "the
//! signature of what was decrypted is wrong" would hand an attacker a padding oracle. The audit
//! record keeps the exact check.

use axum::{http::StatusCode, response::Response};

use crate::{
    app::AppState,
    directory::federated::{self, NotAdmitted},
    ids::ConnectionId,
    signin::pages,
    store::{
        StoreError,
        audit::{Actor, AuditRecord},
        journal::Subject,
        saml::SamlConnectionRecord,
    },
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the message is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the message is not a readable SAML message: {0}")]
    Malformed(String),
    #[error("the message carries a document type declaration (DTD)")]
    Dtd,
    #[error("the message uses an XML entity")]
    Entity,
    #[error("the message carries an XML comment or processing instruction")]
    CommentOrPi,
    #[error("the message is too deeply nested or too large: {0}")]
    TooComplex(String),
    #[error("a signature does not refer to the element it signs")]
    ReferenceUri,
    #[error("a signature uses a transform or canonicalisation that is not allowed")]
    Transform,
    #[error("a signature has an unexpected shape: {0}")]
    SignatureShape(String),
    #[error("two elements of the message share an ID")]
    DuplicateId,
    #[error("there is no SAML connection here")]
    UnknownConnection,
    #[error("the SAML connection is disabled")]
    ConnectionDisabled,
    #[error("the SAML connection has no IdP signing certificate")]
    NoIdpCertificate,
    #[error("the identity provider answered {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status { code: String, message: Option<String> },
    #[error("the message has {0} assertions; exactly one is accepted")]
    AssertionCount(usize),
    #[error("the assertion is not signed by the identity provider")]
    Unsigned,
    #[error("a signature does not verify against the connection's IdP certificates")]
    SignatureInvalid,
    #[error("a signature uses an algorithm that is not allowed: {0}")]
    SignatureAlgorithm(String),
    #[error("the encrypted assertion could not be decrypted")]
    DecryptionFailed,
    #[error("the assertion is encrypted with an algorithm that is not supported: {0}")]
    EncryptionAlgorithm(String),
    #[error("the message is addressed to `{found}`, not to this service provider's `{expected}`")]
    Destination { found: String, expected: String },
    #[error("the issuer `{found}` is not the connection's identity provider `{expected}`")]
    Issuer { found: String, expected: String },
    #[error("the assertion is not meant for this service provider (audience `{expected}` missing)")]
    Audience { expected: String },
    #[error("the assertion's recipient `{found}` is not this service provider's `{expected}`")]
    Recipient { found: String, expected: String },
    #[error("the assertion is not valid before {0}")]
    NotYetValid(String),
    #[error("the assertion expired at {0}")]
    Expired(String),
    #[error("the assertion has no bearer subject confirmation")]
    NoBearerConfirmation,
    #[error("the assertion names no subject")]
    NoSubject,
    #[error("the assertion has no authentication statement")]
    NoAuthnStatement,
    #[error("the response answers a request this service provider did not send")]
    UnknownRequest,
    #[error("the response answers a request that was already answered")]
    RequestAlreadyAnswered,
    #[error("the response answers a request made for another connection")]
    RequestOfAnotherConnection,
    #[error("the login was not started here, and this connection does not accept IdP-initiated logins")]
    Unsolicited,
    #[error("the assertion was already used")]
    Replayed,
    #[error("the assertion carries no email address (attribute `{0}` or NameID)")]
    NoEmail(String),
    #[error("no user `{0}` is provisioned in this organisation, and just-in-time creation is off")]
    UnknownUser(String),
    #[error("the user `{0}` is deactivated")]
    UserDeactivated(String),
    #[error("the organisation is suspended")]
    TenantSuspended,
    #[error("the user cannot be created: {0}")]
    CannotCreateUser(String),
    #[error("the service is unavailable; try again in a moment")]
    Unavailable,
}

impl Refusal {
    /// The stable name of the failed check, for the audit trail and support.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Malformed(_) => "malformed",
            Refusal::Dtd => "dtd",
            Refusal::Entity => "entity",
            Refusal::CommentOrPi => "comment_or_pi",
            Refusal::TooComplex(_) => "too_complex",
            Refusal::ReferenceUri => "reference_uri",
            Refusal::Transform => "transform",
            Refusal::SignatureShape(_) => "signature_shape",
            Refusal::DuplicateId => "duplicate_id",
            Refusal::UnknownConnection => "unknown_connection",
            Refusal::ConnectionDisabled => "connection_disabled",
            Refusal::NoIdpCertificate => "no_idp_certificate",
            Refusal::Status { .. } => "status",
            Refusal::AssertionCount(_) => "assertion_count",
            Refusal::Unsigned => "unsigned",
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::SignatureAlgorithm(_) => "signature_algorithm",
            Refusal::DecryptionFailed => "decryption_failed",
            Refusal::EncryptionAlgorithm(_) => "encryption_algorithm",
            Refusal::Destination { .. } => "destination",
            Refusal::Issuer { .. } => "issuer",
            Refusal::Audience { .. } => "audience",
            Refusal::Recipient { .. } => "recipient",
            Refusal::NotYetValid(_) => "not_yet_valid",
            Refusal::Expired(_) => "expired",
            Refusal::NoBearerConfirmation => "no_bearer_confirmation",
            Refusal::NoSubject => "no_subject",
            Refusal::NoAuthnStatement => "no_authn_statement",
            Refusal::UnknownRequest => "unknown_request",
            Refusal::RequestAlreadyAnswered => "request_already_answered",
            Refusal::RequestOfAnotherConnection => "request_of_another_connection",
            Refusal::Unsolicited => "unsolicited",
            Refusal::Replayed => "replayed",
            Refusal::NoEmail(_) => "no_email",
            Refusal::UnknownUser(_) => "unknown_user",
            Refusal::UserDeactivated(_) => "user_deactivated",
            Refusal::TenantSuspended => "tenant_suspended",
            Refusal::CannotCreateUser(_) => "cannot_create_user",
            Refusal::Unavailable => "unavailable",
        }
    }

    /// What the browser is told. The cryptographic checks share one sentence (see the module).
    pub fn public_message(&self) -> String {
        match self {
            Refusal::Unsigned | Refusal::SignatureInvalid | Refusal::DecryptionFailed => {
                "The identity provider's response could not be verified.".into()
            }
            other => {
                let mut message = other.to_string();
                if let Some(first) = message.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                message.push('.');
                message
            }
        }
    }

    /// Problems of the message itself are the sender's (400); valid messages Portcullis will not
    /// honour are refusals (403).
    fn status(&self) -> StatusCode {
        match self {
            Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::UnknownConnection => StatusCode::NOT_FOUND,
            Refusal::Malformed(_)
            | Refusal::Dtd
            | Refusal::Entity
            | Refusal::CommentOrPi
            | Refusal::TooComplex(_)
            | Refusal::DuplicateId
            | Refusal::AssertionCount(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// The page that explains the refusal, with the code and the request id an IT admin can look
    /// up in the audit trail.
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
    tracing::error!(%err, "the store failed during a SAML exchange");
    Refusal::Unavailable
}

/// Who a connection's IdP is in the audit trail.
pub fn idp_actor(connection: ConnectionId) -> Actor {
    Actor { kind: "idp".into(), id: format!("saml:{connection}"), label: None }
}

/// Appends the audit record of a refusal (`action`): the exact check and reason, and `detail`.
/// A refusal changes nothing else, so this is its own write.
pub async fn record(
    state: &AppState,
    action: &str,
    refusal: &Refusal,
    connection: Option<&SamlConnectionRecord>,
    detail: serde_json::Value,
    request_id: &str,
) {
    let record = AuditRecord::new(
        connection.map(|c| c.tenant),
        connection.map_or_else(Actor::anonymous, |c| idp_actor(c.id)),
        action,
        connection.map(|c| Subject {
            kind: "saml_connection".into(),
            id: c.id.to_string(),
            label: Some(c.name.clone()),
        }),
        detail,
        state.clock.now(),
        Some(request_id.to_owned()),
    );
    federated::record_refusal(state, refusal.code(), refusal.to_string(), record).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cryptographic_failures_are_told_apart_only_in_the_audit_trail() {
        let public: Vec<String> = [Refusal::Unsigned, Refusal::SignatureInvalid, Refusal::DecryptionFailed]
            .iter()
            .map(Refusal::public_message)
            .collect();
        assert!(public.iter().all(|m| m == &public[0]));
        assert_ne!(Refusal::SignatureInvalid.code(), Refusal::DecryptionFailed.code());
    }

    #[test]
    fn a_refusal_reads_as_a_sentence() {
        let refusal = Refusal::Issuer { found: "https://evil".into(), expected: "https://idp".into() };
        assert_eq!(
            refusal.public_message(),
            "The issuer `https://evil` is not the connection's identity provider `https://idp`."
        );
    }
}
