//! Users, groups and memberships of each tenant's directory (filled by SCIM and by sign-in).
//!
//! Tables, all keyed tenant first:
//! - `users` ((tenant, user) → record) and `groups` ((tenant, group) → record);
//! - unique indexes: `user_names` ((tenant, lower-case userName) → user), `user_emails` ((tenant,
//!   lower-case sign-in email) → user), `group_names` ((tenant, lower-case displayName) → group);
//! - lookup indexes (several entries may share a value): `user_external_ids` and
//!   `user_email_values` ((tenant, value, user)), `group_external_ids` ((tenant, value, group));
//! - memberships in both directions, `group_members` ((tenant, group, user)) and `user_groups`
//!   ((tenant, user, group)), so that adding one member writes two small keys, whatever the size
//!   of the group;
//! - `directory_counts` (tenant → (users, active users, groups)), for seat limits and list totals;
//! - `deleted_users` ((tenant, user) → record kept for the tenant's retention period), and
//!   `deleted_user_purge_queue` ((purge time, tenant, user)) so that purging reads only what is due.
//!
//! Every index changes in the transaction that changes its record.

use std::ops::ControlFlow;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec};
use crate::ids::{GroupId, TenantId, UserId};

const USERS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("users");
const USER_NAMES: TableDefinition<(u128, &str), u128> = TableDefinition::new("user_names");
const USER_EMAILS: TableDefinition<(u128, &str), u128> = TableDefinition::new("user_emails");
/// (lower-case sign-in email, tenant) → user: the tenants a person has an account in, for
/// routing an address whose domain belongs to no tenant (a password account at gmail.com).
const SIGN_IN_EMAILS: TableDefinition<(&str, u128), u128> = TableDefinition::new("sign_in_emails");
const USER_EXTERNAL_IDS: TableDefinition<(u128, &str, u128), ()> = TableDefinition::new("user_external_ids");
const USER_EMAIL_VALUES: TableDefinition<(u128, &str, u128), ()> = TableDefinition::new("user_email_values");
const GROUPS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("groups");
const GROUP_NAMES: TableDefinition<(u128, &str), u128> = TableDefinition::new("group_names");
const GROUP_EXTERNAL_IDS: TableDefinition<(u128, &str, u128), ()> =
    TableDefinition::new("group_external_ids");
const GROUP_MEMBERS: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("group_members");
const USER_GROUPS: TableDefinition<(u128, u128, u128), ()> = TableDefinition::new("user_groups");
const COUNTS: TableDefinition<u128, (u64, u64, u64)> = TableDefinition::new("directory_counts");
const DELETED_USERS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("deleted_users");
/// (purge time in Unix seconds, tenant, user): the retained users in the order they expire.
const PURGE_QUEUE: TableDefinition<(i64, u128, u128), ()> = TableDefinition::new("deleted_user_purge_queue");

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(USERS)?;
    tables.visit(USER_NAMES)?;
    tables.visit(USER_EMAILS)?;
    tables.visit(SIGN_IN_EMAILS)?;
    tables.visit(USER_EXTERNAL_IDS)?;
    tables.visit(USER_EMAIL_VALUES)?;
    tables.visit(GROUPS)?;
    tables.visit(GROUP_NAMES)?;
    tables.visit(GROUP_EXTERNAL_IDS)?;
    tables.visit(GROUP_MEMBERS)?;
    tables.visit(USER_GROUPS)?;
    tables.visit(COUNTS)?;
    tables.visit(DELETED_USERS)?;
    tables.visit(PURGE_QUEUE)?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub tenant: TenantId,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    /// The address the user signs in with, lower-cased; unique within the tenant.
    pub email: Option<String>,
    /// Every email address of the user, lower-cased, for lookups by address.
    #[serde(default)]
    pub emails: Vec<String>,
    pub display_name: Option<String>,
    /// The user's profile in SCIM form (RFC 7643 §4.1): core attributes at the top level,
    /// extensions under their schema URN; `id`, `externalId`, `meta` and `groups` are kept
    /// elsewhere and never in here.
    #[serde(default)]
    pub profile: serde_json::Value,
    /// Counts changes, for ETags.
    #[serde(default)]
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for UserRecord {
    const KIND: &'static str = "user";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    pub tenant: TenantId,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Attributes beyond the name (extensions a client sent); members live in their own table.
    #[serde(default)]
    pub profile: serde_json::Value,
    #[serde(default)]
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Record for GroupRecord {
    const KIND: &'static str = "group";
}

/// A deleted user's data, kept for the tenant's retention period and then purged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedUserRecord {
    pub user: UserRecord,
    pub groups: Vec<GroupId>,
    pub deleted_at: OffsetDateTime,
    pub purge_after: OffsetDateTime,
}

