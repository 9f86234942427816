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

use std::collections::{HashMap, HashSet, hash_map::Entry};

use serde_json::{Value, json};

use policy::Subject;
pub use policy::{Compiled, Evaluated, compile};

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
    fn new(kind: &str, detail: Value) -> Self {
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
fn load(src: &impl Source, tenant: TenantId) -> Result<Option<(u64, Compiled)>, StoreError> {
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

    /// The keys (`group_keys`) of the user's groups, and the groups their last sign-in claimed.
    fn groups_of(
        &mut self,
        src: &impl Source,
        user: &UserRecord,
        claims: Option<&SignInClaims>,
    ) -> Result<HashSet<String>, StoreError> {
        let mut keys = HashSet::new();
        for group in directory::groups_of(src, user.tenant, user.id)? {
            let known = match self.group_keys.entry(group) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(slot) => {
                    let found = directory::group(src, user.tenant, group)?;
                    slot.insert(found.as_ref().map(group_keys).unwrap_or_default())
                }
            };
            keys.extend(known.iter().cloned());
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

/// What rules may name a group by: its id (stable across renames), its display name and the
/// IdP's external id, lower-cased.
fn group_keys(group: &GroupRecord) -> Vec<String> {
    let mut keys = vec![group.id.to_string(), group.display_name.trim().to_lowercase()];
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
    let same_grants =
        before.roles == after.roles && before.tier == after.tier && before.programs == after.programs;
    if same_grants && before.granted_by == after.granted_by && before.claims == after.claims {
        return Ok(false);
    }
    access::put_user_access(tx, user.tenant, user.id, &after)?;
    if same_grants {
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
    let (named_before, named_after) = (policy.named(&keys_before), policy.named(&keys_after));
    if named_before.is_empty() && named_after.is_empty() {
        return Ok(Reevaluated::default());
    }
    let renamed = named_before != named_after;
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

/// Before a user created at sign-in is saved: what the IdP claimed goes in first, so that the
/// user's first evaluation already reads it.
pub fn claims_of_new_user(
    tx: &WriteTx<'_>,
    user: &UserRecord,
    claims: &SignInClaims,
) -> Result<(), StoreError> {
    let record = UserAccessRecord { claims: Some(claims.clone()), ..Default::default() };
    access::put_user_access(tx, user.tenant, user.id, &record)
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

/// Saves a policy (`compiled` is its compiled form) and re-evaluates every user of the tenant in
/// the same transaction, so that no token is ever issued from a mix of the old and the new policy.
pub fn save_policy(
    tx: &WriteTx<'_>,
    change: &Change,
    record: &PolicyRecord,
    compiled: &Compiled,
) -> Result<Reevaluated, StoreError> {
    access::put_policy(tx, record)?;
    let users = directory::user_ids(tx, change.tenant)?;
    let cause = Cause::new("policy.saved", json!({ "version": record.version }));
    reevaluate_users(tx, change, compiled, record.version, users, &cause)
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
    let ids = match only {
        Some(id) => vec![id],
        None => directory::user_ids(src, tenant)?,
    };
    let mut evaluated = 0;
    for id in ids {
        let Some(user) = directory::user(src, tenant, id)? else {
            continue;
        };
        let current = access::user_access(src, tenant, id)?.unwrap_or_default();
        let proposed = evaluator.evaluate(src, &user, current.claims.as_ref())?;
        evaluated += 1;
        visit(Proposed { user, current, proposed });
    }
    Ok(evaluated)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::{
        directory::{self as dir, DirectoryError, tests::change},
        store::{
            Store,
            audit::{self, AuditRecord},
            directory::tests::{group_record, user_record},
            journal::{self, EventRecord},
            testing,
        },
    };

    fn sales_policy(tenant: TenantId, version: u64) -> PolicyRecord {
        let policy = serde_json::from_value(json!({
            "roles": [{ "name": "sales" }, { "name": "engineer" }, { "name": "member" }],
            "tiers": [{ "name": "pro" }],
            "rules": [
                { "id": "sales", "when": { "group": "Sales" }, "grant": { "roles": ["sales"], "tier": "pro" } },
                { "id": "eng", "when": { "attribute": { "name": "department", "eq": "Engineering" } }, "grant": { "roles": ["engineer"] } },
            ],
            "default": { "roles": ["member"] },
        }))
        .unwrap();
        PolicyRecord { tenant, version, policy, updated_at: OffsetDateTime::UNIX_EPOCH }
    }

    /// A store with one tenant, and a SCIM token's change to it.
    async fn tenant_store() -> (tempfile::TempDir, Store, Change, TenantId) {
        let (dir, store) = testing::store();
        let change = change(&store, None, None).await;
        let tenant = change.tenant;
        (dir, store, change, tenant)
    }

    fn save(tx: &WriteTx<'_>, change: &Change, record: &PolicyRecord) -> Result<Reevaluated, StoreError> {
        save_policy(tx, change, record, &compile(&record.policy).unwrap())
    }

    async fn journal_since(store: &Store, seq: u64) -> (Vec<EventRecord>, Vec<AuditRecord>) {
        store
            .read(move |tx| {
                Ok::<_, StoreError>((journal::events_after(tx, seq, 1000)?, audit::after(tx, seq, 1000)?))
            })
            .await
            .unwrap()
    }

    async fn access_of(store: &Store, tenant: TenantId, user: UserId) -> Option<UserAccessRecord> {
        store.read(move |tx| access::user_access(tx, tenant, user)).await.unwrap()
    }

    fn kinds(events: &[EventRecord]) -> Vec<&str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[tokio::test]
    async fn a_membership_change_re_evaluates_only_the_member_and_says_which_rule_gave_what() {
        let (_dir, store, change, tenant) = tenant_store().await;
        let (ada, bob) = (user_record(tenant, "ada", "ada@x"), user_record(tenant, "bob", "bob@x"));
        let (sales, marketing) = (group_record(tenant, "Sales"), group_record(tenant, "Marketing"));
        let (c, a, b, s, m) = (change.clone(), ada.clone(), bob.clone(), sales.clone(), marketing.clone());
        store
            .write(move |tx| {
                save(tx, &c, &sales_policy(tenant, 1))?;
                dir::create_user(tx, &c, &a)?;
                dir::create_user(tx, &c, &b)?;
                dir::create_group(tx, &c, &s, &[])?;
                dir::create_group(tx, &c, &m, &[])?;
                Ok::<_, DirectoryError>(())
            })
            .await
            .unwrap();
        assert_eq!(access_of(&store, tenant, ada.id).await.unwrap().roles, ["member"]);
        let before_bob = access_of(&store, tenant, bob.id).await.unwrap();
        let seq = journal_since(&store, 0).await.0.last().unwrap().seq;

        // Marketing is named by no rule: nothing is evaluated.
        let (c, m, id) = (change.clone(), marketing.clone(), ada.id);
        store.write(move |tx| dir::update_group(tx, &c, &m, &m, &[id], &[], json!({}))).await.unwrap();
        let (events, audit) = journal_since(&store, seq).await;
        assert_eq!(kinds(&events), ["group.member_added"]);
        assert!(audit.last().unwrap().detail.get("access").is_none());

        let (c, s, id) = (change.clone(), sales.clone(), ada.id);
        store.write(move |tx| dir::update_group(tx, &c, &s, &s, &[id], &[], json!({}))).await.unwrap();
        let (events, audit) = journal_since(&store, seq).await;
        assert_eq!(kinds(&events), ["group.member_added", "group.member_added", "user.roles_changed"]);
        let changed = &events[2].data;
        assert_eq!(changed["before"], json!({ "roles": ["member"], "tier": null, "programs": [] }));
        assert_eq!(changed["after"], json!({ "roles": ["sales"], "tier": "pro", "programs": [] }));
        let roles_change = audit.iter().find(|r| r.action == "scim.user.roles_change").unwrap();
        assert_eq!(roles_change.detail["granted_by"]["roles"]["sales"], json!(["sales"]));
        assert_eq!(roles_change.detail["granted_by"]["tier"], "sales");
        assert_eq!(roles_change.detail["cause"]["kind"], "group.members_changed");
        assert_eq!(roles_change.detail["cause"]["group"]["display_name"], "Sales");
        assert_eq!(audit.last().unwrap().detail["access"], json!({ "evaluated": 1, "changed": 1 }));
        assert_eq!(access_of(&store, tenant, bob.id).await.unwrap(), before_bob, "bob is not rewritten");

        // Leaving the group takes the role away again.
        let (c, s, id) = (change.clone(), sales.clone(), ada.id);
        store.write(move |tx| dir::update_group(tx, &c, &s, &s, &[], &[id], json!({}))).await.unwrap();
        assert_eq!(access_of(&store, tenant, ada.id).await.unwrap().roles, ["member"]);
    }

    #[tokio::test]
    async fn renaming_or_deleting_a_named_group_re_evaluates_its_members() {
        let (_dir, store, change, tenant) = tenant_store().await;
        let ada = user_record(tenant, "ada", "ada@x");
        let team = group_record(tenant, "Sales Team");
        let (c, a, t) = (change.clone(), ada.clone(), team.clone());
        store
            .write(move |tx| {
                save(tx, &c, &sales_policy(tenant, 1))?;
                dir::create_user(tx, &c, &a)?;
                dir::create_group(tx, &c, &t, &[a.id])?;
                Ok::<_, DirectoryError>(())
            })
            .await
            .unwrap();
        assert_eq!(access_of(&store, tenant, ada.id).await.unwrap().roles, ["member"]);
        let renamed = GroupRecord { display_name: "Sales".into(), ..team.clone() };
        let (c, r) = (change.clone(), renamed.clone());
        store.write(move |tx| dir::update_group(tx, &c, &team, &r, &[], &[], json!({}))).await.unwrap();
        assert_eq!(access_of(&store, tenant, ada.id).await.unwrap().roles, ["sales"]);
        let c = change.clone();
        store.write(move |tx| dir::delete_group(tx, &c, renamed.id)).await.unwrap();
        let after = access_of(&store, tenant, ada.id).await.unwrap();
        assert_eq!((after.roles, after.tier), (vec!["member".to_owned()], None));
    }

    #[tokio::test]
    async fn attribute_rules_follow_user_updates_and_a_policy_save_re_evaluates_everyone() {
        let (_dir, store, change, tenant) = tenant_store().await;
        let ada = user_record(tenant, "ada", "ada@x");
        let (c, a) = (change.clone(), ada.clone());
        store.write(move |tx| dir::create_user(tx, &c, &a)).await.unwrap();
        assert!(access_of(&store, tenant, ada.id).await.is_none(), "no policy: nothing stored");

        let c = change.clone();
        let saved = store.write(move |tx| save(tx, &c, &sales_policy(tenant, 1))).await.unwrap();
        assert_eq!(saved, Reevaluated { evaluated: 1, changed: 1 });
        let mut engineer = ada.clone();
        engineer.profile["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
            json!({ "department": "engineering" });
        let (c, e, a) = (change.clone(), engineer.clone(), ada.clone());
        store.write(move |tx| dir::update_user(tx, &c, &a, &e, json!({}))).await.unwrap();
        let access = access_of(&store, tenant, ada.id).await.unwrap();
        assert_eq!(access.roles, ["engineer"]);
        assert_eq!(access.granted_by.roles["engineer"], ["eng"]);

        let c = change.clone();
        let again = store.write(move |tx| save(tx, &c, &sales_policy(tenant, 2))).await.unwrap();
        assert_eq!(again, Reevaluated { evaluated: 1, changed: 0 });
        let deleted = store.write(move |tx| dir::delete_user(tx, &change, ada.id)).await.unwrap();
        assert!(deleted && access_of(&store, tenant, ada.id).await.is_none());
    }

    #[tokio::test]
    async fn groups_claimed_at_sign_in_feed_the_rules_and_are_kept_for_later_evaluations() {
        let (_dir, store, change, tenant) = tenant_store().await;
        let ada = user_record(tenant, "ada", "ada@x");
        let (c, a) = (change.clone(), ada.clone());
        store.write(move |tx| dir::create_user(tx, &c, &a)).await.unwrap();
        let claims = SignInClaims { groups: vec!["SALES".into()], attributes: Default::default() };
        let (c, a, cl) = (change.clone(), ada.clone(), claims.clone());
        store.write(move |tx| signed_in(tx, &c, &a, cl.clone())).await.unwrap();
        let kept = access_of(&store, tenant, ada.id).await.unwrap();
        assert!(kept.roles.is_empty() && kept.claims.as_ref() == Some(&claims), "no policy yet");

        let c = change.clone();
        store.write(move |tx| save(tx, &c, &sales_policy(tenant, 1))).await.unwrap();
        assert_eq!(access_of(&store, tenant, ada.id).await.unwrap().roles, ["sales"]);
        let seq = journal_since(&store, 0).await.0.last().unwrap().seq;
        let (c, a, cl) = (change.clone(), ada.clone(), claims.clone());
        store.write(move |tx| signed_in(tx, &c, &a, cl.clone())).await.unwrap();
        assert!(journal_since(&store, seq).await.0.is_empty(), "the same claims change nothing");
        let none = SignInClaims::default();
        store.write(move |tx| signed_in(tx, &change, &ada, none.clone())).await.unwrap();
        let (events, _) = journal_since(&store, seq).await;
        assert_eq!(kinds(&events), ["user.roles_changed"]);
    }

    #[tokio::test]
    async fn a_rule_naming_a_group_by_id_survives_its_renames_without_re_evaluating_anyone() {
        let (_dir, store, change, tenant) = tenant_store().await;
        let ada = user_record(tenant, "ada", "ada@x");
        let team = group_record(tenant, "Team");
        let mut record = sales_policy(tenant, 1);
        record.policy.rules[0].when = access::Condition::Group(team.id.to_string());
        let (c, a, t) = (change.clone(), ada.clone(), team.clone());
        store
            .write(move |tx| {
                save(tx, &c, &record)?;
                dir::create_user(tx, &c, &a)?;
                dir::create_group(tx, &c, &t, &[a.id])?;
                Ok::<_, DirectoryError>(())
            })
            .await
            .unwrap();
        assert_eq!(access_of(&store, tenant, ada.id).await.unwrap().roles, ["sales"]);
        let renamed = GroupRecord { display_name: "Sales Team".into(), ..team.clone() };
        let c = change.clone();
        let result = store
            .write(move |tx| {
                directory::save_group(tx, &renamed)?.unwrap();
                group_changed(tx, &c, Some(&team), &renamed, &[], &[], false)
            })
            .await
            .unwrap();
        assert_eq!(result, Reevaluated::default());
        assert_eq!(access_of(&store, tenant, ada.id).await.unwrap().roles, ["sales"]);
    }

    #[tokio::test]
    async fn a_user_created_at_sign_in_is_evaluated_once_with_what_the_idp_claimed() {
        let (_dir, store, change, tenant) = tenant_store().await;
        let c = change.clone();
        store.write(move |tx| save(tx, &c, &sales_policy(tenant, 1))).await.unwrap();
        let grace = user_record(tenant, "grace", "grace@x");
        let claims = SignInClaims { groups: vec!["Sales".into()], attributes: Default::default() };
        let (c, g) = (change.clone(), grace.clone());
        store
            .write(move |tx| dir::federated::admit(tx, &c, Some(&g), g.id, Some(&claims)))
            .await
            .unwrap()
            .unwrap();
        let (events, _) = journal_since(&store, 0).await;
        let changed: Vec<&EventRecord> = events.iter().filter(|e| e.kind == "user.roles_changed").collect();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].data["after"]["roles"], json!(["sales"]));
    }
}
