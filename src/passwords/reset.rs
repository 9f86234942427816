//! Password reset and invitation links that need no server-side state.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload || fingerprint))`. The payload
//! says which user of which tenant may set a password, until when, and why; it is signed, so it cannot
//! be altered, and it expires. The fingerprint is supplied by the caller and changes whenever the
//! user's password changes (see [`credential_fingerprint`]): once a link has been used to set a
//! password, its MAC no longer matches, which makes the link single-use without storing it.
//!
//! The payload is fixed binary, 42 bytes, big-endian: version (1), purpose (1), tenant (16), user (16),
//! expiry in Unix seconds (8). Being of fixed length, `payload || fingerprint` is unambiguous.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused before any decoding; real ones are about 100 characters.
pub const MAX_TOKEN_LEN: usize = 1024;

const FORMAT_VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 42;

/// Why a link cannot be used. The variants are for the log; the person sees one message for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    /// Not a token this server makes: too long, bad base64, wrong length or version, unknown purpose.
    #[error("the reset token is malformed")]
    Malformed,
    /// Altered, signed with another key, or already used (the password changed since it was issued).
    #[error("the reset token's signature does not match (altered, or already used)")]
    BadSignature,
    /// Genuine but past its expiry.
    #[error("the reset token has expired")]
    Expired,
}

/// Why the link was sent; both let the holder set a password, but the pages differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetPurpose {
    /// "Forgot my password".
    Reset,
    /// An administrator invited the user to set their first password.
    Invite,
}

impl ResetPurpose {
    /// The lower-case name, for logs and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Invite => "invite",
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            Self::Reset => 1,
            Self::Invite => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Reset),
            2 => Some(Self::Invite),
            _ => None,
        }
    }
}

/// What a token grants: who may set a password, until when, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetClaims {
    /// The tenant's id as a `u128` (`Uuid::as_u128`).
    pub tenant: u128,
    /// The user's id as a `u128`.
    pub user: u128,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
    /// Why the link was sent.
    pub purpose: ResetPurpose,
}

impl ResetClaims {
    /// Claims for a link issued at `now` that stays valid for `valid_for`.
    pub fn new(
        tenant: u128,
        user: u128,
        purpose: ResetPurpose,
        now: OffsetDateTime,
        valid_for: Duration,
    ) -> Self {
        let expires_at = now.saturating_add(valid_for).unix_timestamp();
        Self { tenant, user, expires_at, purpose }
    }

    fn encode(&self) -> [u8; PAYLOAD_LEN] {
        let mut payload = [0_u8; PAYLOAD_LEN];
        payload[0] = FORMAT_VERSION;
        payload[1] = self.purpose.to_byte();
        payload[2..18].copy_from_slice(&self.tenant.to_be_bytes());
        payload[18..34].copy_from_slice(&self.user.to_be_bytes());
        payload[34..42].copy_from_slice(&self.expires_at.to_be_bytes());
        payload
    }

    fn decode(payload: &[u8]) -> Result<Self, ResetError> {
        let payload: &[u8; PAYLOAD_LEN] = payload.try_into().map_err(|_| ResetError::Malformed)?;
        let [version, purpose, rest @ ..] = payload;
        if *version != FORMAT_VERSION {
            return Err(ResetError::Malformed);
        }
        let purpose = ResetPurpose::from_byte(*purpose).ok_or(ResetError::Malformed)?;
        let (tenant, rest) = rest.split_first_chunk::<16>().ok_or(ResetError::Malformed)?;
        let (user, rest) = rest.split_first_chunk::<16>().ok_or(ResetError::Malformed)?;
        let expires_at: &[u8; 8] = rest.try_into().map_err(|_| ResetError::Malformed)?;
        Ok(Self {
            tenant: u128::from_be_bytes(*tenant),
            user: u128::from_be_bytes(*user),
            expires_at: i64::from_be_bytes(*expires_at),
            purpose,
        })
    }
}

/// Issues and checks reset tokens with one secret key.
#[derive(Clone)]
pub struct ResetSigner {
    /// HMAC keyed once; cloned per token.
    mac: HmacSha256,
}

impl std::fmt::Debug for ResetSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetSigner { key: <secret> }")
    }
}

