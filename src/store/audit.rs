//! The audit log: an append-only record of who did what to what, through which request, written
//! in the transaction of the change it describes, so nothing acknowledged is missing from it.
//!
//! Records are numbered by one global sequence (the order the search index ingests them in) and
//! chained by hash per tenant (instance-wide records form the `instance` chain): each record
//! carries the hash of the one before it in its chain, and the chain's head keeps the hash of the
//! last. Editing, removing or inserting a record breaks the chain where it happened (`verify`).
//! The hash is taken over the record's canonical JSON form (`AuditRecord::canonical_json`), the
//! same object the export writes, so anyone can check an exported trail with a SHA-256 and a JSON
//! library, without Portcullis.
//!
//! Retention removes a chain's oldest records (`prune`) and keeps the hash of the last removed
//! one as the chain's anchor: what remains still verifies from there.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Record, Source, StoreError, TableVisitor, WriteTx, codec, journal::Subject};
use crate::ids::{EntryId, TenantId};

const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
/// (chain, seq) → the record's time (unix seconds): a chain's records in order, with what
/// retention needs to find its old ones without decoding them.
const CHAIN_ENTRIES: TableDefinition<(&str, u64), i64> = TableDefinition::new("audit_chain_entries");
const CHAIN_HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_chain_heads");
/// chain → days a record is kept.
const RETENTION: TableDefinition<&str, u32> = TableDefinition::new("audit_retention");

/// The chain of records that belong to no tenant (instance keys, OAuth clients, …).
pub const INSTANCE_CHAIN: &str = "instance";
/// What the first record of a chain follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every table of this module: created at start, copied by a backup.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(AUDIT_LOG)?;
    tables.visit(CHAIN_ENTRIES)?;
    tables.visit(CHAIN_HEADS)?;
    tables.visit(RETENTION)?;
    Ok(())
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// `scim_token`, `admin_key`, `user`, `idp`, `oauth_client`, `system`, `anonymous`, …
    pub kind: String,
    pub id: String,
    pub label: Option<String>,
}

impl Actor {
    /// Portcullis itself (retention, key rotation on schedule).
    pub fn system(id: &str) -> Self {
        Self { kind: "system".into(), id: id.into(), label: None }
    }

    /// A caller that did not authenticate (what it claimed to be goes in the detail). Records of
    /// its refusals are budgeted per source address (`audit::refusals`).
    pub fn anonymous() -> Self {
        Self { kind: "anonymous".into(), id: String::new(), label: None }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    #[default]
    Success,
    /// Refused or failed: `reason` says which check.
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Where a request came from, recorded with every audit record written while serving it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    pub request_id: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    static ORIGIN: RequestOrigin;
}

impl RequestOrigin {
    /// Runs `serving` with this origin as the current request's: every write it queues records
    /// it in the audit records it appends (`append`). Set by the HTTP middleware, so no handler
    /// can forget it; work spawned off the request has no origin, which is what it is.
    pub async fn scope<F: std::future::Future>(self, serving: F) -> F::Output {
        ORIGIN.scope(self, serving).await
    }

    /// The origin of the request the calling task serves.
    pub fn current() -> Option<Self> {
        ORIGIN.try_with(Clone::clone).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: EntryId,
    pub seq: u64,
    pub tenant: Option<TenantId>,
    pub at: OffsetDateTime,
    pub actor: Actor,
    /// What was done, dotted (`scim.user.create`, `sso.saml.refused`).
    pub action: String,
    pub target: Option<Subject>,
    #[serde(default)]
    pub outcome: Outcome,
    /// Why it failed: the check that refused it.
    #[serde(default)]
    pub reason: Option<String>,
    pub request_id: Option<String>,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// What changed, for the reader of the trail (secrets never appear here).
    pub detail: serde_json::Value,
    /// The hash of the record before this one in its chain (`GENESIS` for the first).
    #[serde(default)]
    pub prev_hash: String,
}

impl Record for AuditRecord {
    const KIND: &'static str = "audit record";
}

impl AuditRecord {
    /// A successful action's record (its id is made here; its `seq`, chain link and origin by
    /// `append`).
    pub fn new(
        tenant: Option<TenantId>,
        actor: Actor,
        action: impl Into<String>,
        target: Option<Subject>,
        detail: serde_json::Value,
        at: OffsetDateTime,
        request_id: Option<String>,
    ) -> Self {
        Self {
            id: EntryId::generate(),
            seq: 0,
            tenant,
            at,
            actor,
            action: action.into(),
            target,
            outcome: Outcome::Success,
            reason: None,
            request_id,
            source_ip: None,
            user_agent: None,
            detail,
            prev_hash: String::new(),
        }
    }