impl Record for DeletedUserRecord {
    const KIND: &'static str = "deleted user";
}

/// How many users (and of them active) and groups a tenant has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub users: u64,
    pub active_users: u64,
    pub groups: u64,
}

/// Which unique value a write would have duplicated, and who holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    UserName(UserId),
    Email(UserId),
    GroupName(GroupId),
}

// ---- users ----

pub fn user(src: &impl Source, tenant: TenantId, id: UserId) -> Result<Option<UserRecord>, StoreError> {
    codec::get(src, USERS, (tenant.key(), id.key()))
}

/// The user whose userName is `name` (compared case-insensitively).
pub fn user_id_by_name(
    src: &impl Source,
    tenant: TenantId,
    name: &str,
) -> Result<Option<UserId>, StoreError> {
    let table = src.table(USER_NAMES)?;
    let id = table.get((tenant.key(), name.to_lowercase().as_str()))?.map(|v| v.value());
    Ok(id.map(UserId::from_key))
}

/// The user who signs in with `email` (lower-case).
pub fn user_by_email(
    src: &impl Source,
    tenant: TenantId,
    email: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let id = src.table(USER_EMAILS)?.get((tenant.key(), email))?.map(|v| v.value());
    match id {
        Some(id) => user(src, tenant, UserId::from_key(id)),
        None => Ok(None),
    }
}

/// Every (tenant, user) that signs in with `email` (lower-case), in tenant order.
pub fn accounts_by_email(src: &impl Source, email: &str) -> Result<Vec<(TenantId, UserId)>, StoreError> {
    let table = src.table(SIGN_IN_EMAILS)?;
    let range = table.range((email, 0)..=(email, u128::MAX))?;
    range
        .map(|entry| {
            let (key, user) = entry?;
            Ok((TenantId::from_key(key.value().1), UserId::from_key(user.value())))
        })
        .collect()
}

/// Schema 2: fills `sign_in_emails` from `user_emails`.
pub(super) fn backfill_sign_in_emails(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    let entries: Vec<(u128, String, u128)> = {
        let emails = tx.table_mut(USER_EMAILS)?;
        let range = emails.range::<(u128, &str)>(..)?;
        range
            .map(|entry| {
                let (key, user) = entry?;
                let (tenant, email) = key.value();
                Ok::<_, StoreError>((tenant, email.to_owned(), user.value()))
            })
            .collect::<Result<_, _>>()?
    };
    let mut index = tx.table_mut(SIGN_IN_EMAILS)?;
    for (tenant, email, user) in entries {
        index.insert((email.as_str(), tenant), user)?;
    }
    Ok(())
}

pub fn user_ids_by_external_id(
    src: &impl Source,
    tenant: TenantId,
    external_id: &str,
) -> Result<Vec<UserId>, StoreError> {
    Ok(lookup(src, USER_EXTERNAL_IDS, tenant, external_id)?.into_iter().map(UserId::from_key).collect())
}

/// Users with `email` (any case) among their addresses.
pub fn user_ids_by_email_value(
    src: &impl Source,
    tenant: TenantId,
    email: &str,
) -> Result<Vec<UserId>, StoreError> {
    let email = email.to_lowercase();
    Ok(lookup(src, USER_EMAIL_VALUES, tenant, &email)?.into_iter().map(UserId::from_key).collect())
}

