//! The storage boundary: redb tables, their encoding, the schema version and the transactions
//! through which every other module reads and writes. Nothing outside this module names a table.
//!
//! Writes go through one writer thread that batches the operations of concurrent requests into a
//! single durable commit (group commit): each request is answered after the fsync that made its
//! change durable, and a busy server pays one fsync per batch rather than one per request. Reads
//! run on their own snapshots in parallel and never wait for the writer.

pub mod access;
pub mod admin_keys;
pub mod admin_sessions;
pub mod audit;
mod codec;
pub mod credentials;
pub mod directory;
mod error;
pub mod grants;
pub mod instance_keys;
pub mod journal;
pub mod logout_deliveries;
pub mod oauth_clients;
pub mod oidc;
pub mod saml;
mod schema;
pub mod scim_tokens;
pub mod sessions;
pub mod setup_links;
pub mod snapshot;
pub mod tenants;
mod tx;
pub mod webhooks;
mod writer;

use std::{
    path::Path,
    sync::{Arc, Mutex, RwLock, mpsc},
    thread::JoinHandle,
};

use redb::{Database, ReadableDatabase};

pub use codec::Record;
pub use error::StoreError;
pub use schema::{Opened, SCHEMA_VERSION};
use snapshot::TableVisitor;
pub use tx::{ReadTx, Source, WriteTx};
use writer::Job;
pub use writer::WriteStats;

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "portcullis.redb";

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    opened: Opened,
    jobs: RwLock<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    commits: writer::CommitSignal,
    stats: Arc<writer::Stats>,
}

impl Store {
    /// Opens (or creates) the database in `data_dir`, brings its schema up to date and starts
    /// the writer thread.
    pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(data_dir.join(DATABASE_FILE))
            .map_err(|err| match err {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Database(format!(
                    "{} is in use by another process (is another Portcullis running on this data directory?)",
                    data_dir.join(DATABASE_FILE).display()
                )),
                other => other.into(),
            })?;
        let opened = schema::prepare(&db)?;
        let db = Arc::new(db);
        let (sender, receiver) = mpsc::channel();
        let (commits, _) = tokio::sync::watch::channel(0);
        let stats = Arc::new(writer::Stats::default());
        let writer = writer::spawn(Arc::clone(&db), receiver, commits.clone(), Arc::clone(&stats))
            .map_err(|err| StoreError::Database(format!("cannot start the writer thread: {err}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                opened,
                jobs: RwLock::new(Some(sender)),
                writer: Mutex::new(Some(writer)),
                commits,
                stats,
            }),
        })
    }

    /// Changes after every commit of the writer (whether it wrote anything the receiver cares
    /// about is the receiver's to find out): lets a worker that follows a table wait instead of
    /// polling it.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    /// What the writer has done since the start: batches, operations, committed tallies.
    pub fn write_stats(&self) -> WriteStats {
        self.inner.stats.snapshot()
    }

    /// Whether this start created the database.
    pub fn opened(&self) -> Opened {
        self.inner.opened
    }

    /// Runs `op` on a snapshot, on the calling task's thread. Meant for what requests read: point
    /// lookups and bounded pages, which take microseconds from redb's cache. Handing them to the
    /// blocking pool instead cost two thirds of the throughput of a lookup endpoint (BENCHMARKS.md).
    /// A long scan (an export, a reindex) belongs on a blocking thread, not here.
    pub async fn read<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTx) -> Result<T, E>,
        E: From<StoreError>,
    {
        self.read_now(op)
    }

    /// `read` for threads of their own, outside the runtime (the audit indexer, the CLI).
    pub fn read_now<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTx) -> Result<T, E>,
        E: From<StoreError>,
    {
        let tx = self.inner.db.begin_read().map_err(StoreError::from)?;
        op(&ReadTx::new(tx))
    }

    /// Runs `op` on a snapshot on a blocking thread: for reads that may visit a whole tenant (a
    /// filter no index answers, a sort), which must not hold up the requests sharing a runtime
    /// thread.
    pub async fn read_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.inner.db);
        let task = tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(StoreError::from)?;
            op(&ReadTx::new(tx))
        });
        task.await.map_err(|_| StoreError::Panicked)?
    }

    /// Runs `op` in the next batch's write transaction and answers after that batch has been
    /// committed durably. If `op` fails, none of its changes are committed and its error is
    /// returned. `op` may run more than once (a batch is re-run when another operation in it
    /// fails), so it must not have effects outside the transaction.
    pub async fn write<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: Fn(&WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (job, answer) = writer::job(op);
        {
            let jobs = self.inner.jobs.read().map_err(|_| StoreError::Closed)?;
            let sender = jobs.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Copies one consistent snapshot of the whole database into a new database file at `path`
    /// (which must not exist) while writes go on; returns each table's record count. Blocks for
    /// as long as the copy takes: call it from a blocking thread.
    pub fn snapshot_to(&self, path: &Path) -> Result<snapshot::TableCounts, StoreError> {
        let tx = self.inner.db.begin_read()?;
        snapshot::copy_into(&tx, path)
    }

    /// Whether the database answers a read.
    pub fn is_healthy(&self) -> bool {
        self.inner.db.begin_read().is_ok() && self.writer_running()
    }

    fn writer_running(&self) -> bool {
        self.inner.writer.lock().map(|w| w.as_ref().is_some_and(|h| !h.is_finished())).unwrap_or(false)
    }

    /// Stops accepting writes, lets the writer commit what it has queued, and waits for it.
    pub fn shutdown(&self) {
        if let Ok(mut jobs) = self.inner.jobs.write() {
            jobs.take();
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A store in a temporary directory, for unit tests of the typed operations.
    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        (dir, store)
    }
}
