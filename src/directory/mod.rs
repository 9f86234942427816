//! The directory's lifecycle rules, shared by every way people and groups arrive (SCIM now,
//! just-in-time sign-in later). Each operation runs inside the caller's write transaction and
//! does everything that belongs with the change in that one commit: the records and their
//! indexes, the seat limit, the revocation of a deactivated or deleted user's sessions, the
//! lifecycle event in the outbox and the audit record.

pub mod access;
pub mod browse;
pub mod federated;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::{
    clock::SharedClock,
    ids::{EntryId, GroupId, TenantId, UserId},
    sessions,
    store::{
        Store, StoreError, WriteTx,
        audit::{self, Actor, AuditRecord},
        credentials,
        directory::{self, Conflict, DeletedUserRecord, GroupRecord, UserRecord},
        journal::{self, EventRecord, Subject},
        tenants::{self, TenantRecord, TenantStatus},
    },
};

/// How often retained users whose period has ended are purged.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
/// Purged per transaction, so that a large backlog does not hold the writer for long.
const SWEEP_BATCH: usize = 500;

/// Purges deleted users whose retention period has ended: at start, then every hour.
pub async fn sweep_deleted_users(store: Store, clock: SharedClock) {
    loop {
        loop {
            let now = clock.now();
            match store.write(move |tx| directory::purge_deleted_users(tx, now, SWEEP_BATCH)).await {
                Ok(purged) if purged > 0 => {
                    tracing::info!(purged, "purged deleted users past their retention")
                }
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(%err, "could not purge deleted users");
                    break;
                }
            }
        }
        tokio::time::sleep(SWEEP_INTERVAL).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("a unique value is taken: {0:?}")]
    Conflict(Conflict),
    #[error("the tenant's seat limit of {limit} active users is reached")]
    SeatLimit { limit: u32 },
    /// The tenant was deleted or suspended after the request was authenticated.
    #[error("the tenant no longer accepts changes")]
    TenantClosed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is changing the directory, through what, and when.
#[derive(Debug, Clone)]
pub struct Change {
    pub tenant: TenantId,
    pub actor: Actor,
    /// The channel, first word of audit actions: `scim`, `sso`, `admin`.
    pub channel: &'static str,
    pub request_id: Option<String>,
    pub now: OffsetDateTime,
}

impl Change {
    pub fn audit(
        &self,
        tx: &WriteTx<'_>,
        action: &str,
        target: Subject,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let (action, request_id) = (format!("{}.{action}", self.channel), self.request_id.clone());
        let record = AuditRecord::new(
            Some(self.tenant),
            self.actor.clone(),
            action,
            Some(target),
            detail,
            self.now,
            request_id,
        );
        audit::append(tx, record)?;
        Ok(())
    }

    fn event(
        &self,
        tx: &WriteTx<'_>,
        kind: &str,
        subject: Subject,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        journal::append_event(
            tx,
            EventRecord {
                id: EntryId::generate(),
                seq: 0,
                tenant: self.tenant,
                kind: kind.into(),
                occurred_at: self.now,
                subject,
                data,
            },
        )?;
        Ok(())
    }
}

fn without_active(profile: &serde_json::Value) -> serde_json::Value {
    let mut profile = profile.clone();
    if let Some(fields) = profile.as_object_mut() {
        fields.remove("active");
    }
    profile
}

fn user_subject(user: &UserRecord) -> Subject {
    Subject { kind: "user".into(), id: user.id.to_string(), label: Some(user.user_name.clone()) }
}

fn group_subject(group: &GroupRecord) -> Subject {
    Subject { kind: "group".into(), id: group.id.to_string(), label: Some(group.display_name.clone()) }
}

/// What an event says about a user.
fn user_data(user: &UserRecord) -> serde_json::Value {
    json!({ "user": {
        "id": user.id, "user_name": user.user_name, "external_id": user.external_id,
        "email": user.email, "display_name": user.display_name, "active": user.active,
    }})
}

/// An update's event: the resource after the change and, under `previous`, the values of the
/// fields that changed as they were before it.
fn with_previous(before: serde_json::Value, mut after: serde_json::Value) -> serde_json::Value {
    let previous: serde_json::Map<String, serde_json::Value> = match (before.as_object(), after.as_object()) {
        (Some(before), Some(after)) => before
            .iter()
            .filter_map(|(kind, was)| {
                let (was, now) = (was.as_object()?, after.get(kind)?.as_object()?);
                Some(was.iter().filter(|(field, value)| now.get(*field) != Some(*value)))
            })
            .flatten()
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect(),
        _ => serde_json::Map::new(),
    };
    after["previous"] = serde_json::Value::Object(previous);
    after
}

fn group_data(group: &GroupRecord) -> serde_json::Value {
    json!({ "group": { "id": group.id, "display_name": group.display_name, "external_id": group.external_id } })
}

