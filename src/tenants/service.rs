//! What the tenant endpoints do, in terms of the store. Every change is one write transaction:
//! the record, its slug and its domains commit together or not at all.

use std::collections::BTreeSet;

use rand::RngCore;
use serde::Deserialize;

use serde_json::json;

use super::{
    TenantError,
    dns::{VERIFICATION_LABEL, Verification},
    validate,
};
use crate::{
    admin::AdminChange,
    app::AppState,
    ids::TenantId,
    sessions,
    store::{
        Source,
        journal::Subject,
        tenants::{self, DomainRecord, DomainStatus, SessionPolicy, TenantRecord, TenantStatus},
    },
};

const MAX_DOMAINS: usize = 100;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub slug: String,
    pub display_name: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub status: Option<TenantStatus>,
    #[serde(default)]
    pub seat_limit: Option<u32>,
    #[serde(default)]
    pub deleted_user_retention_days: Option<u32>,
    #[serde(default)]
    pub session_policy: Option<SessionPolicy>,
    #[serde(default)]
    pub require_sso: Option<bool>,
    #[serde(default)]
    pub google_hosted_domains: Option<Vec<String>>,
}

/// A partial update: absent fields stay as they are; `null` clears an optional setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub slug: Option<String>,
    pub display_name: Option<String>,
    pub status: Option<TenantStatus>,
    #[serde(default, deserialize_with = "crate::http::present")]
    pub seat_limit: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::http::present")]
    pub deleted_user_retention_days: Option<Option<u32>>,
    /// Replaces the whole policy; a field left out or `null` returns to its default.
    pub session_policy: Option<SessionPolicy>,
    pub require_sso: Option<bool>,
    pub google_hosted_domains: Option<Vec<String>>,
}

/// Google Workspace domains: at most 20 domain names.
fn check_hosted_domains(domains: Vec<String>) -> Result<Vec<String>, TenantError> {
    let invalid = |message: String| TenantError::Invalid { field: "google_hosted_domains", message };
    if domains.len() > 20 {
        return Err(invalid("at most 20 domains".into()));
    }
    let mut checked: Vec<String> = Vec::new();
    for domain in domains {
        let normalised = crate::tenants::validate::domain(&domain).map_err(|err| match err {
            TenantError::Invalid { message, .. } => invalid(message),
            other => invalid(other.to_string()),
        })?;
        if !checked.contains(&normalised) {
            checked.push(normalised);
        }
    }
    Ok(checked)
}

/// Sessions last at most a year, and idle limits are at least five minutes.
fn check_session_policy(policy: SessionPolicy) -> Result<SessionPolicy, TenantError> {
    let invalid = |message: &str| TenantError::Invalid { field: "session_policy", message: message.into() };
    if policy.idle_minutes.is_some_and(|m| !(5..=525_600).contains(&m)) {
        return Err(invalid("idle_minutes must be 5 to 525600 (a year)"));
    }
    if policy.max_hours.is_some_and(|h| !(1..=8_760).contains(&h)) {
        return Err(invalid("max_hours must be 1 to 8760 (a year)"));
    }
    Ok(policy)
}

/// A deleted user's data is kept at most this long.
const MAX_RETENTION_DAYS: u32 = 3650;

fn check_retention(days: Option<u32>) -> Result<Option<u32>, TenantError> {
    match days {
        Some(days) if days > MAX_RETENTION_DAYS => Err(TenantError::Invalid {
            field: "deleted_user_retention_days",
            message: format!("must be 0 to {MAX_RETENTION_DAYS} days"),
        }),
        Some(0) | None => Ok(None),
        days => Ok(days),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDomain {
    pub domain: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    /// Look the TXT record up through the configured resolvers.
    #[default]
    Dns,
    /// Take the operator's word (air-gapped sites); audited as such.
    Manual,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyDomain {
    #[serde(default)]
    pub method: VerificationMethod,
}

pub async fn verify_domain(
    state: &AppState,
    reference: String,
    domain: String,
    method: VerificationMethod,
    change: AdminChange,
) -> Result<DomainRecord, TenantError> {
    if matches!(method, VerificationMethod::Manual) && !change.auth.is_operator() {
        return Err(TenantError::ManualVerificationRefused);
    }
    let name = validate::domain(&domain).map_err(|_| TenantError::DomainNotFound(domain.clone()))?;
    let (lookup, lookup_name) = (reference.clone(), name.clone());
    let (tenant_id, record) = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &lookup)?;
            let domain = tenants::domain(tx, tenant.id, &lookup_name)?
                .ok_or(TenantError::DomainNotFound(lookup_name.clone()))?;
            Ok::<_, TenantError>((tenant.id, domain))
        })
        .await?;
    let method_name = match method {
        VerificationMethod::Manual => "manual",
        VerificationMethod::Dns => {
            if let Err(failure) = check_dns(state, &record).await {
                record_failed_check(state, &change, tenant_id, &record.domain, &failure).await;
                return Err(failure.error);
            }
            "dns"
        }
    };
    let (now, by) = (change.now, change.auth.actor().id);
    state
        .store
        .write(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let mut domain =
                tenants::domain(tx, tenant.id, &name)?.ok_or(TenantError::DomainNotFound(name.clone()))?;
            domain.status = DomainStatus::Verified;
            domain.verified_at = Some(now);
            domain.verification_method = Some(method_name.into());
            domain.verified_by = Some(by.clone());
            tenants::put_domain(tx, &domain)?;
            let detail = json!({ "method": method_name });
            change.audit(tx, Some(tenant.id), "domain.verify", domain_subject(&domain.domain), detail)?;
            Ok(domain)
        })
        .await
}

