//! Roles, tiers and programs: a tenant's access policy applied to its users, live.
//!
//! Every change that can alter what a user gets re-evaluates that user inside the change's own
//! write transaction: a SCIM membership change (only for groups some rule names), a SCIM change
//! of a user's attributes (only when some rule reads attributes), the groups and attributes an
//! IdP claims at an SSO sign-in, and the saving of the policy itself. A user whose access changes
//! gets their record rewritten, a `user.roles_changed` event with the before and after, and an
//! audit record that says which rule gave what; a user whose access stays is not written at all.

pub mod policy;
pub mod routes;

use std::{
    collections::{HashMap, HashSet},
    ops::ControlFlow,
};

use serde_json::{Value, json};

use policy::Subject;
pub use policy::{Compiled, Evaluated, PolicyError, compile};

use super::{Change, user_data, user_subject};
use crate::{
    ids::{GroupId, TenantId, UserId},
    store::{
        Source, StoreError, WriteTx,
        access::{self, GrantedBy, PolicyRecord, SignInClaims, UserAccessRecord},
        directory::{self, GroupRecord, UserRecord},
    },
};

/// What set a re-evaluation off, for the audit record.
#[derive(Debug, Clone)]
pub struct Cause(Value);

impl Cause {
    pub fn new(kind: &str, detail: Value) -> Self {
        let mut cause = json!({ "kind": kind });
        if let (Some(all), Some(extra)) = (cause.as_object_mut(), detail.as_object()) {
            all.extend(extra.clone());
        }
        Cause(cause)
    }

    fn of_group(kind: &str, group: &GroupRecord) -> Self {
        Cause::new(kind, json!({ "group": { "id": group.id, "display_name": group.display_name } }))
    }
}

/// The tenant's policy, compiled, with its version; None when the tenant has none.
pub fn load(src: &impl Source, tenant: TenantId) -> Result<Option<(u64, Compiled)>, StoreError> {
    let Some(record) = access::policy(src, tenant)? else {
        return Ok(None);
    };
    // A stored policy was compiled before it was saved; failing now means the store is damaged.
    let compiled = compile(&record.policy)
        .map_err(|err| StoreError::Corrupt { kind: "access policy", message: err.to_string() })?;
    Ok(Some((record.version, compiled)))
}

/// Re-evaluates users against one policy, remembering the groups it has read.
struct Evaluator<'p> {
    policy: &'p Compiled,
    version: u64,
    group_keys: HashMap<GroupId, Vec<String>>,
}

/// How many users a re-evaluation looked at and how many it changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reevaluated {
    pub evaluated: usize,
    pub changed: usize,
}

impl<'p> Evaluator<'p> {
    fn new(policy: &'p Compiled, version: u64) -> Self {
        Self { policy, version, group_keys: HashMap::new() }
    }

    /// The lower-cased names and external ids of the user's groups and claimed groups.
    fn groups_of(
        &mut self,
        src: &impl Source,
        user: &UserRecord,
        claims: Option<&SignInClaims>,
    ) -> Result<HashSet<String>, StoreError> {
        let mut keys = HashSet::new();
        for group in directory::groups_of(src, user.tenant, user.id)? {
            if !self.group_keys.contains_key(&group) {
                let found = directory::group(src, user.tenant, group)?;
                self.group_keys.insert(group, found.as_ref().map(group_keys).unwrap_or_default());
            }
            keys.extend(self.group_keys[&group].iter().cloned());
        }
        if let Some(claims) = claims {
            keys.extend(claims.groups.iter().map(|g| g.trim().to_lowercase()));
        }
        Ok(keys)
    }

    fn evaluate(
        &mut self,
        src: &impl Source,
        user: &UserRecord,
        claims: Option<&SignInClaims>,
    ) -> Result<Evaluated, StoreError> {
        let groups = self.groups_of(src, user, claims)?;
        Ok(self.policy.evaluate(&Subject { user, groups: &groups, claims }))
    }

    /// Re-evaluates one user and records what changed (see the module's comment).
    fn apply(
        &mut self,
        tx: &WriteTx<'_>,
        change: &Change,
        user: &UserRecord,
        stored: Option<UserAccessRecord>,
        cause: &Cause,
    ) -> Result<bool, StoreError> {
        let before = stored.unwrap_or_default();
        let evaluated = self.evaluate(tx, user, before.claims.as_ref())?;
        let after = UserAccessRecord {
            roles: evaluated.roles.into_iter().collect(),
            tier: evaluated.tier,
            programs: evaluated.programs.into_iter().collect(),
            granted_by: evaluated.granted_by,
            policy_version: self.version,
            claims: before.claims.clone(),
            updated_at: Some(change.now),
        };
        write_if_changed(tx, change, user, &before, after, cause)
    }
}

