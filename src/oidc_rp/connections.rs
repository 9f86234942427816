//! Tenants' OpenID Connect connections in the admin API
//! (`/api/v1/tenants/{tenant}/oidc-connections`), and connection tests.
//!
//! A connection is configured by its issuer (the discovery document is fetched when the issuer
//! is set, so a typo is caught at once), client id and secret. The secret is sealed at rest
//! (`crate::secrets`) and never shown again: views say only whether one is set. A connection can
//! be saved incomplete, as a setup wizard goes, but not enabled until it can sign people in.

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::StatusCode,
    middleware::from_extractor_with_state,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{ConnectionUrls, connection_urls, issuer, secret_purpose};
use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::{ConnectionId, TenantId},
    store::{
        StoreError,
        journal::Subject,
        oidc::{self, ClaimMapping, Discovered, OidcConnectionRecord, PendingLogin, TokenAuthMethod},
        tenants::TenantRecord,
    },
    tenants::resolve,
};

const DEFAULT_SKEW_SECS: u32 = 120;
const MAX_SKEW_SECS: u32 = 600;
const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
const MAX_SCOPES: usize = 20;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/oidc-connections", get(list).post(create))
        .route("/tenants/{tenant}/oidc-connections/{id}", get(show).patch(update).delete(remove))
        .route("/tenants/{tenant}/oidc-connections/{id}/discovery", post(refresh_discovery))
        .route("/tenants/{tenant}/oidc-connections/{id}/tests", post(start_test))
        .route("/tenants/{tenant}/oidc-connections/{id}/tests/{test}", get(show_test))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

// ---- views ----

#[derive(Debug, Serialize)]
struct ConnectionView {
    id: ConnectionId,
    tenant: TenantId,
    name: String,
    enabled: bool,
    /// What is missing before it can be enabled; empty when complete.
    missing: Vec<&'static str>,
    issuer: String,
    client_id: String,
    /// The secret is never shown again once entered.
    client_secret_set: bool,
    token_auth_method: TokenAuthMethod,
    scopes: Vec<String>,
    claim_mapping: ClaimMapping,
    jit_provisioning: bool,
    clock_skew_secs: u32,
    sign_out_at_idp: bool,
    discovered: Option<DiscoveredView>,
    /// What the IdP admin registers: the redirect URI, the back-channel logout URI, the
    /// post-logout redirect URI, and the address that starts a login (the "initiate login URI").
    urls: ConnectionUrls,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// What discovery found, as the API shows it: times in RFC 3339 like every other time here (the
/// stored record keeps the time crate's own encoding).
#[derive(Debug, Serialize)]
struct DiscoveredView {
    authorization_endpoint: String,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    end_session_endpoint: Option<String>,
    id_token_signing_algs: Vec<String>,
    backchannel_logout_supported: bool,
    authorization_response_iss_parameter_supported: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    fetched_at: Option<OffsetDateTime>,
}

impl From<Discovered> for DiscoveredView {
    fn from(d: Discovered) -> Self {
        Self {
            authorization_endpoint: d.authorization_endpoint,
            token_endpoint: d.token_endpoint,
            userinfo_endpoint: d.userinfo_endpoint,
            jwks_uri: d.jwks_uri,
            end_session_endpoint: d.end_session_endpoint,
            id_token_signing_algs: d.id_token_signing_algs,
            backchannel_logout_supported: d.backchannel_logout_supported,
            authorization_response_iss_parameter_supported: d.authorization_response_iss_parameter_supported,
            fetched_at: d.fetched_at,
        }
    }
}

fn view(connection: &OidcConnectionRecord, public_url: &str) -> ConnectionView {
    ConnectionView {
        id: connection.id,
        tenant: connection.tenant,
        name: connection.name.clone(),
        enabled: connection.enabled,
        missing: missing(connection),
        issuer: connection.issuer.clone(),
        client_id: connection.client_id.clone(),
        client_secret_set: connection.client_secret.is_some(),
        token_auth_method: connection.token_auth_method,
        scopes: connection.scopes.clone(),
        claim_mapping: connection.claim_mapping.clone(),
        jit_provisioning: connection.jit_provisioning,
        clock_skew_secs: connection.clock_skew_secs,
        sign_out_at_idp: connection.sign_out_at_idp,
        discovered: connection.discovered.clone().map(DiscoveredView::from),
        urls: connection_urls(public_url, connection),
        created_at: connection.created_at,
        updated_at: connection.updated_at,
    }
}

fn missing(connection: &OidcConnectionRecord) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if connection.issuer.is_empty() || connection.discovered.is_none() {
        missing.push("issuer");
    }
    if connection.client_id.is_empty() {
        missing.push("client_id");
    }
    if connection.client_secret.is_none() {
        missing.push("client_secret");
    }
    missing
}

