//! Retention: a tenant's records older than its retention period (`PUT …/audit-retention`) are
//! removed by an hourly sweep, in steps of `STEP` records so other writes never wait long. Each
//! step records itself in the same transaction (`audit.retention.prune`: how many, through which
//! record, and the anchor hash the chain now starts from), so the trail says what retention took,
//! and the index drops the same records when it reaches that record.

use std::time::Duration;

use serde_json::json;

use super::index::PRUNE_ACTION;
use crate::{
    clock::SharedClock,
    store::{
        Store, StoreError,
        audit::{self, Actor, AuditRecord},
        journal::Subject,
    },
};

/// Records one transaction removes at most.
const STEP: usize = 5_000;
const EVERY: Duration = Duration::from_secs(3600);

/// Sweeps every chain with a retention period, every hour.
pub async fn sweep_on_schedule(store: Store, clock: SharedClock) {
    loop {
        match store.read(audit::retentions).await {
            Ok(chains) => {
                for (chain, _) in chains {
                    sweep_chain(store.clone(), clock.clone(), chain).await;
                }
            }
            Err(err) => tracing::error!(%err, "cannot read the audit retention settings"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Removes what `chain`'s retention period no longer keeps; answers how many records went.
pub async fn sweep_chain(store: Store, clock: SharedClock, chain: String) -> u64 {
    let mut removed = 0;
    loop {
        let (target_chain, now) = (chain.clone(), clock.now());
        let step = store
            .write(move |tx| {
                let chain = &target_chain;
                let Some(days) = audit::retention(tx, chain)? else { return Ok(None) };
                let cutoff = now - time::Duration::days(i64::from(days));
                let Some(pruned) = audit::prune(tx, chain, cutoff, STEP)? else { return Ok(None) };
                let detail = json!({
                    "records": pruned.records, "through_seq": pruned.through_seq,
                    "anchor_hash": pruned.anchor_hash, "retention_days": days,
                    "cutoff": audit::format_time(cutoff),
                });
                let target = Subject { kind: "audit_chain".into(), id: chain.clone(), label: None };
                let tenant = chain.parse().ok();
                let record = AuditRecord::new(
                    tenant,
                    Actor::system("retention"),
                    PRUNE_ACTION,
                    Some(target),
                    detail,
                    now,
                    None,
                );
                audit::append(tx, record)?;
                Ok::<_, StoreError>(Some(pruned.records))
            })
            .await;
        match step {
            Ok(Some(records)) => {
                removed += records;
                if records < STEP as u64 {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => {
                tracing::error!(%err, %chain, "the audit retention sweep failed");
                break;
            }
        }
    }
    if removed > 0 {
        tracing::info!(%chain, removed, "audit retention removed old records");
    }
    removed
}
