//! The SAML 2.0 service provider: one per tenant connection, each with its own entity ID, keys
//! and endpoints under `/sso/saml/{connection}/`:
//!
//! - `metadata`: the SP metadata the IdP admin uploads (the entity ID is this URL);
//! - `start?request=…`: sends the browser to the IdP with an AuthnRequest (HTTP-Redirect or
//!   HTTP-POST), for an authorization of the app waiting in the store;
//! - `acs`: the Assertion Consumer Service (HTTP-POST), where every check runs (`verify`,
//!   `checks`) and a valid assertion becomes a session and the app's code (`acs`);
//! - `slo`: Single Logout both ways, HTTP-Redirect and HTTP-POST (`logout`).
//!
//! Connections are managed in the admin API under `/api/v1/tenants/{tenant}/saml-connections`
//! (`connections`). Every refusal answers with a page naming the failed check and leaves an
//! audit record (`refusal`).

pub mod acs;
pub mod checks;
pub mod connections;
pub mod decrypt;
pub mod guard;
pub mod login;
pub mod logout;
pub mod mapping;
pub mod metadata;
pub mod metadata_source;
pub mod refusal;
pub mod sp_cert;
pub mod verify;
pub mod xml;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use openssl::pkey::{PKey, Private};
use samael::crypto::CertificateDer;
use time::OffsetDateTime;

use crate::{app::AppState, ids::ConnectionId, store::saml::SamlConnectionRecord};

/// The largest ACS post accepted. Real Responses are a few kilobytes; Entra ID's with many
/// group claims reach tens.
pub const MAX_POST_BYTES: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sso/saml/{connection}/metadata", get(connections::sp_metadata))
        .route("/sso/saml/{connection}/start", get(login::start))
        .route("/sso/saml/{connection}/acs", post(acs::consume).layer(DefaultBodyLimit::max(MAX_POST_BYTES)))
        .route("/sso/saml/{connection}/slo", get(logout::redirect_binding).post(logout::post_binding))
        .route("/assets/autopost.js", get(login::autopost_script))
}

pub fn admin_router(state: AppState) -> Router<AppState> {
    connections::router(state)
}

/// The service provider's addresses for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpUrls {
    /// The metadata URL doubles as the entity ID, so an IdP admin can always find the metadata.
    pub entity_id: String,
    pub acs: String,
    pub slo: String,
    pub start: String,
}

impl SpUrls {
    pub fn new(public_url: &str, connection: ConnectionId) -> Self {
        let base = format!("{}/sso/saml/{connection}", public_url.trim_end_matches('/'));
        Self {
            entity_id: format!("{base}/metadata"),
            acs: format!("{base}/acs"),
            slo: format!("{base}/slo"),
            start: format!("{base}/start"),
        }
    }
}

/// What verifying a connection's messages needs, parsed once: OpenSSL 3 takes about half a
/// millisecond to decode a PEM private key, as much as the rest of a login's checks.
pub struct CompiledTrust {
    updated_at: OffsetDateTime,
    pub certificates: Vec<CertificateDer>,
    /// The current encryption key first, then a rotation's next and previous ones.
    pub decryption_keys: Vec<PKey<Private>>,
}

/// The connections' parsed keys, recompiled when a connection changes (its `updated_at`).
#[derive(Default)]
pub struct SamlRuntime {
    compiled: Mutex<HashMap<ConnectionId, Arc<CompiledTrust>>>,
}

/// Bounds the cache; past it, it starts again (a few thousand connections fit easily).
const MAX_COMPILED: usize = 10_000;

impl SamlRuntime {
    pub fn trust(
        &self,
        connection: &SamlConnectionRecord,
    ) -> Result<Arc<CompiledTrust>, openssl::error::ErrorStack> {
        if let Some(found) = self.cached(connection) {
            return Ok(found);
        }
        let rotating = [&connection.sp_next, &connection.sp_previous];
        let pairs = std::iter::once(&connection.sp_encryption)
            .chain(rotating.into_iter().flatten().map(|keys| &keys.encryption));
        let compiled = Arc::new(CompiledTrust {
            updated_at: connection.updated_at,
            certificates: metadata::certificates_der(&connection.idp.signing_certificates),
            decryption_keys: pairs
                .map(|pair| PKey::private_key_from_pem(pair.private_key_pem.as_bytes()))
                .collect::<Result<_, _>>()?,
        });
        if let Ok(mut cache) = self.compiled.lock() {
            if cache.len() >= MAX_COMPILED {
                cache.clear();
            }
            cache.insert(connection.id, Arc::clone(&compiled));
        }
        Ok(compiled)
    }

    fn cached(&self, connection: &SamlConnectionRecord) -> Option<Arc<CompiledTrust>> {
        let cache = self.compiled.lock().ok()?;
        cache.get(&connection.id).filter(|c| c.updated_at == connection.updated_at).cloned()
    }
}