/// The ids of the tenant's users in creation order, read from the keys alone.
pub fn user_ids(src: &impl Source, tenant: TenantId) -> Result<Vec<UserId>, StoreError> {
    let table = src.table(USERS)?;
    let t = tenant.key();
    let range = table.range((t, 0)..=(t, u128::MAX))?;
    range.map(|entry| Ok(UserId::from_key(entry?.0.value().1))).collect()
}

/// Visits the tenant's users in creation order, skipping the first `skip` without decoding them.
pub fn visit_users(
    src: &impl Source,
    tenant: TenantId,
    skip: usize,
    mut visit: impl FnMut(UserRecord) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let table = src.table(USERS)?;
    let t = tenant.key();
    for entry in table.range((t, 0)..=(t, u128::MAX))?.skip(skip) {
        if visit(codec::decode(entry?.1.value())?).is_break() {
            break;
        }
    }
    Ok(())
}

/// Visits the tenant's users in creation order, from the one after `after` (from the first if
/// none): the cursor of a listing.
pub fn visit_users_after(
    src: &impl Source,
    tenant: TenantId,
    after: Option<UserId>,
    mut visit: impl FnMut(UserRecord) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let table = src.table(USERS)?;
    let (t, start) = (tenant.key(), after.map_or(0, |a| a.key().saturating_add(1)));
    for entry in table.range((t, start)..=(t, u128::MAX))? {
        if visit(codec::decode(entry?.1.value())?).is_break() {
            break;
        }
    }
    Ok(())
}

/// Creates or replaces a user, keeping every index and the tenant's counts. If the userName or
/// sign-in email belongs to another user of the tenant, writes nothing and says which.
pub fn save_user(tx: &WriteTx<'_>, record: &UserRecord) -> Result<Result<(), Conflict>, StoreError> {
    let t = record.tenant.key();
    let previous = user(tx, record.tenant, record.id)?;
    let name = record.user_name.to_lowercase();
    if let Some(holder) = holder(tx, USER_NAMES, t, &name)? {
        if holder != record.id.key() {
            return Ok(Err(Conflict::UserName(UserId::from_key(holder))));
        }
    }
    if let Some(email) = &record.email {
        if let Some(holder) = holder(tx, USER_EMAILS, t, email)? {
            if holder != record.id.key() {
                return Ok(Err(Conflict::Email(UserId::from_key(holder))));
            }
        }
    }
    if let Some(previous) = &previous {
        unindex_user(tx, previous)?;
    }
    index_user(tx, record)?;
    tx.table_mut(USERS)?.insert((t, record.id.key()), codec::encode(record)?.as_slice())?;
    let was_active = previous.as_ref().map(|p| p.active);
    adjust_counts(tx, record.tenant, |c| {
        if previous.is_none() {
            c.users += 1;
        }
        match (was_active, record.active) {
            (Some(true), false) => c.active_users = c.active_users.saturating_sub(1),
            (None | Some(false), true) => c.active_users += 1,
            _ => {}
        }
    })?;
    Ok(Ok(()))
}

fn index_user(tx: &WriteTx<'_>, record: &UserRecord) -> Result<(), StoreError> {
    let (t, u) = (record.tenant.key(), record.id.key());
    tx.table_mut(USER_NAMES)?.insert((t, record.user_name.to_lowercase().as_str()), u)?;
    if let Some(email) = &record.email {
        tx.table_mut(USER_EMAILS)?.insert((t, email.as_str()), u)?;
        tx.table_mut(SIGN_IN_EMAILS)?.insert((email.as_str(), t), u)?;
    }
    if let Some(external_id) = &record.external_id {
        tx.table_mut(USER_EXTERNAL_IDS)?.insert((t, external_id.as_str(), u), ())?;
    }
    let mut values = tx.table_mut(USER_EMAIL_VALUES)?;
    for email in &record.emails {
        values.insert((t, email.as_str(), u), ())?;
    }
    Ok(())
}

