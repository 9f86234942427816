//! The tantivy index of the audit log, in the data directory's `audit/`. Derived data: it is
//! built from redb by one background thread that follows the log's sequence, and rebuilt from
//! scratch when it is missing, unreadable, of another layout, or ahead of the database (a
//! restored backup). What it has indexed is recorded in each tantivy commit's payload, so a
//! restart resumes where the last commit left off.
//!
//! Documents hold only terms and the record's sequence: search answers sequences, and the
//! records themselves are read from redb, which is authoritative (and which retention may have
//! emptied before the index caught up: such hits are skipped).

use std::{
    ops::Bound,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tantivy::{
    Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
    collector::TopDocs,
    query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery},
    schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TEXT},
};
use time::OffsetDateTime;

use super::{AuditError, Filters};
use crate::store::{
    Store, StoreError,
    audit::{self, AuditRecord},
};

/// The layout of documents; a change makes the next start rebuild the index.
const LAYOUT: u32 = 1;
/// Records read from redb per step.
const BATCH: usize = 5_000;
/// How long the indexer waits before looking for new records when it has caught up.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often, at most, a busy indexer commits (each commit makes the new records searchable).
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// The action whose record says retention removed records (see `store::audit::prune`).
pub const PRUNE_ACTION: &str = "audit.retention.prune";

/// How the index writer is sized.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub memory_bytes: usize,
    pub threads: usize,
}

impl WriterSettings {
    /// At least 15 MB per thread is tantivy's floor: fewer threads rather than a refusal.
    fn threads(self) -> usize {
        self.threads.clamp(1, (self.memory_bytes / (15 << 20)).max(1))
    }
}

#[derive(Clone, Copy)]
struct Fields {
    seq: Field,
    id: Field,
    chain: Field,
    actor: Field,
    user: Field,
    target: Field,
    action: Field,
    outcome: Field,
    at: Field,
    request_id: Field,
    source_ip: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        seq: builder.add_u64_field("seq", INDEXED | FAST),
        id: builder.add_text_field("id", STRING),
        chain: builder.add_text_field("chain", STRING),
        actor: builder.add_text_field("actor", STRING),
        user: builder.add_text_field("user", STRING),
        target: builder.add_text_field("target", STRING),
        action: builder.add_text_field("action", STRING),
        outcome: builder.add_text_field("outcome", STRING),
        at: builder.add_i64_field("at", INDEXED | FAST),
        request_id: builder.add_text_field("request_id", STRING),
        source_ip: builder.add_text_field("source_ip", STRING),
        text: builder.add_text_field("text", TEXT),
    };
    (builder.build(), fields)
}

/// What each commit records.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    layout: u32,
    /// Every record up to this sequence is indexed.
    seq: u64,
}

/// The searchable side of the index, shared by the request handlers.
pub struct AuditIndex {
    reader: IndexReader,
    fields: Fields,
    parser: QueryParser,
    indexed: AtomicU64,
    /// Asked for by an operator (`request_rebuild`); the indexer thread carries it out.
    rebuild: AtomicBool,
}

/// The indexer thread and how to stop it.
pub struct Indexer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Commits what was indexed and stops.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the audit indexer panicked");
            }
        }
    }
}

/// Opens the index in `dir` (rebuilding it if it cannot be used as it is) and starts the
/// thread that keeps it up with the log.
pub fn start(
    dir: &Path,
    settings: WriterSettings,
    store: Store,
) -> Result<(Arc<AuditIndex>, Indexer), AuditError> {
    let last_seq = store.read_now(audit::last_seq)?;
    let (index, writer, indexed) = open(dir, settings, last_seq)?;
    let searchable = Arc::new(AuditIndex::new(&index, indexed)?);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (searchable, stop) = (Arc::clone(&searchable), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("audit-indexer".into())
            .spawn(move || follow(&store, writer, &searchable, &stop))
            .map_err(|err| AuditError::Index(format!("cannot start the audit indexer: {err}")))?
    };
    Ok((searchable, Indexer { stop, thread: Some(thread) }))
}

/// Builds the index in `dir` from scratch from the whole log; answers how many records it holds.
pub fn rebuild(dir: &Path, settings: WriterSettings, store: &Store) -> Result<u64, AuditError> {
    remove(dir)?;
    let (index, mut writer, _) = open(dir, settings, 0)?;
    let searchable = AuditIndex::new(&index, 0)?;
    let mut cursor = 0;
    loop {
        let batch = store.read_now(|tx| audit::after(tx, cursor, BATCH))?;
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        searchable.add(&writer, &batch)?;
    }
    commit(&mut writer, cursor)?;
    searchable.reader.reload()?;
    Ok(searchable.reader.searcher().num_docs())
}