/// Why a DNS check did not verify a domain: the audit trail's reason code and the operator's
/// answer.
struct FailedCheck {
    reason: &'static str,
    error: TenantError,
}

async fn check_dns(state: &AppState, record: &DomainRecord) -> Result<(), FailedCheck> {
    let unavailable = |message: String| FailedCheck {
        reason: "dns_unavailable",
        error: TenantError::DnsUnavailable(message),
    };
    let verifier = state.dns.as_ref().as_ref().map_err(|message| unavailable(message.clone()))?;
    match verifier.check(&record.domain, &record.verification_token).await {
        Ok(Verification::Verified) => Ok(()),
        Ok(Verification::NotFound { seen }) if seen.is_empty() => Err(FailedCheck {
            reason: "txt_record_missing",
            error: TenantError::VerificationFailed(format!(
                "no TXT record at {VERIFICATION_LABEL}.{}; publish the record shown with the domain and try again",
                record.domain
            )),
        }),
        Ok(Verification::NotFound { seen }) => Err(FailedCheck {
            reason: "txt_value_mismatch",
            error: TenantError::VerificationFailed(format!(
                "the TXT records at {VERIFICATION_LABEL}.{} do not contain the verification value; found: {}",
                record.domain,
                seen.join(" | ")
            )),
        }),
        Err(err) => Err(unavailable(err.to_string())),
    }
}

/// Records a DNS check that failed, in a write of its own (nothing else changed). The operator's
/// answer does not depend on it: a trail that cannot be written is logged.
async fn record_failed_check(
    state: &AppState,
    change: &AdminChange,
    tenant: TenantId,
    domain: &str,
    failure: &FailedCheck,
) {
    let (change, subject, reason) = (change.clone(), domain_subject(domain), failure.reason);
    let detail = json!({ "method": "dns", "message": failure.error.to_string() });
    let written = state
        .store
        .write(move |tx| {
            change.audit_refused(tx, Some(tenant), "domain.verify", subject.clone(), detail.clone(), reason)
        })
        .await;
    if let Err(err) = written {
        tracing::error!(%err, "cannot record a failed domain verification");
    }
}

fn domain_subject(domain: &str) -> Subject {
    Subject { kind: "domain".into(), id: domain.to_owned(), label: None }
}

fn tenant_subject(tenant: &TenantRecord) -> Subject {
    Subject { kind: "tenant".into(), id: tenant.id.to_string(), label: Some(tenant.slug.clone()) }
}

