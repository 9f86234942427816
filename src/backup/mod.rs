//! Backups and restores.
//!
//! A backup is one gzip'd tar file: `manifest.json` first (what made it, when, the schema, each
//! table's record count, each file's SHA-256), then `portcullis.redb` — a copy of one consistent
//! snapshot of the database, taken while the server keeps serving (the audit log lives in it;
//! the audit search index is derived and rebuilt on start) — and `secret.key` when the key that
//! seals stored secrets lives in the data directory. A running server makes the copy itself and
//! hands it over its control socket (`control`); a stopped one is read directly.
//!
//! Nothing is trusted before it is checked: a restore verifies every file's digest, opens the
//! database, recounts its tables, and recomputes the audit hash chains before it moves anything
//! into place, and it refuses to touch the data directory of a running server.

pub mod archive;
pub mod control;
mod restore;

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::store::{self, SCHEMA_VERSION, StoreError, snapshot::TableCounts};

pub use restore::{Restored, restore};

/// The first member of every backup: what the rest is.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The secret key's name inside a backup.
pub const SECRET_KEY_FILE: &str = "secret.key";
const FORMAT: &str = "portcullis-backup";
/// Bumped when a reader of an older version could not restore the file correctly.
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The file is not a backup this build can restore, or it was damaged.
    #[error("the backup cannot be used: {0}")]
    Invalid(String),
    /// A restore was asked to do something unsafe.
    #[error("{0}")]
    Refused(String),
    /// The running server's control socket answered with an error, or not at all.
    #[error("the running server could not make the backup: {0}")]
    Server(String),
}

impl BackupError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// What a backup holds, written as its first member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub portcullis_version: String,
    pub schema_version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `running` (copied from a snapshot while the server served) or `stopped`.
    pub taken_from: String,
    pub files: Vec<FileEntry>,
    /// The number of records in each table of the snapshot.
    pub tables: TableCounts,
    /// The SHA-256 of the secret key file the database's sealed secrets need, whether or not
    /// the backup includes it: a restore without it checks the key already in place is that one.
    pub secret_key_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    pub fn records(&self) -> u64 {
        self.tables.values().sum()
    }
}

/// Where a backup's secret key comes from, if it includes one.
#[derive(Debug, Clone)]
pub struct SecretKeySource {
    pub path: PathBuf,
    pub include: bool,
}

impl SecretKeySource {
    /// The key that seals stored secrets: included when it lives in the data directory (the
    /// default), left out when the operator keeps it elsewhere on purpose.
    pub fn of(config: &crate::config::Config) -> Self {
        let path = config.secret_key_path();
        let include = path.starts_with(&config.data_dir);
        Self { path, include }
    }
}

/// Makes a backup of the data directory `data_dir` into `out`: `snapshot` writes the database
/// copy to the path it is given (from a running store, or from a stopped server's file), in a
/// private scratch directory inside the data directory, which is removed afterwards.
pub fn write_backup(
    data_dir: &Path,
    secret_key: &SecretKeySource,
    taken_from: &str,
    snapshot: impl FnOnce(&Path) -> Result<TableCounts, StoreError>,
    out: impl Write,
) -> Result<Manifest, BackupError> {
    let scratch = scratch_dir(data_dir)?;
    let database = scratch.path().join(store::DATABASE_FILE);
    let tables = snapshot(&database)?;
    let staged = stage_secret_key(secret_key, scratch.path())?;
    let mut files = vec![archive::describe(&database)?];
    if let Some(path) = &staged.included {
        files.push(archive::describe(path)?);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        portcullis_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: SCHEMA_VERSION,
        created_at: OffsetDateTime::now_utc(),
        taken_from: taken_from.into(),
        files,
        tables,
        secret_key_sha256: staged.sha256,
    };
    archive::write(&manifest, scratch.path(), out)?;
    Ok(manifest)
}

