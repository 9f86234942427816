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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        audit::{Filters, WriterSettings, index},
        clock::{Clock, ManualClock},
        ids::TenantId,
        store::testing,
    };

    #[tokio::test(flavor = "multi_thread")]
    async fn old_records_go_the_removal_is_recorded_the_chain_verifies_and_the_index_forgets_them() {
        let (dir, store) = testing::store();
        let clock = ManualClock::new(time::macros::datetime!(2026-01-01 00:00 UTC));
        let shared: SharedClock = Arc::new(clock.clone());
        let (acme, globex) = (TenantId::generate(), TenantId::generate());
        let settings = WriterSettings { memory_bytes: 15 << 20, threads: 1 };
        let (index, indexer) = index::start(&dir.path().join("audit"), settings, store.clone()).unwrap();
        let append_for = |tenant: TenantId| {
            let (store, now) = (store.clone(), clock.now());
            async move {
                store
                    .write(move |tx| {
                        let record = AuditRecord::new(
                            Some(tenant),
                            Actor::system("t"),
                            "x.y",
                            None,
                            json!({}),
                            now,
                            None,
                        );
                        audit::append(tx, record)
                    })
                    .await
                    .unwrap()
            }
        };
        for _ in 0..3 {
            append_for(acme).await;
            append_for(globex).await;
        }
        clock.advance(time::Duration::days(40));
        let recent = append_for(acme).await;
        let acme_chain = acme.to_string();
        store
            .write({
                let chain = acme_chain.clone();
                move |tx| audit::set_retention(tx, &chain, Some(30))
            })
            .await
            .unwrap();

        assert_eq!(sweep_chain(store.clone(), shared.clone(), acme_chain.clone()).await, 3);
        assert_eq!(
            sweep_chain(store.clone(), shared.clone(), acme_chain.clone()).await,
            0,
            "nothing left to remove"
        );
        let report = store.read(|tx| audit::verify(tx, None)).await.unwrap();
        assert!(report.intact(), "{report:?}");
        let acme_report = report.chains.iter().find(|c| c.chain == acme_chain).unwrap();
        assert_eq!(acme_report.records, 2, "the recent record and the record of the removal");
        let globex_report = report.chains.iter().find(|c| c.chain == globex.to_string()).unwrap();
        assert_eq!(globex_report.records, 3, "another tenant's records stay");

        let last = store.read(audit::last_seq).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while index.indexed_seq() < last {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let acme_docs =
            index.search(&Filters { chain: Some(acme_chain), ..Filters::default() }, 100).unwrap();
        assert_eq!(acme_docs, [last, recent], "the index dropped what retention removed");
        indexer.stop();
    }
}