fn open(
    dir: &Path,
    settings: WriterSettings,
    last_seq: u64,
) -> Result<(Index, IndexWriter, u64), AuditError> {
    match open_existing(dir, last_seq) {
        Ok(Some((index, indexed))) => {
            let writer = index.writer_with_num_threads(settings.threads(), settings.memory_bytes)?;
            return Ok((index, writer, indexed));
        }
        Ok(None) => {}
        Err(reason) => {
            tracing::warn!(%reason, dir = %dir.display(), "rebuilding the audit index");
            remove(dir)?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|err| io_error(dir, &err))?;
    let index = Index::create_in_dir(dir, schema().0)?;
    let mut writer = index.writer_with_num_threads(settings.threads(), settings.memory_bytes)?;
    commit(&mut writer, 0)?;
    Ok((index, writer, 0))
}

/// The index in `dir` and the sequence it has indexed up to; None if there is none; an error
/// saying why if it cannot be used and must be rebuilt.
fn open_existing(dir: &Path, last_seq: u64) -> Result<Option<(Index, u64)>, String> {
    if !dir.join("meta.json").exists() {
        return Ok(None);
    }
    let index = Index::open_in_dir(dir).map_err(|err| format!("it cannot be opened: {err}"))?;
    if index.schema() != schema().0 {
        return Err("its layout is not this version's".into());
    }
    let meta = index.load_metas().map_err(|err| format!("its metadata cannot be read: {err}"))?;
    let payload: Payload = meta
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or("it records no position in the log")?;
    if payload.layout != LAYOUT {
        return Err("its layout is not this version's".into());
    }
    if payload.seq > last_seq {
        return Err("it is ahead of the database (was a backup restored?)".into());
    }
    Ok(Some((index, payload.seq)))
}

fn remove(dir: &Path) -> Result<(), AuditError> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_error(dir, &err)),
        _ => Ok(()),
    }
}

fn io_error(dir: &Path, err: &std::io::Error) -> AuditError {
    AuditError::Index(format!("{}: {err}", dir.display()))
}

fn commit(writer: &mut IndexWriter, seq: u64) -> Result<(), AuditError> {
    let payload = serde_json::to_string(&Payload { layout: LAYOUT, seq }).unwrap_or_default();
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    Ok(())
}

/// The indexer's loop: index what the log gained, commit at most every `COMMIT_EVERY`, and look
/// again after `IDLE_POLL` when there was nothing new.
fn follow(store: &Store, mut writer: IndexWriter, index: &AuditIndex, stop: &AtomicBool) {
    let mut cursor = index.indexed_seq();
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if index.rebuild.swap(false, Ordering::SeqCst) {
            match index.start_over(&mut writer) {
                Ok(()) => {
                    tracing::info!("rebuilding the audit index from the log");
                    cursor = 0;
                }
                Err(err) => tracing::error!(%err, "the audit index cannot start over"),
            }
        }
        let batch = match store.read_now(|tx| audit::after(tx, cursor, BATCH)) {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(%err, "the audit indexer cannot read the log");
                std::thread::sleep(IDLE_POLL * 5);
                continue;
            }
        };
        if let Some(last) = batch.last() {
            if let Err(err) = index.add(&writer, &batch) {
                // Back to the last commit, so a retry adds nothing twice.
                tracing::error!(%err, "the audit indexer cannot index records");
                if let Err(err) = writer.rollback() {
                    tracing::error!(%err, "the audit indexer cannot roll back");
                }
                cursor = index.indexed_seq();
                std::thread::sleep(IDLE_POLL * 5);
                continue;
            }
            cursor = last.seq;
        }
        let behind = cursor > index.indexed_seq();
        if behind && last_commit.elapsed() >= COMMIT_EVERY {
            index.publish(&mut writer, cursor);
            last_commit = Instant::now();
        }
        if batch.len() < BATCH {
            std::thread::sleep(IDLE_POLL);
        }
    }
    if cursor > index.indexed_seq() {
        index.publish(&mut writer, cursor);
    }
}

impl AuditIndex {
    fn new(index: &Index, indexed: u64) -> Result<Self, AuditError> {
        let (_, fields) = schema();
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let mut parser = QueryParser::for_index(index, vec![fields.text]);
        parser.set_conjunction_by_default();
        Ok(Self { reader, fields, parser, indexed: AtomicU64::new(indexed), rebuild: AtomicBool::new(false) })
    }