    /// The same record for an action that was refused, and why.
    pub fn refused(mut self, reason: impl Into<String>) -> Self {
        self.outcome = Outcome::Failure;
        self.reason = Some(reason.into());
        self
    }

    /// The chain the record belongs to: its tenant's, or the instance's.
    pub fn chain(&self) -> String {
        chain_of(self.tenant)
    }

    /// The record as the API and the export show it, without its hash. Keys sort when
    /// serialized (serde_json's map is ordered), which makes `canonical_json` canonical.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "seq": self.seq, "tenant": self.tenant,
            "at": format_time(self.at),
            "actor": self.actor, "action": self.action, "target": self.target,
            "outcome": self.outcome, "reason": self.reason,
            "request_id": self.request_id, "source_ip": self.source_ip, "user_agent": self.user_agent,
            "detail": self.detail, "prev_hash": self.prev_hash,
        })
    }

    /// What the hash is taken over: `to_json` with object keys sorted by code point, no
    /// whitespace, non-ASCII characters as they are (Python: `json.dumps(record, sort_keys=True,
    /// separators=(",", ":"), ensure_ascii=False)`).
    pub fn canonical_json(&self) -> String {
        canonical(&self.to_json())
    }

    /// The record's hash: lowercase hex SHA-256 of its canonical JSON.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }
}