fn unindex_user(tx: &WriteTx<'_>, record: &UserRecord) -> Result<(), StoreError> {
    let (t, u) = (record.tenant.key(), record.id.key());
    tx.table_mut(USER_NAMES)?.remove((t, record.user_name.to_lowercase().as_str()))?;
    if let Some(email) = &record.email {
        tx.table_mut(USER_EMAILS)?.remove((t, email.as_str()))?;
        tx.table_mut(SIGN_IN_EMAILS)?.remove((email.as_str(), t))?;
    }
    if let Some(external_id) = &record.external_id {
        tx.table_mut(USER_EXTERNAL_IDS)?.remove((t, external_id.as_str(), u))?;
    }
    let mut values = tx.table_mut(USER_EMAIL_VALUES)?;
    for email in &record.emails {
        values.remove((t, email.as_str(), u))?;
    }
    Ok(())
}

/// Deletes a user with its index entries and memberships; returns the record and the groups it
/// was in. Sessions are the caller's to revoke.
pub fn delete_user(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    id: UserId,
) -> Result<Option<(UserRecord, Vec<GroupId>)>, StoreError> {
    let Some(record) = user(tx, tenant, id)? else {
        return Ok(None);
    };
    unindex_user(tx, &record)?;
    let groups = groups_of(tx, tenant, id)?;
    for group in &groups {
        remove_member(tx, tenant, *group, id)?;
    }
    tx.table_mut(USERS)?.remove((tenant.key(), id.key()))?;
    adjust_counts(tx, tenant, |c| {
        c.users = c.users.saturating_sub(1);
        if record.active {
            c.active_users = c.active_users.saturating_sub(1);
        }
    })?;
    Ok(Some((record, groups)))
}

/// Keeps a deleted user's data until `purge_after`.
pub fn retain_deleted_user(tx: &WriteTx<'_>, deleted: &DeletedUserRecord) -> Result<(), StoreError> {
    let (t, u) = (deleted.user.tenant.key(), deleted.user.id.key());
    tx.table_mut(DELETED_USERS)?.insert((t, u), codec::encode(deleted)?.as_slice())?;
    tx.table_mut(PURGE_QUEUE)?.insert((deleted.purge_after.unix_timestamp(), t, u), ())?;
    Ok(())
}

pub fn deleted_user(
    src: &impl Source,
    tenant: TenantId,
    id: UserId,
) -> Result<Option<DeletedUserRecord>, StoreError> {
    codec::get(src, DELETED_USERS, (tenant.key(), id.key()))
}

/// Removes up to `limit` retained users whose retention ended by `now`; returns how many.
pub fn purge_deleted_users(tx: &WriteTx<'_>, now: OffsetDateTime, limit: usize) -> Result<usize, StoreError> {
    let due: Vec<(i64, u128, u128)> = {
        let queue = tx.table(PURGE_QUEUE)?;
        let range = queue.range(..=(now.unix_timestamp(), u128::MAX, u128::MAX))?;
        range.take(limit).map(|entry| Ok::<_, StoreError>(entry?.0.value())).collect::<Result<_, _>>()?
    };
    let (mut queue, mut records) = (tx.table_mut(PURGE_QUEUE)?, tx.table_mut(DELETED_USERS)?);
    for (at, tenant, user) in &due {
        queue.remove((*at, *tenant, *user))?;
        records.remove((*tenant, *user))?;
    }
    Ok(due.len())
}

// ---- groups ----

pub fn group(src: &impl Source, tenant: TenantId, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
    codec::get(src, GROUPS, (tenant.key(), id.key()))
}

/// The group named `name` (compared case-insensitively).
pub fn group_id_by_name(
    src: &impl Source,
    tenant: TenantId,
    name: &str,
) -> Result<Option<GroupId>, StoreError> {
    let table = src.table(GROUP_NAMES)?;
    let id = table.get((tenant.key(), name.to_lowercase().as_str()))?.map(|v| v.value());
    Ok(id.map(GroupId::from_key))
}