    /// Asks the indexer to start over from the first record while the server runs: searches
    /// answer from what is indexed so far (`indexed_seq` says how far) until it has caught up.
    pub fn request_rebuild(&self) {
        self.rebuild.store(true, Ordering::SeqCst);
        self.indexed.store(0, Ordering::SeqCst);
    }

    /// Empties the index, durably, so the indexer follows the log from its start again.
    fn start_over(&self, writer: &mut IndexWriter) -> Result<(), AuditError> {
        writer.delete_all_documents()?;
        commit(writer, 0)?;
        self.reader.reload()?;
        self.indexed.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// The sequence up to which every record is searchable.
    pub fn indexed_seq(&self) -> u64 {
        self.indexed.load(Ordering::SeqCst)
    }

    /// Commits what was added, through `seq`, and makes it searchable.
    fn publish(&self, writer: &mut IndexWriter, seq: u64) {
        let published = commit(writer, seq).and_then(|()| Ok(self.reader.reload()?));
        match published {
            // A rebuild asked for meanwhile starts from nothing: nothing counts as indexed.
            Ok(()) if self.rebuild.load(Ordering::SeqCst) => {}
            Ok(()) => self.indexed.store(seq, Ordering::SeqCst),
            Err(err) => tracing::error!(%err, "the audit indexer cannot commit"),
        }
    }

    fn add(&self, writer: &IndexWriter, records: &[AuditRecord]) -> Result<(), AuditError> {
        for record in records {
            writer.add_document(self.document(record))?;
            if record.action == PRUNE_ACTION {
                if let Some(through) = record.detail.get("through_seq").and_then(serde_json::Value::as_u64) {
                    writer.delete_query(Box::new(self.pruned(&record.chain(), through)))?;
                }
            }
        }
        Ok(())
    }

    /// The documents of `chain`'s records up to `through`.
    fn pruned(&self, chain: &str, through: u64) -> BooleanQuery {
        let f = self.fields;
        BooleanQuery::intersection(vec![
            Box::new(term(f.chain, chain)),
            Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Included(Term::from_field_u64(f.seq, through)),
            )),
        ])
    }

    fn document(&self, record: &AuditRecord) -> TantivyDocument {
        let f = self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_u64(f.seq, record.seq);
        doc.add_text(f.id, record.id.to_string());
        doc.add_text(f.chain, record.chain());
        doc.add_i64(f.at, record.at.unix_timestamp());
        doc.add_text(f.outcome, record.outcome.as_str());
        let action = record.action.to_lowercase();
        for (end, _) in action.match_indices('.').chain([(action.len(), "")]) {
            doc.add_text(f.action, &action[..end]);
        }
        for term in names(&record.actor.kind, &record.actor.id, record.actor.label.as_deref()) {
            doc.add_text(f.actor, term);
        }
        if let Some(target) = &record.target {
            for term in names(&target.kind, &target.id, target.label.as_deref()) {
                doc.add_text(f.target, term);
            }
        }
        for term in user_terms(record) {
            doc.add_text(f.user, term);
        }
        for (field, value) in [(f.request_id, &record.request_id), (f.source_ip, &record.source_ip)] {
            if let Some(value) = value {
                doc.add_text(field, value);
            }
        }
        doc.add_text(f.text, free_text(record));
        doc
    }

    /// The sequences of up to `limit` records matching `filters`, newest first.
    pub fn search(&self, filters: &Filters, limit: usize) -> Result<Vec<u64>, AuditError> {
        let query = self.query(filters)?;
        let searcher = self.reader.searcher();
        let hits = searcher
            .search(&query, &TopDocs::with_limit(limit).order_by_fast_field::<u64>("seq", Order::Desc))?;
        Ok(hits.into_iter().filter_map(|(seq, _)| seq).collect())
    }

    /// The sequence of the record with this id, if it is indexed.
    pub fn seq_of(&self, id: &str) -> Result<Option<u64>, AuditError> {
        let searcher = self.reader.searcher();
        let hits = searcher.search(
            &term(self.fields.id, id),
            &TopDocs::with_limit(1).order_by_fast_field::<u64>("seq", Order::Desc),
        )?;
        Ok(hits.into_iter().find_map(|(seq, _)| seq))
    }

    /// How many records are searchable.
    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    fn query(&self, filters: &Filters) -> Result<Box<dyn Query>, AuditError> {
        let f = self.fields;
        let mut must: Vec<Box<dyn Query>> = Vec::new();
        let exact = [
            (f.chain, filters.chain.as_deref()),
            (f.action, filters.action.as_deref()),
            (f.outcome, filters.outcome.as_deref()),
            (f.request_id, filters.request_id.as_deref()),
            (f.source_ip, filters.source_ip.as_deref()),
        ];
        for (field, value) in exact {
            if let Some(value) = value {
                must.push(Box::new(term(field, value)));
            }
        }
        for (field, names) in
            [(f.actor, &filters.actor), (f.user, &filters.user), (f.target, &filters.target)]
        {
            if !names.is_empty() {
                let any: Vec<Box<dyn Query>> = names
                    .iter()
                    .map(|name| Box::new(term(field, &name.to_lowercase())) as Box<dyn Query>)
                    .collect();
                must.push(Box::new(BooleanQuery::union(any)));
            }
        }
        if filters.since.is_some() || filters.until.is_some() {
            let bound = |at: Option<OffsetDateTime>, inclusive: bool| {
                at.map_or(Bound::Unbounded, |at| {
                    let term = Term::from_field_i64(f.at, at.unix_timestamp());
                    if inclusive { Bound::Included(term) } else { Bound::Excluded(term) }
                })
            };
            must.push(Box::new(RangeQuery::new(bound(filters.since, true), bound(filters.until, false))));
        }
        if let Some(before) = filters.before {
            let below = Bound::Excluded(Term::from_field_u64(f.seq, before));
            must.push(Box::new(RangeQuery::new(Bound::Unbounded, below)));
        }
        if let Some(text) = filters.text.as_deref() {
            must.push(self.parser.parse_query(text).map_err(|err| AuditError::BadQuery(err.to_string()))?);
        }
        Ok(match must.len() {
            0 => Box::new(AllQuery),
            _ => Box::new(BooleanQuery::new(must.into_iter().map(|q| (Occur::Must, q)).collect())),
        })
    }
}