fn group_keys(group: &GroupRecord) -> Vec<String> {
    let mut keys = vec![group.display_name.trim().to_lowercase()];
    keys.extend(group.external_id.as_ref().map(|id| id.trim().to_lowercase()));
    keys
}

/// Writes the user's new access if it differs from the stored one; a change of roles, tier or
/// programs (not only of the reasons) is announced and audited.
fn write_if_changed(
    tx: &WriteTx<'_>,
    change: &Change,
    user: &UserRecord,
    before: &UserAccessRecord,
    after: UserAccessRecord,
    cause: &Cause,
) -> Result<bool, StoreError> {
    let granted = |r: &UserAccessRecord| (r.roles.clone(), r.tier.clone(), r.programs.clone());
    if granted(before) == granted(&after)
        && before.granted_by == after.granted_by
        && before.claims == after.claims
    {
        return Ok(false);
    }
    access::put_user_access(tx, user.tenant, user.id, &after)?;
    if granted(before) == granted(&after) {
        return Ok(false);
    }
    let mut data = user_data(user);
    data["before"] = access_view(before);
    data["after"] = access_view(&after);
    change.event(tx, "user.roles_changed", user_subject(user), data)?;
    let detail = json!({
        "before": access_view(before),
        "after": access_view(&after),
        "granted_by": granted_by_view(&after.granted_by),
        "cause": cause.0,
        "policy_version": after.policy_version,
    });
    change.audit(tx, "user.roles_change", user_subject(user), detail)?;
    Ok(true)
}

/// Roles, tier and programs as events, audit records and the admin API show them.
pub fn access_view(record: &UserAccessRecord) -> Value {
    json!({ "roles": record.roles, "tier": record.tier, "programs": record.programs })
}

pub fn granted_by_view(granted_by: &GrantedBy) -> Value {
    json!({ "roles": granted_by.roles, "tier": granted_by.tier, "programs": granted_by.programs })
}

/// After a user was created or their record changed.
pub fn user_saved(
    tx: &WriteTx<'_>,
    change: &Change,
    user: &UserRecord,
    created: bool,
) -> Result<(), StoreError> {
    let Some((version, policy)) = load(tx, change.tenant)? else {
        return Ok(());
    };
    // Without attribute rules an update cannot change anything: memberships change elsewhere.
    if !created && !policy.reads_attributes() {
        return Ok(());
    }
    let stored = access::user_access(tx, user.tenant, user.id)?;
    let kind = if created { "user.created" } else { "user.updated" };
    Evaluator::new(&policy, version).apply(tx, change, user, stored, &Cause::new(kind, json!({})))?;
    Ok(())
}

pub fn user_deleted(tx: &WriteTx<'_>, tenant: TenantId, user: UserId) -> Result<(), StoreError> {
    access::delete_user_access(tx, tenant, user)
}

/// After a group was created, changed or deleted: re-evaluates the users whose memberships
/// changed (`added`, `removed`), or every member when a name the rules read was gained or lost.
pub fn group_changed(
    tx: &WriteTx<'_>,
    change: &Change,
    before: Option<&GroupRecord>,
    after: &GroupRecord,
    added: &[UserId],
    removed: &[UserId],
    deleted: bool,
) -> Result<Reevaluated, StoreError> {
    let Some((version, policy)) = load(tx, change.tenant)? else {
        return Ok(Reevaluated::default());
    };
    let keys_after = group_keys(after);
    let keys_before = before.map(group_keys).unwrap_or_else(|| keys_after.clone());
    if !policy.reads_group(&keys_before) && !policy.reads_group(&keys_after) {
        return Ok(Reevaluated::default());
    }
    let renamed = keys_before != keys_after;
    let kind = match (deleted, before) {
        (true, _) => "group.deleted",
        (false, None) => "group.created",
        (false, Some(_)) if renamed => "group.renamed",
        (false, Some(_)) => "group.members_changed",
    };
    let cause = Cause::of_group(kind, after);
    let mut users: Vec<UserId> = added.iter().chain(removed).copied().collect();
    if renamed && !deleted {
        users.extend(directory::members_of(tx, after.tenant, after.id)?);
    }
    users.sort();
    users.dedup();
    reevaluate_users(tx, change, &policy, version, users, &cause)
}