pub fn group_ids_by_external_id(
    src: &impl Source,
    tenant: TenantId,
    external_id: &str,
) -> Result<Vec<GroupId>, StoreError> {
    Ok(lookup(src, GROUP_EXTERNAL_IDS, tenant, external_id)?.into_iter().map(GroupId::from_key).collect())
}

/// Visits the tenant's groups in creation order, skipping the first `skip` without decoding them.
pub fn visit_groups(
    src: &impl Source,
    tenant: TenantId,
    skip: usize,
    mut visit: impl FnMut(GroupRecord) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let table = src.table(GROUPS)?;
    let t = tenant.key();
    for entry in table.range((t, 0)..=(t, u128::MAX))?.skip(skip) {
        if visit(codec::decode(entry?.1.value())?).is_break() {
            break;
        }
    }
    Ok(())
}

/// Visits the tenant's groups in creation order, from the one after `after` (from the first if
/// none): the cursor of a listing.
pub fn visit_groups_after(
    src: &impl Source,
    tenant: TenantId,
    after: Option<GroupId>,
    mut visit: impl FnMut(GroupRecord) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let table = src.table(GROUPS)?;
    let (t, start) = (tenant.key(), after.map_or(0, |a| a.key().saturating_add(1)));
    for entry in table.range((t, start)..=(t, u128::MAX))? {
        if visit(codec::decode(entry?.1.value())?).is_break() {
            break;
        }
    }
    Ok(())
}

/// Creates or replaces a group (not its members), keeping its indexes and the tenant's counts.
/// If another group of the tenant has the name, writes nothing and says which.
pub fn save_group(tx: &WriteTx<'_>, record: &GroupRecord) -> Result<Result<(), Conflict>, StoreError> {
    let (t, g) = (record.tenant.key(), record.id.key());
    let name = record.display_name.to_lowercase();
    if let Some(holder) = holder(tx, GROUP_NAMES, t, &name)? {
        if holder != g {
            return Ok(Err(Conflict::GroupName(GroupId::from_key(holder))));
        }
    }
    let previous = group(tx, record.tenant, record.id)?;
    if let Some(previous) = &previous {
        unindex_group(tx, previous)?;
    }
    tx.table_mut(GROUP_NAMES)?.insert((t, name.as_str()), g)?;
    if let Some(external_id) = &record.external_id {
        tx.table_mut(GROUP_EXTERNAL_IDS)?.insert((t, external_id.as_str(), g), ())?;
    }
    tx.table_mut(GROUPS)?.insert((t, g), codec::encode(record)?.as_slice())?;
    if previous.is_none() {
        adjust_counts(tx, record.tenant, |c| c.groups += 1)?;
    }
    Ok(Ok(()))
}

fn unindex_group(tx: &WriteTx<'_>, record: &GroupRecord) -> Result<(), StoreError> {
    let (t, g) = (record.tenant.key(), record.id.key());
    tx.table_mut(GROUP_NAMES)?.remove((t, record.display_name.to_lowercase().as_str()))?;
    if let Some(external_id) = &record.external_id {
        tx.table_mut(GROUP_EXTERNAL_IDS)?.remove((t, external_id.as_str(), g))?;
    }
    Ok(())
}

/// Deletes a group, its indexes and its memberships; returns the record and its former members.
pub fn delete_group(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    id: GroupId,
) -> Result<Option<(GroupRecord, Vec<UserId>)>, StoreError> {
    let Some(record) = group(tx, tenant, id)? else {
        return Ok(None);
    };
    let members = members_of(tx, tenant, id)?;
    for user in &members {
        remove_member(tx, tenant, id, *user)?;
    }
    unindex_group(tx, &record)?;
    tx.table_mut(GROUPS)?.remove((tenant.key(), id.key()))?;
    adjust_counts(tx, tenant, |c| c.groups = c.groups.saturating_sub(1))?;
    Ok(Some((record, members)))
}

