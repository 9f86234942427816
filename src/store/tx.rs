//! Transactions as the rest of the crate sees them: `ReadTx` and `WriteTx` expose typed
//! operations (defined beside the tables in this module's siblings), never redb tables.

use std::cell::RefCell;

use redb::{Key, ReadableTable, TableDefinition, Value};

use super::{StoreError, audit::RequestOrigin};

/// What an operation counted (`WriteTx::tally`): (name, label, amount).
pub(super) type Tallies = RefCell<Vec<(&'static str, &'static str, u64)>>;

/// Where typed read operations find their tables: a read transaction, or a write transaction
/// that must see its own uncommitted changes. Every read operation is written once, against this.
pub trait Source {
    type Table<'a, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>
    where
        Self: 'a;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<Self::Table<'_, K, V>, StoreError>;
}

/// A consistent snapshot of the database. Reads never wait for the writer.
pub struct ReadTx {
    inner: redb::ReadTransaction,
}

impl ReadTx {
    pub(super) fn new(inner: redb::ReadTransaction) -> Self {
        Self { inner }
    }
}

impl Source for ReadTx {
    type Table<'a, K: Key + 'static, V: Value + 'static> = redb::ReadOnlyTable<K, V>;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<Self::Table<'_, K, V>, StoreError> {
        Ok(self.inner.open_table(definition)?)
    }
}

/// One operation's view of the batch's write transaction. Operations open the tables they need
/// and close them before they return, so several operations can share one transaction.
pub struct WriteTx<'t> {
    inner: &'t redb::WriteTransaction,
    /// The request the operation serves, if it serves one: the audit log records it.
    origin: Option<&'t RequestOrigin>,
    /// Where the writer keeps the operation's tallies until its commit (none outside the writer).
    tallies: Option<&'t Tallies>,
}

impl<'t> WriteTx<'t> {
    pub(super) fn new(inner: &'t redb::WriteTransaction, origin: Option<&'t RequestOrigin>) -> Self {
        Self { inner, origin, tallies: None }
    }

    pub(super) fn with_tallies(self, tallies: &'t Tallies) -> Self {
        Self { tallies: Some(tallies), ..self }
    }

    /// Counts `amount` under (`name`, `label`) in the store's tallies (`Store::write_stats`) once
    /// the operation has committed: an operation that fails, is rolled back or runs again (a
    /// neighbour in its batch failed) counts nothing for that run. This is how the metrics count
    /// what a change did deep inside a transaction (sessions it revoked) without trusting a
    /// counter bumped before the commit.
    pub fn tally(&self, name: &'static str, label: &'static str, amount: u64) {
        if let Some(tallies) = self.tallies {
            tallies.borrow_mut().push((name, label, amount));
        }
    }

    pub(super) fn origin(&self) -> Option<&RequestOrigin> {
        self.origin
    }

    pub(super) fn table_mut<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<redb::Table<'t, K, V>, StoreError> {
        Ok(self.inner.open_table(definition)?)
    }
}

impl Source for WriteTx<'_> {
    type Table<'a, K: Key + 'static, V: Value + 'static>
        = redb::Table<'a, K, V>
    where
        Self: 'a;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<Self::Table<'_, K, V>, StoreError> {
        Ok(self.inner.open_table(definition)?)
    }
}
