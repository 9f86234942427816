//! The access policy in the admin API:
//! - `GET|PUT /api/v1/tenants/{tenant}/access-policy`: the vocabulary, rules and default, as one
//!   versioned document (ETag `"<version>"`; a PUT with `If-Match` is refused with 412 when
//!   someone saved in between). Saving re-evaluates every user of the tenant in the same commit.
//! - `POST …/access-policy/dry-run[?user=…&limit=…]`: what a candidate policy would change, for
//!   the whole tenant or one user, without saving anything.
//! - `GET /api/v1/tenants/{tenant}/users/{user}/access`: a user's roles, tier and programs, the
//!   rule behind each, and the groups and claims they were computed from.

use std::{
    collections::{BTreeMap, HashSet},
    ops::ControlFlow,
};

use axum::{
    Extension, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::from_extractor_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{Proposed, Reevaluated, access_view, compile, dry_run as evaluate_candidate, granted_by_view};
use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, ApiQuery, middleware::RequestId},
    ids::{TenantId, UserId},
    store::{
        Source, StoreError,
        access::{self, Policy, PolicyRecord, UserAccessRecord},
        directory,
        journal::Subject,
    },
    tenants::resolve,
};

const DEFAULT_DRY_RUN_LIMIT: usize = 100;
const MAX_DRY_RUN_LIMIT: usize = 1000;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/access-policy", get(show).put(replace))
        .route("/tenants/{tenant}/access-policy/dry-run", post(dry_run))
        .route("/tenants/{tenant}/users/{user}/access", get(user_access))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

#[derive(Debug, Serialize)]
struct PolicyView {
    tenant: TenantId,
    /// 0 until the first save.
    version: u64,
    #[serde(flatten)]
    policy: Policy,
    #[serde(with = "time::serde::rfc3339::option")]
    updated_at: Option<OffsetDateTime>,
    /// After a save: how many users were evaluated and how many of them changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    reevaluated: Option<Reevaluated>,
    /// After a save: groups the rules name that no group of the tenant is (a typo, or a group the
    /// IdP has not provisioned; it may still claim them at sign-in).
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown_groups: Option<Vec<String>>,
}

impl PolicyView {
    fn of(tenant: TenantId, record: Option<PolicyRecord>) -> Self {
        let (version, policy, updated_at) = match record {
            Some(r) => (r.version, r.policy, Some(r.updated_at)),
            None => (0, Policy::default(), None),
        };
        Self { tenant, version, policy, updated_at, reevaluated: None, unknown_groups: None }
    }

    fn into_response(self) -> Response {
        let etag = HeaderValue::from_str(&format!("\"{}\"", self.version)).ok();
        let mut response = ApiJson(self).into_response();
        if let Some(etag) = etag {
            response.headers_mut().insert(header::ETAG, etag);
        }
        response
    }
}

async fn show(State(state): State<AppState>, Path(reference): Path<String>) -> Result<Response, ApiError> {
    let view = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &reference)?;
            Ok::<_, ApiError>(PolicyView::of(tenant.id, access::policy(tx, tenant.id)?))
        })
        .await?;
    Ok(view.into_response())
}

fn checked(policy: &Policy) -> Result<super::Compiled, ApiError> {
    compile(policy).map_err(|err| ApiError::invalid_at(err.path, err.message))
}

/// The version an `If-Match` header names (`"3"`, `W/"3"` or `*`).
fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.trim_start_matches("W/").trim_matches('"');
    tag.parse().map(Some).map_err(|_| {
        ApiError::PreconditionFailed(format!("If-Match `{text}` names no version of this policy"))
    })
}

