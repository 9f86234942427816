//! Verifying what an IdP signs: ID tokens with the openidconnect crate (signature by the
//! issuer's published keys, issuer, audience, expiry, nonce), plus the checks it leaves to its
//! caller (`azp`, `at_hash`, an issue time in the future); logout tokens (OIDC Back-Channel
//! Logout 1.0 §2.6) with jsonwebtoken and the same keys. Only asymmetric algorithms are
//! accepted: `alg: none` is refused, and an HMAC token can never be checked against a public
//! key (the verifier is a public client's: it holds no shared secret).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use openidconnect::{
    AccessToken, AccessTokenHash, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl,
    Nonce, SignatureVerificationError,
    core::{CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::refusal::Refusal;

/// Every claim beyond the standard ones, kept for the claim mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    pub all: Map<String, Value>,
}

impl openidconnect::AdditionalClaims for OtherClaims {}

type FullIdToken =
    IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// The algorithms an IdP may sign with.
const ASYMMETRIC: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// What a token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub now: OffsetDateTime,
    pub skew: Duration,
    /// ID tokens only: the person must have authenticated after this (`auth_time`), because the
    /// app asked for a fresh login (`prompt=login`, `max_age`).
    pub authenticated_after: Option<OffsetDateTime>,
}

/// A verified ID token's subject, session and every claim.
#[derive(Debug, Clone)]
pub struct VerifiedIdToken {
    /// The token as the IdP sent it (a logout's `id_token_hint`).
    pub raw: String,
    pub subject: String,
    pub sid: Option<String>,
    pub claims: Map<String, Value>,
}

fn chrono_time(at: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond()).unwrap_or_default()
}

/// Verifies an ID token from the token endpoint (OpenID Connect Core §3.1.3.7).
pub fn verify_id_token(
    raw: &str,
    access_token: Option<&str>,
    nonce: &str,
    keys: &CoreJsonWebKeySet,
    expected: &Expected<'_>,
) -> Result<VerifiedIdToken, Refusal> {
    let token = FullIdToken::from_str(raw).map_err(|err| Refusal::IdTokenMalformed(err.to_string()))?;
    let issuer =
        IssuerUrl::new(expected.issuer.to_owned()).map_err(|err| Refusal::Issuer(err.to_string()))?;
    let lenient_now = chrono_time(expected.now - expected.skew);
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(expected.client_id.to_owned()),
        issuer,
        keys.clone(),
    )
    .set_allowed_algs(ASYMMETRIC)
    .set_time_fn(move || lenient_now);
    let claims = token.claims(&verifier, &Nonce::new(nonce.to_owned())).map_err(claims_refusal)?;

    // OpenID Connect Core §3.1.3.7 steps 4–5, which the crate leaves to its caller.
    let audiences = claims.audiences();
    match claims.authorized_party() {
        Some(party) if party.as_str() != expected.client_id => {
            return Err(Refusal::AuthorizedParty(party.to_string()));
        }
        None if audiences.len() > 1 => {
            return Err(Refusal::AuthorizedParty("missing, with several audiences".into()));
        }
        _ => {}
    }
    if claims.issue_time() > chrono_time(expected.now + expected.skew) {
        return Err(Refusal::IssueTime(format!("issued in the future ({})", claims.issue_time())));
    }
    if let Some(after) = expected.authenticated_after {
        // OpenID Connect Core §3.1.2.1: with max_age, auth_time is required; an IdP that ignored
        // the request must not pass a remembered login off as a fresh one.
        let at =
            claims.auth_time().ok_or_else(|| Refusal::AuthTime("the ID token has no `auth_time`".into()))?;
        if after.checked_sub(expected.skew).is_some_and(|after| at < chrono_time(after)) {
            return Err(Refusal::AuthTime(format!("the person last authenticated at {at}")));
        }
    }
    if let (Some(hash), Some(access_token)) = (claims.access_token_hash(), access_token) {
        let alg = token.signing_alg().map_err(|err| Refusal::Algorithm(err.to_string()))?;
        let key = token.signing_key(&verifier).map_err(|_| Refusal::UnknownKey)?;
        let computed = AccessTokenHash::from_token(&AccessToken::new(access_token.to_owned()), alg, key)
            .map_err(|err| Refusal::Algorithm(err.to_string()))?;
        if computed != *hash {
            return Err(Refusal::AccessTokenHash);
        }
    }
    let all = match serde_json::to_value(claims) {
        Ok(Value::Object(all)) => all,
        _ => return Err(Refusal::IdTokenMalformed("its claims are not an object".into())),
    };
    Ok(VerifiedIdToken {
        raw: raw.to_owned(),
        subject: claims.subject().to_string(),
        sid: claims.additional_claims().all.get("sid").and_then(Value::as_str).map(str::to_owned),
        claims: all,
    })
}

fn claims_refusal(err: ClaimsVerificationError) -> Refusal {
    match err {
        ClaimsVerificationError::Expired(m) => Refusal::Expired(m),
        ClaimsVerificationError::InvalidAudience(m) => Refusal::Audience(m),
        ClaimsVerificationError::InvalidIssuer(m) => Refusal::Issuer(m),
        ClaimsVerificationError::InvalidNonce(_) => Refusal::Nonce,
        ClaimsVerificationError::SignatureVerification(err) => signature_refusal(err),
        other => Refusal::IdTokenMalformed(other.to_string()),
    }
}