/// The tenant as this transaction sees it: callers authenticate against a recent copy, but the
/// seat limit, the retention period and whether the tenant still exists are decided here.
fn open_tenant(tx: &WriteTx<'_>, change: &Change) -> Result<TenantRecord, DirectoryError> {
    match tenants::get(tx, change.tenant)? {
        Some(tenant) if tenant.status == TenantStatus::Active => Ok(tenant),
        _ => Err(DirectoryError::TenantClosed),
    }
}

/// Refuses to make one more user active when the tenant is at its seat limit.
fn check_seat(tx: &WriteTx<'_>, change: &Change) -> Result<(), DirectoryError> {
    if let Some(limit) = open_tenant(tx, change)?.seat_limit {
        if directory::counts(tx, change.tenant)?.active_users >= u64::from(limit) {
            return Err(DirectoryError::SeatLimit { limit });
        }
    }
    Ok(())
}

fn save_user(tx: &WriteTx<'_>, user: &UserRecord) -> Result<(), DirectoryError> {
    directory::save_user(tx, user)?.map_err(DirectoryError::Conflict)
}

pub fn create_user(tx: &WriteTx<'_>, change: &Change, user: &UserRecord) -> Result<(), DirectoryError> {
    if user.active {
        check_seat(tx, change)?;
    } else {
        open_tenant(tx, change)?;
    }
    save_user(tx, user)?;
    change.event(tx, "user.created", user_subject(user), user_data(user))?;
    change.audit(tx, "user.create", user_subject(user), json!({ "active": user.active }))?;
    access::user_saved(tx, change, user, true)?;
    Ok(())
}

/// Replaces a user's record. Deactivation revokes every session of the user in this commit;
/// reactivation takes a seat.
pub fn update_user(
    tx: &WriteTx<'_>,
    change: &Change,
    before: &UserRecord,
    after: &UserRecord,
    detail: serde_json::Value,
) -> Result<(), DirectoryError> {
    let reactivated = !before.active && after.active;
    let deactivated = before.active && !after.active;
    if reactivated {
        check_seat(tx, change)?;
    } else {
        open_tenant(tx, change)?;
    }
    save_user(tx, after)?;
    let subject = user_subject(after);
    let mut detail = detail;
    if deactivated {
        let revoked =
            sessions::end_user_sessions(tx, after.tenant, after.id, "user_deactivated", change.now)?;
        detail["sessions_revoked"] = json!(revoked);
        change.event(tx, "user.deactivated", subject.clone(), user_data(after))?;
    } else if reactivated {
        change.event(tx, "user.reactivated", subject.clone(), user_data(after))?;
    }
    // `active` alone is announced by the deactivated/reactivated events above.
    if without_active(&before.profile) != without_active(&after.profile) {
        change.event(
            tx,
            "user.updated",
            subject.clone(),
            with_previous(user_data(before), user_data(after)),
        )?;
    }
    change.audit(tx, "user.update", subject, detail)?;
    access::user_saved(tx, change, after, false)?;
    Ok(())
}

/// Deletes a user, revoking their sessions; under a retention period the data is kept out of
/// sight until it ends. Returns false if there was no such user.
pub fn delete_user(tx: &WriteTx<'_>, change: &Change, id: UserId) -> Result<bool, DirectoryError> {
    let retention = open_tenant(tx, change)?.deleted_user_retention_days;
    let tenant = change.tenant;
    let revoked = sessions::end_user_sessions(tx, tenant, id, "user_deleted", change.now)?;
    credentials::delete(tx, tenant, id)?;
    access::user_deleted(tx, tenant, id)?;
    let Some((user, groups)) = directory::delete_user(tx, tenant, id)? else {
        return Ok(false);
    };
    if let Some(days) = retention {
        let deleted = DeletedUserRecord {
            user: UserRecord { active: false, ..user.clone() },
            groups: groups.clone(),
            deleted_at: change.now,
            purge_after: change.now + Duration::days(i64::from(days)),
        };
        directory::retain_deleted_user(tx, &deleted)?;
    }
    change.event(tx, "user.deleted", user_subject(&user), user_data(&user))?;
    let detail =
        json!({ "sessions_revoked": revoked, "retained_days": retention, "groups_left": groups.len() });
    change.audit(tx, "user.delete", user_subject(&user), detail)?;
    Ok(true)
}

pub fn create_group(
    tx: &WriteTx<'_>,
    change: &Change,
    group: &GroupRecord,
    members: &[UserId],
) -> Result<(), DirectoryError> {
    open_tenant(tx, change)?;
    directory::save_group(tx, group)?.map_err(DirectoryError::Conflict)?;
    change.event(tx, "group.created", group_subject(group), group_data(group))?;
    let added = add_members(tx, change, group, members)?;
    let mut detail = json!({ "members_added": added });
    let access = access::group_changed(tx, change, None, group, members, &[], false)?;
    note_access(&mut detail, access);
    change.audit(tx, "group.create", group_subject(group), detail)?;
    Ok(())
}

