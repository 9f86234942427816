//! Tenants' access policies (the app's roles, tiers and programs, and the rules that give them)
//! and what the rules gave each user.
//!
//! Tables:
//! - `access_policies` (tenant → policy): one versioned document per tenant.
//! - `user_access` ((tenant, user) → access): the roles, tier and programs the policy gives the
//!   user, which rule gave each, and the groups and attributes the user's last SSO sign-in
//!   claimed. Written only when one of these changes, in the transaction of the change that
//!   caused it, so tokens read it without evaluating anything.
//!
//! The policy is stored as the admin API shows it; `directory::access` validates it before it is
//! saved and compiles it for evaluation.

use std::collections::BTreeMap;

use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{TenantId, UserId};

const ACCESS_POLICIES: TableDefinition<u128, &[u8]> = TableDefinition::new("access_policies");
const USER_ACCESS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("user_access");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(ACCESS_POLICIES)?;
    tables.visit(USER_ACCESS)?;
    Ok(())
}

/// A tenant's vocabulary and rules, as the operator wrote them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub roles: Vec<Term>,
    #[serde(default)]
    pub tiers: Vec<Term>,
    #[serde(default)]
    pub programs: Vec<Term>,
    /// Evaluated in order: roles and programs of every matching rule add up; the first matching
    /// rule that names a tier gives it; a matching `final` rule ends the evaluation.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What a user gets in each dimension no matching rule gave anything in.
    #[serde(default)]
    pub default: Grant,
}

/// A role, tier or program of the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Names the rule in audit records and dry runs.
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub when: Condition,
    #[serde(default)]
    pub grant: Grant,
    /// When the rule matches, no later rule is evaluated.
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default)]
    pub programs: Vec<String>,
}

impl Grant {
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.tier.is_none() && self.programs.is_empty()
    }
}

/// What a rule asks of a user. Groups are named by display name or external id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A member of this group.
    Group(String),
    /// A member of any of these groups.
    AnyGroup(Vec<String>),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Attribute(AttributeTest),
}

/// A test of a user attribute; exactly one operator is set. Comparisons ignore case; a
/// multi-valued attribute passes when any value does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeTest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<String>,
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub tenant: TenantId,
    /// Counts saves, for ETags; the first save is version 1.
    pub version: u64,
    pub policy: Policy,
    pub updated_at: OffsetDateTime,
}

impl Record for PolicyRecord {
    const KIND: &'static str = "access policy";
}

/// Which rules gave a user each of their roles, their tier and each program (`default` for the
/// policy's default).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrantedBy {
    pub roles: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub programs: BTreeMap<String, Vec<String>>,
}

/// The groups and attributes an IdP sent at the user's last SSO sign-in: the rules' input for
/// tenants whose IdP does not provision groups over SCIM.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignInClaims {
    pub groups: Vec<String>,
    /// `department`, and the connection's custom fields by their names.
    pub attributes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserAccessRecord {
    pub roles: Vec<String>,
    pub tier: Option<String>,
    pub programs: Vec<String>,
    pub granted_by: GrantedBy,
    /// The policy version that gave this access; 0 before any policy was saved.
    pub policy_version: u64,
    pub claims: Option<SignInClaims>,
    pub updated_at: Option<OffsetDateTime>,
}

impl Record for UserAccessRecord {
    const KIND: &'static str = "user access";
}

pub fn policy(src: &impl Source, tenant: TenantId) -> Result<Option<PolicyRecord>, StoreError> {
    codec::get(src, ACCESS_POLICIES, tenant.key())
}

pub fn put_policy(tx: &WriteTx<'_>, record: &PolicyRecord) -> Result<(), StoreError> {
    tx.table_mut(ACCESS_POLICIES)?.insert(record.tenant.key(), codec::encode(record)?.as_slice())?;
    Ok(())
}

pub fn user_access(
    src: &impl Source,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<UserAccessRecord>, StoreError> {
    codec::get(src, USER_ACCESS, (tenant.key(), user.key()))
}

pub fn put_user_access(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    user: UserId,
    record: &UserAccessRecord,
) -> Result<(), StoreError> {
    tx.table_mut(USER_ACCESS)?.insert((tenant.key(), user.key()), codec::encode(record)?.as_slice())?;
    Ok(())
}

pub fn delete_user_access(tx: &WriteTx<'_>, tenant: TenantId, user: UserId) -> Result<(), StoreError> {
    tx.table_mut(USER_ACCESS)?.remove((tenant.key(), user.key()))?;
    Ok(())
}

pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    tx.table_mut(ACCESS_POLICIES)?.remove(tenant.key())?;
    let mut table = tx.table_mut(USER_ACCESS)?;
    table.retain_in((tenant.key(), 0)..=(tenant.key(), u128::MAX), |_, _| false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::testing;

    #[test]
    fn the_policy_reads_as_the_admin_api_writes_it() {
        let written = json!({
            "roles": [{ "name": "admin", "description": "Everything" }],
            "tiers": [{ "name": "gold" }],
            "rules": [{
                "id": "sales-admins",
                "when": { "all": [
                    { "group": "Sales" },
                    { "not": { "group": "Contractors" } },
                    { "attribute": { "name": "department", "eq": "Sales" } },
                ]},
                "grant": { "roles": ["admin"], "tier": "gold" },
                "final": true,
            }],
        });
        let policy: Policy = serde_json::from_value(written).unwrap();
        assert!(policy.rules[0].is_final);
        let stored: Policy = codec::decode(
            &codec::encode(&PolicyRecord {
                tenant: TenantId::generate(),
                version: 1,
                policy: policy.clone(),
                updated_at: OffsetDateTime::UNIX_EPOCH,
            })
            .unwrap(),
        )
        .map(|r: PolicyRecord| r.policy)
        .unwrap();
        assert_eq!(stored, policy);
        assert_eq!(
            serde_json::to_value(&policy).unwrap()["rules"][0]["when"]["all"][2]["attribute"],
            json!({ "name": "department", "eq": "Sales" })
        );
    }

    #[tokio::test]
    async fn a_tenants_access_goes_with_the_tenant() {
        let (_dir, store) = testing::store();
        let (acme, other) = (TenantId::generate(), TenantId::generate());
        let (ada, bob) = (UserId::generate(), UserId::generate());
        let record = UserAccessRecord { roles: vec!["admin".into()], ..Default::default() };
        store
            .write(move |tx| {
                put_user_access(tx, acme, ada, &record)?;
                put_user_access(tx, other, bob, &record)?;
                delete_tenant(tx, acme)
            })
            .await
            .unwrap();
        let (gone, kept) = store
            .read(move |tx| Ok::<_, StoreError>((user_access(tx, acme, ada)?, user_access(tx, other, bob)?)))
            .await
            .unwrap();
        assert!(gone.is_none() && kept.is_some());
    }
}
