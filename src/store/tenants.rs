//! Tenants and their email domains.
//!
//! Tables: `tenants` (id → record), `tenant_slugs` (slug → id, the vanity-URL index), `domains`
//! ((tenant, domain) → record) and `domain_owners` (domain → tenant, which makes a domain belong
//! to at most one tenant). The indexes change in the same transaction as the records.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    Record, Source, StoreError, TableVisitor, WriteTx, access, codec, credentials, directory, oidc, saml,
    scim_tokens, sessions, setup_links,
};
use crate::ids::TenantId;

const TENANTS: TableDefinition<u128, &[u8]> = TableDefinition::new("tenants");
const TENANT_SLUGS: TableDefinition<&str, u128> = TableDefinition::new("tenant_slugs");
const DOMAINS: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("domains");
const DOMAIN_OWNERS: TableDefinition<&str, u128> = TableDefinition::new("domain_owners");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(TENANTS)?;
    tables.visit(TENANT_SLUGS)?;
    tables.visit(DOMAINS)?;
    tables.visit(DOMAIN_OWNERS)?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub slug: String,
    pub display_name: String,
    pub status: TenantStatus,
    /// How many active users the tenant may have; None: no limit.
    #[serde(default)]
    pub seat_limit: Option<u32>,
    /// How long a deleted user's data is kept (deactivated, invisible) before it is purged;
    /// None: deleted at once.
    #[serde(default)]
    pub deleted_user_retention_days: Option<u32>,
    /// How its people's sessions end. Defaults apply where unset.
    #[serde(default)]
    pub session_policy: SessionPolicy,
    /// Its people must sign in through the tenant's SSO connection: no password, no Google.
    #[serde(default)]
    pub require_sso: bool,
    /// Google Workspace domains (`hd`) its people's Google accounts must belong to; empty: any
    /// Google account with a verified address of theirs. A pinned domain also lets Google
    /// sign-in create the tenant's users just in time (the Workspace vouches for them).
    #[serde(default)]
    pub google_hosted_domains: Vec<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionPolicy {
    /// Minutes without activity after which a session ends (None: the default, 12 hours).
    pub idle_minutes: Option<u32>,
    /// Hours after sign-in at which a session ends whatever happens (None: the default, 24).
    pub max_hours: Option<u32>,
}

impl SessionPolicy {
    pub const DEFAULT_IDLE_MINUTES: u32 = 12 * 60;
    pub const DEFAULT_MAX_HOURS: u32 = 24;

    pub fn idle_minutes(&self) -> u32 {
        self.idle_minutes.unwrap_or(Self::DEFAULT_IDLE_MINUTES)
    }

    pub fn max_hours(&self) -> u32 {
        self.max_hours.unwrap_or(Self::DEFAULT_MAX_HOURS)
    }
}

impl Record for TenantRecord {
    const KIND: &'static str = "tenant";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    Unverified,
    Verified,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// The domain in lower-case ASCII (IDNA) form.
    pub domain: String,
    pub tenant: TenantId,
    pub status: DomainStatus,
    /// The random value the owner publishes in a DNS TXT record to prove control.
    pub verification_token: String,
    pub created_at: OffsetDateTime,
    pub verified_at: Option<OffsetDateTime>,
    /// `dns` (the TXT record was found) or `manual` (an operator vouched, on an air-gapped site).
    #[serde(default)]
    pub verification_method: Option<String>,
    /// The admin key that verified it.
    #[serde(default)]
    pub verified_by: Option<String>,
}

impl Record for DomainRecord {
    const KIND: &'static str = "domain";
}

pub fn get(src: &impl Source, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
    codec::get(src, TENANTS, id.key())
}

pub fn id_by_slug(src: &impl Source, slug: &str) -> Result<Option<TenantId>, StoreError> {
    let table = src.table(TENANT_SLUGS)?;
    Ok(table.get(slug)?.map(|v| TenantId::from_key(v.value())))
}

