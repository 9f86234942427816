//! Tenants (the app's customer organisations) and their email domains, managed through the
//! admin API under `/api/v1/tenants`. Domain verification and the sign-in routing that uses
//! slugs and verified domains come with the sign-in work.

pub mod dns;
mod service;
mod validate;
mod views;

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::from_extractor_with_state,
    routing::{delete, get},
};

pub(crate) use service::resolve;
pub use service::{CreateTenant, UpdateTenant};
pub use views::{DomainView, TenantPage, TenantView};

use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, ApiQuery, middleware::RequestId},
    ids::TenantId,
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no tenant {0}")]
    NotFound(String),
    #[error("the slug {0} is taken")]
    SlugTaken(String),
    #[error("the domain {domain} belongs to tenant {owner}")]
    DomainTaken { domain: String, owner: TenantId },
    #[error("the tenant already has the domain {0}")]
    DomainAlreadyAdded(String),
    #[error("the tenant has no domain {0}")]
    DomainNotFound(String),
    /// The DNS record proving control of the domain was not found.
    #[error("{0}")]
    VerificationFailed(String),
    /// DNS could not be asked (no resolver, a timeout, a failing server).
    #[error("{0}")]
    DnsUnavailable(String),
    /// Vouching for a domain without DNS is an operator's call, never a setup link's.
    #[error("only an operator may verify a domain manually")]
    ManualVerificationRefused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants", get(list).post(create))
        .route("/tenants/{tenant}", get(show).patch(update).delete(remove))
        .route("/tenants/{tenant}/domains", get(list_domains).post(add_domain))
        .route("/tenants/{tenant}/domains/{domain}", delete(remove_domain))
        .route("/tenants/{tenant}/domains/{domain}/verify", axum::routing::post(verify_domain))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    ApiJson(input): ApiJson<CreateTenant>,
) -> Result<(StatusCode, HeaderMap, ApiJson<TenantView>), ApiError> {
    let change = AdminChange::new(auth, &request, state.clock.now());
    let (tenant, domains) = service::create(&state, input, change).await?;
    let view = TenantView::new(tenant, domains, &state.public_url);
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/tenants/{}", view.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, ApiJson(view)))
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<service::PageRequest>,
) -> Result<ApiJson<TenantPage>, ApiError> {
    let (tenants, next) = service::list(&state, page).await?;
    let items = tenants
        .into_iter()
        .map(|(tenant, domains)| TenantView::new(tenant, domains, &state.public_url))
        .collect();
    Ok(ApiJson(TenantPage { items, next_cursor: next.map(|id| id.to_string()) }))
}

async fn show(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<ApiJson<TenantView>, ApiError> {
    let (tenant, domains) = service::get(&state, reference).await?;
    Ok(ApiJson(TenantView::new(tenant, domains, &state.public_url)))
}

async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(reference): Path<String>,
    ApiJson(input): ApiJson<UpdateTenant>,
) -> Result<ApiJson<TenantView>, ApiError> {
    let change = AdminChange::new(auth, &request, state.clock.now());
    let (tenant, domains) = service::update(&state, reference, input, change).await?;
    Ok(ApiJson(TenantView::new(tenant, domains, &state.public_url)))
}

async fn remove(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    let change = AdminChange::new(auth, &request, state.clock.now());
    service::delete(&state, reference, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_domains(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<ApiJson<views::DomainList>, ApiError> {
    let (_, domains) = service::get(&state, reference).await?;
    Ok(ApiJson(views::DomainList { items: domains.into_iter().map(DomainView::from).collect() }))
}

async fn add_domain(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(reference): Path<String>,
    ApiJson(input): ApiJson<service::AddDomain>,
) -> Result<(StatusCode, ApiJson<DomainView>), ApiError> {
    let change = AdminChange::new(auth, &request, state.clock.now());
    let domain = service::add_domain(&state, reference, input, change).await?;
    Ok((StatusCode::CREATED, ApiJson(domain.into())))
}

/// Checks the domain's TXT record through DNS, or (`{"method": "manual"}`) records an
/// operator's word for it on an air-gapped site. Both are audited, and so is a failed check.
async fn verify_domain(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, domain)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<ApiJson<DomainView>, ApiError> {
    // The body is optional: none (or `{}`) means a DNS check.
    let method = if body.is_empty() {
        service::VerificationMethod::default()
    } else {
        serde_json::from_slice::<service::VerifyDomain>(&body)
            .map_err(|err| ApiError::Malformed(format!("the body is not a verification request: {err}")))?
            .method
    };
    let change = AdminChange::new(auth, &request, state.clock.now());
    let domain = service::verify_domain(&state, reference, domain, method, change).await?;
    Ok(ApiJson(domain.into()))
}

async fn remove_domain(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let change = AdminChange::new(auth, &request, state.clock.now());
    service::remove_domain(&state, reference, domain, change).await?;
    Ok(StatusCode::NO_CONTENT)
}
