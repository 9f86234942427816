//! The writer thread: group commit.
//!
//! Operations queue up while the previous batch is committing; the writer takes all of them (up
//! to `MAX_BATCH`, waiting a moment for the rest of a returning burst: `gather`), runs them in
//! order in one write transaction and commits once. A failed
//! operation never leaves a partial change behind and never costs its neighbours theirs (see
//! `commit_batch`). It saw exactly the state the operations before it produced, which is the
//! state it would have seen run alone in that order.

use std::{
    collections::BTreeMap,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use redb::Database;
use tokio::sync::oneshot;

use super::{StoreError, WriteTx, audit::RequestOrigin, tx::Tallies};

/// The most operations one commit carries.
const MAX_BATCH: usize = 512;
/// How long the writer waits for the callers it expects back (see `gather`). On this 2-core
/// machine a client takes 0.3–0.6 ms to send its next request; a shorter window split bursts.
const GATHER_WINDOW: Duration = Duration::from_micros(700);

/// A queued write operation, with its caller's answer channel.
pub(super) trait Job: Send {
    /// Runs the operation; true if it succeeded. Its result is kept until the batch ends.
    fn run(&mut self, tx: &redb::WriteTransaction) -> bool;
    /// Delivers the kept result: the batch committed, or this operation failed. A committed
    /// operation's tallies go into `stats`.
    fn answer(self: Box<Self>, stats: &Stats);
    /// The commit failed: nothing of the batch is durable.
    fn answer_error(self: Box<Self>, err: StoreError);
}

struct TypedJob<F, T, E> {
    op: F,
    /// The request that queued the operation (see `RequestOrigin::scope`).
    origin: Option<RequestOrigin>,
    /// What the last run counted (`WriteTx::tally`); kept only if that run commits.
    tallies: Tallies,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

pub(super) fn job<F, T, E>(op: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, E>>)
where
    F: Fn(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let origin = RequestOrigin::current();
    (Box::new(TypedJob { op, origin, tallies: Tallies::default(), outcome: None, reply }), answer)
}

impl<F, T, E> Job for TypedJob<F, T, E>
where
    F: Fn(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(&mut self, tx: &redb::WriteTransaction) -> bool {
        self.tallies.get_mut().clear();
        let view = WriteTx::new(tx, self.origin.as_ref()).with_tallies(&self.tallies);
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.op)(&view)))
            .unwrap_or_else(|_| Err(StoreError::Panicked.into()));
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn answer(self: Box<Self>, stats: &Stats) {
        let outcome = self.outcome.unwrap_or_else(|| Err(StoreError::Panicked.into()));
        if outcome.is_ok() {
            stats.add_tallies(self.tallies.into_inner());
        }
        // The caller may have gone away (its request was cancelled); the change stands.
        let _ = self.reply.send(outcome);
    }

    fn answer_error(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err.into()));
    }
}

/// Counts commits, for the background workers that follow what was written (`Store::commits`).
pub(super) type CommitSignal = tokio::sync::watch::Sender<u64>;

/// What the writer has done since the start, for the metrics (`Store::write_stats`).
#[derive(Debug, Default)]
pub(super) struct Stats {
    batches: AtomicU64,
    operations: AtomicU64,
    /// Committed operations' tallies, by (name, label).
    tallies: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

/// A copy of the writer's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteStats {
    /// Batches taken: each is one transaction, or more when an operation in it failed.
    pub batches: u64,
    /// Operations queued and run, whatever their outcome.
    pub operations: u64,
    /// What committed operations counted with `WriteTx::tally`, by (name, label).
    pub tallies: BTreeMap<(&'static str, &'static str), u64>,
}

impl Stats {
    fn add_tallies(&self, tallies: Vec<(&'static str, &'static str, u64)>) {
        if tallies.is_empty() {
            return;
        }
        if let Ok(mut kept) = self.tallies.lock() {
            for (name, label, amount) in tallies {
                *kept.entry((name, label)).or_default() += amount;
            }
        }
    }

