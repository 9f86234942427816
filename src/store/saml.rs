//! Tenants' SAML connections and the one-time state of SAML logins.
//!
//! Tables:
//! - `saml_connections` (connection id → record) and `tenant_saml_connections` ((tenant,
//!   connection) → ()), the per-tenant index; they change in the same transaction.
//! - `saml_requests` (AuthnRequest ID → pending request): every request Portcullis sent, so that
//!   a Response's `InResponseTo` is accepted only for a request we made, once, before it expires.
//! - `saml_assertions_seen` ((connection, assertion ID) → expiry): the one-time-use cache that
//!   refuses a replayed assertion (or LogoutRequest); kept until the message itself expires.
//! - `saml_logouts` (LogoutRequest ID → pending logout): where to send the browser once the IdP
//!   answers a logout Portcullis started.
//! - `saml_expiry` ((due, kind, key) → ()): what to purge when.

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{AuthRequestId, ConnectionId, TenantId};

const SAML_CONNECTIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("saml_connections");
const TENANT_SAML_CONNECTIONS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("tenant_saml_connections");
const SAML_REQUESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("saml_requests");
const SAML_ASSERTIONS_SEEN: TableDefinition<(u128, &str), i64> = TableDefinition::new("saml_assertions_seen");
const SAML_LOGOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("saml_logouts");
const SAML_EXPIRY: TableDefinition<(i64, u8, u128, &str), ()> = TableDefinition::new("saml_expiry");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(SAML_CONNECTIONS)?;
    tables.visit(TENANT_SAML_CONNECTIONS)?;
    tables.visit(SAML_REQUESTS)?;
    tables.visit(SAML_ASSERTIONS_SEEN)?;
    tables.visit(SAML_LOGOUTS)?;
    tables.visit(SAML_EXPIRY)?;
    Ok(())
}

/// How a SAML message travels through the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    #[default]
    HttpRedirect,
    HttpPost,
}

impl Binding {
    pub const REDIRECT_URN: &'static str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
    pub const POST_URN: &'static str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

    pub fn urn(self) -> &'static str {
        match self {
            Binding::HttpRedirect => Self::REDIRECT_URN,
            Binding::HttpPost => Self::POST_URN,
        }
    }

    pub fn from_urn(urn: &str) -> Option<Self> {
        match urn {
            Self::REDIRECT_URN => Some(Binding::HttpRedirect),
            Self::POST_URN => Some(Binding::HttpPost),
            _ => None,
        }
    }
}

/// What Portcullis knows of the tenant's identity provider.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdpSettings {
    pub entity_id: String,
    pub sso_url: String,
    pub sso_binding: Binding,
    pub slo_url: Option<String>,
    pub slo_binding: Binding,
    /// The certificates the IdP signs with, DER in base64 (several during a rotation). A
    /// connection without one cannot sign anybody in.
    pub signing_certificates: Vec<String>,
    /// The IdP asks for signed AuthnRequests (metadata `WantAuthnRequestsSigned`).
    pub wants_signed_requests: bool,
}

/// Which IdP attribute (by `Name`) fills which user field; None: not mapped. The email falls back
/// to the NameID when it is unmapped.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AttributeMapping {
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub groups: Option<String>,
    pub department: Option<String>,
    /// Further fields of the app's choosing: field name → IdP attribute.
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// A key pair of the service provider: a PKCS#8 private key and its self-signed certificate.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SpKeyPair {
    pub private_key_pem: String,
    pub certificate_pem: String,
}

impl std::fmt::Debug for SpKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpKeyPair").field("certificate_pem", &self.certificate_pem).finish_non_exhaustive()
    }
}

/// A signing and an encryption key pair, in a rotation's next or previous place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpKeys {
    pub signing: SpKeyPair,
    pub encryption: SpKeyPair,
    /// When they took that place: made (next), or replaced (previous).
    pub since: OffsetDateTime,
}

