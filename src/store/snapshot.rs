//! Every table of the database in one list, and the two things done with the whole list: create
//! every table at start, and copy every table of one consistent snapshot into a new database file
//! (a backup taken while the server keeps writing).

use std::{collections::BTreeMap, path::Path};

use redb::{
    Database, Key, ReadOnlyDatabase, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableHandle, Value,
};

use super::{
    StoreError, WriteTx, access, admin_keys, admin_sessions, audit, credentials, directory, grants,
    instance_keys, journal, logout_deliveries, oauth_clients, oidc, saml, schema, scim_tokens, sessions,
    setup_links, tenants, webhooks,
};

/// Something done with each table in turn. Each store module lists its tables once, in its
/// `tables` function; schema creation and backups both walk that one list, so a new table cannot
/// be left out of a backup.
pub(crate) trait TableVisitor {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        table: TableDefinition<K, V>,
    ) -> Result<(), StoreError>;
}

/// Walks every table of the schema.
pub(super) fn every_table(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    schema::tables(tables)?;
    tenants::tables(tables)?;
    directory::tables(tables)?;
    sessions::tables(tables)?;
    instance_keys::tables(tables)?;
    admin_keys::tables(tables)?;
    scim_tokens::tables(tables)?;
    journal::tables(tables)?;
    audit::tables(tables)?;
    oauth_clients::tables(tables)?;
    grants::tables(tables)?;
    logout_deliveries::tables(tables)?;
    credentials::tables(tables)?;
    saml::tables(tables)?;
    oidc::tables(tables)?;
    access::tables(tables)?;
    webhooks::tables(tables)?;
    admin_sessions::tables(tables)?;
    setup_links::tables(tables)?;
    Ok(())
}

/// Opens, and so creates, each table in a write transaction.
pub(super) struct Create<'a, 't>(pub &'a WriteTx<'t>);

impl TableVisitor for Create<'_, '_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        table: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        self.0.table_mut(table)?;
        Ok(())
    }
}

/// The cache of the database a snapshot is copied into.
const COPY_CACHE_BYTES: usize = 16 << 20;
/// How much the copy writes between its commits. One commit of a whole large database would
/// flush it all at once, and every request's commit on the same disk would wait behind that
/// flush (measured: 0.4–0.7 s with no SCIM write finishing, for 272 MB); commits of this size
/// keep each flush, and so each wait, short.
const COPY_COMMIT_BYTES: usize = 16 << 20;

/// What a snapshot holds: the number of records in each table.
pub type TableCounts = BTreeMap<String, u64>;

/// Copies each table of a read transaction into another database, committing every
/// `COPY_COMMIT_BYTES`.
struct CopyTables<'a> {
    from: &'a redb::ReadTransaction,
    commit_bytes: usize,
    target: &'a Database,
    to: Option<redb::WriteTransaction>,
    written: usize,
    counts: TableCounts,
}

impl CopyTables<'_> {
    fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(to) = self.to.take() {
            to.commit()?;
        }
        self.written = 0;
        Ok(())
    }
}

impl TableVisitor for CopyTables<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        table: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        let source = self.from.open_table(table)?;
        let mut entries = source.iter()?.peekable();
        let mut copied = 0;
        // Opened even when empty: a copy has every table its source has.
        loop {
            if self.to.is_none() {
                self.to = Some(self.target.begin_write()?);
            }
            let to = self.to.as_ref().ok_or(StoreError::Closed)?;
            let mut target = to.open_table(table)?;
            while self.written < self.commit_bytes {
                let Some(entry) = entries.next() else { break };
                let (key, value) = entry?;
                let (key, value) = (key.value(), value.value());
                self.written += K::as_bytes(&key).as_ref().len() + V::as_bytes(&value).as_ref().len();
                target.insert(key, value)?;
                copied += 1;
            }
            drop(target);
            if entries.peek().is_none() {
                break;
            }
            self.commit()?;
        }
        self.counts.insert(table.name().to_owned(), copied);
        Ok(())
    }
}

/// Counts each table's records; tables an older schema did not have yet are left out.
struct Count<'a> {
    tx: &'a redb::ReadTransaction,
    counts: TableCounts,
}

impl TableVisitor for Count<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        table: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        let len = match self.tx.open_table(table) {
            Ok(table) => table.len()?,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        self.counts.insert(table.name().to_owned(), len);
        Ok(())
    }
}

/// Writes the snapshot `from` sees into a new database at `path` and commits it durably. Fails,
/// rather than writing a partial copy, if the snapshot holds a table the schema does not list.
pub(super) fn copy_into(from: &redb::ReadTransaction, path: &Path) -> Result<TableCounts, StoreError> {
    copy_committing_every(from, path, COPY_COMMIT_BYTES)
}

fn copy_committing_every(
    from: &redb::ReadTransaction,
    path: &Path,
    commit_bytes: usize,
) -> Result<TableCounts, StoreError> {
    // A small cache: the copy is written once and never read back by this process, and a
    // default-sized cache would grow the server's memory by the size of the database.
    let target = Database::builder().set_cache_size(COPY_CACHE_BYTES).create(path)?;
    let mut copy =
        CopyTables { from, commit_bytes, target: &target, to: None, written: 0, counts: TableCounts::new() };
    every_table(&mut copy)?;
    let unlisted: Vec<String> = from
        .list_tables()?
        .map(|table| table.name().to_owned())
        .filter(|name| !copy.counts.contains_key(name))
        .collect();
    if !unlisted.is_empty() {
        return Err(StoreError::Database(format!(
            "the database holds tables no backup would copy: {}",
            unlisted.join(", ")
        )));
    }
    copy.commit()?;
    Ok(copy.counts)
}