/// RFC 3339 with the stored precision; the form the hash covers.
pub fn format_time(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// JSON with every object's keys sorted, whatever map type serde_json was built with.
fn canonical(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

pub fn chain_of(tenant: Option<TenantId>) -> String {
    tenant.map_or_else(|| INSTANCE_CHAIN.to_owned(), |t| t.to_string())
}

/// The end of a chain, and where it starts after retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainHead {
    pub chain: String,
    pub last_seq: u64,
    pub last_hash: String,
    /// Records in the chain now.
    pub records: u64,
    /// The last record retention removed: the first remaining record follows its hash.
    pub pruned: Option<PrunedThrough>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunedThrough {
    pub seq: u64,
    pub hash: String,
    /// Records removed by retention over the chain's life.
    pub records: u64,
}

impl Record for ChainHead {
    const KIND: &'static str = "audit chain head";
}

impl ChainHead {
    fn new(chain: &str) -> Self {
        Self { chain: chain.to_owned(), last_seq: 0, last_hash: GENESIS.into(), records: 0, pruned: None }
    }

    /// The hash the chain's first remaining record must carry.
    fn start_hash(&self) -> &str {
        self.pruned.as_ref().map_or(GENESIS, |p| p.hash.as_str())
    }
}

/// Appends a record to the log and to its chain; its `seq`, `prev_hash` and (when the write is
/// made for a request) request id, source address and user agent are set here.
pub fn append(tx: &WriteTx<'_>, mut record: AuditRecord) -> Result<u64, StoreError> {
    if let Some(origin) = tx.origin() {
        record.request_id.get_or_insert_with(|| origin.request_id.clone());
        if record.source_ip.is_none() {
            record.source_ip.clone_from(&origin.source_ip);
        }
        if record.user_agent.is_none() {
            record.user_agent.clone_from(&origin.user_agent);
        }
    }
    record.seq = tx.table(AUDIT_LOG)?.last()?.map_or(1, |(key, _)| key.value() + 1);
    link(tx, &mut record)?;
    Ok(record.seq)
}

/// Writes `record` (its `seq` set) as the next link of its chain.
fn link(tx: &WriteTx<'_>, record: &mut AuditRecord) -> Result<(), StoreError> {
    let chain = record.chain();
    let mut head = head(tx, &chain)?.unwrap_or_else(|| ChainHead::new(&chain));
    record.prev_hash = std::mem::take(&mut head.last_hash);
    head.last_hash = record.hash();
    head.last_seq = record.seq;
    head.records += 1;
    tx.table_mut(AUDIT_LOG)?.insert(record.seq, codec::encode(&*record)?.as_slice())?;
    tx.table_mut(CHAIN_ENTRIES)?.insert((chain.as_str(), record.seq), record.at.unix_timestamp())?;
    tx.table_mut(CHAIN_HEADS)?.insert(chain.as_str(), codec::encode(&head)?.as_slice())?;
    Ok(())
}

/// The record numbered `seq`, if it exists (retention may have removed it).
pub fn get(src: &impl Source, seq: u64) -> Result<Option<AuditRecord>, StoreError> {
    codec::get(src, AUDIT_LOG, seq)
}

/// Up to `limit` records after sequence `after`, oldest first.
pub fn after(src: &impl Source, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    let table = src.table(AUDIT_LOG)?;
    let range = table.range(after.saturating_add(1)..)?;
    range.take(limit).map(|entry| codec::decode(entry?.1.value())).collect()
}

/// The highest sequence written (0 for an empty log).
pub fn last_seq(src: &impl Source) -> Result<u64, StoreError> {
    Ok(src.table(AUDIT_LOG)?.last()?.map_or(0, |(key, _)| key.value()))
}

/// Up to `limit` of `chain`'s records after sequence `after` made at or after `since`, oldest
/// first (the chain's index knows each record's time, so older ones are skipped unread).
pub fn chain_after(
    src: &impl Source,
    chain: &str,
    after: u64,
    since: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let (entries, log) = (src.table(CHAIN_ENTRIES)?, src.table(AUDIT_LOG)?);
    let mut records = Vec::new();
    for entry in entries.range((chain, after.saturating_add(1))..=(chain, u64::MAX))? {
        let (key, at) = entry?;
        if at.value() < since {
            continue;
        }
        if let Some(value) = log.get(key.value().1)? {
            records.push(codec::decode(value.value())?);
        }
        if records.len() == limit {
            break;
        }
    }
    Ok(records)
}

pub fn head(src: &impl Source, chain: &str) -> Result<Option<ChainHead>, StoreError> {
    codec::get(src, CHAIN_HEADS, chain)
}

pub fn heads(src: &impl Source) -> Result<Vec<ChainHead>, StoreError> {
    let table = src.table(CHAIN_HEADS)?;
    table.iter()?.map(|entry| codec::decode(entry?.1.value())).collect()
}

/// How many days `chain`'s records are kept (`None`: forever).
pub fn retention(src: &impl Source, chain: &str) -> Result<Option<u32>, StoreError> {
    Ok(src.table(RETENTION)?.get(chain)?.map(|v| v.value()))
}

pub fn set_retention(tx: &WriteTx<'_>, chain: &str, days: Option<u32>) -> Result<(), StoreError> {
    let mut table = tx.table_mut(RETENTION)?;
    match days {
        Some(days) => table.insert(chain, days)?,
        None => table.remove(chain)?,
    };
    Ok(())
}

/// Every chain with a retention period, and the period.
pub fn retentions(src: &impl Source) -> Result<Vec<(String, u32)>, StoreError> {
    let table = src.table(RETENTION)?;
    table
        .iter()?
        .map(|entry| entry.map(|(k, v)| (k.value().to_owned(), v.value())).map_err(Into::into))
        .collect()
}

/// What one `prune` removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Pruned {
    pub records: u64,
    /// The last record removed, whose hash is now the chain's anchor.
    pub through_seq: u64,
    pub anchor_hash: String,
}

/// Removes up to `limit` of `chain`'s oldest records made before `cutoff`, keeping the last
/// removed record's hash as the chain's anchor. `None` if there was nothing to remove.
pub fn prune(
    tx: &WriteTx<'_>,
    chain: &str,
    cutoff: OffsetDateTime,
    limit: usize,
) -> Result<Option<Pruned>, StoreError> {
    let cutoff = cutoff.unix_timestamp();
    let doomed: Vec<u64> = {
        let entries = tx.table(CHAIN_ENTRIES)?;
        let mut doomed = Vec::new();
        for entry in entries.range((chain, 0)..=(chain, u64::MAX))?.take(limit) {
            let (key, at) = entry?;
            // A chain is in time order, give or take the moments requests wait for a commit.
            if at.value() >= cutoff {
                break;
            }
            doomed.push(key.value().1);
        }
        doomed
    };
    let Some(&through_seq) = doomed.last() else { return Ok(None) };
    let last: AuditRecord = get(tx, through_seq)?.ok_or_else(|| StoreError::Corrupt {
        kind: AuditRecord::KIND,
        message: format!("{through_seq} is missing"),
    })?;
    let anchor_hash = last.hash();
    {
        let (mut log, mut entries) = (tx.table_mut(AUDIT_LOG)?, tx.table_mut(CHAIN_ENTRIES)?);
        for seq in &doomed {
            log.remove(seq)?;
            entries.remove((chain, *seq))?;
        }
    }
    let records = doomed.len() as u64;
    let mut head = head(tx, chain)?.unwrap_or_else(|| ChainHead::new(chain));
    head.records = head.records.saturating_sub(records);
    let before = head.pruned.as_ref().map_or(0, |p| p.records);
    head.pruned =
        Some(PrunedThrough { seq: through_seq, hash: anchor_hash.clone(), records: before + records });
    tx.table_mut(CHAIN_HEADS)?.insert(chain, codec::encode(&head)?.as_slice())?;
    Ok(Some(Pruned { records, through_seq, anchor_hash }))
}

/// What `verify` found in one chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    pub chain: String,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The hash of the chain's last record: write it down to detect a rewrite of the whole
    /// chain later.
    pub head_hash: String,
    pub pruned_through: Option<u64>,
    pub problems: Vec<String>,
}

