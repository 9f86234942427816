//! Putting a verified backup in place of a stopped server's data.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::{BackupError, Manifest, Verified, archive, control, scratch_dir, verify_to_keep};
use crate::{audit, config::Config, store};

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub audit_records: u64,
    /// Where the database the restore replaced was kept, if there was one.
    pub replaced: Option<PathBuf>,
    /// A warning about the secret key, if the restored database needs one that is not in place.
    pub secret_key_warning: Option<String>,
}

/// Restores the backup at `file` into the data directory of `config`. Refuses while a server
/// runs on it, and, unless `replace` is set, when it already holds a database; a replaced
/// database (and secret key) is kept beside the new one, renamed, never deleted.
pub fn restore(file: &Path, config: &Config, replace: bool) -> Result<Restored, BackupError> {
    let data_dir = &config.data_dir;
    crate::create_private_dir(data_dir)
        .map_err(BackupError::io(format!("cannot create the data directory {}", data_dir.display())))?;
    refuse_if_running(data_dir)?;
    let target = data_dir.join(store::DATABASE_FILE);
    if target.exists() && !replace {
        return Err(BackupError::Refused(format!(
            "{} already holds a database; to replace it (it is kept, renamed), restore with --force",
            data_dir.display()
        )));
    }
    let scratch = scratch_dir(data_dir)?;
    let verified = verify_to_keep(file, scratch.path())?;
    // Checked again now that the (possibly long) verification is over.
    refuse_if_running(data_dir)?;
    let owner = Owner::of(data_dir)?;
    let suffix = replaced_suffix();
    let replaced = set_aside(&target, &suffix)?;
    owner.give(&verified.database)?;
    rename(&verified.database, &target)?;
    let secret_key_warning = place_secret_key(&verified, &config.secret_key_path(), &suffix, &owner)?;
    remove_search_index(data_dir)?;
    sync_dir(data_dir)?;
    let Verified { manifest, audit_records, .. } = verified;
    Ok(Restored { manifest, audit_records, replaced, secret_key_warning })
}

fn refuse_if_running(data_dir: &Path) -> Result<(), BackupError> {
    if control::server_is_running(data_dir) || store::snapshot::in_use(&data_dir.join(store::DATABASE_FILE)) {
        return Err(BackupError::Refused(format!(
            "a Portcullis server is running on {}: stop it first (systemctl stop portcullis)",
            data_dir.display()
        )));
    }
    Ok(())
}

/// The sealed secrets in the database open only with the key the backup was made with: put the
/// backup's copy in place, or, if it has none, check the one already there is that key.
fn place_secret_key(
    verified: &Verified,
    path: &Path,
    suffix: &str,
    owner: &Owner,
) -> Result<Option<String>, BackupError> {
    let Some(expected) = &verified.manifest.secret_key_sha256 else { return Ok(None) };
    let current = std::fs::read(path).ok().map(|bytes| archive::sha256_hex(&bytes));
    if current.as_ref() == Some(expected) {
        return Ok(None);
    }
    let Some(restored) = &verified.secret_key else {
        return Ok(Some(format!(
            "the backup does not include the secret key its sealed secrets (upstream OIDC client secrets) \
             need, and {} is not that key (SHA-256 {expected}): copy the key file there before starting",
            path.display()
        )));
    };
    set_aside(path, suffix)?;
    let mut staged = path.as_os_str().to_owned();
    staged.push(".restoring");
    let staged = PathBuf::from(staged);
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(restored, &staged)
        .map_err(BackupError::io(format!("cannot write {}", staged.display())))?;
    owner.give(&staged)?;
    rename(&staged, path)?;
    Ok(None)
}

/// Renames `path` to `path.replaced-<time>` if it exists.
fn set_aside(path: &Path, suffix: &str) -> Result<Option<PathBuf>, BackupError> {
    if !path.exists() {
        return Ok(None);
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(suffix);
    let aside = PathBuf::from(aside);
    rename(path, &aside)?;
    Ok(Some(aside))
}

fn replaced_suffix() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        ".replaced-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// The search index describes the database it was built from: remove it, and the server
/// rebuilds it from the restored audit log on start.
fn remove_search_index(data_dir: &Path) -> Result<(), BackupError> {
    let index = audit::index::dir_in(data_dir);
    match std::fs::remove_dir_all(&index) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(BackupError::io(format!("cannot remove the audit index {}", index.display()))(err))
        }
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::rename(from, to).map_err(BackupError::io(format!(
        "cannot move {} to {}",
        from.display(),
        to.display()
    )))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BackupError::io(format!("cannot sync {}", dir.display())))
}

/// The owner of the data directory: a restore run as root for a server that runs as its own
/// user must leave files that user can open.
struct Owner {
    #[cfg(unix)]
    ids: (u32, u32),
}

impl Owner {
    fn of(dir: &Path) -> Result<Self, BackupError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta =
                std::fs::metadata(dir).map_err(BackupError::io(format!("cannot read {}", dir.display())))?;
            Ok(Self { ids: (meta.uid(), meta.gid()) })
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(Self {})
        }
    }

    fn give(&self, path: &Path) -> Result<(), BackupError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(path)
                .map_err(BackupError::io(format!("cannot read {}", path.display())))?;
            if (meta.uid(), meta.gid()) != self.ids {
                std::os::unix::fs::chown(path, Some(self.ids.0), Some(self.ids.1)).map_err(
                    BackupError::io(format!("cannot give {} to the data directory's owner", path.display())),
                )?;
            }
        }
        #[cfg(not(unix))]
        let _ = path;
        Ok(())
    }
}