impl ResetSigner {
    /// A signer with a 32-byte secret key used for nothing else.
    pub fn new(key: [u8; 32]) -> Self {
        // HMAC pads keys shorter than SHA-256's 64-byte block with zeros, so this is exactly HMAC
        // keyed with `key`, without the fallible `new_from_slice`.
        let mut block = [0_u8; 64];
        block[..32].copy_from_slice(&key);
        Self { mac: <HmacSha256 as hmac::digest::KeyInit>::new(&block.into()) }
    }

    /// A token for `claims`, bound to the user's current credential `fingerprint`.
    pub fn issue(&self, claims: &ResetClaims, fingerprint: &[u8]) -> String {
        let payload = claims.encode();
        let tag = self.tag(&payload, fingerprint).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// The claims of a genuine, unused, unexpired `token`.
    ///
    /// `fingerprint` must be the user's current one: load it for the user that [`peek`] names.
    /// The signature is checked (in constant time) before the expiry, so `Expired` is only reported
    /// for tokens this server issued.
    pub fn verify(
        &self,
        token: &str,
        fingerprint: &[u8],
        now: OffsetDateTime,
    ) -> Result<ResetClaims, ResetError> {
        let (payload, signature) = split(token)?;
        let claims = ResetClaims::decode(&payload)?;
        self.tag(&payload, fingerprint).verify_slice(&signature).map_err(|_| ResetError::BadSignature)?;
        if now.unix_timestamp() >= claims.expires_at {
            return Err(ResetError::Expired);
        }
        Ok(claims)
    }

    fn tag(&self, payload: &[u8], fingerprint: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.update(fingerprint);
        mac
    }
}

/// The claims of `token` without checking its signature or expiry.
///
/// Only for finding whose fingerprint to load before [`ResetSigner::verify`]; never act on them.
pub fn peek(token: &str) -> Result<ResetClaims, ResetError> {
    let (payload, _) = split(token)?;
    ResetClaims::decode(&payload)
}

/// A fingerprint of a user's credential state that changes whenever their password is set.
///
/// `current_phc` is the stored password hash (a fresh salt makes it change on every set, even to the
/// same password); `credential_version` is a counter the caller bumps on each change, which keeps
/// invitations to users without a password single-use too.
pub fn credential_fingerprint(current_phc: Option<&str>, credential_version: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"portcullis credential fingerprint v1\0");
    hasher.update(credential_version.to_be_bytes());
    match current_phc {
        Some(phc) => {
            hasher.update([1]);
            hasher.update(phc.as_bytes());
        }
        None => hasher.update([0]),
    }
    hasher.finalize().into()
}

