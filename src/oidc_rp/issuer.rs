//! What an issuer publishes: its discovery document and its signing keys, fetched when first
//! needed and kept in memory. The document is refreshed daily and the keys hourly; a token
//! signed with a key we do not know makes the keys be fetched again once (an IdP rotated its
//! key), at most once a second per issuer however many such tokens arrive, and never in a loop.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{
    http::outbound::{Outbound, OutboundError},
    store::oidc::Discovered,
};

const DOCUMENT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// However many tokens name an unknown key, the keys are fetched at most this often.
const KEYS_MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("`{0}` is not a valid issuer URL")]
    BadIssuer(String),
    #[error("the discovery document cannot be fetched: {0}")]
    Fetch(#[from] OutboundError),
    #[error("the discovery document is not valid: {0}")]
    Invalid(String),
    #[error("the discovery document names the issuer `{found}`, not `{expected}`")]
    IssuerMismatch { found: String, expected: String },
}

/// An issuer's documents as fetched.
pub struct Published {
    pub metadata: CoreProviderMetadata,
    pub discovered: Discovered,
    /// The keys for the openidconnect crate (ID tokens).
    pub keys: CoreJsonWebKeySet,
    /// The same keys for jsonwebtoken (logout tokens), each parsed on its own: a key of a type
    /// jsonwebtoken does not know is left out, not the whole set.
    pub jwks: Vec<jsonwebtoken::jwk::Jwk>,
    fetched: Instant,
    keys_fetched: Instant,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published").field("discovered", &self.discovered).finish_non_exhaustive()
    }
}

pub struct Issuers {
    outbound: Outbound,
    cache: Mutex<HashMap<String, Arc<Published>>>,
    /// One fetch at a time: concurrent logins after a rotation wait for one key refresh.
    fetching: tokio::sync::Mutex<()>,
}

impl Issuers {
    pub fn new(outbound: Outbound) -> Self {
        Self { outbound, cache: Mutex::new(HashMap::new()), fetching: tokio::sync::Mutex::new(()) }
    }

    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    fn cached(&self, issuer: &str) -> Option<Arc<Published>> {
        self.cache.lock().ok()?.get(issuer).cloned()
    }

    fn remember(&self, issuer: &str, published: Arc<Published>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(issuer.to_owned(), published);
        }
    }

    /// The issuer's documents, fetched if missing or old. If the issuer cannot be reached for a
    /// refresh, the documents it published last are used (and the failure logged): an IdP's
    /// brief outage need not stop logins whose tokens it can still issue.
    pub async fn get(&self, issuer: &str, now: OffsetDateTime) -> Result<Arc<Published>, IssuerError> {
        let cached = self.cached(issuer);
        if let Some(found) = &cached {
            if found.fetched.elapsed() < DOCUMENT_MAX_AGE && found.keys_fetched.elapsed() < KEYS_MAX_AGE {
                return Ok(Arc::clone(found));
            }
        }
        match (self.discover(issuer, now).await, cached) {
            (Ok(fresh), _) => Ok(fresh),
            (Err(err), Some(stale)) => {
                tracing::warn!(issuer, %err, "cannot refresh an issuer's documents; using the last ones fetched");
                Ok(stale)
            }
            (Err(err), None) => Err(err),
        }
    }

    /// Fetches the discovery document and the keys now.
    pub async fn discover(&self, issuer: &str, now: OffsetDateTime) -> Result<Arc<Published>, IssuerError> {
        let _one_at_a_time = self.fetching.lock().await;
        let published = Arc::new(fetch(&self.outbound, issuer, now).await?);
        self.remember(issuer, Arc::clone(&published));
        Ok(published)
    }

    /// Fetches the keys again after a token named one `seen` did not have, unless that already
    /// happened (another login got there first) or happened less than a second ago.
    pub async fn refresh_keys(
        &self,
        issuer: &str,
        seen: &Arc<Published>,
    ) -> Result<Arc<Published>, IssuerError> {
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(current) = self.cached(issuer) {
            if current.keys_fetched > seen.keys_fetched || current.keys_fetched.elapsed() < KEYS_MIN_INTERVAL
            {
                return Ok(current);
            }
        }
        let (keys, jwks) = fetch_keys(&self.outbound, &seen.discovered.jwks_uri).await?;
        let published = Arc::new(Published {
            metadata: seen.metadata.clone(),
            discovered: seen.discovered.clone(),
            keys,
            jwks,
            fetched: seen.fetched,
            keys_fetched: Instant::now(),
        });
        tracing::info!(
            issuer,
            "fetched an issuer's signing keys again (a token named a key we did not have)"
        );
        self.remember(issuer, Arc::clone(&published));
        Ok(published)
    }
}