impl ChainReport {
    fn problem(&mut self, message: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(message);
        }
    }
}

/// Everything `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub chains: Vec<ChainReport>,
    /// Records in the log that no chain lists (inserted around the chains).
    pub unchained: u64,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.unchained == 0 && self.chains.iter().all(|c| c.problems.is_empty())
    }

    pub fn records(&self) -> u64 {
        self.chains.iter().map(|c| c.records).sum()
    }
}

/// Recomputes every chain (or only `only`'s): each record must follow the hash of the one before
/// it, the last must be the head, and the log must hold nothing else.
pub fn verify(src: &impl Source, only: Option<&str>) -> Result<VerifyReport, StoreError> {
    let mut chains = Vec::new();
    for head in heads(src)?.into_iter().filter(|h| only.is_none_or(|c| c == h.chain)) {
        chains.push(verify_chain(src, &head)?);
    }
    let unchained = match only {
        Some(_) => 0,
        None => {
            let in_log = src.table(AUDIT_LOG)?.len()?;
            in_log.saturating_sub(chains.iter().map(|c| c.records).sum())
        }
    };
    Ok(VerifyReport { chains, unchained })
}

/// The most problems one chain's report lists: a damaged log is told, not dumped.
const MAX_PROBLEMS: usize = 100;

