//! Google sign-in: one instance-wide OpenID Connect upstream for people whose organisation has
//! no SSO. Google vouches for an address (`email_verified`), not for an organisation, so the
//! organisation is found from the address: the app's pinned tenant, else every tenant where the
//! address (or this Google account, from an earlier sign-in) has an account. Tenants that demand
//! SSO are left out; a tenant that pins Google Workspace domains accepts only accounts of those
//! domains (`hd`), and only such a tenant gets users created at a Google sign-in.

use time::OffsetDateTime;

use super::{
    claims::{Outcome, Person},
    refusal::Refusal,
};
use crate::{
    directory::federated::{Resolved, new_user},
    ids::TenantId,
    store::{
        Source, StoreError, directory, oidc,
        tenants::{self, DomainStatus, TenantRecord, TenantStatus},
    },
};

/// An address with accounts in more tenants than this is looked for in the first ones only.
const MAX_CANDIDATES: usize = 10;
pub const UPSTREAM: &str = "google";

/// Finds the person's account for a Google sign-in (`hd`: the Workspace domain Google stated).
pub fn resolve(
    src: &impl Source,
    pinned: Option<TenantId>,
    person: &Person,
    hd: Option<&str>,
    now: OffsetDateTime,
) -> Result<Outcome, StoreError> {
    let Some(email) = person.mapped.email.as_deref() else {
        return Ok(Outcome::Refused(Refusal::NoEmail("email".into())));
    };
    if !person.email_verified {
        return Ok(Outcome::Refused(Refusal::EmailUnverified));
    }
    let candidates = match pinned {
        Some(tenant) => vec![tenant],
        None => candidate_tenants(src, &person.subject, email)?,
    };
    let mut found = Vec::new();
    let mut refusal = None;
    for tenant_id in candidates.into_iter().take(MAX_CANDIDATES) {
        let Some(tenant) = tenants::get(src, tenant_id)?.filter(|t| t.status == TenantStatus::Active) else {
            continue;
        };
        match in_tenant(src, &tenant, person, email, hd, now)? {
            Ok(Some(resolved)) => found.push((tenant, resolved)),
            Ok(None) => {}
            Err(refused) => refusal = Some(refused),
        }
    }
    Ok(match found.len() {
        0 => Outcome::Refused(refusal.unwrap_or_else(|| Refusal::NoAccount(email.to_owned()))),
        1 => Outcome::One(Box::new(found.remove(0))),
        _ => Outcome::Several(found.into_iter().map(|(tenant, _)| tenant).collect()),
    })
}

/// The tenants this Google account or address may belong to: where it signed in before, where
/// the address has an account, and the owner of the address's verified domain (which may create
/// the account if it pins Workspace domains).
fn candidate_tenants(src: &impl Source, subject: &str, email: &str) -> Result<Vec<TenantId>, StoreError> {
    let mut tenants: Vec<TenantId> =
        oidc::subject_users(src, UPSTREAM, subject)?.into_iter().map(|(tenant, _)| tenant).collect();
    for (tenant, _) in directory::accounts_by_email(src, email)? {
        if !tenants.contains(&tenant) {
            tenants.push(tenant);
        }
    }
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    if let Some(owner) = tenants::domain_owner(src, domain)? {
        let verified =
            tenants::domain(src, owner, domain)?.is_some_and(|d| d.status == DomainStatus::Verified);
        if verified && !tenants.contains(&owner) {
            tenants.push(owner);
        }
    }
    Ok(tenants)
}

/// The person's account in `tenant`: Ok(None) if they have none there (and none may be made).
fn in_tenant(
    src: &impl Source,
    tenant: &TenantRecord,
    person: &Person,
    email: &str,
    hd: Option<&str>,
    now: OffsetDateTime,
) -> Result<Result<Option<Resolved>, Refusal>, StoreError> {
    if tenant.require_sso {
        return Ok(Err(Refusal::SsoRequired(tenant.display_name.clone())));
    }
    let workspace_member = hd.is_some_and(|hd| tenant.google_hosted_domains.iter().any(|d| d == hd));
    if !tenant.google_hosted_domains.is_empty() && !workspace_member {
        return Ok(Err(Refusal::HostedDomain {
            found: hd.map_or_else(|| "absent (a personal Google account)".to_owned(), |d| format!("`{d}`")),
            expected: tenant.google_hosted_domains.join(", "),
        }));
    }
    let linked = match oidc::subject_user(src, UPSTREAM, &person.subject, tenant.id)? {
        Some(id) => directory::user(src, tenant.id, id)?,
        None => None,
    };
    let user = match linked {
        Some(user) => Some(user),
        None => directory::user_by_email(src, tenant.id, email)?,
    };
    Ok(match user {
        Some(user) if user.active => Ok(Some(Resolved::Existing(user))),
        Some(user) => Err(Refusal::UserDeactivated(user.user_name)),
        None if workspace_member => Ok(Some(Resolved::New(new_user(tenant.id, email, &person.mapped, now)))),
        None => Ok(None),
    })
}