/// Adds a member; returns false if it already was one.
pub fn add_member(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    group: GroupId,
    user: UserId,
) -> Result<bool, StoreError> {
    let (t, g, u) = (tenant.key(), group.key(), user.key());
    let added = tx.table_mut(GROUP_MEMBERS)?.insert((t, g, u), ())?.is_none();
    tx.table_mut(USER_GROUPS)?.insert((t, u, g), ())?;
    Ok(added)
}

/// Removes a member; returns false if it was not one.
pub fn remove_member(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    group: GroupId,
    user: UserId,
) -> Result<bool, StoreError> {
    let (t, g, u) = (tenant.key(), group.key(), user.key());
    let removed = tx.table_mut(GROUP_MEMBERS)?.remove((t, g, u))?.is_some();
    tx.table_mut(USER_GROUPS)?.remove((t, u, g))?;
    Ok(removed)
}

pub fn is_member(
    src: &impl Source,
    tenant: TenantId,
    group: GroupId,
    user: UserId,
) -> Result<bool, StoreError> {
    Ok(src.table(GROUP_MEMBERS)?.get((tenant.key(), group.key(), user.key()))?.is_some())
}

pub fn members_of(src: &impl Source, tenant: TenantId, group: GroupId) -> Result<Vec<UserId>, StoreError> {
    let table = src.table(GROUP_MEMBERS)?;
    let (t, g) = (tenant.key(), group.key());
    let range = table.range((t, g, 0)..=(t, g, u128::MAX))?;
    range.map(|entry| Ok(UserId::from_key(entry?.0.value().2))).collect()
}

pub fn member_count(src: &impl Source, tenant: TenantId, group: GroupId) -> Result<usize, StoreError> {
    let table = src.table(GROUP_MEMBERS)?;
    let (t, g) = (tenant.key(), group.key());
    Ok(table.range((t, g, 0)..=(t, g, u128::MAX))?.count())
}

pub fn groups_of(src: &impl Source, tenant: TenantId, user: UserId) -> Result<Vec<GroupId>, StoreError> {
    let table = src.table(USER_GROUPS)?;
    let (t, u) = (tenant.key(), user.key());
    let range = table.range((t, u, 0)..=(t, u, u128::MAX))?;
    range.map(|entry| Ok(GroupId::from_key(entry?.0.value().2))).collect()
}

// ---- counts ----

pub fn counts(src: &impl Source, tenant: TenantId) -> Result<Counts, StoreError> {
    let value = src.table(COUNTS)?.get(tenant.key())?.map(|v| v.value());
    Ok(value.map(|(users, active_users, groups)| Counts { users, active_users, groups }).unwrap_or_default())
}

fn adjust_counts(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    change: impl FnOnce(&mut Counts),
) -> Result<(), StoreError> {
    let mut counts = counts(tx, tenant)?;
    change(&mut counts);
    tx.table_mut(COUNTS)?.insert(tenant.key(), (counts.users, counts.active_users, counts.groups))?;
    Ok(())
}

// ---- index helpers ----

fn holder(
    tx: &WriteTx<'_>,
    table: TableDefinition<(u128, &str), u128>,
    tenant: u128,
    value: &str,
) -> Result<Option<u128>, StoreError> {
    Ok(tx.table(table)?.get((tenant, value))?.map(|v| v.value()))
}

/// The ids filed under `value` in a lookup index.
fn lookup(
    src: &impl Source,
    table: TableDefinition<(u128, &str, u128), ()>,
    tenant: TenantId,
    value: &str,
) -> Result<Vec<u128>, StoreError> {
    let table = src.table(table)?;
    let t = tenant.key();
    let range = table.range((t, value, 0)..=(t, value, u128::MAX))?;
    range.map(|entry| Ok(entry?.0.value().2)).collect()
}

