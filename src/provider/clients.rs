//! The app's OAuth clients: managed through the admin API under `/api/v1/oauth-clients`, and
//! authenticated at the token, introspection and revocation endpoints.
//!
//! A confidential client's secret is `pccs_` + 256 random bits, shown once (at creation and at
//! each rotation) and stored as a SHA-256 digest. Redirect URIs are compared byte for byte: no
//! wildcards, no prefixes, no normalisation.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering as AtomicOrdering},
    },
    time::{Duration, Instant},
};

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    middleware::from_extractor_with_state,
    routing::{get, post},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use super::{OAuthError, keys::MAX_TOKEN_TTL_SECS};
use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::ClientId,
    store::{
        StoreError,
        audit::Actor,
        journal::Subject,
        oauth_clients::{self, OAuthClientRecord, SigningAlgorithm},
    },
};

/// A client as the audit trail names who acted (one that authenticated, or, at the
/// authorization endpoint, was identified).
pub fn actor(client: &OAuthClientRecord) -> Actor {
    Actor { kind: "oauth_client".into(), id: client.id.to_string(), label: Some(client.name.clone()) }
}

const SECRET_PREFIX: &str = "pccs_";
const SHOWN_CHARS: usize = 12;
const MAX_URIS: usize = 20;
/// The scopes Portcullis understands.
pub const KNOWN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
const DEFAULT_ACCESS_TTL: u32 = 600;
const DEFAULT_ID_TTL: u32 = 600;
const DEFAULT_REFRESH_TTL: u32 = 30 * 24 * 3600;
const MAX_REFRESH_TTL: u32 = 365 * 24 * 3600;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/oauth-clients", get(list).post(create))
        .route("/oauth-clients/{id}", get(show).patch(update).delete(remove))
        .route("/oauth-clients/{id}/secret", post(rotate_secret))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[derive(Debug, Serialize)]