/// The settings of a tenant the audit trail keeps.
fn audited(tenant: &TenantRecord) -> serde_json::Map<String, serde_json::Value> {
    let settings = json!({
        "slug": tenant.slug, "display_name": tenant.display_name, "status": tenant.status,
        "seat_limit": tenant.seat_limit, "deleted_user_retention_days": tenant.deleted_user_retention_days,
        "session_policy": tenant.session_policy, "require_sso": tenant.require_sso,
        "google_hosted_domains": tenant.google_hosted_domains,
    });
    match settings {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The settings an update changed: their values before and after.
fn changed(before: &TenantRecord, after: &TenantRecord) -> serde_json::Value {
    let (mut old, mut new) = (audited(before), audited(after));
    old.retain(|key, value| new.get(key) != Some(value));
    new.retain(|key, _| old.contains_key(key));
    json!({ "before": old, "after": new })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

type TenantWithDomains = (TenantRecord, Vec<DomainRecord>);

pub async fn create(
    state: &AppState,
    input: CreateTenant,
    change: AdminChange,
) -> Result<TenantWithDomains, TenantError> {
    let slug = validate::slug(&input.slug)?;
    let display_name = validate::display_name(&input.display_name)?;
    let domain_names: BTreeSet<String> =
        input.domains.iter().map(|d| validate::domain(d)).collect::<Result<_, _>>()?;
    if domain_names.len() > MAX_DOMAINS {
        return Err(TenantError::Invalid {
            field: "domains",
            message: format!("at most {MAX_DOMAINS} domains"),
        });
    }
    let deleted_user_retention_days = check_retention(input.deleted_user_retention_days)?;
    let session_policy = check_session_policy(input.session_policy.unwrap_or_default())?;
    let now = change.now;
    let tenant = TenantRecord {
        id: TenantId::generate(),
        slug,
        display_name,
        status: input.status.unwrap_or(TenantStatus::Active),
        seat_limit: input.seat_limit,
        deleted_user_retention_days,
        session_policy,
        require_sso: input.require_sso.unwrap_or(false),
        google_hosted_domains: check_hosted_domains(input.google_hosted_domains.unwrap_or_default())?,
        created_at: now,
        updated_at: now,
    };
    let domains: Vec<DomainRecord> =
        domain_names.into_iter().map(|d| new_domain(d, tenant.id, verification_token(), now)).collect();
    let (t, ds) = (tenant.clone(), domains.clone());
    state
        .store
        .write(move |tx| {
            if !tenants::claim_slug(tx, &t.slug, t.id)? {
                return Err(TenantError::SlugTaken(t.slug.clone()));
            }
            tenants::put(tx, &t)?;
            for domain in &ds {
                claim_domain(tx, domain)?;
            }
            let mut detail = audited(&t);
            detail.insert("domains".into(), json!(ds.iter().map(|d| &d.domain).collect::<Vec<_>>()));
            change.audit(tx, Some(t.id), "tenant.create", tenant_subject(&t), detail.into())?;
            Ok(())
        })
        .await?;
    tracing::info!(tenant = %tenant.id, slug = %tenant.slug, "tenant created");
    Ok((tenant, domains))
}

pub async fn list(
    state: &AppState,
    page: PageRequest,
) -> Result<(Vec<TenantWithDomains>, Option<TenantId>), TenantError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(TenantError::Invalid { field: "limit", message: format!("must be 1 to {MAX_PAGE}") });
    }
    let after = page.cursor.map(|c| c.parse::<TenantId>()).transpose().map_err(|_| TenantError::Invalid {
        field: "cursor",
        message: "is not a cursor from a previous page".into(),
    })?;
    state
        .store
        .read(move |tx| {
            let mut records = tenants::list(tx, after, limit + 1)?;
            let next = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|t| t.id)
            } else {
                None
            };
            let with_domains = records
                .into_iter()
                .map(|t| {
                    let domains = tenants::domains(tx, t.id)?;
                    Ok((t, domains))
                })
                .collect::<Result<_, TenantError>>()?;
            Ok((with_domains, next))
        })
        .await
}

pub async fn get(state: &AppState, reference: String) -> Result<TenantWithDomains, TenantError> {
    state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let domains = tenants::domains(tx, tenant.id)?;
            Ok((tenant, domains))
        })
        .await
}

pub async fn update(
    state: &AppState,
    reference: String,
    input: UpdateTenant,
    change: AdminChange,
) -> Result<TenantWithDomains, TenantError> {
    let slug = input.slug.as_deref().map(validate::slug).transpose()?;
    let display_name = input.display_name.as_deref().map(validate::display_name).transpose()?;
    let retention = input.deleted_user_retention_days.map(check_retention).transpose()?;
    let session_policy = input.session_policy.map(check_session_policy).transpose()?;
    let hosted_domains = input.google_hosted_domains.clone().map(check_hosted_domains).transpose()?;
    let now = change.now;
    let updated = state
        .store
        .write(move |tx| {
            let before = resolve(tx, &reference)?;
            let mut tenant = before.clone();
            if let Some(slug) = slug.as_ref().filter(|s| **s != tenant.slug) {
                if !tenants::claim_slug(tx, slug, tenant.id)? {
                    return Err(TenantError::SlugTaken(slug.clone()));
                }
                tenants::release_slug(tx, &tenant.slug)?;
                tenant.slug = slug.clone();
            }
            if let Some(name) = &display_name {
                tenant.display_name = name.clone();
            }
            if let Some(status) = input.status {
                tenant.status = status;
            }
            if let Some(limit) = input.seat_limit {
                tenant.seat_limit = limit;
            }
            if let Some(days) = retention {
                tenant.deleted_user_retention_days = days;
            }
            if let Some(policy) = session_policy {
                tenant.session_policy = policy;
            }
            if let Some(required) = input.require_sso {
                tenant.require_sso = required;
            }
            if let Some(domains) = &hosted_domains {
                tenant.google_hosted_domains = domains.clone();
            }
            let mut detail = changed(&before, &tenant);
            // A suspended tenant's people are signed out at once, and their apps told.
            if tenant.status == TenantStatus::Suspended {
                let ended = sessions::end_tenant_sessions(tx, tenant.id, "tenant_suspended", now)?;
                detail["sessions_ended"] = json!(ended);
            }
            tenant.updated_at = now;
            tenants::put(tx, &tenant)?;
            change.audit(tx, Some(tenant.id), "tenant.update", tenant_subject(&tenant), detail)?;
            let domains = tenants::domains(tx, tenant.id)?;
            Ok((tenant, domains))
        })
        .await?;
    tracing::info!(tenant = %updated.0.id, "tenant updated");
    Ok(updated)
}