    pub(super) fn snapshot(&self) -> WriteStats {
        WriteStats {
            batches: self.batches.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            tallies: self.tallies.lock().map(|kept| kept.clone()).unwrap_or_default(),
        }
    }
}

pub(super) fn spawn(
    db: Arc<Database>,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    commits: CommitSignal,
    stats: Arc<Stats>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("store-writer".into()).spawn(move || {
        let mut answered = 0;
        loop {
            // What queued up during the last commit came from callers other than those it
            // answered; those will be back shortly.
            let mut batch = Vec::new();
            take_queued(&jobs, &mut batch);
            let expected = batch.len() + answered;
            if batch.is_empty() {
                // Ends when every sender is gone, after the queue has been drained.
                let Ok(first) = jobs.recv() else { break };
                batch.push(first);
                take_queued(&jobs, &mut batch);
            }
            gather(&jobs, &mut batch, expected);
            answered = batch.len();
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.operations.fetch_add(batch.len() as u64, Ordering::Relaxed);
            commit_batch(&db, batch, &stats);
            commits.send_modify(|count| *count += 1);
        }
    })
}

/// Takes every queued operation, up to `MAX_BATCH` in the batch.
fn take_queued(jobs: &mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Waits up to `GATHER_WINDOW` for the batch to reach `expected` operations: those that queued
/// during the last commit plus the callers it answered, who come back at about the same time.
/// Committing without them would make them wait a whole commit (an fsync, about a millisecond
/// here) for the next one. A lone sequential caller is expected alone and never waits.
fn gather(jobs: &mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>, expected: usize) {
    let deadline = Instant::now() + GATHER_WINDOW;
    while batch.len() < expected.min(MAX_BATCH) {
        match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(job) => {
                batch.push(job);
                take_queued(jobs, batch);
            }
            Err(_) => break,
        }
    }
}

/// Runs the operations in order in one transaction and commits. When one fails, the transaction
/// is aborted; the operations before it run again and commit on their own, then the failed one is
/// answered, and the operations after it make the next transaction. So each operation runs at
/// most twice however many of its neighbours fail, and a refusal is answered only once the state
/// it was judged against is durable.
fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Job>>, stats: &Stats) {
    while !batch.is_empty() {
        let mut tx = match db.begin_write() {
            Ok(tx) => tx,
            Err(err) => return fail_all(batch, err.into()),
        };
        // Two-phase commit with the allocator state saved: a crash at any moment leaves the last
        // acknowledged commit intact, and reopening after a kill -9 needs no full-file repair.
        tx.set_quick_repair(true);
        let failed = batch.iter_mut().position(|job| !job.run(&tx));
        let Some(index) = failed else {
            match tx.commit() {
                Ok(()) => batch.into_iter().for_each(|job| job.answer(stats)),
                Err(err) => {
                    tracing::error!(error = %err, "a commit failed");
                    fail_all(batch, err.into());
                }
            }
            return;
        };
        if let Err(err) = tx.abort() {
            tracing::error!(error = %err, "aborting a write transaction failed");
        }
        let mut rest = batch.split_off(index);
        let refused = rest.remove(0);
        commit_batch(db, batch, stats);
        refused.answer(stats);
        batch = rest;
    }
}

