//! `/Users`: the directory's users as SCIM User resources (with the Enterprise User extension
//! and any extension a client sends).

use std::{collections::HashMap, ops::ControlFlow};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{
    RequestContext, ScimBody, ScimClient, ScimError, check_if_match,
    filter::{CompareOp, Filter},
    list::ListQuery,
    patch, precondition,
    resource::{self, Meta, Projection},
    respond, respond_resource,
    schema::{ResourceTypeDef, USER_RESOURCE, USER_SCHEMA},
    search::Listed,
};
use crate::{
    app::AppState,
    directory,
    ids::{GroupId, TenantId, UserId},
    store::{
        ReadTx, Source, StoreError,
        directory::{self as dir, UserRecord},
    },
};

/// Makes the stored record from a normalised resource. `was_active` is the user's state before
/// this change (None for a new user): a resource without `active` keeps it, so a PUT that leaves
/// `active` out cannot reactivate anyone; a new user is active unless provisioned otherwise.
fn to_record(
    tenant: TenantId,
    id: UserId,
    profile: Map<String, Value>,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
    version: u64,
    was_active: Option<bool>,
) -> Result<UserRecord, ScimError> {
    let user_name = profile.get("userName").and_then(Value::as_str).unwrap_or_default().to_owned();
    if user_name.trim().is_empty() {
        return Err(ScimError::invalid_value("`userName` is required"));
    }
    let active = match profile.get("active") {
        Some(Value::Bool(active)) => *active,
        _ => was_active.unwrap_or(true),
    };
    let external_id = profile.get("externalId").and_then(Value::as_str).map(str::to_owned);
    let emails: Vec<(String, bool, bool)> = profile
        .get("emails")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|e| {
                    let value = e.get("value")?.as_str()?.trim().to_lowercase();
                    let primary = e.get("primary") == Some(&Value::Bool(true));
                    let work =
                        e.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"));
                    Some((value, primary, work))
                })
                .collect()
        })
        .unwrap_or_default();
    // The sign-in address: the primary email, else a work email, else the first. Only an address
    // the IdP sent as an email counts (a userName that looks like one may be anything).
    let email = emails
        .iter()
        .find(|e| e.1)
        .or_else(|| emails.iter().find(|e| e.2))
        .or_else(|| emails.first())
        .map(|e| e.0.clone());
    let display_name = display_name(&profile);
    Ok(UserRecord {
        id,
        tenant,
        user_name,
        external_id,
        active,
        email,
        emails: emails.into_iter().map(|e| e.0).collect(),
        display_name,
        profile: Value::Object(profile),
        version,
        created_at,
        updated_at: now,
    })
}

fn display_name(profile: &Map<String, Value>) -> Option<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    text(profile.get("displayName")).or_else(|| {
        let name = profile.get("name")?;
        text(name.get("formatted")).or_else(|| {
            let parts: Vec<&str> = ["givenName", "familyName"]
                .iter()
                .filter_map(|k| name.get(*k).and_then(Value::as_str))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    })
}

fn meta(record: &UserRecord, base: &str) -> Meta<'static> {
    Meta {
        resource_type: "User",
        created: record.created_at,
        last_modified: record.updated_at,
        location: format!("{base}/Users/{}", record.id),
        version: record.version,
    }
}

/// The user's representation without `groups` (enough to evaluate most filters).
fn representation(record: &UserRecord, base: &str) -> Map<String, Value> {
    resource::with_meta(USER_SCHEMA, &record.id.to_string(), &record.profile, &meta(record, base))
}

/// Adds the groups the user is in (RFC 7643 §4.1.2), joined in from the membership table.
fn add_groups(
    src: &impl Source,
    record: &UserRecord,
    base: &str,
    out: &mut Map<String, Value>,
) -> Result<(), StoreError> {
    let groups = dir::groups_of(src, record.tenant, record.id)?;
    if !groups.is_empty() {
        let mut items = Vec::with_capacity(groups.len());
        for id in groups {
            let name = dir::group(src, record.tenant, id)?.map(|g| g.display_name);
            items.push(group_reference(id, name, base));
        }
        out.insert("groups".into(), Value::Array(items));
    }
    Ok(())
}

/// The full representation, groups included.
fn render(src: &impl Source, record: &UserRecord, base: &str) -> Result<Map<String, Value>, StoreError> {
    let mut out = representation(record, base);
    add_groups(src, record, base, &mut out)?;
    Ok(out)
}

fn group_reference(id: GroupId, name: Option<String>, base: &str) -> Value {
    json!({ "value": id, "$ref": format!("{base}/Groups/{id}"), "display": name, "type": "direct" })
}

fn finish(mut resource: Map<String, Value>, projection: &Projection) -> Value {
    projection.apply(&USER_RESOURCE, &mut resource);
    Value::Object(resource)
}

