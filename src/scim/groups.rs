//! `/Groups`: the directory's groups as SCIM Group resources. Members live in their own table, so
//! a PATCH that adds or removes members writes only those memberships, whatever the size of the
//! group; the member list is built only for the responses and filters that need it.

use std::{
    collections::{BTreeSet, HashMap},
    ops::ControlFlow,
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{
    RequestContext, ScimBody, ScimClient, ScimError, check_if_match,
    filter::{AttrPath, CompareOp, Filter, element_matches},
    list::ListQuery,
    patch::{self, PatchOpKind, PatchOperation},
    precondition,
    resource::{self, Meta, Projection},
    respond, respond_resource,
    schema::{GROUP_RESOURCE, GROUP_SCHEMA, ResourceTypeDef},
    search::Listed,
    users::patch_paths,
};
use crate::{
    app::AppState,
    directory,
    ids::{GroupId, TenantId, UserId},
    store::{
        ReadTx, Source, StoreError, WriteTx,
        directory::{self as dir, GroupRecord},
    },
};

fn to_record(
    tenant: TenantId,
    id: GroupId,
    mut profile: Map<String, Value>,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
    version: u64,
) -> Result<GroupRecord, ScimError> {
    let display_name =
        profile.get("displayName").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    if display_name.is_empty() {
        return Err(ScimError::invalid_value("`displayName` is required"));
    }
    // Stored as indexed, so that a lookup by the name finds what the index finds.
    profile.insert("displayName".into(), Value::String(display_name.clone()));
    let external_id = profile.get("externalId").and_then(Value::as_str).map(str::to_owned);
    Ok(GroupRecord {
        id,
        tenant,
        display_name,
        external_id,
        profile: Value::Object(profile),
        version,
        created_at,
        updated_at: now,
    })
}

/// A group's attributes apart from its members, and the members if they were given.
type SplitGroup = (Map<String, Value>, Option<Vec<UserId>>);

/// Splits the member list from a normalised group: `members` is kept in its own table.
fn split_members(mut profile: Map<String, Value>) -> Result<SplitGroup, ScimError> {
    let members = profile.remove("members").map(|v| member_ids(&v)).transpose()?;
    Ok((profile, members))
}

/// The user ids of a `members` value: `[{"value": "…", "type": "User"}]`.
fn member_ids(value: &Value) -> Result<Vec<UserId>, ScimError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        single => std::slice::from_ref(single),
    };
    items
        .iter()
        .map(|item| {
            let kind = item.get("type").and_then(Value::as_str);
            if kind.is_some_and(|k| k.eq_ignore_ascii_case("Group")) {
                return Err(ScimError::invalid_value(
                    "nested groups are not supported: members must be users",
                ));
            }
            let value = item.get("value").and_then(Value::as_str).or_else(|| item.as_str());
            let value =
                value.ok_or_else(|| ScimError::invalid_value("each member needs a `value` (a user id)"))?;
            value.parse().map_err(|_| {
                ScimError::invalid_value(format!("member `{value}` is not a user of this tenant"))
            })
        })
        .collect()
}

/// Refuses members that are not users of the tenant.
fn check_members_exist(tx: &WriteTx<'_>, tenant: TenantId, members: &[UserId]) -> Result<(), ScimError> {
    for id in members {
        if dir::user(tx, tenant, *id)?.is_none() {
            return Err(ScimError::invalid_value(format!("member `{id}` is not a user of this tenant")));
        }
    }
    Ok(())
}

fn meta(record: &GroupRecord, base: &str) -> Meta<'static> {
    Meta {
        resource_type: "Group",
        created: record.created_at,
        last_modified: record.updated_at,
        location: format!("{base}/Groups/{}", record.id),
        version: record.version,
    }
}

fn representation(record: &GroupRecord, base: &str) -> Map<String, Value> {
    resource::with_meta(GROUP_SCHEMA, &record.id.to_string(), &record.profile, &meta(record, base))
}

/// Adds the members, joined in from the membership table.
fn add_members(
    src: &impl Source,
    record: &GroupRecord,
    base: &str,
    out: &mut Map<String, Value>,
) -> Result<(), StoreError> {
    let members = dir::members_of(src, record.tenant, record.id)?;
    if !members.is_empty() {
        let items = members
            .into_iter()
            .map(|id| json!({ "value": id, "$ref": format!("{base}/Users/{id}"), "type": "User" }))
            .collect();
        out.insert("members".into(), Value::Array(items));
    }
    Ok(())
}

