//! Records of refused requests. A refusal changes nothing, and the transaction that refused it
//! (if any) rolled back, so its record is written in a write of its own after it; the caller's
//! answer does not depend on it (a record that cannot be written is logged).
//!
//! A caller that never authenticated could otherwise fill the disk with records of its own
//! refusals, 500 bytes a request. So those records (actor `anonymous`) are budgeted per source
//! address (the request origin's: behind a trusted proxy, the client the proxy saw, not the
//! proxy, whose budget all its clients would otherwise share): a burst of `BURST`, then `PER_SECOND`. What the budget drops is counted, and the next
//! record from that address says how many were dropped (`detail.suppressed_before`): the trail
//! shows the flood without storing it.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use serde_json::json;

use crate::{
    app::AppState,
    store::audit::{self, AuditRecord, RequestOrigin},
};

const BURST: f64 = 100.0;
const PER_SECOND: f64 = 2.0;
/// Addresses tracked at most; past this the budget starts over (a flood from more addresses
/// than this is a distributed attack that per-address accounting does not stop anyway).
const MAX_SOURCES: usize = 10_000;

/// Per source address: the records it may still add, and how many were dropped since its last.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    sources: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

impl RefusalBudget {
    /// Whether `source` may add a record at `now`: `Some(n)` with the `n` records dropped since
    /// its last, or `None` (counted) when its budget is spent.
    fn admit(&self, source: &str, now: Instant) -> Option<u64> {
        let Ok(mut sources) = self.sources.lock() else { return Some(0) };
        if sources.len() >= MAX_SOURCES && !sources.contains_key(source) {
            sources.clear();
        }
        let bucket =
            sources.entry(source.to_owned()).or_insert(Bucket { tokens: BURST, at: now, suppressed: 0 });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            bucket.suppressed += 1;
            return None;
        }
        bucket.tokens -= 1.0;
        Some(std::mem::take(&mut bucket.suppressed))
    }
}

/// Appends `record` (already marked refused) in a write of its own, within the source's budget
/// when nobody authenticated.
pub async fn record(state: &AppState, mut record: AuditRecord) {
    if record.actor.kind == "anonymous" {
        let source = RequestOrigin::current().and_then(|o| o.source_ip).unwrap_or_default();
        match state.refusal_budget.admit(&source, Instant::now()) {
            None => {
                tracing::debug!(action = %record.action, %source, "refusal not recorded: the source's budget is spent");
                return;
            }
            Some(0) => {}
            Some(dropped) => {
                if let Some(detail) = record.detail.as_object_mut() {
                    detail.insert("suppressed_before".into(), json!(dropped));
                }
            }
        }
    }
    let action = record.action.clone();
    if let Err(err) = state.store.write(move |tx| audit::append(tx, record.clone())).await {
        tracing::error!(%err, %action, "cannot record a refused request in the audit trail");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// How long a spent budget takes to allow one more record.
    const REFILL: Duration = Duration::from_millis((1000.0 / PER_SECOND) as u64);

    #[test]
    fn a_source_gets_a_burst_then_a_trickle_and_the_dropped_are_counted() {
        let budget = RefusalBudget::default();
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(budget.admit("192.0.2.1", start), Some(0));
        }
        assert_eq!(budget.admit("192.0.2.1", start), None);
        assert_eq!(budget.admit("192.0.2.1", start), None);
        assert_eq!(budget.admit("198.51.100.9", start), Some(0), "another address has its own");
        assert_eq!(budget.admit("192.0.2.1", start + REFILL), Some(2), "the next one says two were dropped");
        assert_eq!(budget.admit("192.0.2.1", start + REFILL), None);
    }
}