fn reevaluate_users(
    tx: &WriteTx<'_>,
    change: &Change,
    policy: &Compiled,
    version: u64,
    users: impl IntoIterator<Item = UserId>,
    cause: &Cause,
) -> Result<Reevaluated, StoreError> {
    let mut evaluator = Evaluator::new(policy, version);
    let mut result = Reevaluated::default();
    for id in users {
        let Some(user) = directory::user(tx, change.tenant, id)? else {
            continue;
        };
        let stored = access::user_access(tx, change.tenant, id)?;
        result.evaluated += 1;
        if evaluator.apply(tx, change, &user, stored, cause)? {
            result.changed += 1;
        }
    }
    Ok(result)
}

/// At an SSO sign-in through a connection that maps groups: remembers what the IdP claimed and
/// re-evaluates the user with it.
pub fn signed_in(
    tx: &WriteTx<'_>,
    change: &Change,
    user: &UserRecord,
    claims: SignInClaims,
) -> Result<(), StoreError> {
    let stored = access::user_access(tx, user.tenant, user.id)?;
    if stored.as_ref().is_some_and(|s| s.claims.as_ref() == Some(&claims)) {
        return Ok(());
    }
    // The audit record's actor names the IdP.
    let cause = Cause::new("sign_in", json!({}));
    let before = stored.unwrap_or_default();
    let with_claims = UserAccessRecord { claims: Some(claims), ..before.clone() };
    match load(tx, change.tenant)? {
        Some((version, policy)) => {
            Evaluator::new(&policy, version).apply(tx, change, user, Some(with_claims), &cause)?;
        }
        None => {
            write_if_changed(tx, change, user, &before, with_claims, &cause)?;
        }
    }
    Ok(())
}

/// Saves a validated policy and re-evaluates every user of the tenant in the same transaction,
/// so that no token is ever issued from a mix of the old and the new policy.
pub fn save_policy(
    tx: &WriteTx<'_>,
    change: &Change,
    record: &PolicyRecord,
) -> Result<Reevaluated, StoreError> {
    let policy = compile(&record.policy)
        .map_err(|err| StoreError::Corrupt { kind: "access policy", message: err.to_string() })?;
    access::put_policy(tx, record)?;
    let mut users = Vec::new();
    directory::visit_users(tx, change.tenant, 0, |user| {
        users.push(user.id);
        ControlFlow::Continue(())
    })?;
    let cause = Cause::new("policy.saved", json!({ "version": record.version }));
    reevaluate_users(tx, change, &policy, record.version, users, &cause)
}

/// What a candidate policy would give one user, next to what they have.
#[derive(Debug, Clone)]
pub struct Proposed {
    pub user: UserRecord,
    pub current: UserAccessRecord,
    pub proposed: Evaluated,
}

impl Proposed {
    pub fn changes(&self) -> bool {
        let current = &self.current;
        current.roles.iter().ne(self.proposed.roles.iter())
            || current.tier != self.proposed.tier
            || current.programs.iter().ne(self.proposed.programs.iter())
    }
}

/// Evaluates a candidate policy for one user or for all of the tenant's, reading only: `visit`
/// sees each user's current and proposed access. Returns how many users were evaluated.
pub fn dry_run(
    src: &impl Source,
    tenant: TenantId,
    candidate: &Compiled,
    only: Option<UserId>,
    mut visit: impl FnMut(Proposed),
) -> Result<usize, StoreError> {
    let mut evaluator = Evaluator::new(candidate, 0);
    let mut evaluated = 0;
    let mut one = |user: UserRecord| -> Result<(), StoreError> {
        let current = access::user_access(src, tenant, user.id)?.unwrap_or_default();
        let proposed = evaluator.evaluate(src, &user, current.claims.as_ref())?;
        evaluated += 1;
        visit(Proposed { user, current, proposed });
        Ok(())
    };
    match only {
        Some(id) => {
            if let Some(user) = directory::user(src, tenant, id)? {
                one(user)?;
            }
        }
        None => {
            let mut failure = None;
            directory::visit_users(src, tenant, 0, |user| match one(user) {
                Ok(()) => ControlFlow::Continue(()),
                Err(err) => {
                    failure = Some(err);
                    ControlFlow::Break(())
                }
            })?;
            if let Some(err) = failure {
                return Err(err);
            }
        }
    }
    Ok(evaluated)
}
