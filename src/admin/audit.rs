//! Audit records of operators' changes through the admin API, and the plain listing of the
//! trail (`GET /api/v1/audit`): oldest first from a sequence cursor, filtered by action and
//! tenant, read from the log itself — what a SIEM follows. Search (newest first, by user, time,
//! text), export and verification are the audit feature's (`crate::audit`).

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::AdminAuth;
use crate::{
    app::AppState,
    http::middleware::RequestId,
    http::{ApiError, ApiJson, ApiQuery},
    ids::TenantId,
    store::{
        StoreError, WriteTx,
        audit::{self, Actor, AuditRecord},
        journal::Subject,
    },
};

/// An operator's change: who (the admin key), through which request, when.
#[derive(Debug, Clone)]
pub struct AdminChange {
    pub auth: AdminAuth,
    pub request_id: String,
    pub now: OffsetDateTime,
}

impl AdminChange {
    pub fn new(auth: AdminAuth, request: &RequestId, now: OffsetDateTime) -> Self {
        Self { auth, request_id: request.0.clone(), now }
    }

    fn actor(&self) -> Actor {
        self.auth.actor()
    }

    /// The same change as the directory records it, for directory changes an operator makes.
    pub fn on_directory(&self, tenant: TenantId) -> crate::directory::Change {
        crate::directory::Change {
            tenant,
            actor: self.actor(),
            channel: "admin",
            request_id: Some(self.request_id.clone()),
            now: self.now,
        }
    }

    /// Appends the audit record of `action` (dotted, `admin.` prefixed here) on `target`.
    pub fn audit(
        &self,
        tx: &WriteTx<'_>,
        tenant: Option<TenantId>,
        action: &str,
        target: Subject,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        audit::append(tx, self.record(tenant, action, target, detail))?;
        Ok(())
    }

    /// Appends the record of an action that was refused, and why: in a write of its own, since
    /// a refusal changes nothing else.
    pub fn audit_refused(
        &self,
        tx: &WriteTx<'_>,
        tenant: Option<TenantId>,
        action: &str,
        target: Subject,
        detail: serde_json::Value,
        reason: &str,
    ) -> Result<(), StoreError> {
        audit::append(tx, self.record(tenant, action, target, detail).refused(reason))?;
        Ok(())
    }

    fn record(
        &self,
        tenant: Option<TenantId>,
        action: &str,
        target: Subject,
        detail: serde_json::Value,
    ) -> AuditRecord {
        let (action, request_id) = (format!("admin.{action}"), Some(self.request_id.clone()));
        AuditRecord::new(tenant, self.actor(), action, Some(target), detail, self.now, request_id)
    }
}

const PAGE: usize = 100;
const MAX_PAGE: usize = 500;
/// How many records one listing reads at most while filtering: bounds a request's cost.
const MAX_SCANNED: usize = 100_000;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// The sequence number after which to list (the previous page's `next_after`).
    after: Option<u64>,
    limit: Option<usize>,
    /// An exact action (`sso.saml.refused`) or a prefix ending in `.` (`sso.`).
    action: Option<String>,
    tenant: Option<TenantId>,
}

/// `GET /api/v1/audit`: records oldest first; `next_after` continues the listing.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let limit = params.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let matches = move |record: &AuditRecord| {
        let action_matches = params.action.as_deref().is_none_or(|wanted| match wanted.strip_suffix('.') {
            Some(prefix) => {
                record.action.starts_with(prefix) && record.action[prefix.len()..].starts_with('.')
            }
            None => record.action == wanted,
        });
        action_matches && params.tenant.is_none_or(|t| record.tenant == Some(t))
    };
    let after = params.after.unwrap_or(0);
    let (items, next_after) = state
        .store
        .read_blocking(move |tx| {
            let (mut items, mut cursor, mut scanned) = (Vec::new(), after, 0);
            'scan: while scanned < MAX_SCANNED {
                let batch = audit::after(tx, cursor, 1000)?;
                if batch.is_empty() {
                    break;
                }
                for record in batch {
                    (cursor, scanned) = (record.seq, scanned + 1);
                    if matches(&record) {
                        items.push(crate::audit::view(&record));
                        if items.len() == limit {
                            break 'scan;
                        }
                    }
                }
            }
            Ok::<_, StoreError>((items, cursor))
        })
        .await?;
    Ok(ApiJson(json!({ "items": items, "next_after": next_after })))
}
