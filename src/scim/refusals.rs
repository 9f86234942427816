//! Refused SCIM operations in the audit trail. A successful change is recorded in its own
//! transaction by the directory; a refused one changes nothing, so this layer records it after
//! the response is made, before it is sent: the operation it would have been (`scim.user.update`),
//! outcome `failure`, the SCIM error's `scimType` (or status) as the reason and its detail, and
//! the token that made it when the caller got as far as authenticating.
//!
//! Refused writes are all recorded; refused reads only when the caller was refused as a caller
//! (401, 403, 429) or the server failed: a 404 for a `GET` is an answer, not an event.

use std::sync::{Arc, OnceLock};

use axum::{
    extract::{RawPathParams, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use serde_json::json;

use super::ScimError;
use crate::{
    app::AppState,
    ids::TenantId,
    store::{
        audit::{Actor, AuditRecord},
        journal::Subject,
        tenants,
    },
};

/// Where `ScimClient` leaves the authenticated caller for `record` to find after the response.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<(TenantId, Actor)>>);

impl CallerSlot {
    pub fn fill(&self, tenant: TenantId, actor: Actor) {
        let _ = self.0.set((tenant, actor));
    }
}

/// Middleware over the SCIM routes: records the operations they refuse.
pub async fn record(
    State(state): State<AppState>,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let path_tenant: Option<TenantId> =
        params.iter().find(|(name, _)| *name == "tenant").and_then(|(_, value)| value.parse().ok());
    let response = next.run(request).await;
    let status = response.status();
    if status.is_success() || status.is_redirection() || !worth_recording(&method, status) {
        return response;
    }
    let error = response.extensions().get::<ScimError>().cloned();
    let caller = slot.0.get().cloned();
    let tenant = match (&caller, path_tenant) {
        (Some((tenant, _)), _) => Some(*tenant),
        // Refused before authentication: the tenant the path names, if there is one.
        (None, Some(named)) => {
            state.store.read(|tx| tenants::get(tx, named)).await.ok().flatten().map(|t| t.id)
        }
        (None, None) => None,
    };
    let actor = caller.map_or_else(Actor::anonymous, |(_, actor)| actor);
    let (action, target) = operation(&method, &path);
    let reason =
        error.as_ref().and_then(|e| e.scim_type).map_or_else(|| status.as_u16().to_string(), str::to_owned);
    let detail = json!({
        "method": method.as_str(), "path": path, "status": status.as_u16(),
        "scimType": error.as_ref().and_then(|e| e.scim_type),
        "detail": error.as_ref().map(|e| e.detail.as_str()),
    });
    let record =
        AuditRecord::new(tenant, actor, action, target, detail, state.clock.now(), None).refused(reason);
    crate::audit::refusals::record(&state, record).await;
    response
}

fn worth_recording(method: &Method, status: StatusCode) -> bool {
    let writes = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
    let caller_refused =
        [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::TOO_MANY_REQUESTS].contains(&status);
    writes || caller_refused || status.is_server_error()
}

/// The audit action a request would have been, and what it would have changed. `path` is
/// relative to the tenant's base URL.
fn operation(method: &Method, path: &str) -> (String, Option<Subject>) {
    let mut segments = path.trim_matches('/').split('/');
    let kind = match segments.next() {
        Some("Users") => "user",
        Some("Groups") => "group",
        _ => return ("scim.request".into(), None),
    };
    let next = segments.next();
    let id = next.filter(|s| !s.starts_with('.'));
    let verb = match (method, next) {
        (&Method::POST, None) => "create",
        (_, Some(".search")) => "read",
        (&Method::PUT | &Method::PATCH, Some(_)) => "update",
        (&Method::DELETE, Some(_)) => "delete",
        _ => "read",
    };
    let target = id.map(|id| Subject { kind: kind.into(), id: id.into(), label: None });
    (format!("scim.{kind}.{verb}"), target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_operation_they_would_have_been() {
        let (action, target) = operation(&Method::PATCH, "/Users/abc");
        assert_eq!(action, "scim.user.update");
        assert_eq!(target.unwrap().id, "abc");
        assert_eq!(operation(&Method::POST, "/Groups").0, "scim.group.create");
        assert_eq!(operation(&Method::DELETE, "/Groups/g1").0, "scim.group.delete");
        assert_eq!(operation(&Method::POST, "/Users/.search").0, "scim.user.read");
        assert_eq!(operation(&Method::GET, "/Schemas").0, "scim.request");
    }

    #[test]
    fn reads_are_recorded_only_when_the_caller_or_the_server_failed() {
        assert!(worth_recording(&Method::POST, StatusCode::CONFLICT));
        assert!(worth_recording(&Method::GET, StatusCode::UNAUTHORIZED));
        assert!(worth_recording(&Method::GET, StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!worth_recording(&Method::GET, StatusCode::NOT_FOUND));
        assert!(!worth_recording(&Method::GET, StatusCode::BAD_REQUEST));
    }
}