fn projection_of(params: &HashMap<String, String>) -> Result<Projection, ScimError> {
    Ok(ListQuery::from_params(&USER_RESOURCE, params)?.projection)
}

fn parse_id(id: &str) -> Result<UserId, ScimError> {
    id.parse().map_err(|_| not_found(id))
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("no user `{id}` in this tenant"))
}

pub async fn create(
    State(state): State<AppState>,
    client: ScimClient,
    request: RequestContext,
    Query(params): Query<HashMap<String, String>>,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let projection = projection_of(&params)?;
    let now = state.clock.now();
    let record = to_record(
        client.tenant.id,
        UserId::generate(),
        resource::normalize(&USER_RESOURCE, body)?,
        now,
        now,
        1,
        None,
    )?;
    let change = client.change(&request, now);
    let base = client.base_url(&state.public_url);
    let stored = record.clone();
    state.store.write(move |tx| directory::create_user(tx, &change, &stored)).await?;
    tracing::info!(tenant = %record.tenant, user = %record.id, "SCIM user created");
    let meta = meta(&record, &base);
    let body = finish(representation(&record, &base), &projection);
    Ok(respond(StatusCode::CREATED, &body, Some(&meta.etag()), Some(&meta.location)))
}

pub async fn show(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let projection = projection_of(&params)?;
    let user_id = parse_id(&id)?;
    let (tenant, base) = (client.tenant.id, client.base_url(&state.public_url));
    let found = state
        .store
        .read(|tx| match dir::user(tx, tenant, user_id)? {
            Some(record) => Ok::<_, ScimError>(Some((render(tx, &record, &base)?, record.version))),
            None => Ok(None),
        })
        .await?;
    let (resource, version) = found.ok_or_else(|| not_found(&id))?;
    Ok(respond_resource(&headers, &finish(resource, &projection), version))
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
    let projection = projection_of(&params)?;
    let user_id = parse_id(&id)?;
    let profile = resource::normalize(&USER_RESOURCE, body)?;
    update(
        &state,
        &client,
        &request,
        user_id,
        &headers,
        projection,
        |_| Ok(profile.clone()),
        json!({ "operation": "replace" }),
    )
    .await
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
    let projection = projection_of(&params)?;
    let user_id = parse_id(&id)?;
    let operations = patch::parse_request(&body)?;
    let detail = json!({ "operation": "patch", "paths": patch_paths(&operations) });
    let apply = move |before: &UserRecord| {
        let mut document = before.profile.clone();
        patch::apply(&mut document, &operations, &USER_RESOURCE)?;
        resource::normalize(&USER_RESOURCE, document)
    };
    update(&state, &client, &request, user_id, &headers, projection, apply, detail).await
}

/// The attribute paths a PATCH touched, for the audit trail (values are not recorded).
pub fn patch_paths(operations: &[patch::PatchOperation]) -> Vec<String> {
    operations
        .iter()
        .map(|op| match (&op.path, &op.value) {
            (Some(path), _) => path.to_string(),
            (None, Some(Value::Object(fields))) => fields.keys().cloned().collect::<Vec<_>>().join(","),
            (None, _) => String::new(),
        })
        .collect()
}

/// How often an update is recomputed when the user changed between reading and writing.
const UPDATE_ATTEMPTS: usize = 3;

/// Replaces a user's profile with what `make` computes from it. The new profile is computed on
/// the request's thread from a snapshot, so the writer only checks that the user is still at
/// that version and commits (the If-Match check, the change and its consequences: sessions,
/// events, audit); if another change came first, the update is computed again.
#[allow(clippy::too_many_arguments)]
async fn update(
    state: &AppState,
    client: &ScimClient,
    request: &RequestContext,
    user_id: UserId,
    headers: &HeaderMap,
    projection: Projection,
    make: impl Fn(&UserRecord) -> Result<Map<String, Value>, ScimError>,
    detail: Value,
) -> Result<Response, ScimError> {
    let if_match = precondition(headers, header::IF_MATCH);
    let (tenant, base) = (client.tenant.id, client.base_url(&state.public_url));
    for _ in 0..UPDATE_ATTEMPTS {
        let before = state.store.read(|tx| dir::user(tx, tenant, user_id)).await?;
        let before = before.ok_or_else(|| not_found(&user_id.to_string()))?;
        check_if_match(if_match.as_deref(), &resource::etag(before.version))?;
        let profile = make(&before)?;
        if Value::Object(profile.clone()) == before.profile {
            let resource = state.store.read(|tx| render(tx, &before, &base)).await?;
            return Ok(respond(
                StatusCode::OK,
                &finish(resource, &projection),
                Some(&resource::etag(before.version)),
                None,
            ));
        }
        let now = state.clock.now();
        let after = to_record(
            tenant,
            user_id,
            profile,
            before.created_at,
            now,
            before.version + 1,
            Some(before.active),
        )?;
        let (change, detail, base) = (client.change(request, now), detail.clone(), base.clone());
        let committed = state
            .store
            .write(move |tx| {
                let current =
                    dir::user(tx, tenant, user_id)?.ok_or_else(|| not_found(&user_id.to_string()))?;
                if current.version != before.version {
                    return Ok(None);
                }
                directory::update_user(tx, &change, &current, &after, detail.clone())?;
                Ok::<_, ScimError>(Some(render(tx, &after, &base)?))
            })
            .await?;
        if let Some(resource) = committed {
            return Ok(respond(
                StatusCode::OK,
                &finish(resource, &projection),
                Some(&resource::etag(before.version + 1)),
                None,
            ));
        }
    }
    Err(ScimError::new_conflict("the user kept changing while this request was applied; send it again"))
}