/// The representation, with members when `with_members`.
fn render(
    src: &impl Source,
    record: &GroupRecord,
    base: &str,
    with_members: bool,
) -> Result<Map<String, Value>, StoreError> {
    let mut out = representation(record, base);
    if with_members {
        add_members(src, record, base, &mut out)?;
    }
    Ok(out)
}

fn finish(mut resource: Map<String, Value>, projection: &Projection) -> Value {
    projection.apply(&GROUP_RESOURCE, &mut resource);
    Value::Object(resource)
}

fn parse_id(id: &str) -> Result<GroupId, ScimError> {
    id.parse().map_err(|_| not_found(id))
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("no group `{id}` in this tenant"))
}

pub async fn create(
    State(state): State<AppState>,
    client: ScimClient,
    request: RequestContext,
    Query(params): Query<HashMap<String, String>>,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let projection = ListQuery::from_params(&GROUP_RESOURCE, &params)?.projection;
    let now = state.clock.now();
    let (profile, members) = split_members(resource::normalize(&GROUP_RESOURCE, body)?)?;
    let record = to_record(client.tenant.id, GroupId::generate(), profile, now, now, 1)?;
    let members: Vec<UserId> =
        members.unwrap_or_default().into_iter().collect::<BTreeSet<_>>().into_iter().collect();
    let change = client.change(&request, now);
    let base = client.base_url(&state.public_url);
    let (stored, tenant) = (record.clone(), client.tenant.id);
    let with_members = projection.includes("members");
    let resource = state
        .store
        .write(move |tx| {
            check_members_exist(tx, tenant, &members)?;
            directory::create_group(tx, &change, &stored, &members)?;
            Ok::<_, ScimError>(render(tx, &stored, &base, with_members)?)
        })
        .await?;
    tracing::info!(tenant = %record.tenant, group = %record.id, "SCIM group created");
    let meta = meta(&record, &client.base_url(&state.public_url));
    Ok(respond(StatusCode::CREATED, &finish(resource, &projection), Some(&meta.etag()), Some(&meta.location)))
}

pub async fn show(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let projection = ListQuery::from_params(&GROUP_RESOURCE, &params)?.projection;
    let group_id = parse_id(&id)?;
    let (tenant, base) = (client.tenant.id, client.base_url(&state.public_url));
    let with_members = projection.includes("members");
    let found = state
        .store
        .read(|tx| match dir::group(tx, tenant, group_id)? {
            Some(record) => {
                Ok::<_, ScimError>(Some((render(tx, &record, &base, with_members)?, record.version)))
            }
            None => Ok(None),
        })
        .await?;
    let (resource, version) = found.ok_or_else(|| not_found(&id))?;
    Ok(respond_resource(&headers, &finish(resource, &projection), version))
}

/// What a change does to a group's members, built without loading them unless an operation
/// needs the current list (replace-all, remove-all, a filter on members).
#[derive(Debug, Default, Clone)]
struct MemberChanges {
    added: BTreeSet<UserId>,
    removed: BTreeSet<UserId>,
}

impl MemberChanges {
    fn add(&mut self, ids: impl IntoIterator<Item = UserId>) {
        for id in ids {
            self.removed.remove(&id);
            self.added.insert(id);
        }
    }

    fn remove(&mut self, ids: impl IntoIterator<Item = UserId>) {
        for id in ids {
            self.added.remove(&id);
            self.removed.insert(id);
        }
    }

    /// The members after the changes so far, given the current ones.
    fn current(&self, stored: &[UserId]) -> BTreeSet<UserId> {
        let mut out: BTreeSet<UserId> =
            stored.iter().copied().filter(|id| !self.removed.contains(id)).collect();
        out.extend(self.added.iter().copied());
        out
    }

    fn replace_all(&mut self, stored: &[UserId], ids: Vec<UserId>) {
        let current = self.current(stored);
        let wanted: BTreeSet<UserId> = ids.into_iter().collect();
        self.remove(current.difference(&wanted).copied().collect::<Vec<_>>());
        self.add(wanted);
    }
}

