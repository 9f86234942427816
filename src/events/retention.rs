//! Forgets events older than `events_retention_days` (once every endpoint's deliveries have been
//! queued: never an event the fan-out has not seen) and the deliveries that finished before then.
//! Hourly, in steps of `STEP` records, one commit each.

use std::time::Duration;

use crate::{
    app::AppState,
    store::{StoreError, journal, webhooks},
};

const STEP: usize = 5000;
const EVERY: Duration = Duration::from_secs(3600);

/// Runs until the server stops.
pub async fn sweep_on_schedule(state: AppState) {
    loop {
        if let Err(err) = sweep(&state).await {
            tracing::warn!(%err, "cannot forget old events");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Forgets what is older than the retention period. Returns (events, deliveries) forgotten.
pub async fn sweep(state: &AppState) -> Result<(usize, usize), StoreError> {
    let cutoff = state.clock.now() - time::Duration::days(i64::from(state.events.retention_days));
    let (mut events, mut deliveries) = (0, 0);
    loop {
        let removed = state
            .store
            .write(move |tx| {
                let through = webhooks::fanout_cursor(tx)?;
                journal::prune_events(tx, cutoff, through, STEP)
            })
            .await?;
        events += removed;
        if removed < STEP {
            break;
        }
    }
    loop {
        let removed = state.store.write(move |tx| webhooks::prune_finished(tx, cutoff, STEP)).await?;
        deliveries += removed;
        if removed < STEP {
            break;
        }
    }
    if events + deliveries > 0 {
        tracing::info!(events, deliveries, "forgot events and deliveries past their retention");
    }
    Ok((events, deliveries))
}
