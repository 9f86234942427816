//! The app's OAuth clients: `oauth_clients` (client id → record). A client's secret is stored as
//! a SHA-256 digest only: it is a 256-bit random value Portcullis generated, so a fast hash
//! suffices (a slow password hash is for secrets people choose).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::ClientId;

const OAUTH_CLIENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("oauth_clients");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(OAUTH_CLIENTS)?;
    Ok(())
}

/// The JOSE algorithm of a client's ID tokens (RS256 is OpenID Connect's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigningAlgorithm {
    #[default]
    RS256,
    ES256,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthClientRecord {
    pub id: ClientId,
    pub name: String,
    /// None for a public client (a single-page or native app), which proves itself with PKCE alone.
    pub secret_digest: Option<[u8; 32]>,
    /// The first characters of the secret, to recognise it.
    pub secret_prefix: Option<String>,
    /// Compared byte for byte with the `redirect_uri` of a request.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes the client may ask for (`openid` always among them).
    pub allowed_scopes: Vec<String>,
    pub access_token_ttl_secs: u32,
    pub id_token_ttl_secs: u32,
    /// How long a refresh token stays usable if not used; 0: the client gets no refresh tokens.
    pub refresh_token_ttl_secs: u32,
    pub id_token_signing_alg: SigningAlgorithm,
    /// Where OpenID Connect Back-Channel Logout tokens are POSTed.
    pub backchannel_logout_uri: Option<String>,
    /// OpenID Connect Core §4: where a login started at Portcullis (a tenant's vanity URL) is
    /// sent to begin at the app.
    #[serde(default)]
    pub initiate_login_uri: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for OAuthClientRecord {
    const KIND: &'static str = "OAuth client";
}

impl OAuthClientRecord {
    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none()
    }

    /// The longest lifetime of a token the client receives that a signing key must outlive.
    pub fn longest_signed_token_ttl_secs(&self) -> u32 {
        self.access_token_ttl_secs.max(self.id_token_ttl_secs)
    }
}

pub fn get(src: &impl Source, id: ClientId) -> Result<Option<OAuthClientRecord>, StoreError> {
    codec::get(src, OAUTH_CLIENTS, id.key())
}

/// Every client, oldest first (an instance has a handful).
pub fn all(src: &impl Source) -> Result<Vec<OAuthClientRecord>, StoreError> {
    let table = src.table(OAUTH_CLIENTS)?;
    let range = table.range(0..)?;
    range.map(|entry| codec::decode(entry?.1.value())).collect()
}

pub fn put(tx: &WriteTx<'_>, client: &OAuthClientRecord) -> Result<(), StoreError> {
    tx.table_mut(OAUTH_CLIENTS)?.insert(client.id.key(), codec::encode(client)?.as_slice())?;
    Ok(())
}

pub fn delete(tx: &WriteTx<'_>, id: ClientId) -> Result<bool, StoreError> {
    Ok(tx.table_mut(OAUTH_CLIENTS)?.remove(id.key())?.is_some())
}