struct StagedKey {
    included: Option<PathBuf>,
    sha256: Option<String>,
}

/// Copies the secret key into the scratch directory if the backup includes it, and takes its
/// digest either way (a server that never sealed anything may have no key file yet).
fn stage_secret_key(source: &SecretKeySource, scratch: &Path) -> Result<StagedKey, BackupError> {
    let bytes = match std::fs::read(&source.path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StagedKey { included: None, sha256: None });
        }
        Err(err) => return Err(BackupError::io(format!("cannot read {}", source.path.display()))(err)),
    };
    let sha256 = Some(archive::sha256_hex(&bytes));
    if !source.include {
        return Ok(StagedKey { included: None, sha256 });
    }
    let path = scratch.join(SECRET_KEY_FILE);
    archive::write_private(&path, &bytes)?;
    Ok(StagedKey { included: Some(path), sha256 })
}

/// Backs up a stopped server's data directory, reading its database without changing it (no
/// schema migration, no recovery).
pub fn backup_stopped(
    data_dir: &Path,
    secret_key: &SecretKeySource,
    out: impl Write,
) -> Result<Manifest, BackupError> {
    let path = data_dir.join(store::DATABASE_FILE);
    if !path.exists() {
        return Err(BackupError::Refused(format!("there is no database at {}", path.display())));
    }
    let db = store::snapshot::open_read_only(&path)?;
    let found = {
        let tx = redb::ReadableDatabase::begin_read(&db).map_err(StoreError::from)?;
        store::snapshot::schema_version(&tx)?
    };
    if found != Some(SCHEMA_VERSION) {
        return Err(BackupError::Refused(format!(
            "the database has schema {}, this build writes schema {SCHEMA_VERSION}: start the server once \
             with this version (it migrates the database) or back it up with the version that wrote it",
            found.map_or_else(|| "none".to_owned(), |v| v.to_string())
        )));
    }
    write_backup(data_dir, secret_key, "stopped", |target| store::snapshot::copy_from(&db, target), out)
}

/// A private scratch directory inside the data directory: on the same file system (a restore
/// renames from it) and as private as the data itself.
pub(crate) fn scratch_dir(data_dir: &Path) -> Result<tempfile::TempDir, BackupError> {
    tempfile::Builder::new()
        .prefix(".backup-")
        .tempdir_in(data_dir)
        .map_err(BackupError::io(format!("cannot make a scratch directory in {}", data_dir.display())))
}

/// What checking a backup found.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    /// Where the checked files were unpacked (inside the scratch directory given).
    pub database: PathBuf,
    pub secret_key: Option<PathBuf>,
    /// Audit records whose hash chains were recomputed.
    pub audit_records: u64,
}

/// Unpacks the backup at `file` into `scratch` and checks everything a restore relies on: the
/// manifest, every file's size and digest, the database's schema and table counts, and the audit
/// log's hash chains.
pub fn verify(file: &Path, scratch: &Path) -> Result<Verified, BackupError> {
    let manifest = archive::unpack(file, scratch)?;
    if manifest.schema_version > SCHEMA_VERSION {
        return Err(BackupError::Invalid(format!(
            "it was made by a newer Portcullis (schema {}, this build knows up to {SCHEMA_VERSION}); \
             restore it with that version",
            manifest.schema_version
        )));
    }
    let database = scratch.join(store::DATABASE_FILE);
    let db = store::snapshot::open_read_only(&database)
        .map_err(|err| BackupError::Invalid(format!("its database does not open: {err}")))?;
    let check = store::snapshot::check(&db, &manifest.tables, manifest.schema_version)
        .map_err(|err| BackupError::Invalid(err.to_string()))?;
    drop(db);
    let secret_key = manifest.file(SECRET_KEY_FILE).map(|_| scratch.join(SECRET_KEY_FILE));
    Ok(Verified { manifest, database, secret_key, audit_records: check.audit_records })
}