/// What the audit trail keeps of a connection: its settings, never the secret.
fn audited(connection: &OidcConnectionRecord) -> serde_json::Value {
    json!({
        "name": connection.name, "enabled": connection.enabled, "issuer": connection.issuer,
        "client_id": connection.client_id, "client_secret_set": connection.client_secret.is_some(),
        "token_auth_method": connection.token_auth_method, "scopes": connection.scopes,
        "claim_mapping": connection.claim_mapping, "jit_provisioning": connection.jit_provisioning,
        "clock_skew_secs": connection.clock_skew_secs, "sign_out_at_idp": connection.sign_out_at_idp,
    })
}

fn subject(connection: &OidcConnectionRecord) -> Subject {
    Subject {
        kind: "oidc_connection".into(),
        id: connection.id.to_string(),
        label: Some(connection.name.clone()),
    }
}

// ---- settings ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    name: Option<String>,
    enabled: Option<bool>,
    /// The issuer identifier; its discovery document is fetched at once.
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token_auth_method: Option<TokenAuthMethod>,
    scopes: Option<Vec<String>>,
    claim_mapping: Option<ClaimMapping>,
    jit_provisioning: Option<bool>,
    clock_skew_secs: Option<u32>,
    sign_out_at_idp: Option<bool>,
}

impl Settings {
    /// Fetches the discovery document of a new issuer; the rest is `apply`'s.
    async fn apply_issuer(
        &mut self,
        state: &AppState,
        connection: &mut OidcConnectionRecord,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let Some(issuer) = self.issuer.take() else { return Ok(()) };
        let issuer =
            issuer::check_issuer(&issuer).map_err(|err| ApiError::invalid("issuer", err.to_string()))?;
        let published = state
            .oidc
            .issuers
            .discover(&issuer, now)
            .await
            .map_err(|err| ApiError::invalid("issuer", err.to_string()))?;
        connection.issuer = issuer;
        connection.discovered = Some(published.discovered.clone());
        Ok(())
    }

    /// Applies the settings given to `connection`, checking each.
    fn apply(self, state: &AppState, connection: &mut OidcConnectionRecord) -> Result<(), ApiError> {
        if let Some(name) = self.name {
            connection.name = crate::text::label(&name, 100).map_err(|m| ApiError::invalid("name", m))?;
        }
        if let Some(client_id) = self.client_id {
            let client_id = client_id.trim();
            if client_id.is_empty() || client_id.len() > 255 || client_id.chars().any(char::is_control) {
                return Err(ApiError::invalid("client_id", "must be 1 to 255 characters"));
            }
            connection.client_id = client_id.to_owned();
        }
        if let Some(secret) = self.client_secret {
            if secret.is_empty() || secret.len() > 1024 {
                return Err(ApiError::invalid("client_secret", "must be 1 to 1024 characters"));
            }
            let sealed = state
                .oidc
                .secrets
                .seal(&secret_purpose(connection), &secret)
                .map_err(|err| ApiError::Internal(err.to_string()))?;
            connection.client_secret = Some(sealed);
        }
        if let Some(scopes) = self.scopes {
            connection.scopes = check_scopes(scopes)?;
        }
        if let Some(mapping) = self.claim_mapping {
            connection.claim_mapping = check_mapping(mapping)?;
        }
        if let Some(skew) = self.clock_skew_secs {
            if skew > MAX_SKEW_SECS {
                return Err(ApiError::invalid(
                    "clock_skew_secs",
                    format!("must be 0 to {MAX_SKEW_SECS} seconds"),
                ));
            }
            connection.clock_skew_secs = skew;
        }
        connection.token_auth_method = self.token_auth_method.unwrap_or(connection.token_auth_method);
        connection.jit_provisioning = self.jit_provisioning.unwrap_or(connection.jit_provisioning);
        connection.sign_out_at_idp = self.sign_out_at_idp.unwrap_or(connection.sign_out_at_idp);
        connection.enabled = self.enabled.unwrap_or(connection.enabled);
        let missing = missing(connection);
        if connection.enabled && !missing.is_empty() {
            return Err(ApiError::invalid(
                "enabled",
                format!("the connection cannot be enabled before it has {}", missing.join(", ")),
            ));
        }
        Ok(())
    }
}

