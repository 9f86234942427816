//! Answering a list query (`GET /Users?filter=…`, `.search`) over one resource type: which index
//! narrows the filter, evaluating it, sorting and paging. Each resource type says how to reach its
//! records (`Listed`); the logic is written once here.

use std::{collections::HashMap, ops::ControlFlow};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use serde_json::{Map, Value};

use super::{
    ScimBody, ScimClient, ScimError,
    filter::Filter,
    groups::Groups,
    list::{self, ListQuery, SortKey, Sorter},
    respond,
    schema::{GROUP_RESOURCE, ResourceTypeDef, USER_RESOURCE},
    users::Users,
};
use crate::{
    app::AppState,
    ids::TenantId,
    store::{ReadTx, StoreError},
};

/// A resource type as the query runner sees it.
pub trait Listed: 'static {
    type Id: Copy + Ord + Send;
    type Record: Send;
    const TYPE: &'static ResourceTypeDef;
    /// The attribute joined in from another table (a user's `groups`, a group's `members`): built
    /// only for the filters and responses that need it.
    const JOINED: &'static str;

    /// The records an index says may match one comparison (not `and`/`or`), or None when no
    /// index answers it.
    fn index(tx: &ReadTx, tenant: TenantId, leaf: &Filter) -> Result<Option<Vec<Self::Id>>, StoreError>;
    fn id(record: &Self::Record) -> Self::Id;
    fn load(tx: &ReadTx, tenant: TenantId, id: Self::Id) -> Result<Option<Self::Record>, StoreError>;
    /// Visits the tenant's records in creation order, skipping the first `skip` undecoded.
    fn visit(
        tx: &ReadTx,
        tenant: TenantId,
        skip: usize,
        visit: impl FnMut(Self::Record) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;
    fn count(tx: &ReadTx, tenant: TenantId) -> Result<usize, StoreError>;
    /// The representation without the joined attribute.
    fn representation(record: &Self::Record, base: &str) -> Map<String, Value>;
    /// Adds the joined attribute to a representation.
    fn join(
        tx: &ReadTx,
        record: &Self::Record,
        base: &str,
        out: &mut Map<String, Value>,
    ) -> Result<(), StoreError>;
}

/// A record's representation, with the joined attribute when `joined`.
fn build<L: Listed>(
    tx: &ReadTx,
    record: &L::Record,
    base: &str,
    joined: bool,
) -> Result<Map<String, Value>, StoreError> {
    let mut out = L::representation(record, base);
    if joined {
        L::join(tx, record, base, &mut out)?;
    }
    Ok(out)
}

/// `GET /Users`, `GET /Groups`.
pub async fn list<L: Listed>(
    State(state): State<AppState>,
    client: ScimClient,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let query = ListQuery::from_params(L::TYPE, &params)?;
    Ok(respond(StatusCode::OK, &run::<L>(&state, &client, query).await?, None, None))
}

/// `POST /Users/.search`, `POST /Groups/.search`.
pub async fn search<L: Listed>(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let query = ListQuery::from_search(L::TYPE, &body)?;
    Ok(respond(StatusCode::OK, &run::<L>(&state, &client, query).await?, None, None))
}

/// `POST /.search` at the root (RFC 7644 §3.4.3): users, then groups, paged as one list.
pub async fn search_all(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let user_query = ListQuery::from_search(&USER_RESOURCE, &body)?;
    let group_query = ListQuery::from_search(&GROUP_RESOURCE, &body)?;
    let (start_index, count) = (user_query.start_index, user_query.count);
    let mut users = run::<Users>(&state, &client, user_query).await?;
    let (user_total, mut resources) = take_page(&mut users);
    // The groups' part of the window starts where the users end.
    let group_query = ListQuery {
        start_index: start_index.saturating_sub(user_total).max(1),
        count: count - resources.len(),
        ..group_query
    };
    let mut groups = run::<Groups>(&state, &client, group_query).await?;
    let (group_total, group_page) = take_page(&mut groups);
    resources.extend(group_page);
    let body = list::list_response(user_total + group_total, start_index, resources);
    Ok(respond(StatusCode::OK, &body, None, None))
}