/// What a setup link may change: it maps the customer's groups to the app's roles. The
/// vocabulary, the default, and every rule that gives a tier or programs or ends the evaluation
/// are the vendor's (a tier is often what the customer pays for), so they must stay as they are.
fn setup_may_save(current: &Policy, proposed: &Policy) -> Result<(), ApiError> {
    let refuse = |message: &str| ApiError::Forbidden {
        code: "insufficient_scope",
        message: format!(
            "{message}: a setup link may only add, change or remove rules that map groups to roles"
        ),
    };
    if (&proposed.roles, &proposed.tiers, &proposed.programs)
        != (&current.roles, &current.tiers, &current.programs)
    {
        return Err(refuse("the roles, tiers and programs are defined by the app's operator"));
    }
    if proposed.default != current.default {
        return Err(refuse("the default access is set by the app's operator"));
    }
    let reserved =
        |rule: &&access::Rule| rule.grant.tier.is_some() || !rule.grant.programs.is_empty() || rule.is_final;
    let kept: Vec<_> = current.rules.iter().filter(reserved).collect();
    let proposed_reserved: Vec<_> = proposed.rules.iter().filter(reserved).collect();
    if kept != proposed_reserved {
        return Err(refuse("rules that give a tier or programs, or end the evaluation, are the operator's"));
    }
    Ok(())
}