/// Removes every entry of a string-keyed index that belongs to the tenant.
fn clear_string_index(
    tx: &WriteTx<'_>,
    table: TableDefinition<(u128, &str), u128>,
    t: u128,
) -> Result<(), StoreError> {
    let mut table = tx.table_mut(table)?;
    let keys: Vec<String> = table
        .range((t, "")..)?
        .map_while(|entry| match entry {
            Ok((key, _)) if key.value().0 == t => Some(Ok(key.value().1.to_owned())),
            Ok(_) => None,
            Err(err) => Some(Err(err)),
        })
        .collect::<Result<_, _>>()?;
    for key in keys {
        table.remove((t, key.as_str()))?;
    }
    Ok(())
}

fn clear_lookup_index(
    tx: &WriteTx<'_>,
    table: TableDefinition<(u128, &str, u128), ()>,
    t: u128,
) -> Result<(), StoreError> {
    let mut table = tx.table_mut(table)?;
    let keys: Vec<(String, u128)> = table
        .range((t, "", 0)..)?
        .map_while(|entry| match entry {
            Ok((key, _)) if key.value().0 == t => Some(Ok((key.value().1.to_owned(), key.value().2))),
            Ok(_) => None,
            Err(err) => Some(Err(err)),
        })
        .collect::<Result<_, _>>()?;
    for (value, id) in keys {
        table.remove((t, value.as_str(), id))?;
    }
    Ok(())
}

