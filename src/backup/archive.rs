//! The backup file itself: a gzip'd tar of the manifest and the files it lists. Unpacking trusts
//! nothing in it: only the names the manifest lists, only plain files, each written privately
//! into the scratch directory and checked against the manifest's size and digest.

use std::{
    collections::BTreeSet,
    fs::File,
    io::{self, BufReader, BufWriter, Read, Write},
    path::Path,
};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use sha2::{Digest, Sha256};

use super::{BackupError, FORMAT, FORMAT_VERSION, FileEntry, MANIFEST_FILE, Manifest, SECRET_KEY_FILE};
use crate::store::DATABASE_FILE;

/// The only files a backup may hold besides its manifest.
const KNOWN_FILES: [&str; 2] = [DATABASE_FILE, SECRET_KEY_FILE];
/// A manifest is a few kilobytes; anything much larger is not one.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file's name, size and digest, for the manifest.
pub fn describe(path: &Path) -> Result<FileEntry, BackupError> {
    let context = || format!("cannot read {}", path.display());
    let mut reader = BufReader::new(File::open(path).map_err(BackupError::io(context()))?);
    let mut hashing = HashingWriter::new(io::sink());
    let bytes = io::copy(&mut reader, &mut hashing).map_err(BackupError::io(context()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(FileEntry { name, bytes, sha256: hashing.finish().1 })
}

/// Writes the backup: the manifest, then each file it lists from `dir`.
pub fn write(manifest: &Manifest, dir: &Path, out: impl Write) -> Result<(), BackupError> {
    let failed = BackupError::io("cannot write the backup");
    let mut tar = tar::Builder::new(GzEncoder::new(BufWriter::new(out), Compression::fast()));
    let json = serde_json::to_vec_pretty(manifest).map_err(|err| BackupError::Invalid(err.to_string()))?;
    let mut header = private_header(json.len() as u64, manifest.created_at.unix_timestamp());
    tar.append_data(&mut header, MANIFEST_FILE, json.as_slice()).map_err(failed)?;
    for entry in &manifest.files {
        let path = dir.join(&entry.name);
        let file = File::open(&path).map_err(BackupError::io(format!("cannot read {}", path.display())))?;
        let mut header = private_header(entry.bytes, manifest.created_at.unix_timestamp());
        tar.append_data(&mut header, &entry.name, BufReader::new(file))
            .map_err(BackupError::io("cannot write the backup"))?;
    }
    let mut buffered =
        tar.into_inner().and_then(GzEncoder::finish).map_err(BackupError::io("cannot write the backup"))?;
    buffered.flush().map_err(BackupError::io("cannot write the backup"))
}

fn private_header(size: u64, mtime: i64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(mtime).unwrap_or_default());
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// Unpacks the backup at `file` into `dir` and returns its manifest, once every file it lists
/// was found exactly once with the size and digest it names. `durable`: the unpacked files are
/// to be kept (a restore), so each is synced; a check's throwaway copy is not (syncing hundreds
/// of megabytes would hold up the server's own commits on the same disk).
pub fn unpack(file: &Path, dir: &Path, durable: bool) -> Result<Manifest, BackupError> {
    let opened = File::open(file).map_err(BackupError::io(format!("cannot open {}", file.display())))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(opened)));
    let mut entries = tar.entries().map_err(damaged)?;
    let manifest = match entries.next() {
        Some(entry) => read_manifest(entry.map_err(damaged)?)?,
        None => return Err(BackupError::Invalid("it is empty".into())),
    };
    let mut found = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(damaged)?;
        let name = plain_name(&entry)?;
        let expected =
            manifest.file(&name).filter(|_| KNOWN_FILES.contains(&name.as_str())).ok_or_else(|| {
                BackupError::Invalid(format!("it holds {name:?}, which its manifest does not list"))
            })?;
        if !found.insert(name.clone()) {
            return Err(BackupError::Invalid(format!("it holds {name} twice")));
        }
        extract(entry, &dir.join(&name), expected, durable)?;
    }
    if let Some(missing) = manifest.files.iter().find(|f| !found.contains(&f.name)) {
        return Err(BackupError::Invalid(format!("{} is missing (the file is truncated?)", missing.name)));
    }
    Ok(manifest)
}

fn damaged(err: io::Error) -> BackupError {
    BackupError::Invalid(format!("it is not a complete gzip'd tar file ({err})"))
}

fn read_manifest(mut entry: tar::Entry<'_, impl Read>) -> Result<Manifest, BackupError> {
    if plain_name(&entry)? != MANIFEST_FILE || entry.size() > MAX_MANIFEST_BYTES {
        return Err(BackupError::Invalid(format!("it does not start with a {MANIFEST_FILE}")));
    }
    let mut json = Vec::new();
    entry.read_to_end(&mut json).map_err(damaged)?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|err| BackupError::Invalid(format!("its {MANIFEST_FILE} is not readable: {err}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Invalid(format!(
            "it is not a Portcullis backup (format {:?})",
            manifest.format
        )));
    }
    if manifest.format_version > FORMAT_VERSION {
        return Err(BackupError::Invalid(format!(
            "it was made by a newer Portcullis (backup format {}); restore it with that version",
            manifest.format_version
        )));
    }
    Ok(manifest)
}

/// An entry's name, if it is a plain file with a plain name (no directories, links or `..`).
fn plain_name(entry: &tar::Entry<'_, impl Read>) -> Result<String, BackupError> {
    let path = entry.path().map_err(damaged)?;
    let name = path.to_str().filter(|n| !n.is_empty() && !n.contains('/') && *n != "." && *n != "..");
    match (name, entry.header().entry_type()) {
        (Some(name), tar::EntryType::Regular) => Ok(name.to_owned()),
        _ => Err(BackupError::Invalid(format!("it holds {}, which is not a plain file", path.display()))),
    }
}

fn extract(
    mut entry: tar::Entry<'_, impl Read>,
    path: &Path,
    expected: &FileEntry,
    durable: bool,
) -> Result<(), BackupError> {
    let file = create_private(path)?;
    let mut hashing = HashingWriter::new(BufWriter::new(file));
    let bytes = io::copy(&mut entry, &mut hashing).map_err(damaged)?;
    let (writer, sha256) = hashing.finish();
    let file =
        writer.into_inner().map_err(|err| BackupError::io("cannot unpack the backup")(err.into_error()))?;
    if durable {
        file.sync_all().map_err(BackupError::io("cannot unpack the backup"))?;
    }
    if bytes != expected.bytes || sha256 != expected.sha256 {
        return Err(BackupError::Invalid(format!(
            "{} does not match its manifest ({bytes} bytes, SHA-256 {sha256}; the manifest says {} bytes, {})",
            expected.name, expected.bytes, expected.sha256
        )));
    }
    Ok(())
}

/// A new file only its owner can read or write.
pub fn create_private(path: &Path) -> Result<File, BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(BackupError::io(format!("cannot create {}", path.display())))
}

/// Writes a new private file and makes it durable.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), BackupError> {
    let mut file = create_private(path)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(BackupError::io(format!("cannot write {}", path.display())))
}

/// Passes bytes through while taking their SHA-256.
struct HashingWriter<W> {
    inner: W,
    digest: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self { inner, digest: Sha256::new() }
    }

    fn finish(self) -> (W, String) {
        (self.inner, hex::encode(self.digest.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.digest.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
