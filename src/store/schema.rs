//! The schema version and the migrations that bring an older database up to it. Runs once at
//! start, before the server accepts a request, in one write transaction: a migration that fails
//! leaves the database as it was.

use redb::{Database, ReadableTable, TableDefinition};

use super::{StoreError, TableVisitor, WriteTx, audit, directory, journal, snapshot};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_VERSION_KEY: &str = "schema_version";

/// The schema this build writes.
pub const SCHEMA_VERSION: u64 = 4;

/// A step from `to - 1` to `to`.
pub struct Migration {
    pub to: u64,
    pub run: fn(&WriteTx<'_>) -> Result<(), StoreError>,
}

/// Every migration, in order. Add a step here (and bump `SCHEMA_VERSION`) when a table's keys
/// change or records must be rewritten; new optional fields need none (see `codec`).
const MIGRATIONS: &[Migration] = &[
    // 2: the global index of sign-in emails, for routing addresses no tenant's domain covers.
    Migration { to: 2, run: directory::backfill_sign_in_emails },
    // 3: the audit log chained by hash per tenant.
    Migration { to: 3, run: audit::chain_existing },
    // 4: the event id index (the outbox becomes deliverable as webhooks and a feed).
    Migration { to: 4, run: journal::index_event_ids },
];

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new, empty database was created.
    Created,
    /// An existing database, migrated from `from` (equal to the current version if nothing ran).
    Existing { from: u64 },
}

pub(super) fn prepare(db: &Database) -> Result<Opened, StoreError> {
    prepare_with(db, SCHEMA_VERSION, MIGRATIONS)
}

fn prepare_with(db: &Database, target: u64, migrations: &[Migration]) -> Result<Opened, StoreError> {
    let tx = db.begin_write()?;
    let found = tx.open_table(META)?.get(SCHEMA_VERSION_KEY)?.map(|v| v.value());
    let opened = match found {
        None => Opened::Created,
        Some(version) if version > target => {
            return Err(StoreError::SchemaTooNew { found: version, known: target });
        }
        Some(version) => {
            let view = WriteTx::new(&tx, None);
            for step in migrations.iter().filter(|m| m.to > version && m.to <= target) {
                tracing::info!(to = step.to, "migrating the database schema");
                (step.run)(&view)?;
            }
            Opened::Existing { from: version }
        }
    };
    create_tables(&WriteTx::new(&tx, None))?;
    tx.open_table(META)?.insert(SCHEMA_VERSION_KEY, target)?;
    tx.commit()?;
    Ok(opened)
}

/// Opening a table in a write transaction creates it: after this, read transactions can open
/// every table, even in a database that has never stored a record in it.
fn create_tables(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    snapshot::every_table(&mut snapshot::Create(tx))
}

/// This module's one table.
pub(super) fn tables(tables: &mut impl TableVisitor) -> Result<(), StoreError> {
    tables.visit(META)
}

/// The schema version stored in a database, if it has one.
pub(super) fn stored_version(tx: &redb::ReadTransaction) -> Result<Option<u64>, StoreError> {
    let table = match tx.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    Ok(table.get(SCHEMA_VERSION_KEY)?.map(|v| v.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: TableDefinition<&str, &str> = TableDefinition::new("migration_probe");

    fn mark_v2(tx: &WriteTx<'_>) -> Result<(), StoreError> {
        tx.table_mut(PROBE)?.insert("ran", "v2")?;
        Ok(())
    }

    fn fail(_: &WriteTx<'_>) -> Result<(), StoreError> {
        Err(StoreError::Database("boom".into()))
    }

    fn database() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db.redb")).unwrap();
        (dir, db)
    }

    fn version(db: &Database) -> Option<u64> {
        use redb::ReadableDatabase;
        let tx = db.begin_read().unwrap();
        let table = tx.open_table(META).unwrap();
        table.get(SCHEMA_VERSION_KEY).unwrap().map(|v| v.value())
    }

    #[test]
    fn a_new_database_gets_the_current_version() {
        let (_dir, db) = database();
        assert_eq!(prepare(&db).unwrap(), Opened::Created);
        assert_eq!(version(&db), Some(SCHEMA_VERSION));
        assert_eq!(prepare(&db).unwrap(), Opened::Existing { from: SCHEMA_VERSION });
    }

    #[test]
    fn migrations_run_once_from_the_stored_version() {
        let (_dir, db) = database();
        prepare_with(&db, 1, &[]).unwrap();
        let steps = [Migration { to: 2, run: mark_v2 }];
        assert_eq!(prepare_with(&db, 2, &steps).unwrap(), Opened::Existing { from: 1 });
        assert_eq!(version(&db), Some(2));
        let steps = [Migration { to: 2, run: fail }];
        assert_eq!(prepare_with(&db, 2, &steps).unwrap(), Opened::Existing { from: 2 });
    }

    #[test]
    fn a_failed_migration_changes_nothing() {
        let (_dir, db) = database();
        prepare_with(&db, 1, &[]).unwrap();
        let steps = [Migration { to: 2, run: mark_v2 }, Migration { to: 3, run: fail }];
        assert!(prepare_with(&db, 3, &steps).is_err());
        assert_eq!(version(&db), Some(1));
    }

    #[test]
    fn a_newer_database_is_refused() {
        let (_dir, db) = database();
        prepare_with(&db, 5, &[]).unwrap();
        assert!(matches!(prepare_with(&db, 1, &[]), Err(StoreError::SchemaTooNew { found: 5, known: 1 })));
    }
}