/// Where the IdP's metadata comes from, when it is fetched rather than uploaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataSource {
    pub url: String,
    pub refresh_hours: u32,
    pub fetched_at: Option<OffsetDateTime>,
    /// Why the last fetch failed, if it did (the connection keeps its last good settings).
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamlConnectionRecord {
    pub id: ConnectionId,
    pub tenant: TenantId,
    pub name: String,
    pub enabled: bool,
    pub idp: IdpSettings,
    /// The NameID format asked for in AuthnRequests; None: whatever the IdP sends.
    pub name_id_format: Option<String>,
    pub attribute_mapping: AttributeMapping,
    /// Unsolicited Responses (IdP-initiated login) are accepted.
    pub allow_idp_initiated: bool,
    /// People the directory does not know are created at their first login.
    pub jit_provisioning: bool,
    pub clock_skew_secs: u32,
    /// RSA-SHA1 signatures are accepted (only for IdPs that cannot do better).
    pub allow_sha1: bool,
    /// Signs AuthnRequests and LogoutRequests.
    pub sp_signing: SpKeyPair,
    /// IdPs encrypt assertions to it.
    pub sp_encryption: SpKeyPair,
    /// A rotation's first step: keys published in the SP metadata beside the current ones (and
    /// decrypted with), not yet signing, so that the IdP can take them up first.
    #[serde(default)]
    pub sp_next: Option<SpKeys>,
    /// The keys the last rotation replaced: still decrypted with (an IdP may encrypt to the old
    /// certificate until its admin uploads the new metadata), until the overlap is ended.
    #[serde(default)]
    pub sp_previous: Option<SpKeys>,
    pub metadata_source: Option<MetadataSource>,
    /// The certificate (base64 DER) that must sign the IdP's metadata, when the IdP signs it with
    /// a key of its own; without one, signed metadata must verify against the IdP's signing
    /// certificates the connection already trusts.
    #[serde(default)]
    pub metadata_certificate: Option<String>,
    /// The `validUntil` of the IdP metadata the settings came from.
    pub metadata_valid_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for SamlConnectionRecord {
    const KIND: &'static str = "SAML connection";
}

/// An AuthnRequest Portcullis sent and is waiting for the answer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub connection: ConnectionId,
    pub tenant: TenantId,
    /// The app's authorization waiting for this login; None for a connection test.
    pub authorization: Option<AuthRequestId>,
    /// A test run by an admin: shows the result, creates no session.
    pub test: bool,
    /// When the Response to it arrived; the record stays until it expires, so that a second
    /// Response is told apart from one to a request never sent.
    #[serde(default)]
    pub answered_at: Option<OffsetDateTime>,
    /// A test's outcome, for the admin API.
    #[serde(default)]
    pub test_result: Option<serde_json::Value>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What became of a request a Response says it answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answering {
    /// Portcullis never sent it, or it expired and was purged.
    Unknown,
    AlreadyAnswered(PendingRequest),
    /// Now marked as answered.
    Answered(PendingRequest),
}

impl Record for PendingRequest {
    const KIND: &'static str = "pending SAML request";
}

/// A LogoutRequest Portcullis sent to an IdP, waiting for its LogoutResponse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLogout {
    pub connection: ConnectionId,
    /// Where the browser goes when the IdP is done (the app's post-logout address).
    pub return_to: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl Record for PendingLogout {
    const KIND: &'static str = "pending SAML logout";
}

#[repr(u8)]
enum Expiring {
    Request = 1,
    SeenAssertion = 2,
    Logout = 3,
}

// ---- connections ----

pub fn connection(src: &impl Source, id: ConnectionId) -> Result<Option<SamlConnectionRecord>, StoreError> {
    codec::get(src, SAML_CONNECTIONS, id.key())
}

/// The tenant's connections, oldest first.
pub fn tenant_connections(
    src: &impl Source,
    tenant: TenantId,
) -> Result<Vec<SamlConnectionRecord>, StoreError> {
    let ids: Vec<u128> = {
        let index = src.table(TENANT_SAML_CONNECTIONS)?;
        let range = index.range((tenant.key(), 0)..=(tenant.key(), u128::MAX))?;
        range.map(|entry| Ok::<_, StoreError>(entry?.0.value().1)).collect::<Result<_, _>>()?
    };
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(record) = connection(src, ConnectionId::from_key(id))? {
            found.push(record);
        }
    }
    found.sort_by_key(|c| c.created_at);
    Ok(found)
}

pub fn put_connection(tx: &WriteTx<'_>, record: &SamlConnectionRecord) -> Result<(), StoreError> {
    tx.table_mut(SAML_CONNECTIONS)?.insert(record.id.key(), codec::encode(record)?.as_slice())?;
    tx.table_mut(TENANT_SAML_CONNECTIONS)?.insert((record.tenant.key(), record.id.key()), ())?;
    Ok(())
}