/// Replaces a group's record and applies member changes; one audit record says what changed.
pub fn update_group(
    tx: &WriteTx<'_>,
    change: &Change,
    before: &GroupRecord,
    after: &GroupRecord,
    added: &[UserId],
    removed: &[UserId],
    detail: serde_json::Value,
) -> Result<(), DirectoryError> {
    open_tenant(tx, change)?;
    directory::save_group(tx, after)?.map_err(DirectoryError::Conflict)?;
    if before.display_name != after.display_name
        || before.external_id != after.external_id
        || before.profile != after.profile
    {
        change.event(
            tx,
            "group.updated",
            group_subject(after),
            with_previous(group_data(before), group_data(after)),
        )?;
    }
    let added_count = add_members(tx, change, after, added)?;
    let mut removed_count = 0;
    for user in removed {
        if directory::remove_member(tx, after.tenant, after.id, *user)? {
            removed_count += 1;
            change.event(tx, "group.member_removed", group_subject(after), member_data(after, *user))?;
            audit_membership(tx, change, "group.member_remove", after, *user)?;
        }
    }
    let mut detail = detail;
    detail["members_added"] = json!(added_count);
    detail["members_removed"] = json!(removed_count);
    note_access(&mut detail, access::group_changed(tx, change, Some(before), after, added, removed, false)?);
    change.audit(tx, "group.update", group_subject(after), detail)?;
    Ok(())
}

pub fn delete_group(tx: &WriteTx<'_>, change: &Change, id: GroupId) -> Result<bool, DirectoryError> {
    open_tenant(tx, change)?;
    let Some((group, members)) = directory::delete_group(tx, change.tenant, id)? else {
        return Ok(false);
    };
    change.event(tx, "group.deleted", group_subject(&group), group_data(&group))?;
    for member in &members {
        audit_membership(tx, change, "group.member_remove", &group, *member)?;
    }
    let mut detail = json!({ "members_removed": members.len() });
    note_access(&mut detail, access::group_changed(tx, change, None, &group, &[], &members, true)?);
    change.audit(tx, "group.delete", group_subject(&group), detail)?;
    Ok(true)
}

/// Adds to a group change's audit detail how many users' access it re-evaluated and changed.
fn note_access(detail: &mut serde_json::Value, access: access::Reevaluated) {
    if access.evaluated > 0 {
        detail["access"] = json!(access);
    }
}

fn member_data(group: &GroupRecord, user: UserId) -> serde_json::Value {
    json!({ "group": { "id": group.id, "display_name": group.display_name }, "user": { "id": user } })
}

fn add_members(
    tx: &WriteTx<'_>,
    change: &Change,
    group: &GroupRecord,
    users: &[UserId],
) -> Result<usize, StoreError> {
    let mut added = 0;
    for user in users {
        if directory::add_member(tx, group.tenant, group.id, *user)? {
            added += 1;
            change.event(tx, "group.member_added", group_subject(group), member_data(group, *user))?;
            audit_membership(tx, change, "group.member_add", group, *user)?;
        }
    }
    Ok(added)
}

/// A membership change in the member's own history: who was added to or removed from which
/// group (the group's record says how many).
fn audit_membership(
    tx: &WriteTx<'_>,
    change: &Change,
    action: &str,
    group: &GroupRecord,
    user: UserId,
) -> Result<(), StoreError> {
    let label = directory::user(tx, group.tenant, user)?.map(|u| u.user_name);
    let target = Subject { kind: "user".into(), id: user.to_string(), label };
    let detail = json!({ "group": { "id": group.id, "display_name": group.display_name } });
    change.audit(tx, action, target, detail)
}

#[cfg(test)]
pub(crate) mod tests {
    use time::Duration;

    use super::*;

    #[test]
    fn an_update_event_carries_the_changed_fields_as_they_were() {
        let before = json!({ "user": { "id": "u", "email": "a@x", "display_name": "Ada", "active": true } });
        let after = json!({ "user": { "id": "u", "email": "a@y", "display_name": "Ada", "active": true } });
        let data = with_previous(before, after);
        assert_eq!(data["previous"], json!({ "email": "a@x" }));
        assert_eq!(data["user"]["email"], "a@y");
    }
    use crate::{
        ids::TenantId,
        store::{
            directory::tests::user_record,
            journal,
            sessions::{self as stored_sessions, SessionRecord},
            tenants::TenantStatus,
            testing,
        },
    };