fn term(field: Field, value: &str) -> TermQuery {
    TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic)
}

/// The terms a party is found by: its kind, its id, `kind:id`, and its label, lowercased.
fn names(kind: &str, id: &str, label: Option<&str>) -> Vec<String> {
    let mut names = vec![kind.to_lowercase(), format!("{kind}:{id}").to_lowercase()];
    names.extend([Some(id), label].into_iter().flatten().filter(|s| !s.is_empty()).map(str::to_lowercase));
    names
}

/// The people a record is about: the user it targets and the user who acted.
fn user_terms(record: &AuditRecord) -> Vec<String> {
    let mut terms = Vec::new();
    let target = record.target.as_ref().map(|t| (&t.kind, &t.id, &t.label));
    let actor = Some((&record.actor.kind, &record.actor.id, &record.actor.label));
    for (kind, id, label) in [target, actor].into_iter().flatten() {
        if kind == "user" {
            terms.extend([Some(id), label.as_ref()].into_iter().flatten().map(|s| s.to_lowercase()));
        }
    }
    terms
}

/// Words a free-text query finds a record by: its action, reason, parties and details.
fn free_text(record: &AuditRecord) -> String {
    let mut text = vec![record.action.replace('.', " "), record.detail.to_string()];
    text.extend(record.reason.iter().cloned());
    text.extend(record.actor.label.iter().cloned());
    text.extend(record.target.iter().filter_map(|t| t.label.clone()));
    text.join(" ")
}

/// Where the index of a data directory lives.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

impl From<tantivy::TantivyError> for AuditError {
    fn from(err: tantivy::TantivyError) -> Self {
        AuditError::Index(err.to_string())
    }
}

impl From<StoreError> for AuditError {
    fn from(err: StoreError) -> Self {
        AuditError::Store(err)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        ids::TenantId,
        store::{
            audit::{Actor, chain_of},
            journal::Subject,
            testing,
        },
    };

