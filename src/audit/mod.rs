//! The audit trail, as operators and compliance teams use it. Every feature appends its records
//! to the log in the transaction of its change (`store::audit`: chained by hash per tenant);
//! this feature makes the log answer questions:
//!
//! - `index`: the tantivy index in `audit/` that a background thread keeps up with the log, and
//!   its rebuild (`portcullis audit reindex`);
//! - `routes`: search (newest first, by tenant, actor, user, target, action, outcome, time, free
//!   text, with a cursor), one record, streamed export (JSON Lines or CSV), chain verification,
//!   the index's status and each tenant's retention period;
//! - `export`: the streamed formats;
//! - `retention`: the sweep that removes records older than a tenant's retention period, which
//!   records itself and keeps the chain verifiable.

pub mod export;
pub mod index;
pub mod refusals;
pub mod retention;
mod routes;

use time::OffsetDateTime;

pub use index::{AuditIndex, Indexer, WriterSettings};
pub use routes::{router, tenant_router, view};

use crate::store::StoreError;

/// The audit feature's error.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A free-text query that does not parse.
    #[error("the query cannot be read: {0}")]
    BadQuery(String),
    /// The search index failed (the log itself is unaffected).
    #[error("the audit index failed: {0}")]
    Index(String),
    #[error(transparent)]
    Store(StoreError),
}

/// What a search asks for; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// A tenant's chain (its id) or `instance`.
    pub chain: Option<String>,
    /// Ids, names or kinds the actor may have (any of them).
    pub actor: Vec<String>,
    /// Ids or user names of the person the record is about or who acted (any of them).
    pub user: Vec<String>,
    pub target: Vec<String>,
    /// An action or a dotted prefix of one (`scim.user`), lowercase.
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    /// Words in the action, reason, names and details.
    pub text: Option<String>,
    /// Only records before this sequence (the previous page's cursor).
    pub before: Option<u64>,
}