pub async fn remove(
    State(state): State<AppState>,
    client: ScimClient,
    request: RequestContext,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let user_id = parse_id(&id)?;
    let if_match = precondition(&headers, header::IF_MATCH);
    let change = client.change(&request, state.clock.now());
    let tenant = client.tenant.id;
    state
        .store
        .write(move |tx| {
            let before = dir::user(tx, tenant, user_id)?.ok_or_else(|| not_found(&user_id.to_string()))?;
            check_if_match(if_match.as_deref(), &resource::etag(before.version))?;
            directory::delete_user(tx, &change, user_id)?;
            Ok::<_, ScimError>(())
        })
        .await?;
    tracing::info!(tenant = %tenant, user = %user_id, "SCIM user deleted");
    Ok(respond(StatusCode::NO_CONTENT, &Value::Null, None, None))
}

/// Users for the query runner.
pub struct Users;

impl Listed for Users {
    type Id = UserId;
    type Record = UserRecord;
    const TYPE: &'static ResourceTypeDef = &USER_RESOURCE;
    const JOINED: &'static str = "groups";

    /// `userName`, `externalId`, `id` and email equalities (`emails eq`, `emails.value eq`,
    /// `emails[… value eq …]`) are answered by indexes.
    fn index(tx: &ReadTx, tenant: TenantId, leaf: &Filter) -> Result<Option<Vec<UserId>>, StoreError> {
        Ok(match leaf {
            Filter::Compare { path, op: CompareOp::Eq, value: Value::String(text) }
                if path.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(USER_SCHEMA)) =>
            {
                let (name, sub) = (path.name.as_str(), path.sub.as_deref());
                if name.eq_ignore_ascii_case("userName") && sub.is_none() {
                    Some(dir::user_id_by_name(tx, tenant, text)?.into_iter().collect())
                } else if name.eq_ignore_ascii_case("externalId") && sub.is_none() {
                    Some(dir::user_ids_by_external_id(tx, tenant, text)?)
                } else if name.eq_ignore_ascii_case("id") && sub.is_none() {
                    Some(text.parse::<UserId>().ok().into_iter().collect())
                } else if name.eq_ignore_ascii_case("emails")
                    && sub.is_none_or(|s| s.eq_ignore_ascii_case("value"))
                {
                    Some(dir::user_ids_by_email_value(tx, tenant, text)?)
                } else {
                    None
                }
            }
            Filter::ValuePath { path, filter } if path.name.eq_ignore_ascii_case("emails") => {
                email_in_value_filter(filter)
                    .map(|email| dir::user_ids_by_email_value(tx, tenant, &email))
                    .transpose()?
            }
            _ => None,
        })
    }

    fn id(record: &UserRecord) -> UserId {
        record.id
    }

    fn load(tx: &ReadTx, tenant: TenantId, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        dir::user(tx, tenant, id)
    }

    fn visit(
        tx: &ReadTx,
        tenant: TenantId,
        skip: usize,
        visit: impl FnMut(UserRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        dir::visit_users(tx, tenant, skip, visit)
    }

    fn count(tx: &ReadTx, tenant: TenantId) -> Result<usize, StoreError> {
        Ok(usize::try_from(dir::counts(tx, tenant)?.users).unwrap_or(usize::MAX))
    }

    fn representation(record: &UserRecord, base: &str) -> Map<String, Value> {
        representation(record, base)
    }

    fn join(
        tx: &ReadTx,
        record: &UserRecord,
        base: &str,
        out: &mut Map<String, Value>,
    ) -> Result<(), StoreError> {
        add_groups(tx, record, base, out)
    }
}

/// `value eq "…"` inside `emails[…]` (alone or and-ed with other conditions).
fn email_in_value_filter(filter: &Filter) -> Option<String> {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value: Value::String(text) }
            if path.name.eq_ignore_ascii_case("value") && path.sub.is_none() =>
        {
            Some(text.clone())
        }
        Filter::And(a, b) => email_in_value_filter(a).or_else(|| email_in_value_filter(b)),
        _ => None,
    }
}