/// RFC 6749 §3.3 scope tokens; `openid` first, always.
fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, ApiError> {
    let valid = |s: &String| {
        !s.is_empty()
            && s.len() <= 128
            && s.chars().all(|c| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
    };
    if scopes.len() > MAX_SCOPES || !scopes.iter().all(valid) {
        return Err(ApiError::invalid(
            "scopes",
            format!(
                "at most {MAX_SCOPES} scopes, each 1 to 128 printable characters without spaces or quotes"
            ),
        ));
    }
    let mut checked = vec!["openid".to_owned()];
    for scope in scopes {
        if !checked.contains(&scope) {
            checked.push(scope);
        }
    }
    Ok(checked)
}

fn check_mapping(mapping: ClaimMapping) -> Result<ClaimMapping, ApiError> {
    let names = [
        &mapping.user_name,
        &mapping.email,
        &mapping.given_name,
        &mapping.family_name,
        &mapping.display_name,
        &mapping.groups,
        &mapping.department,
    ];
    let bad = |s: &String| s.is_empty() || s.len() > 256;
    if names.into_iter().flatten().any(bad) || mapping.custom.values().any(bad) {
        return Err(ApiError::invalid("claim_mapping", "claim names must be 1 to 256 characters"));
    }
    if mapping.custom.len() > 50 || mapping.custom.keys().any(|k| crate::text::label(k, 64).is_err()) {
        return Err(ApiError::invalid(
            "claim_mapping",
            "at most 50 custom fields, each named in 1 to 64 characters",
        ));
    }
    Ok(mapping)
}

// ---- handlers ----

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("the tenant has no OIDC connection `{id}`"))
}

/// The tenant and its connection `id`.
async fn find(
    state: &AppState,
    reference: String,
    id: &str,
) -> Result<(TenantRecord, OidcConnectionRecord), ApiError> {
    let connection_id: ConnectionId = id.parse().map_err(|_| not_found(id))?;
    let found = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let connection = oidc::connection(tx, connection_id)?.filter(|c| c.tenant == tenant.id);
            Ok::<_, ApiError>((tenant, connection))
        })
        .await?;
    match found {
        (tenant, Some(connection)) => Ok((tenant, connection)),
        _ => Err(not_found(id)),
    }
}

async fn list(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let connections = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &reference)?;
            Ok::<_, ApiError>(oidc::tenant_connections(tx, tenant.id)?)
        })
        .await?;
    let items: Vec<ConnectionView> = connections.iter().map(|c| view(c, &state.public_url)).collect();
    Ok(ApiJson(json!({ "items": items })))
}

async fn show(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    Ok(ApiJson(view(&connection, &state.public_url)))
}

async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(reference): Path<String>,
    ApiJson(settings): ApiJson<Settings>,
) -> Result<(StatusCode, ApiJson<ConnectionView>), ApiError> {
    let now = state.clock.now();
    let tenant = state.store.read(move |tx| resolve(tx, &reference)).await?;
    if settings.name.is_none() {
        return Err(ApiError::invalid("name", "is required"));
    }
    let mut connection = OidcConnectionRecord {
        id: ConnectionId::generate(),
        tenant: tenant.id,
        name: String::new(),
        enabled: false,
        issuer: String::new(),
        client_id: String::new(),
        client_secret: None,
        token_auth_method: TokenAuthMethod::default(),
        scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        claim_mapping: ClaimMapping::default(),
        jit_provisioning: false,
        clock_skew_secs: DEFAULT_SKEW_SECS,
        sign_out_at_idp: false,
        discovered: None,
        created_at: now,
        updated_at: now,
    };
    let enable = settings.enabled;
    let mut settings = settings;
    settings.apply_issuer(&state, &mut connection, now).await?;
    settings.apply(&state, &mut connection)?;
    // Complete settings made in one call are enabled unless told otherwise.
    if enable.is_none() && missing(&connection).is_empty() {
        connection.enabled = true;
    }
    let change = AdminChange::new(auth, &request, now);
    let stored = connection.clone();
    state
        .store
        .write(move |tx| {
            oidc::put_connection(tx, &stored)?;
            change.audit(
                tx,
                Some(stored.tenant),
                "oidc_connection.create",
                subject(&stored),
                audited(&stored),
            )
        })
        .await?;
    tracing::info!(connection = %connection.id, tenant = %connection.tenant, "OIDC connection created");
    Ok((StatusCode::CREATED, ApiJson(view(&connection, &state.public_url))))
}