    const SETTINGS: WriterSettings = WriterSettings { memory_bytes: 15 << 20, threads: 1 };
    const T0: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);

    fn record(tenant: TenantId, action: &str, user: &str, at: OffsetDateTime) -> AuditRecord {
        let actor = Actor { kind: "scim_token".into(), id: "t1".into(), label: Some("Okta".into()) };
        let target = Subject { kind: "user".into(), id: format!("id-{user}"), label: Some(user.into()) };
        AuditRecord::new(
            Some(tenant),
            actor,
            action,
            Some(target),
            json!({ "department": "Finance" }),
            at,
            None,
        )
    }

    async fn append(store: &Store, records: Vec<AuditRecord>) {
        store
            .write(move |tx| {
                for r in &records {
                    audit::append(tx, r.clone())?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }

    fn wait_for(index: &AuditIndex, seq: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while index.indexed_seq() < seq {
            assert!(Instant::now() < deadline, "the indexer stalled at {}", index.indexed_seq());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_indexer_follows_the_log_and_answers_filters_newest_first() {
        let (dir, store) = testing::store();
        let (acme, globex) = (TenantId::generate(), TenantId::generate());
        let (index, indexer) = start(&dir.path().join("audit"), SETTINGS, store.clone()).unwrap();
        append(
            &store,
            vec![
                record(acme, "scim.user.create", "ada@acme.test", T0),
                record(acme, "scim.user.update", "ada@acme.test", T0 + time::Duration::days(40)),
                record(acme, "scim.user.create", "grace@acme.test", T0),
                record(globex, "scim.user.create", "ada@acme.test", T0),
                record(acme, "sso.saml.login", "ada@acme.test", T0 + time::Duration::days(80))
                    .refused("signature_invalid"),
            ],
        )
        .await;
        wait_for(&index, 5);
        let find = |filters: Filters| index.search(&filters, 10).unwrap();
        let acme_chain = Some(chain_of(Some(acme)));
        let ada = vec!["ADA@acme.test".to_owned()];
        assert_eq!(
            find(Filters { chain: acme_chain.clone(), user: ada.clone(), ..Filters::default() }),
            [5, 2, 1]
        );
        assert_eq!(find(Filters { user: ada.clone(), ..Filters::default() }), [5, 4, 2, 1]);
        assert_eq!(find(Filters { action: Some("scim.user".into()), ..Filters::default() }), [4, 3, 2, 1]);
        assert_eq!(
            find(Filters { action: Some("scim".into()), before: Some(3), ..Filters::default() }),
            [2, 1]
        );
        assert_eq!(find(Filters { outcome: Some("failure".into()), ..Filters::default() }), [5]);
        assert_eq!(find(Filters { text: Some("signature_invalid".into()), ..Filters::default() }), [5]);
        assert_eq!(find(Filters { text: Some("finance grace".into()), ..Filters::default() }), [3]);
        assert_eq!(
            find(Filters {
                actor: vec!["okta".into()],
                chain: Some(chain_of(Some(globex))),
                ..Filters::default()
            }),
            [4]
        );
        let quarter = Filters {
            since: Some(T0 + time::Duration::days(30)),
            until: Some(T0 + time::Duration::days(60)),
            ..Filters::default()
        };
        assert_eq!(find(quarter), [2]);
        let id = store.read(|tx| audit::get(tx, 3)).await.unwrap().unwrap().id.to_string();
        assert_eq!(index.seq_of(&id).unwrap(), Some(3));
        indexer.stop();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_restart_resumes_from_the_last_commit_and_an_index_ahead_of_the_log_is_rebuilt() {
        let (dir, store) = testing::store();
        let tenant = TenantId::generate();
        let path = dir.path().join("audit");
        let (index, indexer) = start(&path, SETTINGS, store.clone()).unwrap();
        append(&store, (0..3).map(|_| record(tenant, "scim.user.create", "ada", T0)).collect()).await;
        wait_for(&index, 3);
        indexer.stop();
        append(&store, vec![record(tenant, "scim.user.update", "ada", T0)]).await;
        let (index, indexer) = start(&path, SETTINGS, store.clone()).unwrap();
        assert_eq!(index.indexed_seq(), 3, "resumed, not rebuilt");
        wait_for(&index, 4);
        assert_eq!(index.documents(), 4);
        indexer.stop();

        // The same index beside a database that has fewer records (a restored backup).
        let (_other_dir, other_store) = testing::store();
        append(&other_store, vec![record(tenant, "scim.user.create", "grace", T0)]).await;
        let (index, indexer) = start(&path, SETTINGS, other_store).unwrap();
        wait_for(&index, 1);
        assert_eq!(index.documents(), 1, "rebuilt from the database it serves");
        indexer.stop();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_rebuild_indexes_the_whole_log() {
        let (dir, store) = testing::store();
        let tenant = TenantId::generate();
        append(
            &store,
            (0..12_000).map(|n| record(tenant, "scim.user.create", &format!("u{n}"), T0)).collect(),
        )
        .await;
        let path = dir.path().join("audit");
        assert_eq!(rebuild(&path, SETTINGS, &store).unwrap(), 12_000);
        let (index, indexer) = start(&path, SETTINGS, store.clone()).unwrap();
        assert_eq!(index.indexed_seq(), 12_000);
        assert_eq!(
            index.search(&Filters { user: vec!["u11999".into()], ..Filters::default() }, 5).unwrap(),
            [12_000]
        );
        indexer.stop();
    }
}
