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

/// The name `portcullis backup --output-dir` gives a backup made at `at`: its UTC time, to the
/// millisecond, so names sort in the order the backups were made.
pub fn dated_file_name(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{DATED_PREFIX}{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z{DATED_SUFFIX}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

const DATED_PREFIX: &str = "portcullis-";
const DATED_SUFFIX: &str = ".tar.gz";

/// Removes all but the newest `keep` dated backups in `dir` (files named by `dated_file_name`;
/// anything else there is left alone). Returns what it removed.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let listing =
        std::fs::read_dir(dir).map_err(BackupError::io(format!("cannot list {}", dir.display())))?;
    let mut dated: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(is_dated_name))
        .collect();
    dated.sort();
    let surplus = dated.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = dated.into_iter().take(surplus).collect();
    for path in &removed {
        std::fs::remove_file(path).map_err(BackupError::io(format!("cannot remove {}", path.display())))?;
    }
    Ok(removed)
}

fn is_dated_name(name: &str) -> bool {
    name.strip_prefix(DATED_PREFIX)
        .and_then(|rest| rest.strip_suffix(DATED_SUFFIX))
        .is_some_and(|stamp| stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T')
}

const SCRATCH_PREFIX: &str = ".backup-";

/// A private scratch directory inside the data directory: on the same file system (a restore
/// renames from it) and as private as the data itself.
pub(crate) fn scratch_dir(data_dir: &Path) -> Result<tempfile::TempDir, BackupError> {
    tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .tempdir_in(data_dir)
        .map_err(BackupError::io(format!("cannot make a scratch directory in {}", data_dir.display())))
}

/// Removes scratch directories a killed backup or restore left in the data directory (each may
/// hold a whole copy of the database). Called by a starting server, which holds the database's
/// lock, so no backup of this directory is under way.
pub fn remove_stale_scratch(data_dir: &Path) {
    let Ok(listing) = std::fs::read_dir(data_dir) else { return };
    for entry in listing.filter_map(Result::ok) {
        let stale = entry.file_name().to_str().is_some_and(|n| n.starts_with(SCRATCH_PREFIX))
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if stale {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a killed backup's scratch copy")
                }
                Err(err) => {
                    tracing::warn!(path = %entry.path().display(), %err, "cannot remove a killed backup's scratch copy")
                }
            }
        }
    }
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
/// log's hash chains. The unpacked files are a throwaway copy (see `verify_to_keep`).
pub fn verify(file: &Path, scratch: &Path) -> Result<Verified, BackupError> {
    verify_unpacked(file, scratch, false)
}

/// `verify`, with the unpacked files synced to disk: a restore moves them into place.
pub(crate) fn verify_to_keep(file: &Path, scratch: &Path) -> Result<Verified, BackupError> {
    verify_unpacked(file, scratch, true)
}

fn verify_unpacked(file: &Path, scratch: &Path, durable: bool) -> Result<Verified, BackupError> {
    let manifest = archive::unpack(file, scratch, durable)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_names_sort_in_time_order_and_only_they_are_pruned() {
        let first = time::Date::from_calendar_date(2026, time::Month::November, 23)
            .unwrap()
            .with_hms_milli(9, 5, 1, 7)
            .unwrap()
            .assume_utc();
        let names: Vec<String> =
            [first, first + time::Duration::milliseconds(5), first + time::Duration::days(40)]
                .into_iter()
                .map(dated_file_name)
                .collect();
        assert_eq!(names[0], "portcullis-20261123T090501.007Z.tar.gz");
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(names.iter().all(|n| is_dated_name(n)));

        let dir = tempfile::tempdir().unwrap();
        for name in names.iter().map(String::as_str).chain(["portcullis-manual.tar.gz", "notes.txt"]) {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(removed, vec![dir.path().join(&names[0])]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "notes.txt",
                "portcullis-20261123T090501.012Z.tar.gz",
                "portcullis-20270102T090501.007Z.tar.gz",
                "portcullis-manual.tar.gz"
            ]
        );
    }
}