/// Up to `limit` tenants in creation order, starting after `after`.
pub fn list(
    src: &impl Source,
    after: Option<TenantId>,
    limit: usize,
) -> Result<Vec<TenantRecord>, StoreError> {
    let table = src.table(TENANTS)?;
    let range = match after {
        Some(after) => table.range((after.key() + 1)..)?,
        None => table.range(0..)?,
    };
    range
        .take(limit)
        .map(|entry| {
            let (_, value) = entry?;
            codec::decode(value.value())
        })
        .collect()
}

/// Writes the record; the slug index is kept by `claim_slug` and `release_slug`.
pub fn put(tx: &WriteTx<'_>, tenant: &TenantRecord) -> Result<(), StoreError> {
    tx.table_mut(TENANTS)?.insert(tenant.id.key(), codec::encode(tenant)?.as_slice())?;
    Ok(())
}

/// Points `slug` at `tenant`, unless another tenant holds it. Returns whether it now does.
pub fn claim_slug(tx: &WriteTx<'_>, slug: &str, tenant: TenantId) -> Result<bool, StoreError> {
    let mut table = tx.table_mut(TENANT_SLUGS)?;
    if let Some(holder) = table.get(slug)?.map(|v| v.value()) {
        return Ok(holder == tenant.key());
    }
    table.insert(slug, tenant.key())?;
    Ok(true)
}

pub fn release_slug(tx: &WriteTx<'_>, slug: &str) -> Result<(), StoreError> {
    tx.table_mut(TENANT_SLUGS)?.remove(slug)?;
    Ok(())
}

pub fn domains(src: &impl Source, tenant: TenantId) -> Result<Vec<DomainRecord>, StoreError> {
    let table = src.table(DOMAINS)?;
    let mut out = Vec::new();
    for entry in table.range((tenant.key(), "")..)? {
        let (key, value) = entry?;
        if key.value().0 != tenant.key() {
            break;
        }
        out.push(codec::decode(value.value())?);
    }
    Ok(out)
}

pub fn domain(src: &impl Source, tenant: TenantId, domain: &str) -> Result<Option<DomainRecord>, StoreError> {
    codec::get(src, DOMAINS, (tenant.key(), domain))
}

/// The tenant a domain belongs to, verified or not.
pub fn domain_owner(src: &impl Source, domain: &str) -> Result<Option<TenantId>, StoreError> {
    let table = src.table(DOMAIN_OWNERS)?;
    Ok(table.get(domain)?.map(|v| TenantId::from_key(v.value())))
}

/// Adds the domain to its tenant unless a tenant already holds it; returns that holder if so.
pub fn claim_domain(tx: &WriteTx<'_>, record: &DomainRecord) -> Result<Option<TenantId>, StoreError> {
    let mut owners = tx.table_mut(DOMAIN_OWNERS)?;
    if let Some(owner) = owners.get(record.domain.as_str())?.map(|v| v.value()) {
        return Ok(Some(TenantId::from_key(owner)));
    }
    owners.insert(record.domain.as_str(), record.tenant.key())?;
    drop(owners);
    put_domain(tx, record)?;
    Ok(None)
}

/// Overwrites a domain's record (its verification state).
pub fn put_domain(tx: &WriteTx<'_>, record: &DomainRecord) -> Result<(), StoreError> {
    tx.table_mut(DOMAINS)?
        .insert((record.tenant.key(), record.domain.as_str()), codec::encode(record)?.as_slice())?;
    Ok(())
}

/// Removes a tenant's domain; returns whether it had it.
pub fn remove_domain(tx: &WriteTx<'_>, tenant: TenantId, domain: &str) -> Result<bool, StoreError> {
    let removed = tx.table_mut(DOMAINS)?.remove((tenant.key(), domain))?.is_some();
    if removed {
        tx.table_mut(DOMAIN_OWNERS)?.remove(domain)?;
    }
    Ok(removed)
}

