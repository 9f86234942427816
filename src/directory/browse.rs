//! Operators' read-only view of a tenant's directory: `GET /api/v1/tenants/{t}/users` and
//! `…/groups` (searched, paged in creation order) and one user or group with its memberships.
//! Changes come through SCIM and sign-in; what an operator may change (sessions, passwords,
//! access policy) has its own routes.

use std::ops::ControlFlow;

use axum::{
    Router,
    extract::{Path, State},
    middleware::from_extractor_with_state,
    routing::get,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    admin::AdminAuth,
    app::AppState,
    http::{ApiError, ApiJson, ApiQuery},
    ids::{GroupId, UserId},
    store::{
        Source, StoreError,
        directory::{self, GroupRecord, UserRecord},
    },
    tenants::{self, TenantError},
};

const PAGE: usize = 50;
const MAX_PAGE: usize = 200;
/// How many records one search reads at most: bounds a request's cost on a huge tenant (the
/// answer's `next_after` continues where it stopped).
const MAX_SCANNED: usize = 100_000;
/// How many members a group's page lists.
const MAX_MEMBERS_SHOWN: usize = 500;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/users", get(list_users))
        .route("/tenants/{tenant}/users/{user}", get(show_user))
        .route("/tenants/{tenant}/groups", get(list_groups))
        .route("/tenants/{tenant}/groups/{group}", get(show_group))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Case-insensitive text within the names, emails or externalId.
    q: Option<String>,
    /// The id after which to continue (the previous page's `next_after`).
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Page<T> {
    items: Vec<T>,
    /// Present when there may be more: pass it as `after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
    /// How many the tenant has in all (whatever the search).
    total: u64,
}