fn verify_chain(src: &impl Source, head: &ChainHead) -> Result<ChainReport, StoreError> {
    let chain = head.chain.as_str();
    let mut report = ChainReport {
        chain: chain.to_owned(),
        records: 0,
        first_seq: None,
        last_seq: None,
        head_hash: head.last_hash.clone(),
        pruned_through: head.pruned.as_ref().map(|p| p.seq),
        problems: Vec::new(),
    };
    let mut expected = head.start_hash().to_owned();
    let (entries, log) = (src.table(CHAIN_ENTRIES)?, src.table(AUDIT_LOG)?);
    for entry in entries.range((chain, 0)..=(chain, u64::MAX))? {
        let seq = entry?.0.value().1;
        report.records += 1;
        report.first_seq.get_or_insert(seq);
        report.last_seq = Some(seq);
        let record = match log.get(seq)?.map(|v| codec::decode::<AuditRecord>(v.value())) {
            Some(Ok(record)) => record,
            Some(Err(err)) => {
                report.problem(format!("record {seq} cannot be read: {err}"));
                expected = String::new();
                continue;
            }
            None => {
                report.problem(format!("record {seq} is listed in the chain but missing from the log"));
                continue;
            }
        };
        if record.seq != seq || record.chain() != chain {
            report.problem(format!(
                "record {seq} says it is record {} of chain {}",
                record.seq,
                record.chain()
            ));
        }
        if record.prev_hash != expected {
            report.problem(format!("record {seq} does not follow the record before it: it or an earlier record was changed or removed"),
            );
        }
        expected = record.hash();
    }
    if expected != head.last_hash
        || report.last_seq.unwrap_or(head.pruned.as_ref().map_or(0, |p| p.seq)) != head.last_seq
    {
        report.problem(
            "the chain does not end at its head: records were removed from its end or changed".into(),
        );
    }
    if report.records != head.records {
        let listed = report.records;
        report.problem(format!("the chain lists {listed} records, its head counts {}", head.records));
    }
    Ok(report)
}

