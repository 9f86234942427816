//! SCIM bearer tokens, managed through the admin API under
//! `/api/v1/tenants/{tenant}/scim-tokens`: `pcst_` followed by 256 random bits in base64url,
//! shown once when created; only their SHA-256 digest is stored.

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::StatusCode,
    middleware::from_extractor_with_state,
    routing::{delete, get},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::ScimTokenId,
    store::{
        journal::Subject,
        scim_tokens::{self, ScimTokenRecord},
    },
    tenants::{self, TenantError},
};

const PREFIX: &str = "pcst_";
const SHOWN_CHARS: usize = 12;
const MAX_NAME_CHARS: usize = 100;
/// The longest lifetime a token can be given.
const MAX_LIFETIME_DAYS: i64 = 3 * 365;

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_token() -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(secret))
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/scim-tokens", get(list).post(create))
        .route("/tenants/{tenant}/scim-tokens/{id}", delete(revoke))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

#[derive(Debug, Serialize)]
struct TokenView {
    id: ScimTokenId,
    name: String,
    prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

impl From<ScimTokenRecord> for TokenView {
    fn from(t: ScimTokenRecord) -> Self {
        Self {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct TokenList {
    items: Vec<TokenView>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    /// When the token stops working (RFC 3339); absent: never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The token itself: shown in this response only.
    token: String,
}

async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<ApiJson<TokenList>, ApiError> {
    let tokens = state
        .store
        .read(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            Ok::<_, TenantError>(scim_tokens::list(tx, tenant.id)?)
        })
        .await?;
    Ok(ApiJson(TokenList { items: tokens.into_iter().map(Into::into).collect() }))
}

async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(tenant): Path<String>,
    ApiJson(input): ApiJson<CreateToken>,
) -> Result<(StatusCode, ApiJson<CreatedToken>), ApiError> {
    let name = crate::text::label(&input.name, MAX_NAME_CHARS).map_err(|m| ApiError::invalid("name", m))?;
    let now = state.clock.now();
    if let Some(at) = input.expires_at {
        if at <= now || at > now + time::Duration::days(MAX_LIFETIME_DAYS) {
            return Err(ApiError::invalid(
                "expires_at",
                format!("must be in the future and within {MAX_LIFETIME_DAYS} days"),
            ));
        }
    }
    let token = new_token();
    let (digest, prefix, id) =
        (digest(&token), token.chars().take(SHOWN_CHARS).collect::<String>(), ScimTokenId::generate());
    let change = AdminChange::new(auth, &request, now);
    let record = state
        .store
        .write(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let record = ScimTokenRecord {
                id,
                tenant: tenant.id,
                name: name.clone(),
                digest,
                prefix: prefix.clone(),
                created_at: now,
                expires_at: input.expires_at,
                last_used_at: None,
                revoked_at: None,
            };
            scim_tokens::insert(tx, &record)?;
            audit(tx, &change, &record, "scim_token.create")?;
            Ok::<_, TenantError>(record)
        })
        .await?;
    tracing::info!(tenant = %record.tenant, token_id = %record.id, "SCIM token created");
    Ok((StatusCode::CREATED, ApiJson(CreatedToken { view: record.into(), token })))
}

async fn revoke(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("the tenant has no SCIM token `{id}`"));
    let token_id: ScimTokenId = id.parse().map_err(|_| not_found())?;
    let now = state.clock.now();
    let change = AdminChange::new(auth, &request, now);
    let revoked = state
        .store
        .write(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let revoked = scim_tokens::revoke(tx, tenant.id, token_id, now)?;
            if let Some(record) = &revoked {
                audit(tx, &change, record, "scim_token.revoke")?;
            }
            Ok::<_, TenantError>(revoked.map(|r| r.digest))
        })
        .await?;
    let Some(digest) = revoked else {
        return Err(not_found());
    };
    state.scim.forget(&digest);
    tracing::info!(token_id = %token_id, "SCIM token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// The audit record of an operator's change to a token.
fn audit(
    tx: &crate::store::WriteTx<'_>,
    change: &AdminChange,
    token: &ScimTokenRecord,
    action: &str,
) -> Result<(), crate::store::StoreError> {
    let target =
        Subject { kind: "scim_token".into(), id: token.id.to_string(), label: Some(token.name.clone()) };
    let detail =
        json!({ "prefix": token.prefix, "expires_at": token.expires_at.map(|t| t.unix_timestamp()) });
    change.audit(tx, Some(token.tenant), action, target, detail)
}
