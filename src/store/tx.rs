//! Transactions as the rest of the crate sees them: `ReadTx` and `WriteTx` expose typed
//! operations (defined beside the tables in this module's siblings), never redb tables.

use redb::{Key, ReadableTable, TableDefinition, Value};

use super::{StoreError, audit::RequestOrigin};

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
}

impl<'t> WriteTx<'t> {
    pub(super) fn new(inner: &'t redb::WriteTransaction, origin: Option<&'t RequestOrigin>) -> Self {
        Self { inner, origin }
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