pub async fn replace(
    State(state): State<AppState>,
    client: ScimClient,
    request: RequestContext,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let projection = ListQuery::from_params(&GROUP_RESOURCE, &params)?.projection;
    let group_id = parse_id(&id)?;
    let (profile, members) = split_members(resource::normalize(&GROUP_RESOURCE, body)?)?;
    let make = move |tx: &ReadTx, before: &GroupRecord| {
        let mut changes = MemberChanges::default();
        let stored = dir::members_of(tx, before.tenant, before.id)?;
        changes.replace_all(&stored, members.clone().unwrap_or_default());
        Ok((profile.clone(), changes))
    };
    let detail = json!({ "operation": "replace" });
    let with_members = projection.includes("members");
    let response = update(&state, &client, &request, group_id, &headers, make, detail, with_members).await?;
    Ok(respond(StatusCode::OK, &finish(response.0, &projection), Some(&resource::etag(response.1)), None))
}

pub async fn patch(
    State(state): State<AppState>,
    client: ScimClient,
    request: RequestContext,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let group_id = parse_id(&id)?;
    let operations = patch::parse_request(&body)?;
    let detail = json!({ "operation": "patch", "paths": patch_paths(&operations) });
    let make = move |tx: &ReadTx, before: &GroupRecord| apply_patch(tx, before, &operations);
    // A PATCH answers 204 (RFC 7644 §3.5.2): a group of 10,000 is not sent back for each added
    // member. A client that asks for attributes gets them.
    let asked = params
        .keys()
        .any(|k| k.eq_ignore_ascii_case("attributes") || k.eq_ignore_ascii_case("excludedAttributes"));
    let projection = ListQuery::from_params(&GROUP_RESOURCE, &params)?.projection;
    let with_members = asked && projection.includes("members");
    let (resource, version) =
        update(&state, &client, &request, group_id, &headers, make, detail, with_members).await?;
    if asked {
        return Ok(respond(
            StatusCode::OK,
            &finish(resource, &projection),
            Some(&resource::etag(version)),
            None,
        ));
    }
    Ok(respond(StatusCode::NO_CONTENT, &Value::Null, Some(&resource::etag(version)), None))
}

/// Applies a PATCH: operations on `members` become membership changes; the rest go through the
/// PATCH engine over the group's other attributes.
fn apply_patch(
    tx: &ReadTx,
    before: &GroupRecord,
    operations: &[PatchOperation],
) -> Result<(Map<String, Value>, MemberChanges), ScimError> {
    let mut document = before.profile.clone();
    let mut changes = MemberChanges::default();
    let mut stored: Option<Vec<UserId>> = None;
    let mut stored_members = |tx: &ReadTx| -> Result<Vec<UserId>, StoreError> {
        if stored.is_none() {
            stored = Some(dir::members_of(tx, before.tenant, before.id)?);
        }
        Ok(stored.clone().unwrap_or_default())
    };
    for operation in operations {
        let targets_members = operation.path.as_ref().is_some_and(|p| is_members(&p.attr));
        if targets_members {
            member_operation(tx, operation, &mut changes, &mut stored_members)?;
            continue;
        }
        let mut operation = operation.clone();
        // A pathless add or replace may carry members among other attributes.
        if let (None, Some(Value::Object(fields))) = (&operation.path, &mut operation.value) {
            if let Some(key) = fields.keys().find(|k| k.eq_ignore_ascii_case("members")).cloned() {
                let ids = member_ids(&fields.remove(&key).unwrap_or(Value::Null))?;
                match operation.op {
                    PatchOpKind::Replace => changes.replace_all(&stored_members(tx)?, ids),
                    _ => changes.add(ids),
                }
            }
        }
        if operation.value.as_ref().is_some_and(|v| v.as_object().is_some_and(Map::is_empty)) {
            continue;
        }
        patch::apply(&mut document, std::slice::from_ref(&operation), &GROUP_RESOURCE)?;
    }
    let (profile, _) = split_members(resource::normalize(&GROUP_RESOURCE, document)?)?;
    Ok((profile, changes))
}

fn is_members(path: &AttrPath) -> bool {
    path.name.eq_ignore_ascii_case("members")
        && path.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(GROUP_SCHEMA))
}