/// Migration to schema 3: chains the records written before the log was chained, in order.
pub(super) fn chain_existing(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    let mut cursor = 0;
    loop {
        let batch = after(tx, cursor, 1000)?;
        let Some(last) = batch.last() else { return Ok(()) };
        cursor = last.seq;
        for mut record in batch {
            link(tx, &mut record)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;
    use crate::store::{Store, testing};

    fn record(tenant: Option<TenantId>, action: &str, at: OffsetDateTime) -> AuditRecord {
        let actor = Actor { kind: "admin_key".into(), id: "k1".into(), label: None };
        AuditRecord::new(tenant, actor, action, None, serde_json::json!({ "n": action }), at, None)
    }

    async fn append_all(store: &Store, records: Vec<AuditRecord>) {
        store
            .write(move |tx| {
                for r in &records {
                    append(tx, r.clone())?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }

    const T0: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);

    #[tokio::test]
    async fn records_chain_per_tenant_and_verify() {
        let (_dir, store) = testing::store();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        append_all(
            &store,
            vec![record(Some(a), "one", T0), record(Some(b), "two", T0), record(None, "three", T0)],
        )
        .await;
        append_all(&store, vec![record(Some(a), "four", T0)]).await;
        let (first, fourth) =
            store.read(|tx| Ok::<_, StoreError>((get(tx, 1)?.unwrap(), get(tx, 4)?.unwrap()))).await.unwrap();
        assert_eq!(first.prev_hash, GENESIS);
        assert_eq!(fourth.prev_hash, first.hash(), "a tenant's records follow each other, not the log");
        let report = store.read(|tx| verify(tx, None)).await.unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!((report.chains.len(), report.records()), (3, 4));
    }

    #[test]
    fn the_hash_covers_the_canonical_json_a_reader_can_recompute() {
        let r = record(None, "x", T0);
        let json = r.canonical_json();
        assert!(json.starts_with(r#"{"action":"x","actor":{"id":"k1","kind":"admin_key","label":null},"at":"2026-01-01T00:00:00Z""#), "{json}");
        assert_eq!(r.hash(), hex::encode(Sha256::digest(json.as_bytes())));
    }

    #[tokio::test]
    async fn edits_removals_and_insertions_are_found() {
        for tamper in ["edit", "remove_middle", "remove_last", "insert"] {
            let (_dir, store) = testing::store();
            let t = TenantId::generate();
            append_all(&store, (0..5).map(|i| record(Some(t), &format!("a{i}"), T0)).collect()).await;
            store
                .write(move |tx| {
                    let mut log = tx.table_mut(AUDIT_LOG)?;
                    match tamper {
                        "edit" => {
                            let mut r: AuditRecord = codec::decode(log.get(3)?.unwrap().value())?;
                            r.detail = serde_json::json!({ "n": "nothing to see" });
                            log.insert(3, codec::encode(&r)?.as_slice())?;
                        }
                        "remove_middle" => {
                            log.remove(3)?;
                            tx.table_mut(CHAIN_ENTRIES)?.remove((t.to_string().as_str(), 3))?;
                        }
                        "remove_last" => {
                            log.remove(5)?;
                            tx.table_mut(CHAIN_ENTRIES)?.remove((t.to_string().as_str(), 5))?;
                        }
                        _ => {
                            let r = AuditRecord { seq: 9, ..record(Some(t), "forged", T0) };
                            log.insert(9, codec::encode(&r)?.as_slice())?;
                        }
                    }
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
            let report = store.read(|tx| verify(tx, None)).await.unwrap();
            assert!(!report.intact(), "{tamper} went unnoticed");
        }
    }

    #[tokio::test]
    async fn retention_removes_the_oldest_and_the_rest_still_verifies() {
        let (_dir, store) = testing::store();
        let t = TenantId::generate();
        let chain = t.to_string();
        let records = (0..6).map(|i| record(Some(t), &format!("a{i}"), T0 + Duration::days(i))).collect();
        append_all(&store, records).await;
        let c = chain.clone();
        let pruned =
            store.write(move |tx| prune(tx, &c, T0 + Duration::days(3), 1000)).await.unwrap().unwrap();
        assert_eq!((pruned.records, pruned.through_seq), (3, 3));
        let report = store.read(|tx| verify(tx, None)).await.unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.chains[0].first_seq, Some(4));
        assert_eq!(report.chains[0].pruned_through, Some(3));
        let c = chain.clone();
        let again = store.write(move |tx| prune(tx, &c, T0 + Duration::days(3), 1000)).await.unwrap();
        assert_eq!(again, None, "nothing more is old enough");
        append_all(&store, vec![record(Some(t), "later", T0 + Duration::days(9))]).await;
        assert!(store.read(|tx| verify(tx, Some(&chain))).await.unwrap().intact());
    }

    #[tokio::test]
    async fn records_written_for_a_request_carry_its_origin() {
        let (_dir, store) = testing::store();
        let origin = RequestOrigin {
            request_id: "req-1".into(),
            source_ip: Some("192.0.2.7".into()),
            user_agent: Some("Okta SCIM Client 1.0.0".into()),
        };
        let store2 = store.clone();
        origin
            .scope(async move { store2.write(|tx| append(tx, record(None, "x", T0))).await.unwrap() })
            .await;
        store.write(|tx| append(tx, record(None, "y", T0))).await.unwrap();
        let (x, y) =
            store.read(|tx| Ok::<_, StoreError>((get(tx, 1)?.unwrap(), get(tx, 2)?.unwrap()))).await.unwrap();
        assert_eq!(x.request_id.as_deref(), Some("req-1"));
        assert_eq!(x.source_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(x.user_agent.as_deref(), Some("Okta SCIM Client 1.0.0"));
        assert_eq!((y.request_id, y.source_ip), (None, None), "work outside a request has no origin");
    }
}