struct ClientView {
    client_id: ClientId,
    name: String,
    /// `confidential` (authenticates with its secret) or `public` (PKCE only).
    client_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_prefix: Option<String>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    allowed_scopes: Vec<String>,
    access_token_ttl_secs: u32,
    id_token_ttl_secs: u32,
    refresh_token_ttl_secs: u32,
    id_token_signing_alg: SigningAlgorithm,
    backchannel_logout_uri: Option<String>,
    initiate_login_uri: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<OAuthClientRecord> for ClientView {
    fn from(c: OAuthClientRecord) -> Self {
        Self {
            client_id: c.id,
            client_type: if c.is_public() { "public" } else { "confidential" },
            name: c.name,
            secret_prefix: c.secret_prefix,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            allowed_scopes: c.allowed_scopes,
            access_token_ttl_secs: c.access_token_ttl_secs,
            id_token_ttl_secs: c.id_token_ttl_secs,
            refresh_token_ttl_secs: c.refresh_token_ttl_secs,
            id_token_signing_alg: c.id_token_signing_alg,
            backchannel_logout_uri: c.backchannel_logout_uri,
            initiate_login_uri: c.initiate_login_uri,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct ClientWithSecret {
    #[serde(flatten)]
    client: ClientView,
    /// Shown in this response only.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

/// The settings of a client, as created; on PATCH every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSettings {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    allowed_scopes: Option<Vec<String>>,
    access_token_ttl_secs: Option<u32>,
    id_token_ttl_secs: Option<u32>,
    refresh_token_ttl_secs: Option<u32>,
    id_token_signing_alg: Option<SigningAlgorithm>,
    #[serde(default, deserialize_with = "crate::http::present")]
    backchannel_logout_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::present")]
    initiate_login_uri: Option<Option<String>>,
    /// At creation only: a public client has no secret.
    #[serde(default)]
    public: Option<bool>,
}

impl ClientSettings {
    /// Applies the settings given to `client`, checking each.
    fn apply(self, client: &mut OAuthClientRecord) -> Result<(), ApiError> {
        if let Some(name) = self.name {
            client.name = crate::text::label(&name, 100).map_err(|m| ApiError::invalid("name", m))?;
        }
        let public = client.is_public();
        if let Some(uris) = self.redirect_uris {
            client.redirect_uris = check_uris("redirect_uris", uris, public)?;
        }
        if let Some(uris) = self.post_logout_redirect_uris {
            client.post_logout_redirect_uris = check_uris("post_logout_redirect_uris", uris, public)?;
        }
        if let Some(scopes) = self.allowed_scopes {
            client.allowed_scopes = check_scopes(scopes)?;
        }
        let ttl = |field: &'static str, value: Option<u32>, current: u32, min: u32, max: u32| {
            let value = value.unwrap_or(current);
            if !(min..=max).contains(&value) {
                return Err(ApiError::invalid(field, format!("must be {min} to {max} seconds")));
            }
            Ok(value)
        };
        client.access_token_ttl_secs = ttl(
            "access_token_ttl_secs",
            self.access_token_ttl_secs,
            client.access_token_ttl_secs,
            60,
            MAX_TOKEN_TTL_SECS,
        )?;
        client.id_token_ttl_secs = ttl(
            "id_token_ttl_secs",
            self.id_token_ttl_secs,
            client.id_token_ttl_secs,
            60,
            MAX_TOKEN_TTL_SECS,
        )?;
        client.refresh_token_ttl_secs = ttl(
            "refresh_token_ttl_secs",
            self.refresh_token_ttl_secs,
            client.refresh_token_ttl_secs,
            0,
            MAX_REFRESH_TTL,
        )?;
        if let Some(alg) = self.id_token_signing_alg {
            client.id_token_signing_alg = alg;
        }
        if let Some(uri) = self.backchannel_logout_uri {
            client.backchannel_logout_uri =
                uri.map(|u| check_uri("backchannel_logout_uri", &u, false)).transpose()?;
        }
        if let Some(uri) = self.initiate_login_uri {
            client.initiate_login_uri =
                uri.map(|u| check_uri("initiate_login_uri", &u, false)).transpose()?;
        }
        if client.redirect_uris.is_empty() {
            return Err(ApiError::invalid("redirect_uris", "at least one redirect URI is needed"));
        }
        Ok(())
    }
}

/// HTTPS, or HTTP to this machine (development); public clients may also use a private-use
/// scheme (`com.example.app:/callback`, RFC 8252 §7.1). Never a fragment.
fn check_uri(field: &'static str, value: &str, allow_private_scheme: bool) -> Result<String, ApiError> {
    let invalid = |message: &str| ApiError::invalid(field, format!("`{value}` {message}"));
    if value.len() > 2000 {
        return Err(invalid("is too long"));
    }
    let url = Url::parse(value).map_err(|_| invalid("is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment"));
    }
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(invalid("must use https (http is allowed only to localhost)")),
        scheme if allow_private_scheme && scheme.contains('.') => {}
        _ => return Err(invalid("must use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    Ok(value.to_owned())
}

fn check_uris(field: &'static str, uris: Vec<String>, public: bool) -> Result<Vec<String>, ApiError> {
    if uris.len() > MAX_URIS {
        return Err(ApiError::invalid(field, format!("at most {MAX_URIS}")));
    }
    let mut checked = Vec::with_capacity(uris.len());
    for uri in uris {
        let uri = check_uri(field, &uri, public)?;
        if !checked.contains(&uri) {
            checked.push(uri);
        }
    }
    Ok(checked)
}

fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut checked: Vec<String> = vec!["openid".into()];
    for scope in scopes {
        if !KNOWN_SCOPES.contains(&scope.as_str()) {
            return Err(ApiError::invalid(
                "allowed_scopes",
                format!("unknown scope `{scope}`; known: {}", KNOWN_SCOPES.join(", ")),
            ));
        }
        if !checked.contains(&scope) {
            checked.push(scope);
        }
    }
    Ok(checked)
}

fn client_subject(client: &OAuthClientRecord) -> Subject {
    Subject { kind: "oauth_client".into(), id: client.id.to_string(), label: Some(client.name.clone()) }
}

/// What the audit trail keeps of a client's settings (never its secret).
fn audited(client: &OAuthClientRecord) -> serde_json::Value {
    json!({
        "redirect_uris": client.redirect_uris, "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "allowed_scopes": client.allowed_scopes, "access_token_ttl_secs": client.access_token_ttl_secs,
        "id_token_ttl_secs": client.id_token_ttl_secs, "refresh_token_ttl_secs": client.refresh_token_ttl_secs,
        "id_token_signing_alg": client.id_token_signing_alg, "backchannel_logout_uri": client.backchannel_logout_uri,
        "initiate_login_uri": client.initiate_login_uri, "public": client.is_public(),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no OAuth client `{id}`"))
}

async fn list(State(state): State<AppState>) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let clients = state.store.read(oauth_clients::all).await?;
    let items: Vec<ClientView> = clients.into_iter().map(Into::into).collect();
    Ok(ApiJson(json!({ "items": items })))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ApiJson<ClientView>, ApiError> {
    let client_id: ClientId = id.parse().map_err(|_| not_found(&id))?;
    let client = state.store.read(move |tx| oauth_clients::get(tx, client_id)).await?;
    Ok(ApiJson(client.ok_or_else(|| not_found(&id))?.into()))
}

async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    ApiJson(settings): ApiJson<ClientSettings>,
) -> Result<(StatusCode, ApiJson<ClientWithSecret>), ApiError> {
    let now = state.clock.now();
    let public = settings.public.unwrap_or(false);
    let secret = (!public).then(new_secret);
    if settings.name.is_none() {
        return Err(ApiError::invalid("name", "is required"));
    }
    let mut client = OAuthClientRecord {
        id: ClientId::generate(),
        name: String::new(),
        secret_digest: secret.as_deref().map(secret_digest),
        secret_prefix: secret.as_ref().map(|s| s.chars().take(SHOWN_CHARS).collect()),
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        allowed_scopes: KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        access_token_ttl_secs: DEFAULT_ACCESS_TTL,
        id_token_ttl_secs: DEFAULT_ID_TTL,
        refresh_token_ttl_secs: DEFAULT_REFRESH_TTL,
        id_token_signing_alg: SigningAlgorithm::default(),
        backchannel_logout_uri: None,
        initiate_login_uri: None,
        created_at: now,
        updated_at: now,
    };
    settings.apply(&mut client)?;
    let change = AdminChange::new(auth, &request, now);
    let stored = client.clone();
    state
        .store
        .write(move |tx| {
            oauth_clients::put(tx, &stored)?;
            change.audit(tx, None, "oauth_client.create", client_subject(&stored), audited(&stored))
        })
        .await?;
    tracing::info!(client_id = %client.id, "OAuth client created");
    Ok((StatusCode::CREATED, ApiJson(ClientWithSecret { client: client.into(), client_secret: secret })))
}

async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
    ApiJson(settings): ApiJson<ClientSettings>,
) -> Result<ApiJson<ClientView>, ApiError> {
    let client_id: ClientId = id.parse().map_err(|_| not_found(&id))?;
    if settings.public.is_some() {
        return Err(ApiError::invalid("public", "a client's type is chosen when it is created"));
    }
    let now = state.clock.now();
    let current =
        state.store.read(move |tx| oauth_clients::get(tx, client_id)).await?.ok_or_else(|| not_found(&id))?;
    let mut client = current.clone();
    settings.apply(&mut client)?;
    client.updated_at = now;
    let change = AdminChange::new(auth, &request, now);
    let stored = client.clone();
    state
        .store
        .write(move |tx| {
            oauth_clients::put(tx, &stored)?;
            let detail = json!({ "before": audited(&current), "after": audited(&stored) });
            change.audit(tx, None, "oauth_client.update", client_subject(&stored), detail)
        })
        .await?;
    state.provider.clients.forget_all();
    Ok(ApiJson(client.into()))
}

async fn remove(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let client_id: ClientId = id.parse().map_err(|_| not_found(&id))?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    let removed = state
        .store
        .write(move |tx| {
            let Some(client) = oauth_clients::get(tx, client_id)? else {
                return Ok::<_, StoreError>(false);
            };
            oauth_clients::delete(tx, client_id)?;
            change.audit(tx, None, "oauth_client.delete", client_subject(&client), json!({}))?;
            Ok(true)
        })
        .await?;
    state.provider.clients.forget_all();
    if removed { Ok(StatusCode::NO_CONTENT) } else { Err(not_found(&id)) }
}

/// Replaces a confidential client's secret; the old one stops working at once.
async fn rotate_secret(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<ApiJson<ClientWithSecret>, ApiError> {
    let client_id: ClientId = id.parse().map_err(|_| not_found(&id))?;
    let now = state.clock.now();
    let secret = new_secret();
    let (digest, prefix) = (secret_digest(&secret), secret.chars().take(SHOWN_CHARS).collect::<String>());
    let change = AdminChange::new(auth, &request, now);
    let rotated = state
        .store
        .write(move |tx| {
            let Some(mut client) = oauth_clients::get(tx, client_id)? else {
                return Ok::<_, ApiError>(None);
            };
            if client.is_public() {
                return Err(ApiError::invalid("client_id", "a public client has no secret"));
            }
            client.secret_digest = Some(digest);
            client.secret_prefix = Some(prefix.clone());
            client.updated_at = now;
            oauth_clients::put(tx, &client)?;
            change.audit(tx, None, "oauth_client.rotate_secret", client_subject(&client), json!({}))?;
            Ok(Some(client))
        })
        .await?;
    state.provider.clients.forget_all();
    let client = rotated.ok_or_else(|| not_found(&id))?;
    Ok(ApiJson(ClientWithSecret { client: client.into(), client_secret: Some(secret) }))
}

/// The credentials a request to the token, introspection or revocation endpoint presented.
#[derive(Debug, Default, Deserialize)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// Authenticates the caller: HTTP Basic (`client_secret_basic`, with the RFC 6749 §2.3.1
/// form-encoding) or the form fields (`client_secret_post`), never both; a public client names
/// itself with `client_id` alone, if `allow_public`. A client verified in the last second is
/// taken from memory (introspection asks on every request of the app); any change to any client
/// forgets them all.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &ClientCredentials,
    allow_public: bool,
) -> Result<Arc<OAuthClientRecord>, OAuthError> {
    let (id, secret) = presented(headers, form)?;
    let key: [u8; 32] = {
        let mut hasher = Sha256::new();
        for part in [
            id.as_bytes(),
            b"\0",
            secret.as_deref().unwrap_or_default().as_bytes(),
            &[u8::from(secret.is_some())],
        ] {
            hasher.update(part);
        }
        hasher.finalize().into()
    };
    let cache = &state.provider.clients;
    if let Some(client) = cache.recall(&key) {
        return accept(client, secret.as_deref(), allow_public);
    }
    let generation = cache.generation();
    let client_id: ClientId = id.parse().map_err(|_| OAuthError::invalid_client())?;
    let client = state
        .store
        .read(|tx| oauth_clients::get(tx, client_id))
        .await?
        .ok_or_else(OAuthError::invalid_client)?;
    let client = accept(Arc::new(client), secret.as_deref(), allow_public)?;
    cache.remember(key, Arc::clone(&client), generation);
    Ok(client)
}

const MAX_CLAIMED_ID: usize = 200;

/// The client id a request claimed (HTTP Basic's, else the form's), for the audit record of a
/// refusal: never the secret, and at most `MAX_CLAIMED_ID` characters of what was sent.
pub fn claimed_id(headers: &HeaderMap, form: &ClientCredentials) -> Option<String> {
    let basic = basic_credentials(headers).ok().flatten().map(|(id, _)| id);
    basic.or_else(|| form.client_id.clone()).map(|id| id.chars().take(MAX_CLAIMED_ID).collect())
}

/// The client id and secret the request presents.
fn presented(headers: &HeaderMap, form: &ClientCredentials) -> Result<(String, Option<String>), OAuthError> {
    match (basic_credentials(headers)?, &form.client_secret) {
        (Some(_), Some(_)) => {
            Err(OAuthError::invalid_request("use one client authentication method, not two"))
        }
        (Some((id, secret)), None) => {
            if form.client_id.as_ref().is_some_and(|f| *f != id) {
                return Err(OAuthError::invalid_client());
            }
            Ok((id, Some(secret)))
        }
        (None, secret) => {
            Ok((form.client_id.clone().ok_or_else(OAuthError::invalid_client)?, secret.clone()))
        }
    }
}

fn accept(
    client: Arc<OAuthClientRecord>,
    secret: Option<&str>,
    allow_public: bool,
) -> Result<Arc<OAuthClientRecord>, OAuthError> {
    match (&client.secret_digest, secret) {
        (Some(expected), Some(secret)) => {
            let matches: bool =
                subtle::ConstantTimeEq::ct_eq(&secret_digest(secret)[..], &expected[..]).into();
            if matches { Ok(client) } else { Err(OAuthError::invalid_client()) }
        }
        (None, None) if allow_public => Ok(client),
        _ => Err(OAuthError::invalid_client()),
    }
}

/// A verified client and when it was verified.
type Remembered = (Arc<OAuthClientRecord>, Instant);

/// Clients verified in the last second, by a digest of the credentials they presented.
#[derive(Default)]
pub struct ClientCache {
    entries: Mutex<HashMap<[u8; 32], Remembered>>,
    /// Bumped by every change to a client; a lookup that overlapped one is not remembered.
    changes: AtomicU64,
}

const REMEMBERED_FOR: Duration = Duration::from_secs(1);
const REMEMBERED_AT_MOST: usize = 1024;

impl ClientCache {
    fn recall(&self, key: &[u8; 32]) -> Option<Arc<OAuthClientRecord>> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(_, at)| at.elapsed() < REMEMBERED_FOR).map(|(client, _)| Arc::clone(client))
    }

    fn generation(&self) -> u64 {
        self.changes.load(AtomicOrdering::SeqCst)
    }

    fn remember(&self, key: [u8; 32], client: Arc<OAuthClientRecord>, generation: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if self.generation() != generation {
                return;
            }
            if entries.len() >= REMEMBERED_AT_MOST {
                entries.clear();
            }
            entries.insert(key, (client, Instant::now()));
        }
    }