async fn fetch(outbound: &Outbound, issuer: &str, now: OffsetDateTime) -> Result<Published, IssuerError> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let document = outbound.get_json(&url).await?;
    let metadata: CoreProviderMetadata =
        serde_json::from_value(document.clone()).map_err(|err| IssuerError::Invalid(err.to_string()))?;
    // OpenID Connect Discovery §4.3: the document must name exactly the issuer it was fetched for
    // (an IdP hosting several tenants must not answer for another).
    if metadata.issuer().as_str() != issuer {
        return Err(IssuerError::IssuerMismatch {
            found: metadata.issuer().to_string(),
            expected: issuer.to_owned(),
        });
    }
    let discovered = discovered(&metadata, &document, now)?;
    let (keys, jwks) = fetch_keys(outbound, &discovered.jwks_uri).await?;
    let at = Instant::now();
    Ok(Published { metadata, discovered, keys, jwks, fetched: at, keys_fetched: at })
}

fn discovered(
    metadata: &CoreProviderMetadata,
    document: &Value,
    now: OffsetDateTime,
) -> Result<Discovered, IssuerError> {
    let flag = |name: &str| document.get(name).and_then(Value::as_bool).unwrap_or(false);
    let text = |name: &str| document.get(name).and_then(Value::as_str).map(str::to_owned);
    let algorithms = metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter_map(|alg| serde_json::to_value(alg).ok()?.as_str().map(str::to_owned))
        .collect();
    let discovered = Discovered {
        authorization_endpoint: metadata.authorization_endpoint().to_string(),
        token_endpoint: metadata.token_endpoint().map(|u| u.to_string()),
        userinfo_endpoint: metadata.userinfo_endpoint().map(|u| u.to_string()),
        jwks_uri: metadata.jwks_uri().to_string(),
        end_session_endpoint: text("end_session_endpoint")
            .filter(|url| crate::http::outbound::check_url(url).is_ok()),
        id_token_signing_algs: algorithms,
        backchannel_logout_supported: flag("backchannel_logout_supported"),
        authorization_response_iss_parameter_supported: flag(
            "authorization_response_iss_parameter_supported",
        ),
        fetched_at: Some(now),
    };
    for url in [
        Some(&discovered.authorization_endpoint),
        discovered.token_endpoint.as_ref(),
        Some(&discovered.jwks_uri),
    ]
    .into_iter()
    .flatten()
    {
        crate::http::outbound::check_url(url).map_err(IssuerError::Invalid)?;
    }
    if discovered.token_endpoint.is_none() {
        return Err(IssuerError::Invalid("it names no token endpoint".into()));
    }
    Ok(discovered)
}

async fn fetch_keys(
    outbound: &Outbound,
    jwks_uri: &str,
) -> Result<(CoreJsonWebKeySet, Vec<jsonwebtoken::jwk::Jwk>), IssuerError> {
    let document = outbound.get_json(jwks_uri).await?;
    let keys: CoreJsonWebKeySet = serde_json::from_value(document.clone())
        .map_err(|err| IssuerError::Invalid(format!("keys: {err}")))?;
    let jwks = document
        .get("keys")
        .and_then(Value::as_array)
        .map(|all| all.iter().filter_map(|key| serde_json::from_value(key.clone()).ok()).collect())
        .unwrap_or_default();
    Ok((keys, jwks))
}

/// Checks an issuer URL as entered: absolute, HTTPS (or HTTP on this machine), no query or
/// fragment; returned as the IdP will state it (no trailing slash added or removed).
pub fn check_issuer(value: &str) -> Result<String, IssuerError> {
    let value = value.trim();
    let checked = crate::http::outbound::check_url(value).map_err(IssuerError::BadIssuer)?;
    let url = url::Url::parse(&checked).map_err(|_| IssuerError::BadIssuer(value.to_owned()))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(IssuerError::BadIssuer(format!("{value} (an issuer has no query or fragment)")));
    }
    Ok(checked)
}
