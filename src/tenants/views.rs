//! The JSON shapes of tenants and domains in the admin API.

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    ids::TenantId,
    store::tenants::{DomainRecord, DomainStatus, TenantRecord, TenantStatus},
};

use super::dns::{VERIFICATION_LABEL, VERIFICATION_PREFIX};

#[derive(Debug, Serialize)]
pub struct TenantView {
    pub id: TenantId,
    pub slug: String,
    pub display_name: String,
    pub status: TenantStatus,
    /// How many active users the tenant may have (null: no limit).
    pub seat_limit: Option<u32>,
    /// Days a deleted user's data is kept before it is purged (null: deleted at once).
    pub deleted_user_retention_days: Option<u32>,
    pub session_policy: SessionPolicyView,
    /// Its people must sign in through SSO (no password or Google sign-in).
    pub require_sso: bool,
    /// Google Workspace domains its people's Google accounts must belong to (empty: any).
    pub google_hosted_domains: Vec<String>,
    pub domains: Vec<DomainView>,
    /// What the tenant's IdP administrator needs to configure provisioning and sign-in.
    pub urls: TenantUrls,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize)]
pub struct TenantUrls {
    pub scim_base_url: String,
    /// The vanity sign-in address: goes straight to the tenant's way of signing in.
    pub login_url: String,
}

/// The effective values, defaults filled in.
#[derive(Debug, Serialize)]
pub struct SessionPolicyView {
    pub idle_minutes: u32,
    pub max_hours: u32,
}

impl TenantView {
    pub fn new(tenant: TenantRecord, domains: Vec<DomainRecord>, public_url: &str) -> Self {
        Self {
            urls: TenantUrls {
                scim_base_url: format!("{public_url}/scim/v2/{}", tenant.id),
                login_url: format!("{public_url}/t/{}", tenant.slug),
            },
            session_policy: SessionPolicyView {
                idle_minutes: tenant.session_policy.idle_minutes(),
                max_hours: tenant.session_policy.max_hours(),
            },
            require_sso: tenant.require_sso,
            google_hosted_domains: tenant.google_hosted_domains,
            id: tenant.id,
            slug: tenant.slug,
            display_name: tenant.display_name,
            status: tenant.status,
            seat_limit: tenant.seat_limit,
            deleted_user_retention_days: tenant.deleted_user_retention_days,
            domains: domains.into_iter().map(DomainView::from).collect(),
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TenantPage {
    pub items: Vec<TenantView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DomainView {
    pub domain: String,
    pub status: DomainStatus,
    /// The DNS record whose presence proves the tenant controls the domain.
    pub verification: Verification,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    /// `dns` or `manual`, and who verified it.
    pub verification_method: Option<String>,
    pub verified_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Verification {
    pub method: &'static str,
    pub record_type: &'static str,
    pub record_name: String,
    pub record_value: String,
}

impl From<DomainRecord> for DomainView {
    fn from(d: DomainRecord) -> Self {
        Self {
            verification: Verification {
                method: "dns_txt",
                record_type: "TXT",
                record_name: format!("{VERIFICATION_LABEL}.{}", d.domain),
                record_value: format!("{VERIFICATION_PREFIX}{}", d.verification_token),
            },
            domain: d.domain,
            status: d.status,
            created_at: d.created_at,
            verified_at: d.verified_at,
            verification_method: d.verification_method,
            verified_by: d.verified_by,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DomainList {
    pub items: Vec<DomainView>,
}