pub fn delete_connection(
    tx: &WriteTx<'_>,
    id: ConnectionId,
) -> Result<Option<SamlConnectionRecord>, StoreError> {
    let Some(record) = connection(tx, id)? else {
        return Ok(None);
    };
    tx.table_mut(SAML_CONNECTIONS)?.remove(id.key())?;
    tx.table_mut(TENANT_SAML_CONNECTIONS)?.remove((record.tenant.key(), id.key()))?;
    Ok(Some(record))
}

/// Removes every connection of a deleted tenant. Pending requests and seen assertions expire on
/// their own and name a connection that no longer exists.
pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    for record in tenant_connections(tx, tenant)? {
        delete_connection(tx, record.id)?;
    }
    Ok(())
}

/// Every connection that fetches its IdP metadata from a URL.
pub fn connections_with_metadata_url(src: &impl Source) -> Result<Vec<SamlConnectionRecord>, StoreError> {
    let table = src.table(SAML_CONNECTIONS)?;
    let mut found = Vec::new();
    for entry in table.range(0..)? {
        let record: SamlConnectionRecord = codec::decode(entry?.1.value())?;
        if record.metadata_source.is_some() {
            found.push(record);
        }
    }
    Ok(found)
}

// ---- one-time state ----

pub fn put_request(tx: &WriteTx<'_>, id: &str, request: &PendingRequest) -> Result<(), StoreError> {
    tx.table_mut(SAML_REQUESTS)?.insert(id, codec::encode(request)?.as_slice())?;
    let due = request.expires_at.unix_timestamp();
    tx.table_mut(SAML_EXPIRY)?.insert((due, Expiring::Request as u8, 0, id), ())?;
    Ok(())
}

pub fn request(src: &impl Source, id: &str) -> Result<Option<PendingRequest>, StoreError> {
    codec::get(src, SAML_REQUESTS, id)
}

/// Marks a pending request as answered: a request is answered once.
pub fn answer_request(tx: &WriteTx<'_>, id: &str, now: OffsetDateTime) -> Result<Answering, StoreError> {
    let Some(mut pending) = request(tx, id)? else {
        return Ok(Answering::Unknown);
    };
    if pending.answered_at.is_some() {
        return Ok(Answering::AlreadyAnswered(pending));
    }
    pending.answered_at = Some(now);
    tx.table_mut(SAML_REQUESTS)?.insert(id, codec::encode(&pending)?.as_slice())?;
    Ok(Answering::Answered(pending))
}

/// Keeps a connection test's outcome with its request.
pub fn record_test_result(tx: &WriteTx<'_>, id: &str, result: serde_json::Value) -> Result<(), StoreError> {
    if let Some(mut pending) = request(tx, id)? {
        pending.test_result = Some(result);
        tx.table_mut(SAML_REQUESTS)?.insert(id, codec::encode(&pending)?.as_slice())?;
    }
    Ok(())
}

/// Records that `assertion` of `connection` was consumed; false if it already was (a replay).
pub fn mark_assertion_seen(
    tx: &WriteTx<'_>,
    connection: ConnectionId,
    assertion: &str,
    keep_until: OffsetDateTime,
) -> Result<bool, StoreError> {
    let due = keep_until.unix_timestamp();
    let previous = tx.table_mut(SAML_ASSERTIONS_SEEN)?.insert((connection.key(), assertion), due)?.is_some();
    if previous {
        return Ok(false);
    }
    tx.table_mut(SAML_EXPIRY)?
        .insert((due, Expiring::SeenAssertion as u8, connection.key(), assertion), ())?;
    Ok(true)
}

pub fn assertion_seen(
    src: &impl Source,
    connection: ConnectionId,
    assertion: &str,
) -> Result<bool, StoreError> {
    Ok(src.table(SAML_ASSERTIONS_SEEN)?.get((connection.key(), assertion))?.is_some())
}

pub fn put_logout(tx: &WriteTx<'_>, id: &str, logout: &PendingLogout) -> Result<(), StoreError> {
    tx.table_mut(SAML_LOGOUTS)?.insert(id, codec::encode(logout)?.as_slice())?;
    let due = logout.expires_at.unix_timestamp();
    tx.table_mut(SAML_EXPIRY)?.insert((due, Expiring::Logout as u8, 0, id), ())?;
    Ok(())
}