fn signature_refusal(err: SignatureVerificationError) -> Refusal {
    match err {
        SignatureVerificationError::NoMatchingKey | SignatureVerificationError::AmbiguousKeyId(_) => {
            Refusal::UnknownKey
        }
        SignatureVerificationError::NoSignature => Refusal::Algorithm("none".into()),
        SignatureVerificationError::DisallowedAlg(m) | SignatureVerificationError::UnsupportedAlg(m) => {
            Refusal::Algorithm(m)
        }
        _ => Refusal::SignatureInvalid,
    }
}

// ---- logout tokens ----

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A verified logout token: whose sessions to end.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedLogout {
    pub jti: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
    /// Until when the `jti` must be remembered.
    pub expires_at: OffsetDateTime,
}

/// Verifies a logout token (OIDC Back-Channel Logout 1.0 §2.6).
pub fn verify_logout_token(
    raw: &str,
    jwks: &[jsonwebtoken::jwk::Jwk],
    expected: &Expected<'_>,
) -> Result<VerifiedLogout, Refusal> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};

    let header = jsonwebtoken::decode_header(raw).map_err(|_| unreadable_header(raw))?;
    let allowed = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    if !allowed.contains(&header.alg) {
        return Err(Refusal::Algorithm(format!("{:?}", header.alg)));
    }
    if let Some(typ) = header.typ.as_deref() {
        if !["JWT", "logout+jwt", "application/logout+jwt"].iter().any(|t| t.eq_ignore_ascii_case(typ)) {
            return Err(Refusal::LogoutToken(format!("its type is `{typ}`")));
        }
    }
    let jwk = pick_key(jwks, header.kid.as_deref(), header.alg).ok_or(Refusal::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal::SignatureInvalid)?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "exp"]);
    // Times are checked below with Portcullis' clock.
    validation.validate_exp = false;
    let decoded =
        jsonwebtoken::decode::<Map<String, Value>>(raw, &key, &validation).map_err(|err| {
            match err.kind() {
                ErrorKind::InvalidSignature => Refusal::SignatureInvalid,
                ErrorKind::InvalidAlgorithm => Refusal::Algorithm(format!("{:?}", header.alg)),
                ErrorKind::InvalidIssuer => Refusal::Issuer("the logout token's `iss`".into()),
                ErrorKind::InvalidAudience => Refusal::Audience("the logout token's `aud`".into()),
                ErrorKind::MissingRequiredClaim(claim) => {
                    Refusal::LogoutToken(format!("it has no `{claim}`"))
                }
                _ => Refusal::LogoutToken(err.to_string()),
            }
        })?;
    logout_claims(&decoded.claims, expected)
}

/// Why a token's header could not be read: an algorithm jsonwebtoken does not even name
/// (`none`), or no JWT at all. Only to say why; the token is refused either way.
fn unreadable_header(raw: &str) -> Refusal {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let alg = raw
        .split('.')
        .next()
        .and_then(|header| URL_SAFE_NO_PAD.decode(header).ok())
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    match alg {
        Some(alg) => Refusal::Algorithm(alg),
        None => Refusal::LogoutToken("it is not a signed JWT".into()),
    }
}

/// The key a token names: by `kid`, else the only key of the algorithm's family.
fn pick_key<'a>(
    jwks: &'a [jsonwebtoken::jwk::Jwk],
    kid: Option<&str>,
    alg: jsonwebtoken::Algorithm,
) -> Option<&'a jsonwebtoken::jwk::Jwk> {
    let family = alg.family();
    let fits = |jwk: &&jsonwebtoken::jwk::Jwk| {
        jsonwebtoken::DecodingKey::from_jwk(jwk).is_ok_and(|key| key.family() == family)
    };
    match kid {
        Some(kid) => jwks.iter().filter(fits).find(|jwk| jwk.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = jwks.iter().filter(fits);
            let only = candidates.next();
            candidates.next().is_none().then_some(only).flatten()
        }
    }
}

fn logout_claims(claims: &Map<String, Value>, expected: &Expected<'_>) -> Result<VerifiedLogout, Refusal> {
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(|| Refusal::LogoutToken(format!("its `{name}` is not a time")))
    };
    let (issued_at, expires_at) = (time("iat")?, time("exp")?);
    if expires_at + expected.skew <= expected.now {
        return Err(Refusal::Expired(format!("the logout token expired at {expires_at}")));
    }
    if issued_at > expected.now + expected.skew {
        return Err(Refusal::IssueTime(format!("the logout token is issued in the future ({issued_at})")));
    }
    if !claims.get("events").and_then(|e| e.get(LOGOUT_EVENT)).is_some_and(Value::is_object) {
        return Err(Refusal::LogoutToken("its `events` does not name a back-channel logout".into()));
    }
    // §2.4: a logout token never carries a nonce, so an ID token cannot pass for one.
    if claims.contains_key("nonce") {
        return Err(Refusal::LogoutToken("it carries a `nonce` (an ID token?)".into()));
    }
    if let Some(party) = claims.get("azp").and_then(Value::as_str) {
        if party != expected.client_id {
            return Err(Refusal::AuthorizedParty(party.to_owned()));
        }
    }
    let text =
        |name: &str| claims.get(name).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
    let jti = text("jti").ok_or_else(|| Refusal::LogoutToken("it has no `jti`".into()))?;
    let (sub, sid) = (text("sub"), text("sid"));
    if sub.is_none() && sid.is_none() {
        return Err(Refusal::LogoutToken("it names neither `sub` nor `sid`".into()));
    }
    Ok(VerifiedLogout { jti, sub, sid, expires_at: expires_at + expected.skew })
}