pub async fn delete(state: &AppState, reference: String, change: AdminChange) -> Result<(), TenantError> {
    let now = change.now;
    let deleted = state
        .store
        .write(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let ended = sessions::end_tenant_sessions(tx, tenant.id, "tenant_deleted", now)?;
            let domains: Vec<String> =
                tenants::domains(tx, tenant.id)?.into_iter().map(|d| d.domain).collect();
            tenants::delete(tx, tenant.id)?;
            let mut detail = audited(&tenant);
            detail.insert("domains".into(), json!(domains));
            detail.insert("sessions_ended".into(), json!(ended));
            change.audit(tx, Some(tenant.id), "tenant.delete", tenant_subject(&tenant), detail.into())?;
            Ok::<_, TenantError>(tenant.id)
        })
        .await?;
    tracing::info!(tenant = %deleted, "tenant deleted");
    Ok(())
}

pub async fn add_domain(
    state: &AppState,
    reference: String,
    input: AddDomain,
    change: AdminChange,
) -> Result<DomainRecord, TenantError> {
    let name = validate::domain(&input.domain)?;
    let now = change.now;
    let token = verification_token();
    state
        .store
        .write(move |tx| {
            let tenant = resolve(tx, &reference)?;
            if tenants::domains(tx, tenant.id)?.len() >= MAX_DOMAINS {
                return Err(TenantError::Invalid {
                    field: "domain",
                    message: format!("a tenant has at most {MAX_DOMAINS} domains"),
                });
            }
            let domain = new_domain(name.clone(), tenant.id, token.clone(), now);
            claim_domain(tx, &domain)?;
            // The verification value is no secret: it is published in DNS.
            let detail = json!({ "verification_token": domain.verification_token });
            change.audit(tx, Some(tenant.id), "domain.add", domain_subject(&domain.domain), detail)?;
            tenants::put(tx, &TenantRecord { updated_at: now, ..tenant })?;
            Ok(domain)
        })
        .await
}

pub async fn remove_domain(
    state: &AppState,
    reference: String,
    domain: String,
    change: AdminChange,
) -> Result<(), TenantError> {
    let name = validate::domain(&domain).map_err(|_| TenantError::DomainNotFound(domain.clone()))?;
    let now = change.now;
    state
        .store
        .write(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let status = tenants::domain(tx, tenant.id, &name)?.map(|d| d.status);
            if !tenants::remove_domain(tx, tenant.id, &name)? {
                return Err(TenantError::DomainNotFound(name.clone()));
            }
            let detail = json!({ "status": status });
            change.audit(tx, Some(tenant.id), "domain.remove", domain_subject(&name), detail)?;
            tenants::put(tx, &TenantRecord { updated_at: now, ..tenant })?;
            Ok(())
        })
        .await
}

/// Finds a tenant by id or by slug.
pub(crate) fn resolve(src: &impl Source, reference: &str) -> Result<TenantRecord, TenantError> {
    let id = match reference.parse::<TenantId>() {
        Ok(id) => Some(id),
        Err(_) => tenants::id_by_slug(src, reference)?,
    };
    let tenant = match id {
        Some(id) => tenants::get(src, id)?,
        None => None,
    };
    tenant.ok_or_else(|| TenantError::NotFound(reference.to_owned()))
}

fn claim_domain(tx: &crate::store::WriteTx<'_>, domain: &DomainRecord) -> Result<(), TenantError> {
    match tenants::claim_domain(tx, domain)? {
        None => Ok(()),
        Some(owner) if owner == domain.tenant => Err(TenantError::DomainAlreadyAdded(domain.domain.clone())),
        Some(owner) => Err(TenantError::DomainTaken { domain: domain.domain.clone(), owner }),
    }
}

fn new_domain(domain: String, tenant: TenantId, token: String, now: time::OffsetDateTime) -> DomainRecord {
    DomainRecord {
        domain,
        tenant,
        status: DomainStatus::Unverified,
        verification_token: token,
        created_at: now,
        verified_at: None,
        verification_method: None,
        verified_by: None,
    }
}

fn verification_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