/// Removes and returns a pending logout: it is answered once.
pub fn take_logout(tx: &WriteTx<'_>, id: &str) -> Result<Option<PendingLogout>, StoreError> {
    let removed = tx.table_mut(SAML_LOGOUTS)?.remove(id)?.map(|v| v.value().to_vec());
    removed.map(|bytes| codec::decode(&bytes)).transpose()
}

/// Deletes up to `limit` requests, logouts and seen assertions that expired before `now`.
pub fn purge_expired(tx: &WriteTx<'_>, now: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
    let due: Vec<(i64, u8, u128, String)> = {
        let queue = tx.table_mut(SAML_EXPIRY)?;
        let range = queue.range::<(i64, u8, u128, &str)>(..(now.unix_timestamp(), 0, 0, ""))?;
        range
            .take(limit)
            .map(|entry| {
                let entry = entry?;
                let (at, kind, connection, key) = entry.0.value();
                Ok::<_, StoreError>((at, kind, connection, key.to_owned()))
            })
            .collect::<Result<_, _>>()?
    };
    for (at, kind, connection, key) in &due {
        match *kind {
            k if k == Expiring::Request as u8 => {
                tx.table_mut(SAML_REQUESTS)?.remove(key.as_str())?;
            }
            k if k == Expiring::Logout as u8 => {
                tx.table_mut(SAML_LOGOUTS)?.remove(key.as_str())?;
            }
            _ => {
                tx.table_mut(SAML_ASSERTIONS_SEEN)?.remove((*connection, key.as_str()))?;
            }
        }
        tx.table_mut(SAML_EXPIRY)?.remove((*at, *kind, *connection, key.as_str()))?;
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::store::testing;

    fn pending(expires_at: OffsetDateTime) -> PendingRequest {
        PendingRequest {
            connection: ConnectionId::generate(),
            tenant: TenantId::generate(),
            authorization: None,
            test: false,
            answered_at: None,
            test_result: None,
            created_at: expires_at - Duration::minutes(10),
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_request_is_answered_once_and_an_assertion_is_seen_once() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::now_utc();
        let connection = ConnectionId::generate();
        let request = pending(now + Duration::minutes(5));
        let outcome = store
            .write(move |tx| {
                put_request(tx, "_r1", &request)?;
                let first = matches!(answer_request(tx, "_r1", now)?, Answering::Answered(_));
                let second = matches!(answer_request(tx, "_r1", now)?, Answering::AlreadyAnswered(_));
                assert_eq!(answer_request(tx, "_never", now)?, Answering::Unknown);
                let fresh = mark_assertion_seen(tx, connection, "_a1", now + Duration::minutes(5))?;
                let replay = mark_assertion_seen(tx, connection, "_a1", now + Duration::minutes(5))?;
                let other_connection = mark_assertion_seen(tx, ConnectionId::generate(), "_a1", now)?;
                Ok::<_, StoreError>((first, second, fresh, replay, other_connection))
            })
            .await
            .unwrap();
        assert_eq!(outcome, (true, true, true, false, true));
    }

    #[tokio::test]
    async fn expired_one_time_state_is_purged_and_live_state_kept() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::now_utc();
        let connection = ConnectionId::generate();
        let (old, live) = (pending(now - Duration::seconds(1)), pending(now + Duration::minutes(5)));
        store
            .write(move |tx| {
                put_request(tx, "_old", &old)?;
                put_request(tx, "_live", &live)?;
                mark_assertion_seen(tx, connection, "_gone", now - Duration::seconds(1))?;
                mark_assertion_seen(tx, connection, "_kept", now + Duration::minutes(5))?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let purged = store.write(move |tx| purge_expired(tx, now, 100)).await.unwrap();
        assert_eq!(purged, 2);
        let left = store
            .read(move |tx| {
                Ok::<_, StoreError>((
                    request(tx, "_old")?.is_none(),
                    request(tx, "_live")?.is_some(),
                    assertion_seen(tx, connection, "_gone")?,
                    assertion_seen(tx, connection, "_kept")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(left, (true, true, false, true));
    }
}
