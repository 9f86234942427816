//! Follows the event outbox and queues each new event's deliveries (`webhooks::fan_out`), in
//! batches, one commit each. It wakes after every commit of the store (an event may have been
//! written) and at least once a second, and wakes the dispatcher when it queued something.

use std::time::Duration;

use crate::{
    app::AppState,
    store::{StoreError, journal, webhooks},
};

/// Events per commit.
const BATCH: usize = 1000;
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Runs until the server stops.
pub async fn follow_outbox(state: AppState) {
    let mut commits = state.store.commits();
    loop {
        match step(&state).await {
            Ok(Step { events, queued }) => {
                if queued > 0 {
                    state.events.wake.notify_one();
                }
                if events == BATCH {
                    continue;
                }
            }
            Err(err) => tracing::warn!(%err, "cannot queue webhook deliveries"),
        }
        tokio::select! {
            _ = commits.changed() => {}
            () = tokio::time::sleep(IDLE_CHECK) => {}
        }
    }
}

struct Step {
    events: usize,
    queued: usize,
}

/// Fans out the next batch of events, if the cursor is behind the outbox.
async fn step(state: &AppState) -> Result<Step, StoreError> {
    let (cursor, last) = state
        .store
        .read(|tx| Ok::<_, StoreError>((webhooks::fanout_cursor(tx)?, journal::last_seq(tx)?)))
        .await?;
    if cursor >= last {
        return Ok(Step { events: 0, queued: 0 });
    }
    let now = state.clock.now();
    state
        .store
        .write(move |tx| {
            let endpoints = webhooks::endpoints(tx)?;
            // Events from before every endpoint are nobody's: skip them without reading them.
            let floor = endpoints.iter().map(|e| e.created_after_seq).min().unwrap_or(last);
            let cursor = webhooks::fanout_cursor(tx)?.max(floor);
            let events = journal::events_after(tx, cursor, BATCH)?;
            if events.is_empty() {
                webhooks::set_fanout_cursor(tx, cursor)?;
                return Ok(Step { events: 0, queued: 0 });
            }
            let queued = webhooks::fan_out(tx, &events, &endpoints, now)?;
            Ok(Step { events: events.len(), queued })
        })
        .await
}