#[derive(Debug, Serialize)]
struct UserSummary {
    id: UserId,
    user_name: String,
    display_name: Option<String>,
    email: Option<String>,
    active: bool,
    external_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<&UserRecord> for UserSummary {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            user_name: u.user_name.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            active: u.active,
            external_id: u.external_id.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct GroupSummary {
    id: GroupId,
    display_name: String,
    external_id: Option<String>,
    member_count: usize,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

fn group_summary(src: &impl Source, g: &GroupRecord) -> Result<GroupSummary, StoreError> {
    Ok(GroupSummary {
        id: g.id,
        display_name: g.display_name.clone(),
        external_id: g.external_id.clone(),
        member_count: directory::member_count(src, g.tenant, g.id)?,
        created_at: g.created_at,
        updated_at: g.updated_at,
    })
}

/// The lower-cased search text, and the page size.
fn search_terms(params: &ListParams) -> (Option<String>, usize) {
    let q = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    (q, params.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE))
}

fn contains(haystack: Option<&str>, needle: &str) -> bool {
    haystack.is_some_and(|h| h.to_lowercase().contains(needle))
}

fn cursor<I: std::str::FromStr>(after: Option<&str>) -> Result<Option<I>, ApiError> {
    after
        .map(|a| a.parse().map_err(|_| ApiError::invalid("after", "must be an id from `next_after`")))
        .transpose()
}

/// Runs one listing: visits records from the cursor, keeps those `matches` accepts, and stops
/// at a full page or at the scan budget; says where to continue.
fn collect_page<R, T>(
    visit_from: impl FnOnce(&mut dyn FnMut(R) -> ControlFlow<()>) -> Result<(), StoreError>,
    matches: impl Fn(&R) -> bool,
    mut summarise: impl FnMut(&R) -> Result<T, StoreError>,
    id_of: impl Fn(&R) -> String,
    limit: usize,
) -> Result<(Vec<T>, Option<String>), StoreError> {
    let (mut items, mut last, mut scanned, mut full, mut failed) = (Vec::new(), None, 0, false, None);
    visit_from(&mut |record: R| {
        scanned += 1;
        last = Some(id_of(&record));
        if matches(&record) {
            match summarise(&record) {
                Ok(item) => items.push(item),
                Err(err) => {
                    failed = Some(err);
                    return ControlFlow::Break(());
                }
            }
        }
        full = items.len() == limit;
        if full || scanned == MAX_SCANNED { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })?;
    if let Some(err) = failed {
        return Err(err);
    }
    let more = full || scanned == MAX_SCANNED;
    Ok((items, if more { last } else { None }))
}

async fn list_users(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<Page<UserSummary>>, ApiError> {
    let (q, limit) = search_terms(&params);
    let after: Option<UserId> = cursor(params.after.as_deref())?;
    let page = state
        .store
        .read_blocking(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let matches = |u: &UserRecord| {
                q.as_deref().is_none_or(|q| {
                    contains(Some(&u.user_name), q)
                        || contains(u.display_name.as_deref(), q)
                        || u.emails.iter().any(|e| e.contains(q))
                        || contains(u.external_id.as_deref(), q)
                })
            };
            let (items, next_after) = collect_page(
                |visit| directory::visit_users_after(tx, tenant.id, after, visit),
                matches,
                |u| Ok(UserSummary::from(u)),
                |u| u.id.to_string(),
                limit,
            )?;
            let total = directory::counts(tx, tenant.id)?.users;
            Ok::<_, TenantError>(Page { items, next_after, total })
        })
        .await?;
    Ok(ApiJson(page))
}

async fn list_groups(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<Page<GroupSummary>>, ApiError> {
    let (q, limit) = search_terms(&params);
    let after: Option<GroupId> = cursor(params.after.as_deref())?;
    let page = state
        .store
        .read_blocking(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let matches = |g: &GroupRecord| {
                q.as_deref().is_none_or(|q| {
                    contains(Some(&g.display_name), q) || contains(g.external_id.as_deref(), q)
                })
            };
            let (items, next_after) = collect_page(
                |visit| directory::visit_groups_after(tx, tenant.id, after, visit),
                matches,
                |g| group_summary(tx, g),
                |g| g.id.to_string(),
                limit,
            )?;
            let total = directory::counts(tx, tenant.id)?.groups;
            Ok::<_, TenantError>(Page { items, next_after, total })
        })
        .await?;
    Ok(ApiJson(page))
}

#[derive(Debug, Serialize)]
struct GroupRef {
    id: GroupId,
    display_name: String,
}

#[derive(Debug, Serialize)]
struct MemberRef {
    id: UserId,
    user_name: String,
    display_name: Option<String>,
}

#[derive(Debug, Serialize)]
struct UserDetail {
    #[serde(flatten)]
    summary: UserSummary,
    emails: Vec<String>,
    groups: Vec<GroupRef>,
    /// The SCIM profile as the IdP sent it (names, titles, enterprise attributes…).
    profile: serde_json::Value,
}

async fn show_user(
    State(state): State<AppState>,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<ApiJson<UserDetail>, ApiError> {
    let not_found = || ApiError::NotFound(format!("the tenant has no user `{user}`"));
    let user_id: UserId = user.parse().map_err(|_| not_found())?;
    let detail = state
        .store
        .read(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let Some(u) = directory::user(tx, tenant.id, user_id)? else { return Ok(None) };
            let mut groups = Vec::new();
            for id in directory::groups_of(tx, tenant.id, user_id)? {
                if let Some(g) = directory::group(tx, tenant.id, id)? {
                    groups.push(GroupRef { id, display_name: g.display_name });
                }
            }
            let summary = UserSummary::from(&u);
            Ok::<_, TenantError>(Some(UserDetail { summary, emails: u.emails, groups, profile: u.profile }))
        })
        .await?;
    Ok(ApiJson(detail.ok_or_else(not_found)?))
}

#[derive(Debug, Serialize)]
struct GroupDetail {
    #[serde(flatten)]
    summary: GroupSummary,
    /// The first members (by id); `member_count` says how many there are.
    members: Vec<MemberRef>,
}

async fn show_group(
    State(state): State<AppState>,
    Path((tenant, group)): Path<(String, String)>,
) -> Result<ApiJson<GroupDetail>, ApiError> {
    let not_found = || ApiError::NotFound(format!("the tenant has no group `{group}`"));
    let group_id: GroupId = group.parse().map_err(|_| not_found())?;
    let detail = state
        .store
        .read(move |tx| {
            let tenant = tenants::resolve(tx, &tenant)?;
            let Some(g) = directory::group(tx, tenant.id, group_id)? else { return Ok(None) };
            let mut members = Vec::new();
            for id in directory::members_of(tx, tenant.id, group_id)?.into_iter().take(MAX_MEMBERS_SHOWN) {
                if let Some(u) = directory::user(tx, tenant.id, id)? {
                    members.push(MemberRef { id, user_name: u.user_name, display_name: u.display_name });
                }
            }
            let summary = group_summary(tx, &g)?;
            Ok::<_, TenantError>(Some(GroupDetail { summary, members }))
        })
        .await?;
    Ok(ApiJson(detail.ok_or_else(not_found)?))
}