fn member_operation(
    tx: &ReadTx,
    operation: &PatchOperation,
    changes: &mut MemberChanges,
    stored_members: &mut impl FnMut(&ReadTx) -> Result<Vec<UserId>, StoreError>,
) -> Result<(), ScimError> {
    let Some(path) = &operation.path else { return Ok(()) };
    if path.sub.is_some() || path.attr.sub.is_some() {
        return Err(ScimError::bad_request(
            "invalidPath",
            "a member's attributes cannot be changed; add or remove the member",
        ));
    }
    let listed = operation.value.as_ref().map(member_ids).transpose()?;
    match (operation.op, &path.filter, listed) {
        (PatchOpKind::Add, None, Some(ids)) => changes.add(ids),
        (PatchOpKind::Replace, None, Some(ids)) => {
            let stored = stored_members(tx)?;
            changes.replace_all(&stored, ids);
        }
        (PatchOpKind::Add | PatchOpKind::Replace, _, _) => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "add or replace members with a list of `{\"value\": user id}`",
            ));
        }
        // `members[value eq "…"]`, or any filter over the members' value and type.
        (PatchOpKind::Remove, Some(filter), _) => {
            let ids = filtered_members(filter, &path.attr, stored_members(tx)?, changes)?;
            changes.remove(ids);
        }
        // Entra ID: remove `members` with the members to remove as the value.
        (PatchOpKind::Remove, None, Some(ids)) => changes.remove(ids),
        (PatchOpKind::Remove, None, None) => {
            let current = changes.current(&stored_members(tx)?);
            changes.remove(current);
        }
    }
    Ok(())
}

/// The members a value filter selects: a plain `value eq "…"` (or several, or-ed) needs no
/// lookup; any other filter is evaluated on each current member.
fn filtered_members(
    filter: &Filter,
    parent: &AttrPath,
    stored: Vec<UserId>,
    changes: &MemberChanges,
) -> Result<Vec<UserId>, ScimError> {
    if let Some(ids) = value_equalities(filter) {
        return Ok(ids.iter().filter_map(|v| v.parse().ok()).collect());
    }
    let current = changes.current(&stored);
    Ok(current
        .into_iter()
        .filter(|id| {
            element_matches(filter, parent, &json!({ "value": id, "type": "User" }), &GROUP_RESOURCE)
        })
        .collect())
}

fn value_equalities(filter: &Filter) -> Option<Vec<String>> {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value: Value::String(text) }
            if path.name.eq_ignore_ascii_case("value") && path.sub.is_none() && path.urn.is_none() =>
        {
            Some(vec![text.clone()])
        }
        Filter::Or(a, b) => {
            let mut ids = value_equalities(a)?;
            ids.extend(value_equalities(b)?);
            Some(ids)
        }
        _ => None,
    }
}

/// How often an update is recomputed when the group changed between reading and writing.
const UPDATE_ATTEMPTS: usize = 3;

/// Computes a group's new attributes and member changes from a snapshot, on the request's thread,
/// then commits them in one write with their events and audit record, provided the group is still
/// at the version read (else computes again). Inside the write, only real member changes count:
/// re-adding a member (Entra ID does) or removing a non-member writes nothing. Returns the
/// representation, with members when `with_members` (building a large group's list is the
/// expensive part of a response).
#[allow(clippy::too_many_arguments)]
async fn update(
    state: &AppState,
    client: &ScimClient,
    request: &RequestContext,
    group_id: GroupId,
    headers: &HeaderMap,
    make: impl Fn(&ReadTx, &GroupRecord) -> Result<(Map<String, Value>, MemberChanges), ScimError>,
    detail: Value,
    with_members: bool,
) -> Result<(Map<String, Value>, u64), ScimError> {
    let if_match = precondition(headers, header::IF_MATCH);
    let (tenant, base) = (client.tenant.id, client.base_url(&state.public_url));
    for _ in 0..UPDATE_ATTEMPTS {
        let (before, (profile, changes)) = state
            .store
            .read(|tx| {
                let before =
                    dir::group(tx, tenant, group_id)?.ok_or_else(|| not_found(&group_id.to_string()))?;
                check_if_match(if_match.as_deref(), &resource::etag(before.version))?;
                let made = make(tx, &before)?;
                Ok::<_, ScimError>((before, made))
            })
            .await?;
        let now = state.clock.now();
        let after = to_record(tenant, group_id, profile, before.created_at, now, before.version + 1)?;
        let (change, detail, base) = (client.change(request, now), detail.clone(), base.clone());
        let committed = state
            .store
            .write(move |tx| {
                let current =
                    dir::group(tx, tenant, group_id)?.ok_or_else(|| not_found(&group_id.to_string()))?;
                if current.version != before.version {
                    return Ok(None);
                }
                let added = real_changes(tx, &current, &changes.added, false)?;
                check_members_exist(tx, tenant, &added)?;
                let removed = real_changes(tx, &current, &changes.removed, true)?;
                let saved = if after.profile == current.profile && added.is_empty() && removed.is_empty() {
                    current
                } else {
                    directory::update_group(tx, &change, &current, &after, &added, &removed, detail.clone())?;
                    after.clone()
                };
                Ok::<_, ScimError>(Some((render(tx, &saved, &base, with_members)?, saved.version)))
            })
            .await?;
        if let Some(done) = committed {
            return Ok(done);
        }
    }
    Err(ScimError::new_conflict("the group kept changing while this request was applied; send it again"))
}