/// A ListResponse's total and resources.
fn take_page(list: &mut Value) -> (usize, Vec<Value>) {
    let total = list["totalResults"].as_u64().and_then(|t| usize::try_from(t).ok()).unwrap_or(0);
    let resources = match list["Resources"].take() {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    (total, resources)
}

/// At most this many records are examined or rendered on the request's thread; more go to a
/// blocking thread, so that a large answer does not hold up the requests sharing the runtime.
const INLINE_LIMIT: usize = 100;

/// Answers a list query with a ListResponse: on the request's thread when an index narrows the
/// filter to a few records, or for a small page without filter or sort; otherwise on a blocking
/// thread, where every record of the tenant may be examined.
pub async fn run<L: Listed>(
    state: &AppState,
    client: &ScimClient,
    query: ListQuery,
) -> Result<Value, ScimError> {
    let (tenant, base) = (client.tenant.id, client.base_url(&state.public_url));
    let inline = state
        .store
        .read(|tx| {
            let small = match &query.filter {
                Some(filter) => candidates::<L>(tx, tenant, filter)?.filter(|ids| ids.len() <= INLINE_LIMIT),
                None if query.sort_by.is_none() && query.count <= INLINE_LIMIT => Some(Vec::new()),
                None => None,
            };
            match small {
                Some(ids) => answer::<L>(tx, tenant, &base, &query, Some(ids)).map(Some),
                None => Ok::<_, ScimError>(None),
            }
        })
        .await?;
    match inline {
        Some(body) => Ok(body),
        None => {
            let run = move |tx: &ReadTx| {
                let candidates = match &query.filter {
                    Some(filter) => candidates::<L>(tx, tenant, filter)?,
                    None => None,
                };
                answer::<L>(tx, tenant, &base, &query, candidates)
            };
            state.store.read_blocking(run).await
        }
    }
}

/// Builds the page. Without a filter or sort, the page is read straight from the table (the
/// stored count is the total; skipped records are not even decoded). Otherwise each candidate (or
/// every record) is rendered and tested, and only what the answer needs is kept: the page's
/// records, or for a sort each match's key and id, so memory follows the page, not the tenant.
fn answer<L: Listed>(
    tx: &ReadTx,
    tenant: TenantId,
    base: &str,
    query: &ListQuery,
    candidates: Option<Vec<L::Id>>,
) -> Result<Value, ScimError> {
    let joined_in_output = query.projection.includes(L::JOINED);
    let finish = |mut resource: Map<String, Value>| {
        query.projection.apply(L::TYPE, &mut resource);
        Value::Object(resource)
    };
    let window = query.start_index - 1..(query.start_index - 1).saturating_add(query.count);
    let filter = query.filter.as_ref();
    if filter.is_none() && query.sort_by.is_none() {
        let total = L::count(tx, tenant)?;
        let mut page = Vec::with_capacity(query.count.min(total));
        L::visit(tx, tenant, window.start, |record| {
            if page.len() >= query.count {
                return ControlFlow::Break(());
            }
            page.push(record);
            ControlFlow::Continue(())
        })?;
        let resources = page
            .iter()
            .map(|record| Ok(finish(build::<L>(tx, record, base, joined_in_output)?)))
            .collect::<Result<_, StoreError>>()?;
        return Ok(list::list_response(total, query.start_index, resources));
    }
    // The joined attribute is built for testing only when the filter or the sort reads it.
    let joined_in_filter = filter.is_some_and(|f| list::mentions(f, L::JOINED))
        || query.sort_by.as_ref().is_some_and(|by| by.name.eq_ignore_ascii_case(L::JOINED));
    let sorter = query.sort_by.as_ref().map(|by| Sorter::new(L::TYPE, by, query.descending));
    let mut total = 0;
    let mut page: Vec<(L::Record, Map<String, Value>)> = Vec::new();
    let mut keyed: Vec<(Option<SortKey>, L::Id)> = Vec::new();
    let mut consider = |record: L::Record| -> Result<(), StoreError> {
        let resource = Value::Object(build::<L>(tx, &record, base, joined_in_filter)?);
        if filter.is_some_and(|f| !f.matches(&resource, L::TYPE)) {
            return Ok(());
        }
        let Value::Object(resource) = resource else { return Ok(()) };
        match &sorter {
            Some(sorter) => keyed.push((sorter.key(&resource), L::id(&record))),
            None if window.contains(&total) => page.push((record, resource)),
            None => {}
        }
        total += 1;
        Ok(())
    };
    match candidates {
        Some(ids) => {
            for id in ids {
                if let Some(record) = L::load(tx, tenant, id)? {
                    consider(record)?;
                }
            }
        }
        None => {
            let mut failure = None;
            L::visit(tx, tenant, 0, |record| match consider(record) {
                Ok(()) => ControlFlow::Continue(()),
                Err(err) => {
                    failure = Some(err);
                    ControlFlow::Break(())
                }
            })?;
            if let Some(err) = failure {
                return Err(err.into());
            }
        }
    }
    let resources = match &sorter {
        Some(sorter) => {
            sorter.sort(&mut keyed);
            let mut resources = Vec::new();
            for (_, id) in keyed.into_iter().skip(window.start).take(query.count) {
                if let Some(record) = L::load(tx, tenant, id)? {
                    resources.push(finish(build::<L>(tx, &record, base, joined_in_output)?));
                }
            }
            resources
        }
        None => page
            .into_iter()
            .map(|(record, mut resource)| {
                if joined_in_output && !joined_in_filter {
                    L::join(tx, &record, base, &mut resource)?;
                }
                Ok(finish(resource))
            })
            .collect::<Result<_, StoreError>>()?,
    };
    Ok(list::list_response(total, query.start_index, resources))
}

/// The records the indexes say may match `filter`, in creation order; None when no index answers
/// it. `and` uses either side's index, `or` needs both. The filter is still evaluated on every
/// candidate.
fn candidates<L: Listed>(
    tx: &ReadTx,
    tenant: TenantId,
    filter: &Filter,
) -> Result<Option<Vec<L::Id>>, StoreError> {
    Ok(match filter {
        Filter::And(a, b) => match candidates::<L>(tx, tenant, a)? {
            Some(ids) => Some(ids),
            None => candidates::<L>(tx, tenant, b)?,
        },
        Filter::Or(a, b) => match (candidates::<L>(tx, tenant, a)?, candidates::<L>(tx, tenant, b)?) {
            (Some(mut ids), Some(more)) => {
                ids.extend(more);
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            }
            _ => None,
        },
        leaf => L::index(tx, tenant, leaf)?,
    })
}