/// Deletes a tenant and everything that belongs to it, in the caller's transaction.
pub fn delete(tx: &WriteTx<'_>, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
    let Some(tenant) = get(tx, id)? else {
        return Ok(None);
    };
    for domain in domains(tx, id)? {
        remove_domain(tx, id, &domain.domain)?;
    }
    release_slug(tx, &tenant.slug)?;
    directory::delete_tenant(tx, id)?;
    sessions::delete_tenant(tx, id)?;
    credentials::delete_tenant(tx, id)?;
    scim_tokens::delete_tenant(tx, id)?;
    saml::delete_tenant(tx, id)?;
    oidc::delete_tenant(tx, id)?;
    access::delete_tenant(tx, id)?;
    setup_links::delete_tenant(tx, id)?;
    tx.table_mut(TENANTS)?.remove(id.key())?;
    Ok(Some(tenant))
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::{
        ids::{GroupId, SessionId, UserId},
        store::{
            directory::{
                self,
                tests::{group_record, user_record},
            },
            sessions, testing,
        },
    };

    /// A tenant with a domain, a user in a group, and a session of that user.
    fn populate(
        tx: &WriteTx<'_>,
        slug: &str,
        domain: &str,
    ) -> Result<(TenantId, UserId, GroupId, SessionId), StoreError> {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let tenant = TenantRecord {
            id: TenantId::generate(),
            slug: slug.into(),
            display_name: slug.into(),
            status: TenantStatus::Active,
            seat_limit: None,
            deleted_user_retention_days: None,
            session_policy: SessionPolicy::default(),
            require_sso: false,
            google_hosted_domains: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        assert!(claim_slug(tx, slug, tenant.id)?);
        put(tx, &tenant)?;
        let domain = DomainRecord {
            domain: domain.into(),
            tenant: tenant.id,
            status: DomainStatus::Unverified,
            verification_token: "t".into(),
            created_at: now,
            verified_at: None,
            verification_method: None,
            verified_by: None,
        };
        assert_eq!(claim_domain(tx, &domain)?, None);
        let user = user_record(tenant.id, "ada", &format!("ada@{}", domain.domain));
        directory::save_user(tx, &user)?.unwrap();
        let group = group_record(tenant.id, "Staff");
        directory::save_group(tx, &group)?.unwrap();
        directory::add_member(tx, tenant.id, group.id, user.id)?;
        let session = sessions::tests::session_record(tenant.id, user.id, now);
        sessions::put(tx, &session)?;
        Ok((tenant.id, user.id, group.id, session.id))
    }

    #[tokio::test]
    async fn deleting_a_tenant_removes_everything_it_owns_and_nothing_else() {
        let (_dir, store) = testing::store();
        let ((gone, gone_user, gone_group, gone_session), (kept, kept_user, kept_group, kept_session)) =
            store
                .write(|tx| {
                    Ok::<_, StoreError>((
                        populate(tx, "acme", "acme.test")?,
                        populate(tx, "globex", "globex.test")?,
                    ))
                })
                .await
                .unwrap();
        assert!(store.write(move |tx| delete(tx, gone)).await.unwrap().is_some());

        let check = move |tx: &crate::store::ReadTx| -> Result<_, StoreError> {
            Ok((
                get(tx, gone)?.is_none()
                    && id_by_slug(tx, "acme")?.is_none()
                    && domain_owner(tx, "acme.test")?.is_none()
                    && domains(tx, gone)?.is_empty()
                    && directory::user(tx, gone, gone_user)?.is_none()
                    && directory::user_by_email(tx, gone, "ada@acme.test")?.is_none()
                    && directory::group(tx, gone, gone_group)?.is_none()
                    && directory::user_id_by_name(tx, gone, "ada")?.is_none()
                    && directory::counts(tx, gone)? == directory::Counts::default()
                    && directory::groups_of(tx, gone, gone_user)?.is_empty()
                    && sessions::get(tx, gone_session)?.is_none(),
                get(tx, kept)?.is_some()
                    && id_by_slug(tx, "globex")? == Some(kept)
                    && domain_owner(tx, "globex.test")? == Some(kept)
                    && directory::user_by_email(tx, kept, "ada@globex.test")?.is_some()
                    && directory::user_id_by_name(tx, kept, "ada")? == Some(kept_user)
                    && directory::members_of(tx, kept, kept_group)? == vec![kept_user]
                    && sessions::get(tx, kept_session)?.is_some(),
            ))
        };
        assert_eq!(store.read(check).await.unwrap(), (true, true));
    }
}