/// Removes every directory entry of a tenant.
pub(super) fn delete_tenant(tx: &WriteTx<'_>, tenant: TenantId) -> Result<(), StoreError> {
    let t = tenant.key();
    tx.table_mut(USERS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    tx.table_mut(GROUPS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    tx.table_mut(DELETED_USERS)?.retain_in((t, 0)..=(t, u128::MAX), |_, _| false)?;
    tx.table_mut(PURGE_QUEUE)?.retain(|(_, tenant, _), _| tenant != t)?;
    tx.table_mut(GROUP_MEMBERS)?.retain_in((t, 0, 0)..=(t, u128::MAX, u128::MAX), |_, _| false)?;
    tx.table_mut(USER_GROUPS)?.retain_in((t, 0, 0)..=(t, u128::MAX, u128::MAX), |_, _| false)?;
    tx.table_mut(COUNTS)?.remove(t)?;
    for table in [USER_NAMES, USER_EMAILS, GROUP_NAMES] {
        clear_string_index(tx, table, t)?;
    }
    for table in [USER_EXTERNAL_IDS, USER_EMAIL_VALUES, GROUP_EXTERNAL_IDS] {
        clear_lookup_index(tx, table, t)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::testing;

    pub(crate) fn user_record(tenant: TenantId, name: &str, email: &str) -> UserRecord {
        let now = OffsetDateTime::UNIX_EPOCH;
        UserRecord {
            id: UserId::generate(),
            tenant,
            user_name: name.into(),
            external_id: Some(format!("ext-{name}")),
            active: true,
            email: Some(email.into()),
            emails: vec![email.into()],
            display_name: None,
            profile: serde_json::json!({}),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    pub(crate) fn group_record(tenant: TenantId, name: &str) -> GroupRecord {
        GroupRecord {
            id: GroupId::generate(),
            tenant,
            display_name: name.into(),
            external_id: None,
            profile: serde_json::json!({}),
            version: 1,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn unique_values_are_unique_per_tenant_and_indexes_follow_the_record() {
        let (_dir, store) = testing::store();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        let ada = user_record(a, "Ada", "ada@acme.test");
        let other_tenant = user_record(b, "ada", "ada@acme.test");
        let same_name = user_record(a, "ADA", "other@acme.test");
        let same_email = user_record(a, "ada2", "ada@acme.test");
        let (ada2, same_name2) = (ada.clone(), same_name.clone());
        let outcome = store
            .write(move |tx| {
                assert_eq!(save_user(tx, &ada2)?, Ok(()));
                assert_eq!(save_user(tx, &other_tenant)?, Ok(()));
                assert_eq!(save_user(tx, &same_name2)?, Err(Conflict::UserName(ada2.id)));
                save_user(tx, &same_email)
            })
            .await
            .unwrap();
        assert_eq!(outcome, Err(Conflict::Email(ada.id)));

        let mut renamed = ada.clone();
        renamed.user_name = "ada.lovelace".into();
        renamed.email = Some("ada@new.test".into());
        renamed.emails = vec!["ada@new.test".into()];
        renamed.external_id = None;
        renamed.active = false;
        store.write(move |tx| save_user(tx, &renamed)).await.unwrap().unwrap();
        let found = store
            .read(move |tx| {
                Ok::<_, StoreError>((
                    user_id_by_name(tx, a, "ada")?,
                    user_id_by_name(tx, a, "ADA.Lovelace")?,
                    user_by_email(tx, a, "ada@acme.test")?.is_some(),
                    user_ids_by_email_value(tx, a, "ADA@new.test")?,
                    user_ids_by_external_id(tx, a, "ext-Ada")?,
                    counts(tx, a)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(found.0, None);
        assert_eq!(found.1, Some(ada.id));
        assert!(!found.2);
        assert_eq!(found.3, vec![ada.id]);
        assert!(found.4.is_empty());
        assert_eq!(found.5, Counts { users: 1, active_users: 0, groups: 0 });
        // The old name and address are free again.
        assert_eq!(store.write(move |tx| save_user(tx, &same_name)).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn memberships_are_kept_in_both_directions_and_die_with_either_side() {
        let (_dir, store) = testing::store();
        let t = TenantId::generate();
        let (u, g) = (user_record(t, "ada", "ada@acme.test"), group_record(t, "Engineering"));
        let (uid, gid) = (u.id, g.id);
        store
            .write(move |tx| {
                save_user(tx, &u)?.unwrap();
                save_group(tx, &g)?.unwrap();
                assert_eq!(save_group(tx, &group_record(t, "ENGINEERING"))?, Err(Conflict::GroupName(gid)));
                assert!(add_member(tx, t, gid, uid)?);
                assert!(!add_member(tx, t, gid, uid)?);
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let (members, groups) = store
            .read(move |tx| Ok::<_, StoreError>((members_of(tx, t, gid)?, groups_of(tx, t, uid)?)))
            .await
            .unwrap();
        assert_eq!((members, groups), (vec![uid], vec![gid]));
        let deleted = store.write(move |tx| delete_user(tx, t, uid)).await.unwrap().unwrap();
        assert_eq!(deleted.1, vec![gid]);
        let (members, counts) = store
            .read(move |tx| Ok::<_, StoreError>((members_of(tx, t, gid)?, counts(tx, t)?)))
            .await
            .unwrap();
        assert!(members.is_empty());
        assert_eq!(counts, Counts { users: 0, active_users: 0, groups: 1 });
    }

    #[tokio::test]
    async fn retained_users_are_purged_in_the_order_their_period_ends() {
        let (_dir, store) = testing::store();
        let t = TenantId::generate();
        let retained = |name: &str, days: i64| DeletedUserRecord {
            user: user_record(t, name, &format!("{name}@acme.test")),
            groups: vec![],
            deleted_at: OffsetDateTime::UNIX_EPOCH,
            purge_after: OffsetDateTime::UNIX_EPOCH + time::Duration::days(days),
        };
        let (soon, later) = (retained("ada", 1), retained("bob", 30));
        let (id, later_id) = (soon.user.id, later.user.id);
        store
            .write(move |tx| {
                retain_deleted_user(tx, &later)?;
                retain_deleted_user(tx, &soon)
            })
            .await
            .unwrap();
        let purge = |days: i64| {
            let store = store.clone();
            async move {
                store
                    .write(move |tx| {
                        purge_deleted_users(tx, OffsetDateTime::UNIX_EPOCH + time::Duration::days(days), 10)
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!((purge(0).await, purge(1).await, purge(29).await), (0, 1, 0));
        assert!(store.read(move |tx| deleted_user(tx, t, later_id)).await.unwrap().is_some());
        assert!(store.read(move |tx| deleted_user(tx, t, id)).await.unwrap().is_none());
    }
}