    /// A change by a SCIM token to a new tenant, which is stored first.
    pub(crate) async fn change(store: &Store, seat_limit: Option<u32>, retention: Option<u32>) -> Change {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(100);
        let tenant = TenantRecord {
            id: TenantId::generate(),
            slug: "acme".into(),
            display_name: "Acme".into(),
            status: TenantStatus::Active,
            seat_limit,
            deleted_user_retention_days: retention,
            session_policy: Default::default(),
            require_sso: false,
            google_hosted_domains: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let id = tenant.id;
        store.write(move |tx| tenants::put(tx, &tenant)).await.unwrap();
        Change {
            tenant: id,
            actor: Actor { kind: "scim_token".into(), id: "t".into(), label: None },
            channel: "scim",
            request_id: Some("req-1".into()),
            now,
        }
    }

    fn session(change: &Change, user: UserId) -> SessionRecord {
        stored_sessions::tests::session_record(change.tenant, user, change.now)
    }

    #[tokio::test]
    async fn deactivation_revokes_every_session_in_the_same_commit_with_its_event_and_audit() {
        let (_dir, store) = testing::store();
        let change = change(&store, None, None).await;
        let ada = user_record(change.tenant, "ada", "ada@acme.test");
        let sessions: Vec<SessionRecord> = (0..3).map(|_| session(&change, ada.id)).collect();
        let (c, a, s) = (change.clone(), ada.clone(), sessions.clone());
        store
            .write(move |tx| {
                create_user(tx, &c, &a)?;
                for session in &s {
                    stored_sessions::put(tx, session)?;
                }
                Ok::<_, DirectoryError>(())
            })
            .await
            .unwrap();
        let deactivated = UserRecord { active: false, version: 2, ..ada.clone() };
        let (c, before) = (change.clone(), ada.clone());
        store
            .write(move |tx| update_user(tx, &c, &before, &deactivated, json!({"operation": "patch"})))
            .await
            .unwrap();

        let now = change.now;
        let (live, events, audit) = store
            .read(move |tx| {
                let live = sessions
                    .iter()
                    .map(|s| Ok(stored_sessions::get(tx, s.id)?.is_some_and(|s| s.is_live(now))))
                    .collect::<Result<Vec<bool>, StoreError>>()?;
                Ok::<_, StoreError>((live, journal::events_after(tx, 0, 10)?, audit::after(tx, 0, 10)?))
            })
            .await
            .unwrap();
        assert_eq!(live, [false, false, false]);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["user.created", "session.revoked", "session.revoked", "session.revoked", "user.deactivated"]
        );
        let last = audit.last().unwrap();
        assert_eq!(
            (last.action.as_str(), last.detail["sessions_revoked"].as_u64()),
            ("scim.user.update", Some(3))
        );
        assert_eq!(last.request_id.as_deref(), Some("req-1"));
    }

    #[tokio::test]
    async fn a_failed_change_leaves_no_event_or_audit_record() {
        let (_dir, store) = testing::store();
        let change = change(&store, Some(1), None).await;
        let (ada, bob) =
            (user_record(change.tenant, "ada", "ada@x"), user_record(change.tenant, "bob", "bob@x"));
        let c = change.clone();
        store.write(move |tx| create_user(tx, &c, &ada)).await.unwrap();
        let c = change.clone();
        let refused = store.write(move |tx| create_user(tx, &c, &bob)).await.unwrap_err();
        assert!(matches!(refused, DirectoryError::SeatLimit { limit: 1 }));
        let events = store.read(|tx| journal::events_after(tx, 0, 10)).await.unwrap();
        assert_eq!(events.len(), 1);
    }

    #[tokio::test]
    async fn deletion_revokes_sessions_and_keeps_data_for_the_retention_period() {
        let (_dir, store) = testing::store();
        let change = change(&store, None, Some(30)).await;
        let ada = user_record(change.tenant, "ada", "ada@acme.test");
        let s = session(&change, ada.id);
        let (c, a, s2) = (change.clone(), ada.clone(), s.clone());
        store
            .write(move |tx| {
                create_user(tx, &c, &a)?;
                stored_sessions::put(tx, &s2)?;
                Ok::<_, DirectoryError>(())
            })
            .await
            .unwrap();
        let (c, id) = (change.clone(), ada.id);
        assert!(store.write(move |tx| delete_user(tx, &c, id)).await.unwrap());
        let (tenant, now) = (change.tenant, change.now);
        let (gone, kept, session_live) = store
            .read(move |tx| {
                Ok::<_, StoreError>((
                    directory::user(tx, tenant, id)?.is_none(),
                    directory::deleted_user(tx, tenant, id)?,
                    stored_sessions::get(tx, s.id)?.is_some_and(|s| s.is_live(now)),
                ))
            })
            .await
            .unwrap();
        assert!(gone && !session_live);
        let kept = kept.unwrap();
        assert!(!kept.user.active);
        assert_eq!(kept.purge_after, now + Duration::days(30));
    }
}