/// The decoded payload and signature of `token`, refusing overlong and ill-formed input.
fn split(token: &str) -> Result<(Vec<u8>, Vec<u8>), ResetError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(ResetError::Malformed);
    }
    let (payload, signature) = token.split_once('.').ok_or(ResetError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| ResetError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| ResetError::Malformed)?;
    Ok((payload, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const TENANT: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0001;
    const USER: u128 = 0x0190_0000_0000_7000_8000_0000_0000_0002;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
    }

    fn claims() -> ResetClaims {
        ResetClaims::new(TENANT, USER, ResetPurpose::Reset, now(), Duration::minutes(30))
    }

    fn fingerprint() -> [u8; 32] {
        credential_fingerprint(Some("$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"), 3)
    }

    #[test]
    fn a_token_round_trips() {
        let signer = ResetSigner::new(KEY);
        let token = signer.issue(&claims(), &fingerprint());
        assert!(token.len() < 120, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "url-safe: {token}");
        assert_eq!(signer.verify(&token, &fingerprint(), now()), Ok(claims()));
        assert_eq!(peek(&token), Ok(claims()));
        assert_eq!(claims().expires_at, now().unix_timestamp() + 1800);
    }

    #[test]
    fn both_purposes_survive_the_trip() {
        let signer = ResetSigner::new(KEY);
        let invite = ResetClaims { purpose: ResetPurpose::Invite, ..claims() };
        let token = signer.issue(&invite, &fingerprint());
        assert_eq!(signer.verify(&token, &fingerprint(), now()).map(|c| c.purpose), Ok(ResetPurpose::Invite));
        assert_eq!(ResetPurpose::Invite.as_str(), "invite");
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let signer = ResetSigner::new(KEY);
        let token = signer.issue(&claims(), &fingerprint());
        let (_, signature) = token.split_once('.').unwrap();
        let other_user = ResetClaims { user: USER + 1, ..claims() };
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(other_user.encode()));
        assert_eq!(signer.verify(&forged, &fingerprint(), now()), Err(ResetError::BadSignature));
        let later = ResetClaims { expires_at: claims().expires_at + 86_400, ..claims() };
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(later.encode()));
        assert_eq!(signer.verify(&forged, &fingerprint(), now()), Err(ResetError::BadSignature));
    }

    #[test]
    fn a_tampered_signature_or_another_key_is_refused() {
        let signer = ResetSigner::new(KEY);
        let token = signer.issue(&claims(), &fingerprint());
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(signer.verify(&tampered, &fingerprint(), now()), Err(ResetError::BadSignature));
        let foreign = ResetSigner::new([8; 32]).issue(&claims(), &fingerprint());
        assert_eq!(signer.verify(&foreign, &fingerprint(), now()), Err(ResetError::BadSignature));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let signer = ResetSigner::new(KEY);
        let token = signer.issue(&claims(), &fingerprint());
        let just_before = now() + Duration::minutes(30) - Duration::seconds(1);
        assert!(signer.verify(&token, &fingerprint(), just_before).is_ok());
        let at_expiry = now() + Duration::minutes(30);
        assert_eq!(signer.verify(&token, &fingerprint(), at_expiry), Err(ResetError::Expired));
    }

    #[test]
    fn a_token_stops_working_once_the_password_changes() {
        let signer = ResetSigner::new(KEY);
        let token = signer.issue(&claims(), &fingerprint());
        let after_use = credential_fingerprint(Some("$argon2id$v=19$m=64,t=1,p=1$bmV3$bmV3aGFzaA"), 4);
        assert_eq!(signer.verify(&token, &after_use, now()), Err(ResetError::BadSignature));
    }

    #[test]
    fn invitations_are_single_use_through_the_version() {
        let before = credential_fingerprint(None, 0);
        assert_ne!(before, credential_fingerprint(None, 1));
        assert_ne!(before, credential_fingerprint(Some(""), 0));
        let signer = ResetSigner::new(KEY);
        let invite = ResetClaims { purpose: ResetPurpose::Invite, ..claims() };
        let token = signer.issue(&invite, &before);
        assert!(signer.verify(&token, &before, now()).is_ok());
        assert_eq!(
            signer.verify(&token, &credential_fingerprint(None, 1), now()),
            Err(ResetError::BadSignature)
        );
    }

    #[test]
    fn malformed_and_overlong_tokens_are_refused_before_verifying() {
        let signer = ResetSigner::new(KEY);
        let genuine = signer.issue(&claims(), &fingerprint());
        let overlong = format!("{genuine}{}", "A".repeat(MAX_TOKEN_LEN));
        let no_dot = genuine.replace('.', "");
        let padded = format!("{genuine}=");
        let short = format!("{}.{}", URL_SAFE_NO_PAD.encode([1_u8; 10]), URL_SAFE_NO_PAD.encode([0_u8; 32]));
        let mut unknown_version = claims().encode();
        unknown_version[0] = 9;
        let unknown_version = format!("{}.AAAA", URL_SAFE_NO_PAD.encode(unknown_version));
        for token in ["", ".", "abc", &overlong, &no_dot, &padded, &short, &unknown_version, "é.é"] {
            assert_eq!(signer.verify(token, &fingerprint(), now()), Err(ResetError::Malformed), "{token}");
            assert_eq!(peek(token), Err(ResetError::Malformed), "{token}");
        }
    }

    #[test]
    fn the_key_equals_plain_hmac_keying() {
        let mut plain = HmacSha256::new_from_slice(&KEY).unwrap();
        plain.update(b"payload");
        let ours = ResetSigner::new(KEY).tag(b"pay", b"load");
        assert_eq!(ours.finalize().into_bytes(), plain.finalize().into_bytes());
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert_eq!(format!("{:?}", ResetSigner::new(KEY)), "ResetSigner { key: <secret> }");
    }
}