async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
    ApiJson(settings): ApiJson<Settings>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, current) = find(&state, reference, &id).await?;
    let now = state.clock.now();
    let secret_changed = settings.client_secret.is_some();
    let (mut connection, mut settings) = (current.clone(), settings);
    settings.apply_issuer(&state, &mut connection, now).await?;
    settings.apply(&state, &mut connection)?;
    save(&state, auth, &request, current, connection, secret_changed, now).await
}

/// Fetches the issuer's discovery document again now.
async fn refresh_discovery(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, current) = find(&state, reference, &id).await?;
    if current.issuer.is_empty() {
        return Err(ApiError::invalid("issuer", "the connection has no issuer yet"));
    }
    let mut settings = Settings { issuer: Some(current.issuer.clone()), ..Settings::default() };
    let (mut connection, now) = (current.clone(), state.clock.now());
    settings.apply_issuer(&state, &mut connection, now).await?;
    save(&state, auth, &request, current, connection, false, now).await
}

/// Stores a changed connection, audited with its before and after.
async fn save(
    state: &AppState,
    auth: AdminAuth,
    request: &RequestId,
    before: OidcConnectionRecord,
    mut after: OidcConnectionRecord,
    secret_changed: bool,
    now: OffsetDateTime,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    after.updated_at = now;
    let change = AdminChange::new(auth, request, now);
    let stored = after.clone();
    state
        .store
        .write(move |tx| {
            oidc::put_connection(tx, &stored)?;
            let detail = json!({
                "before": audited(&before), "after": audited(&stored), "client_secret_changed": secret_changed,
            });
            change.audit(tx, Some(stored.tenant), "oidc_connection.update", subject(&stored), detail)
        })
        .await?;
    Ok(ApiJson(view(&after, &state.public_url)))
}

async fn remove(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    state
        .store
        .write(move |tx| {
            if let Some(removed) = oidc::delete_connection(tx, connection.id)? {
                change.audit(
                    tx,
                    Some(removed.tenant),
                    "oidc_connection.delete",
                    subject(&removed),
                    json!({}),
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a connection test: the admin opens `start_url` in a browser and signs in at the IdP;
/// the outcome is shown there and kept here (`GET …/tests/{test}`).
async fn start_test(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<(StatusCode, ApiJson<serde_json::Value>), ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    let missing = missing(&connection);
    if !missing.is_empty() {
        return Err(ApiError::invalid(
            "connection",
            format!("the connection needs {} before a test", missing.join(", ")),
        ));
    }
    let now = state.clock.now();
    let lifetime = state.config.sso_login_lifetime();
    let ticket = crate::provider::random_token("pcot_");
    let pending = PendingLogin {
        upstream: connection.upstream(),
        tenant: Some(connection.tenant),
        authorization: None,
        test: true,
        test_of: None,
        browser: [0; 32],
        nonce: String::new(),
        pkce_verifier: String::new(),
        max_age: None,
        redirect_uri: String::new(),
        answered_at: None,
        test_result: None,
        created_at: now,
        expires_at: now + lifetime,
    };
    let change = AdminChange::new(auth, &request, now);
    let stored = (ticket.clone(), pending.clone(), connection.clone());
    state
        .store
        .write(move |tx| {
            oidc::put_login(tx, &stored.0, &stored.1)?;
            change.audit(
                tx,
                Some(stored.2.tenant),
                "oidc_connection.test",
                subject(&stored.2),
                json!({ "test": stored.0 }),
            )
        })
        .await?;
    let urls = connection_urls(&state.public_url, &connection);
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({
            "id": ticket,
            "start_url": format!("{}?test={ticket}", urls.start),
            "expires_at": pending.expires_at.format(&Rfc3339).unwrap_or_default(),
        })),
    ))
}

async fn show_test(
    State(state): State<AppState>,
    Path((reference, id, test)): Path<(String, String, String)>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    let lookup = test.clone();
    let pending = state.store.read(move |tx| oidc::login(tx, &lookup)).await?;
    let key = connection.upstream();
    match pending.filter(|p| p.test && p.test_of.is_none() && p.upstream == key) {
        Some(p) => Ok(ApiJson(json!({
            "id": test,
            "status": if p.answered_at.is_some() { "done" } else { "waiting" },
            "result": p.test_result,
        }))),
        None => Err(ApiError::NotFound(format!("no test `{test}` (tests are kept until they expire)"))),
    }
}