/// The users of `ids` whose membership is `member` now: those a change would really affect.
fn real_changes(
    tx: &WriteTx<'_>,
    group: &GroupRecord,
    ids: &BTreeSet<UserId>,
    member: bool,
) -> Result<Vec<UserId>, StoreError> {
    let mut out = Vec::new();
    for id in ids {
        if dir::is_member(tx, group.tenant, group.id, *id)? == member {
            out.push(*id);
        }
    }
    Ok(out)
}

pub async fn remove(
    State(state): State<AppState>,
    client: ScimClient,
    request: RequestContext,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let group_id = parse_id(&id)?;
    let if_match = precondition(&headers, header::IF_MATCH);
    let change = client.change(&request, state.clock.now());
    let tenant = client.tenant.id;
    state
        .store
        .write(move |tx| {
            let before = dir::group(tx, tenant, group_id)?.ok_or_else(|| not_found(&group_id.to_string()))?;
            check_if_match(if_match.as_deref(), &resource::etag(before.version))?;
            directory::delete_group(tx, &change, group_id)?;
            Ok::<_, ScimError>(())
        })
        .await?;
    Ok(respond(StatusCode::NO_CONTENT, &Value::Null, None, None))
}

/// Groups for the query runner.
pub struct Groups;

impl Listed for Groups {
    type Id = GroupId;
    type Record = GroupRecord;
    const TYPE: &'static ResourceTypeDef = &GROUP_RESOURCE;
    const JOINED: &'static str = "members";

    /// `displayName`, `externalId` and `id` equalities, and `members.value eq` (Entra ID's
    /// membership check: the groups of that user) are answered by indexes.
    fn index(tx: &ReadTx, tenant: TenantId, leaf: &Filter) -> Result<Option<Vec<GroupId>>, StoreError> {
        let Filter::Compare { path, op: CompareOp::Eq, value: Value::String(text) } = leaf else {
            return Ok(None);
        };
        if !path.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(GROUP_SCHEMA)) {
            return Ok(None);
        }
        let (name, sub) = (path.name.as_str(), path.sub.as_deref());
        Ok(if name.eq_ignore_ascii_case("displayName") && sub.is_none() {
            Some(dir::group_id_by_name(tx, tenant, text)?.into_iter().collect())
        } else if name.eq_ignore_ascii_case("externalId") && sub.is_none() {
            Some(dir::group_ids_by_external_id(tx, tenant, text)?)
        } else if name.eq_ignore_ascii_case("id") && sub.is_none() {
            Some(text.parse::<GroupId>().ok().into_iter().collect())
        } else if name.eq_ignore_ascii_case("members") && sub.is_none_or(|s| s.eq_ignore_ascii_case("value"))
        {
            match text.parse::<UserId>() {
                Ok(user) => Some(dir::groups_of(tx, tenant, user)?),
                Err(_) => Some(Vec::new()),
            }
        } else {
            None
        })
    }

    fn id(record: &GroupRecord) -> GroupId {
        record.id
    }

    fn load(tx: &ReadTx, tenant: TenantId, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
        dir::group(tx, tenant, id)
    }

    fn visit(
        tx: &ReadTx,
        tenant: TenantId,
        skip: usize,
        visit: impl FnMut(GroupRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        dir::visit_groups(tx, tenant, skip, visit)
    }

    fn count(tx: &ReadTx, tenant: TenantId) -> Result<usize, StoreError> {
        Ok(usize::try_from(dir::counts(tx, tenant)?.groups).unwrap_or(usize::MAX))
    }

    fn representation(record: &GroupRecord, base: &str) -> Map<String, Value> {
        representation(record, base)
    }

    fn join(
        tx: &ReadTx,
        record: &GroupRecord,
        base: &str,
        out: &mut Map<String, Value>,
    ) -> Result<(), StoreError> {
        add_members(tx, record, base, out)
    }
}