fn fail_all(batch: Vec<Box<dyn Job>>, err: StoreError) {
    for job in batch {
        job.answer_error(err.clone());
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableTable, TableDefinition};

    use crate::store::{Store, testing};

    const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("test_counters");

    #[derive(Debug, PartialEq)]
    enum TestError {
        Refused,
        Store,
    }
    impl From<crate::store::StoreError> for TestError {
        fn from(_: crate::store::StoreError) -> Self {
            TestError::Store
        }
    }

    async fn add(store: &Store, key: &'static str, fail_after_writing: bool) -> Result<u64, TestError> {
        store
            .write(move |tx| {
                let mut table = tx.table_mut(COUNTERS)?;
                let value =
                    table.get(key).map_err(crate::store::StoreError::from)?.map(|v| v.value()).unwrap_or(0)
                        + 1;
                table.insert(key, value).map_err(crate::store::StoreError::from)?;
                if fail_after_writing {
                    return Err(TestError::Refused);
                }
                Ok(value)
            })
            .await
    }

    async fn read(store: &Store, key: &'static str) -> u64 {
        store
            .read(move |tx| -> Result<u64, crate::store::StoreError> {
                use crate::store::Source;
                Ok(tx.table(COUNTERS)?.get(key)?.map(|v| v.value()).unwrap_or(0))
            })
            .await
            .unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_commit_and_failures_leave_nothing_behind() {
        let (_dir, store) = testing::store();
        add(&store, "warm", false).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { add(&store, "n", i % 10 == 0).await }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(err) => assert_eq!(err, TestError::Refused),
            }
        }
        assert_eq!(ok, 180);
        assert_eq!(read(&store, "n").await, 180);
    }

    #[test]
    fn each_operation_runs_at_most_twice_whatever_fails_around_it() {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };

        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("db.redb")).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let (mut jobs, mut answers) = (Vec::new(), Vec::new());
        for i in 0..100u64 {
            let runs = Arc::clone(&runs);
            let (job, answer) = super::job(move |tx| {
                runs.fetch_add(1, Ordering::Relaxed);
                tx.tally("test", "ran", 1);
                let key = format!("k{i}");
                tx.table_mut(COUNTERS)?.insert(key.as_str(), i).map_err(crate::store::StoreError::from)?;
                if i % 2 == 1 { Err(TestError::Refused) } else { Ok(i) }
            });
            jobs.push(job);
            answers.push(answer);
        }
        let stats = super::Stats::default();
        super::commit_batch(&db, jobs, &stats);
        assert!(runs.load(Ordering::Relaxed) <= 150, "{} runs", runs.load(Ordering::Relaxed));
        for (i, mut answer) in answers.into_iter().enumerate() {
            let expected = if i % 2 == 1 { Err(TestError::Refused) } else { Ok(i as u64) };
            assert_eq!(answer.try_recv().unwrap(), expected);
        }
        use redb::ReadableDatabase;
        let tx = db.begin_read().unwrap();
        let table = tx.open_table(COUNTERS).unwrap();
        let keys: Vec<u64> = table.iter().unwrap().map(|e| e.unwrap().1.value()).collect();
        assert_eq!(keys.len(), 50);
        assert!(keys.iter().all(|v| v % 2 == 0));
        assert_eq!(
            stats.snapshot().tallies.get(&("test", "ran")),
            Some(&50),
            "only committed operations count, once each however often they ran"
        );
    }

    #[tokio::test]
    async fn a_panicking_operation_fails_alone() {
        let (_dir, store) = testing::store();
        let panicked: Result<(), TestError> = store
            .write(|tx| {
                tx.table_mut(COUNTERS)?.insert("p", 1).map_err(crate::store::StoreError::from)?;
                #[allow(clippy::panic)]
                {
                    panic!("bug")
                }
            })
            .await;
        assert_eq!(panicked, Err(TestError::Store));
        assert_eq!(add(&store, "q", false).await, Ok(1));
        assert_eq!(read(&store, "p").await, 0);
    }

    #[tokio::test]
    async fn committed_writes_survive_reopening() {
        let (dir, store) = testing::store();
        add(&store, "d", false).await.unwrap();
        store.shutdown();
        drop(store);
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(read(&store, "d").await, 1);
        assert!(matches!(store.opened(), crate::store::Opened::Existing { .. }));
    }

    #[tokio::test]
    async fn writes_after_shutdown_are_refused() {
        let (_dir, store) = testing::store();
        store.shutdown();
        assert_eq!(add(&store, "x", false).await, Err(TestError::Store));
    }
}
