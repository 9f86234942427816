//! Signing in with an upstream OpenID Provider: a tenant's own IdP (one connection each, under
//! `/sso/oidc/{connection}/`) or Google (instance-wide, under `/sso/google/`):
//!
//! - `start?request=…`: an Authorization Code request with PKCE (S256), `state` and `nonce`,
//!   remembered with the browser that made it (`login`);
//! - `callback`: the code exchanged, the ID token verified (`tokens`), userinfo read where the
//!   claims need it, the person mapped to a user (`claims`, `google`), and the app's
//!   authorization finished in one commit (`callback`);
//! - `backchannel-logout`: the IdP's logout tokens end the sessions it started (`backchannel`);
//! - `logged-out`: back from the IdP's end-session endpoint after the app signed a person out
//!   (`logout`).
//!
//! Connections are managed in the admin API under `/api/v1/tenants/{tenant}/oidc-connections`
//! (`connections`); discovery documents and keys are cached per issuer (`issuer`). Every refusal
//! answers with a page naming the failed check and leaves an audit record (`refusal`).

pub mod backchannel;
pub mod callback;
pub mod claims;
pub mod connections;
pub mod google;
pub mod issuer;
pub mod login;
pub mod logout;
pub mod refusal;
pub mod tokens;

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post},
};
use time::Duration;

use crate::{
    app::AppState,
    http::outbound::Outbound,
    ids::ConnectionId,
    secrets::SecretBox,
    store::{
        StoreError,
        oidc::{self, ClaimMapping, OidcConnectionRecord, TokenAuthMethod},
        tenants::{self, TenantStatus},
    },
};
use issuer::Issuers;
use refusal::Refusal;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sso/oidc/{connection}/start", get(login::start_connection))
        .route("/sso/oidc/{connection}/callback", get(callback::connection_callback))
        .route("/sso/oidc/{connection}/backchannel-logout", post(backchannel::receive))
        .route("/sso/oidc/{connection}/logged-out", get(logout::logged_out))
        .route("/sso/google/start", get(login::start_google))
        .route("/sso/google/callback", get(callback::google_callback))
}

pub fn admin_router(state: AppState) -> Router<AppState> {
    connections::router(state)
}

/// What OIDC sign-ins keep in memory: the issuers' documents and the key that opens client
/// secrets.
pub struct OidcRuntime {
    pub issuers: Issuers,
    pub secrets: Arc<SecretBox>,
}

impl OidcRuntime {
    pub fn new(outbound: Outbound, secrets: Arc<SecretBox>) -> Self {
        Self { issuers: Issuers::new(outbound), secrets }
    }
}

/// The purpose a connection's client secret is sealed for: its own record only.
pub fn secret_purpose(connection: &OidcConnectionRecord) -> String {
    format!("oidc-client-secret:{}", connection.id)
}

/// An OpenID Provider people sign in with, as a login needs it.
#[derive(Clone)]
pub struct Upstream {
    /// `oidc:<connection>` or `google`: how sessions, subject links and the audit trail name it.
    pub key: String,
    /// The tenant's connection; None for Google.
    pub connection: Option<OidcConnectionRecord>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub auth_method: TokenAuthMethod,
    pub scopes: Vec<String>,
    pub mapping: ClaimMapping,
    pub skew: Duration,
    pub callback_url: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("key", &self.key)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Google's clock skew allowance and scopes.
const GOOGLE_SKEW: Duration = Duration::seconds(120);
const GOOGLE_SCOPES: [&str; 3] = ["openid", "email", "profile"];

impl Upstream {
    /// A tenant's connection, with its secret opened; refused if it cannot sign anyone in.
    pub fn of_connection(state: &AppState, connection: OidcConnectionRecord) -> Result<Self, Refusal> {
        let sealed = connection
            .client_secret
            .as_deref()
            .ok_or_else(|| Refusal::NotConfigured("it has no client secret".into()))?;
        if connection.client_id.is_empty() {
            return Err(Refusal::NotConfigured("it has no client id".into()));
        }
        let client_secret = state.oidc.secrets.open(&secret_purpose(&connection), sealed).map_err(|err| {
            tracing::error!(%err, connection = %connection.id, "cannot open an OIDC client secret");
            Refusal::NotConfigured(
                "its client secret cannot be read with this instance's secret key; enter it again".into(),
            )
        })?;
        Ok(Self {
            key: connection.upstream(),
            issuer: connection.issuer.clone(),
            client_id: connection.client_id.clone(),
            client_secret,
            auth_method: connection.token_auth_method,
            scopes: connection.scopes.clone(),
            mapping: connection.claim_mapping.clone(),
            skew: Duration::seconds(i64::from(connection.clock_skew_secs)),
            callback_url: connection_urls(&state.public_url, &connection).callback,
            connection: Some(connection),
        })
    }

    /// Google, when the instance's settings name its client.
    pub fn google(state: &AppState) -> Option<Self> {
        let (client_id, secret) = state.config.google_client()?;
        Some(Self {
            key: "google".into(),
            connection: None,
            issuer: state.config.google_issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: secret.expose().to_owned(),
            auth_method: TokenAuthMethod::ClientSecretBasic,
            scopes: GOOGLE_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            mapping: ClaimMapping::default(),
            skew: GOOGLE_SKEW,
            callback_url: format!("{}/sso/google/callback", state.public_url.trim_end_matches('/')),
        })
    }
}

/// The connection `id`, if it can sign anybody in now: it exists, belongs to an active tenant,
/// and is enabled (a test, `for_test`, may run before it is).
pub async fn usable_connection(
    state: &AppState,
    id: ConnectionId,
    for_test: bool,
) -> Result<OidcConnectionRecord, Refusal> {
    let found = state
        .store
        .read(move |tx| {
            let Some(connection) = oidc::connection(tx, id)? else { return Ok(None) };
            let active =
                tenants::get(tx, connection.tenant)?.is_some_and(|t| t.status == TenantStatus::Active);
            Ok::<_, StoreError>(Some((connection, active)))
        })
        .await
        .map_err(refusal::unavailable)?;
    match found {
        None => Err(Refusal::UnknownConnection),
        Some((_, false)) => Err(Refusal::TenantSuspended),
        Some((connection, _)) if !connection.enabled && !for_test => Err(Refusal::ConnectionDisabled),
        Some((connection, _)) => Ok(connection),
    }
}

/// A connection's addresses, for the IdP admin to paste.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionUrls {
    /// The redirect URI to register at the IdP.
    pub callback: String,
    /// The back-channel logout URI to register at the IdP.
    pub backchannel_logout: String,
    /// Where the IdP sends the browser back after a logout Portcullis started there.
    pub post_logout_redirect: String,
    /// Where a login through this connection starts (the IdP's "initiate login URI").
    pub start: String,
}

pub fn connection_urls(public_url: &str, connection: &OidcConnectionRecord) -> ConnectionUrls {
    let base = format!("{}/sso/oidc/{}", public_url.trim_end_matches('/'), connection.id);
    ConnectionUrls {
        callback: format!("{base}/callback"),
        backchannel_logout: format!("{base}/backchannel-logout"),
        post_logout_redirect: format!("{base}/logged-out"),
        start: format!("{base}/start"),
    }
}