async fn replace(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<Response, ApiError> {
    let compiled = checked(&policy)?;
    let expected = expected_version(&headers)?;
    let admin = AdminChange::new(auth, &request, state.clock.now());
    let to_apply = compiled.clone();
    let (record, reevaluated) = state
        .store
        .write(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let current = access::policy(tx, tenant.id)?;
            let current_version = current.as_ref().map_or(0, |c| c.version);
            if !admin.auth.is_operator() {
                let empty = Policy::default();
                setup_may_save(current.as_ref().map_or(&empty, |c| &c.policy), &policy)?;
            }
            if expected.is_some_and(|v| v != current_version) {
                return Err(ApiError::PreconditionFailed(format!(
                    "the policy is at version {current_version}: someone saved it since it was read"
                )));
            }
            let record = PolicyRecord {
                tenant: tenant.id,
                version: current_version + 1,
                policy: policy.clone(),
                updated_at: admin.now,
            };
            let reevaluated = super::save_policy(tx, &admin.on_directory(tenant.id), &record, &to_apply)?;
            let target = Subject { kind: "access_policy".into(), id: tenant.id.to_string(), label: None };
            let detail = json!({
                "version": record.version,
                "before": current.map(|c| c.policy),
                "after": record.policy,
                "users_evaluated": reevaluated.evaluated,
                "users_changed": reevaluated.changed,
            });
            admin.audit(tx, Some(tenant.id), "access_policy.update", target, detail)?;
            Ok((record, reevaluated))
        })
        .await?;
    tracing::info!(tenant = %record.tenant, version = record.version, changed = reevaluated.changed, "access policy saved");
    let tenant = record.tenant;
    let unknown = state.store.read(|tx| unknown_groups(tx, tenant, compiled.group_names())).await?;
    let mut view = PolicyView::of(tenant, Some(record));
    view.reevaluated = Some(reevaluated);
    view.unknown_groups = Some(unknown);
    Ok(view.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunQuery {
    /// One user, by id or userName; all of the tenant's when absent.
    user: Option<String>,
    /// How many changed users to list (the counts cover all).
    limit: Option<usize>,
}

#[derive(Debug, Default, Serialize)]
struct Movement {
    gained: usize,
    lost: usize,
}

#[derive(Debug, Default, Serialize)]
struct DryRunView {
    users_evaluated: usize,
    users_changed: usize,
    /// Per role, tier and program: how many users would gain and lose it.
    summary: BTreeMap<&'static str, BTreeMap<String, Movement>>,
    /// The users whose access would change (for one user: that user, changed or not).
    changes: Vec<Value>,
    /// More users would change than `changes` lists.
    truncated: bool,
    /// Groups the rules name that no group of the tenant is (by id, name or external id); an
    /// IdP may still claim them at sign-in.
    unknown_groups: Vec<String>,
}

impl DryRunView {
    fn add(&mut self, proposed: &Proposed, listed: bool, limit: usize) {
        let changed = proposed.changes();
        if changed {
            self.users_changed += 1;
            self.count(proposed);
        }
        if !(changed || listed) {
            return;
        }
        if self.changes.len() >= limit {
            self.truncated = true;
            return;
        }
        let after = UserAccessRecord {
            roles: proposed.proposed.roles.iter().cloned().collect(),
            tier: proposed.proposed.tier.clone(),
            programs: proposed.proposed.programs.iter().cloned().collect(),
            ..Default::default()
        };
        self.changes.push(json!({
            "user": { "id": proposed.user.id, "user_name": proposed.user.user_name },
            "changed": changed,
            "before": access_view(&proposed.current),
            "after": access_view(&after),
            "granted_by": granted_by_view(&proposed.proposed.granted_by),
        }));
    }

    fn count(&mut self, proposed: &Proposed) {
        let (now, next) = (&proposed.current, &proposed.proposed);
        let dimensions: [(&'static str, Vec<&String>, Vec<&String>); 3] = [
            ("roles", now.roles.iter().collect(), next.roles.iter().collect()),
            ("tiers", now.tier.iter().collect(), next.tier.iter().collect()),
            ("programs", now.programs.iter().collect(), next.programs.iter().collect()),
        ];
        for (dimension, before, after) in dimensions {
            let moves = self.summary.entry(dimension).or_default();
            for gained in after.iter().filter(|a| !before.contains(a)) {
                moves.entry((*gained).clone()).or_default().gained += 1;
            }
            for lost in before.iter().filter(|b| !after.contains(b)) {
                moves.entry((*lost).clone()).or_default().lost += 1;
            }
        }
    }
}

async fn dry_run(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    ApiQuery(query): ApiQuery<DryRunQuery>,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<ApiJson<DryRunView>, ApiError> {
    let candidate = checked(&policy)?;
    let limit = query.limit.unwrap_or(DEFAULT_DRY_RUN_LIMIT).clamp(1, MAX_DRY_RUN_LIMIT);
    // It reads every user of the tenant: a long scan, kept off the request threads.
    let view = state
        .store
        .read_blocking(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let only = match &query.user {
                Some(reference) => Some(find_user(tx, tenant.id, reference)?),
                None => None,
            };
            let mut view = DryRunView::default();
            view.users_evaluated = evaluate_candidate(tx, tenant.id, &candidate, only, |proposed| {
                view.add(&proposed, only.is_some(), limit)
            })?;
            view.unknown_groups = unknown_groups(tx, tenant.id, candidate.group_names())?;
            Ok::<_, ApiError>(view)
        })
        .await?;
    Ok(ApiJson(view))
}

fn unknown_groups<'a>(
    src: &impl Source,
    tenant: TenantId,
    named: impl Iterator<Item = &'a String>,
) -> Result<Vec<String>, StoreError> {
    let mut known = HashSet::new();
    directory::visit_groups(src, tenant, 0, |group| {
        known.insert(group.id.to_string());
        known.insert(group.display_name.trim().to_lowercase());
        known.extend(group.external_id.map(|id| id.trim().to_lowercase()));
        ControlFlow::Continue(())
    })?;
    let mut unknown: Vec<String> = named.filter(|name| !known.contains(*name)).cloned().collect();
    unknown.sort();
    Ok(unknown)
}

fn find_user(src: &impl Source, tenant: TenantId, reference: &str) -> Result<UserId, ApiError> {
    let by_id = reference.parse::<UserId>().ok();
    let found = match by_id {
        Some(id) => directory::user(src, tenant, id)?.map(|u| u.id),
        None => directory::user_id_by_name(src, tenant, reference)?,
    };
    found.ok_or_else(|| ApiError::NotFound(format!("no user `{reference}` in this tenant")))
}

async fn user_access(
    State(state): State<AppState>,
    Path((reference, user)): Path<(String, String)>,
) -> Result<ApiJson<Value>, ApiError> {
    let view = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let id = find_user(tx, tenant.id, &user)?;
            let record = access::user_access(tx, tenant.id, id)?.unwrap_or_default();
            let mut groups = Vec::new();
            for group in directory::groups_of(tx, tenant.id, id)? {
                if let Some(group) = directory::group(tx, tenant.id, group)? {
                    groups.push(json!({ "id": group.id, "display_name": group.display_name, "external_id": group.external_id }));
                }
            }
            let mut view = access_view(&record);
            view["user"] = json!(id);
            view["granted_by"] = granted_by_view(&record.granted_by);
            view["groups"] = json!(groups);
            view["sign_in_claims"] = json!(record.claims);
            view["policy_version"] = json!(record.policy_version);
            view["updated_at"] = json!(record.updated_at.and_then(|t| t.format(&Rfc3339).ok()));
            Ok::<_, ApiError>(view)
        })
        .await?;
    Ok(ApiJson(view))
}
