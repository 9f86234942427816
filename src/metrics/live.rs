//! What the store knows, read when Prometheus scrapes: nothing here is kept up to date between
//! scrapes, so nothing on a request's path pays for it.
//!
//! Each reading is a point read or a table's length, which redb keeps in the table's header: a
//! scrape costs the same with a backlog of ten deliveries or of a million. The webhook delay
//! reads one key per endpoint (operators keep a handful).

use std::{collections::BTreeMap, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};
use time::OffsetDateTime;

use crate::{
    audit::AuditIndex,
    clock::SharedClock,
    sessions::{REVOCATION_REASONS, REVOKED_TALLY},
    store::{ReadTx, Store, StoreError, audit, journal, logout_deliveries, webhooks},
};

pub(super) struct Live {
    pub store: Store,
    pub audit: Arc<AuditIndex>,
    pub clock: SharedClock,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// The backlogs, from one snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Backlogs {
    /// Webhook deliveries not finished (waiting their turn, due, or retrying).
    pub webhooks_waiting: u64,
    /// Outbox events not yet turned into deliveries.
    pub fanout_lag: u64,
    /// How long past its due time the most overdue delivery of an active endpoint is.
    pub webhook_overdue_secs: f64,
    /// Back-channel logout tokens not yet accepted by their client.
    pub logouts_waiting: u64,
    /// Audit records not yet searchable.
    pub audit_last_seq: u64,
}

impl Backlogs {
    pub fn read(tx: &ReadTx, now: OffsetDateTime) -> Result<Self, StoreError> {
        let mut overdue = 0.0_f64;
        for endpoint in webhooks::endpoints(tx)? {
            if endpoint.status != webhooks::EndpointStatus::Active {
                continue;
            }
            if let Some(due) = webhooks::next_due(tx, endpoint.id)? {
                overdue = overdue.max((now - due).as_seconds_f64());
            }
        }
        Ok(Self {
            webhooks_waiting: webhooks::waiting_total(tx)?,
            fanout_lag: journal::last_seq(tx)?.saturating_sub(webhooks::fanout_cursor(tx)?),
            webhook_overdue_secs: overdue.max(0.0),
            logouts_waiting: logout_deliveries::backlog(tx)?,
            audit_last_seq: audit::last_seq(tx)?,
        })
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.store.write_stats();
        counter(
            &mut encoder,
            "store_write_batches",
            "Batches the store's writer committed together (group commit)",
            stats.batches,
        )?;
        counter(
            &mut encoder,
            "store_write_operations",
            "Write operations the store's writer ran; divided by batches, the mean batch size",
            stats.operations,
        )?;
        let mut revoked: BTreeMap<&str, u64> = REVOCATION_REASONS.iter().map(|r| (*r, 0)).collect();
        for ((name, cause), count) in &stats.tallies {
            if *name == REVOKED_TALLY {
                *revoked.entry(cause).or_default() += count;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "sessions_revoked",
                "Sessions ended before their time, by cause (counted when the change that ended them committed).",
                None,
                MetricType::Counter,
            )?;
            for (cause, count) in revoked {
                ConstCounter::new(count).encode(family.encode_family(&[("cause", cause)])?)?;
            }
        }
        let now = self.clock.now();
        match self.store.read_now(|tx| Backlogs::read(tx, now)) {
            Ok(backlogs) => self.encode_backlogs(&mut encoder, backlogs),
            Err(err) => {
                // The rest of the exposition still says something; the gap in these says the rest.
                tracing::warn!(%err, "metrics: cannot read the backlogs");
                Ok(())
            }
        }
    }
}

impl Live {
    fn encode_backlogs(&self, encoder: &mut DescriptorEncoder, b: Backlogs) -> Result<(), std::fmt::Error> {
        gauge(
            encoder,
            "webhook_deliveries_waiting",
            "Webhook deliveries not finished: due, retrying, or queued behind an earlier event of their resource (paused endpoints' included)",
            None,
            b.webhooks_waiting,
        )?;
        gauge(
            encoder,
            "webhook_fanout_lag_events",
            "Lifecycle events in the outbox not yet turned into webhook deliveries",
            None,
            b.fanout_lag,
        )?;
        gauge(
            encoder,
            "webhook_delivery_overdue",
            "How long the most overdue webhook delivery of an active endpoint has been due (0 when none is late)",
            Some(&Unit::Seconds),
            b.webhook_overdue_secs,
        )?;
        gauge(
            encoder,
            "backchannel_logouts_waiting",
            "Back-channel logout tokens not yet accepted by their client",
            None,
            b.logouts_waiting,
        )?;
        // The index's position is read after the log's head: a record indexed in between makes
        // the lag smaller, never negative.
        let lag = b.audit_last_seq.saturating_sub(self.audit.indexed_seq());
        gauge(
            encoder,
            "audit_index_lag_records",
            "Audit records written but not yet searchable in the audit index",
            None,
            lag,
        )
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let help = format!("{help}.");
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, &help, None, metric.metric_type())?)
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: N,
) -> Result<(), std::fmt::Error> {
    let help = format!("{help}.");
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, &help, unit, metric.metric_type())?)
}