/// `copy_into` from a database opened read-only (a stopped server's).
pub fn copy_from(db: &ReadOnlyDatabase, path: &Path) -> Result<TableCounts, StoreError> {
    copy_into(&db.begin_read()?, path)
}

/// What checking a database copy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Audit records whose hash chains were recomputed and found intact.
    pub audit_records: u64,
}

/// Checks a database copy against what its maker said it holds: its schema version, each
/// table's record count, and (from schema 3, which chained the audit log) the audit log's hash
/// chains.
pub fn check(db: &ReadOnlyDatabase, expected: &TableCounts, schema: u64) -> Result<Checked, StoreError> {
    let tx = db.begin_read()?;
    let found = schema_version(&tx)?;
    if found != Some(schema) {
        return Err(StoreError::Database(format!("its database has schema {found:?}, not {schema}")));
    }
    let counts = count_existing_tables(&tx)?;
    for (table, &count) in expected {
        let actual = counts.get(table).copied().unwrap_or_default();
        if actual != count {
            return Err(StoreError::Database(format!(
                "its table {table} holds {actual} records, not the {count} its manifest lists"
            )));
        }
    }
    if schema < 3 {
        return Ok(Checked { audit_records: 0 });
    }
    let report = super::audit::verify(&super::ReadTx::new(tx), None)?;
    if !report.intact() {
        let problems: Vec<&str> =
            report.chains.iter().flat_map(|c| c.problems.iter().map(String::as_str)).take(5).collect();
        return Err(StoreError::Database(format!(
            "its audit log does not verify ({} records outside any chain): {}",
            report.unchained,
            problems.join("; ")
        )));
    }
    Ok(Checked { audit_records: report.records() })
}

/// Opens a database file that no process is using, read-only: to check a backup or to back up a
/// stopped server without migrating its schema.
pub fn open_read_only(path: &Path) -> Result<ReadOnlyDatabase, StoreError> {
    ReadOnlyDatabase::open(path).map_err(|err| match err {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            StoreError::Database(format!("{} is in use by a running Portcullis", path.display()))
        }
        redb::DatabaseError::RepairAborted => StoreError::Database(format!(
            "{} was not closed cleanly (the server was killed or crashed): start the server once, \
             which recovers it, and back it up while it runs",
            path.display()
        )),
        other => StoreError::Database(format!("{}: {other}", path.display())),
    })
}

/// Whether another process holds the database file open (a running server).
pub fn in_use(path: &Path) -> bool {
    matches!(ReadOnlyDatabase::open(path), Err(redb::DatabaseError::DatabaseAlreadyOpen))
}

/// Each table's record count in a read transaction.
pub fn count_existing_tables(tx: &redb::ReadTransaction) -> Result<TableCounts, StoreError> {
    let mut count = Count { tx, counts: TableCounts::new() };
    every_table(&mut count)?;
    Ok(count.counts)
}

/// The schema version a read transaction's database was written with.
pub fn schema_version(tx: &redb::ReadTransaction) -> Result<Option<u64>, StoreError> {
    schema::stored_version(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn a_copy_holds_every_table_and_every_record_of_its_snapshot() {
        let (dir, store) = testing::store();
        let source = store.inner.db.begin_read().unwrap();
        let before = count_existing_tables(&source).unwrap();
        let path = dir.path().join("copy.redb");
        let counts = copy_into(&source, &path).unwrap();
        assert_eq!(counts, before);
        let copy = open_read_only(&path).unwrap();
        let tx = copy.begin_read().unwrap();
        assert_eq!(count_existing_tables(&tx).unwrap(), before);
        assert_eq!(schema_version(&tx).unwrap(), Some(crate::store::SCHEMA_VERSION));
        let listed: Vec<String> = tx.list_tables().unwrap().map(|t| t.name().to_owned()).collect();
        assert_eq!(listed.len(), before.len(), "{listed:?}");
    }

    #[test]
    fn a_copy_made_in_many_commits_is_whole() {
        let (dir, store) = testing::store();
        {
            let tx = store.inner.db.begin_write().unwrap();
            let mut meta = tx.open_table(schema::META).unwrap();
            for i in 0..500u64 {
                meta.insert(format!("probe-{i:03}").as_str(), i).unwrap();
            }
            drop(meta);
            tx.commit().unwrap();
        }
        let source = store.inner.db.begin_read().unwrap();
        let before = count_existing_tables(&source).unwrap();
        let path = dir.path().join("copy.redb");
        assert_eq!(copy_committing_every(&source, &path, 64).unwrap(), before);
        let copy = open_read_only(&path).unwrap();
        let tx = copy.begin_read().unwrap();
        assert_eq!(count_existing_tables(&tx).unwrap(), before);
        let meta = tx.open_table(schema::META).unwrap();
        assert_eq!(meta.get("probe-499").unwrap().unwrap().value(), 499);
    }

    #[test]
    fn a_table_no_module_lists_stops_the_copy() {
        let (dir, store) = testing::store();
        {
            let tx = store.inner.db.begin_write().unwrap();
            tx.open_table(TableDefinition::<&str, u64>::new("stray")).unwrap().insert("x", 1).unwrap();
            tx.commit().unwrap();
        }
        let source = store.inner.db.begin_read().unwrap();
        let err = copy_into(&source, &dir.path().join("copy.redb")).unwrap_err();
        assert!(err.to_string().contains("stray"), "{err}");
    }
}
