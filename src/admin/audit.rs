//! Audit records of operators' changes through the admin API.

use time::OffsetDateTime;

use super::AdminAuth;
use crate::{
    http::middleware::RequestId,
    ids::{EntryId, TenantId},
    store::{
        StoreError, WriteTx,
        journal::{self, Actor, AuditRecord, Subject},
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

    /// Appends the audit record of `action` (dotted, `admin.` prefixed here) on `target`.
    pub fn audit(
        &self,
        tx: &WriteTx<'_>,
        tenant: Option<TenantId>,
        action: &str,
        target: Subject,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        journal::append_audit(
            tx,
            AuditRecord {
                id: EntryId::generate(),
                seq: 0,
                tenant,
                at: self.now,
                actor: Actor { kind: "admin_key".into(), id: self.auth.key_id.to_string(), label: None },
                action: format!("admin.{action}"),
                target: Some(target),
                request_id: Some(self.request_id.clone()),
                detail,
            },
        )?;
        Ok(())
    }
}