    /// After any change to a client.
    pub fn forget_all(&self) {
        self.changes.fetch_add(1, AtomicOrdering::SeqCst);
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(OAuthError::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(OAuthError::invalid_client)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// A confidential client whose secret is `pccs_test`.
    pub(crate) fn client_record(
        backchannel_logout_uri: Option<&str>,
        now: OffsetDateTime,
    ) -> OAuthClientRecord {
        OAuthClientRecord {
            id: ClientId::generate(),
            name: "app".into(),
            secret_digest: Some(secret_digest("pccs_test")),
            secret_prefix: Some("pccs_test".into()),
            redirect_uris: vec!["https://app.test/callback".into()],
            post_logout_redirect_uris: Vec::new(),
            allowed_scopes: KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            access_token_ttl_secs: DEFAULT_ACCESS_TTL,
            id_token_ttl_secs: DEFAULT_ID_TTL,
            refresh_token_ttl_secs: DEFAULT_REFRESH_TTL,
            id_token_signing_alg: SigningAlgorithm::RS256,
            backchannel_logout_uri: backchannel_logout_uri.map(str::to_owned),
            initiate_login_uri: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragments() {
        assert!(check_uri("r", "https://app.test/cb?x=1", false).is_ok());
        assert!(check_uri("r", "http://127.0.0.1:8000/cb", false).is_ok());
        assert!(check_uri("r", "http://localhost/cb", false).is_ok());
        assert!(check_uri("r", "http://app.test/cb", false).is_err());
        assert!(check_uri("r", "https://app.test/cb#x", false).is_err());
        assert!(check_uri("r", "https://user:pw@app.test/cb", false).is_err());
        assert!(check_uri("r", "/relative", false).is_err());
        assert!(check_uri("r", "javascript:alert(1)", false).is_err());
        assert!(check_uri("r", "com.example.app:/cb", false).is_err());
        assert!(check_uri("r", "com.example.app:/cb", true).is_ok());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%3Aid:s%2Bcret");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        assert_eq!(basic_credentials(&headers).unwrap(), Some(("my:id".into(), "s+cret".into())));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_credentials(&headers).is_err());
    }
}
