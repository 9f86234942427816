//! Refused OpenID Provider requests in the audit trail (`oauth.token.refused`,
//! `oauth.authorize.refused`, `oauth.introspect.refused`). A refusal changes nothing, and the
//! transaction that refused it (if any) rolled back, so its record is written in a write of its
//! own after the refusal. The client's answer does not depend on it: a record that cannot be
//! written is logged.

use crate::{
    app::AppState,
    store::audit::{self, Actor, AuditRecord},
};

/// A caller that did not authenticate: what it claimed to be goes in the record's detail.
pub fn anonymous() -> Actor {
    Actor { kind: "anonymous".into(), id: String::new(), label: None }
}

/// Appends `record` (already marked refused) in a write of its own.
pub async fn record(state: &AppState, record: AuditRecord) {
    let action = record.action.clone();
    if let Err(err) = state.store.write(move |tx| audit::append(tx, record.clone())).await {
        tracing::error!(%err, %action, "cannot record a refused request in the audit trail");
    }
}
