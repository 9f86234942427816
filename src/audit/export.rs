//! The export: every record of a time range (and tenant), oldest first, streamed as it is read
//! so its size is bounded by nothing but the log. One read snapshot serves the whole export.
//!
//! - JSON Lines: one record per line, as the API shows it (with `prev_hash` and `hash`): a
//!   reader can recompute each hash (README, "Verifying an export") and follow each tenant's
//!   chain from line to line.
//! - CSV: one row per record for spreadsheets, `detail` as JSON in one column. A cell that a
//!   spreadsheet would run as a formula (`=`, `+`, `-`, `@`) is prefixed with `'`.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::routes::view;
use crate::store::{
    ReadTx, Store, StoreError,
    audit::{self, AuditRecord, format_time},
};

/// Records read per step.
const BATCH: usize = 1_000;
/// How late a record may be stamped relative to its neighbours in the log: requests take their
/// time before their commit orders them. A range's scan stops this far past its end.
const STAMP_SLACK: time::Duration = time::Duration::minutes(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::JsonLines => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// Which records: a chain (or all), from `since` (inclusive) to `until` (exclusive).
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub chain: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl Range {
    fn holds(&self, record: &AuditRecord) -> bool {
        self.since.is_none_or(|s| record.at >= s) && self.until.is_none_or(|u| record.at < u)
    }

    /// Whether the scan can stop: `record` is well past the range's end.
    fn passed(&self, record: &AuditRecord) -> bool {
        self.until.is_some_and(|u| record.at >= u + STAMP_SLACK)
    }
}

const CSV_HEADER: [&str; 19] = [
    "seq",
    "id",
    "at",
    "tenant",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "outcome",
    "reason",
    "target_kind",
    "target_id",
    "target_label",
    "request_id",
    "source_ip",
    "user_agent",
    "detail",
    "prev_hash",
    "hash",
];

/// The export's body. Reading runs on a blocking thread, a few chunks ahead of the client.
pub fn stream(store: Store, range: Range, format: Format) -> Body {
    let (chunks, receiver) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let outcome = store.read_blocking(move |tx| write_all(tx, &range, format, &chunks)).await;
        if let Err(err) = outcome {
            // The status line is gone; the body ends short, which a client sees as a failed download.
            tracing::error!(%err, "the audit export failed");
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (Ok::<_, Infallible>(chunk), receiver))
    });
    Body::from_stream(body)
}

fn write_all(
    tx: &ReadTx,
    range: &Range,
    format: Format,
    chunks: &mpsc::Sender<Bytes>,
) -> Result<(), StoreError> {
    let mut out = Writer::new(format);
    let since = range.since.map_or(i64::MIN, OffsetDateTime::unix_timestamp);
    let mut cursor = 0;
    loop {
        let batch = match &range.chain {
            Some(chain) => audit::chain_after(tx, chain, cursor, since, BATCH)?,
            None => audit::after(tx, cursor, BATCH)?,
        };
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        let mut passed = false;
        for record in batch.iter() {
            passed |= range.passed(record);
            if range.holds(record) {
                out.record(record);
            }
        }
        if chunks.blocking_send(out.take()).is_err() || passed {
            // The client went away, or the range is behind us.
            return Ok(());
        }
    }
    let _ = chunks.blocking_send(out.take());
    Ok(())
}

/// Formats records into the current chunk.
struct Writer {
    format: Format,
    buffer: Vec<u8>,
}

impl Writer {
    fn new(format: Format) -> Self {
        let mut writer = Self { format, buffer: Vec::new() };
        if format == Format::Csv {
            writer.csv_row(CSV_HEADER.iter().map(|s| (*s).to_owned()).collect());
        }
        writer
    }

    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.buffer))
    }

    fn record(&mut self, record: &AuditRecord) {
        match self.format {
            Format::JsonLines => {
                self.buffer.extend_from_slice(view(record).to_string().as_bytes());
                self.buffer.push(b'\n');
            }
            Format::Csv => self.csv_row(csv_fields(record)),
        }
    }

    fn csv_row(&mut self, fields: Vec<String>) {
        let mut writer = csv::Writer::from_writer(&mut self.buffer);
        if let Err(err) = writer.write_record(fields.iter().map(|f| defuse(f).into_owned())) {
            tracing::error!(%err, "cannot write a CSV row");
        }
        let _ = writer.flush();
    }
}

fn csv_fields(r: &AuditRecord) -> Vec<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let target = r.target.as_ref();
    vec![
        r.seq.to_string(),
        r.id.to_string(),
        format_time(r.at),
        r.tenant.map(|t| t.to_string()).unwrap_or_default(),
        r.actor.kind.clone(),
        r.actor.id.clone(),
        text(&r.actor.label),
        r.action.clone(),
        r.outcome.as_str().to_owned(),
        text(&r.reason),
        target.map(|t| t.kind.clone()).unwrap_or_default(),
        target.map(|t| t.id.clone()).unwrap_or_default(),
        target.and_then(|t| t.label.clone()).unwrap_or_default(),
        text(&r.request_id),
        text(&r.source_ip),
        text(&r.user_agent),
        r.detail.to_string(),
        r.prev_hash.clone(),
        r.hash(),
    ]
}

/// A cell a spreadsheet would evaluate, made inert (OWASP "CSV injection").
fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}").into() } else { cell.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_plain_cells_kept() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse("ada@acme.com"), "ada@acme.com");
    }

    #[test]
    fn csv_rows_quote_what_needs_quoting() {
        let mut writer = Writer::new(Format::Csv);
        writer.csv_row(vec!["a,b".into(), "say \"hi\"".into(), "line\nbreak".into()]);
        let text = String::from_utf8(writer.take().to_vec()).unwrap();
        assert!(text.ends_with("\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\"\n"), "{text}");
    }
}
