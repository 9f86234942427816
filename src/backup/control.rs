//! The control socket: `control.sock` in the data directory, through which `portcullis backup`
//! asks a running server for a backup (the server holds the database's lock, so no other process
//! can open it). The file is readable and writable by the server's user only: being able to use
//! it is being able to read the data directory, which is what a backup hands over anyway.
//!
//! The protocol is one line: the client sends `backup` (or `backup without-secret-key`); the
//! server answers `ok` and the backup's bytes, then closes, or `error: <why>`. A backup cut short is caught by the client's check of
//! the file, never trusted.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt},
    net::{UnixListener, UnixStream},
    task::JoinHandle,
};

use super::{BackupError, Manifest, SecretKeySource, write_backup};
use crate::{
    clock::SharedClock,
    store::{
        Store,
        audit::{self, Actor, AuditRecord},
    },
};

/// The socket's name in the data directory.
pub const SOCKET_FILE: &str = "control.sock";
const BACKUP: &str = "backup";
const WITHOUT_SECRET_KEY: &str = "without-secret-key";
/// How long a client may take to send its one line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The listening socket; closing it removes the file.
pub struct ControlSocket {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl ControlSocket {
    pub fn close(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Everything a backup made over the socket needs.
#[derive(Clone)]
pub struct Backups {
    pub store: Store,
    pub clock: SharedClock,
    pub data_dir: PathBuf,
    pub secret_key: SecretKeySource,
}

/// Listens on the data directory's control socket. The caller holds the database's lock, so a
/// socket file already there is a dead server's and is replaced. Without a socket the server
/// still serves; only `portcullis backup` of it is impossible, which the warning says.
pub fn listen(backups: Backups) -> Option<ControlSocket> {
    let path = backups.data_dir.join(SOCKET_FILE);
    let _ = std::fs::remove_file(&path);
    let listener = match bind_private(&path) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "no control socket: `portcullis backup` cannot reach this server");
            return None;
        }
    };
    let task = tokio::spawn(accept(listener, backups));
    Some(ControlSocket { path, task })
}

fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let listener = UnixListener::bind(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}

async fn accept(listener: UnixListener, backups: Backups) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, backups.clone()));
            }
            Err(err) => {
                tracing::warn!(%err, "the control socket failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(stream: UnixStream, backups: Backups) {
    let caller =
        stream.peer_cred().map(|cred| format!("uid:{}", cred.uid())).unwrap_or_else(|_| "unknown".into());
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, (&mut reader).take(64).read_line(&mut line)).await;
    let stream = reader.into_inner();
    let Ok(std) = stream.into_std().and_then(|s| s.set_nonblocking(false).map(|()| s)) else { return };
    let request = match read {
        Ok(Ok(_)) => line.trim().to_owned(),
        _ => return,
    };
    let serving = backups.clone();
    let served = tokio::task::spawn_blocking(move || serve_request(&request, std, &serving)).await;
    if let Ok(Some(manifest)) = served {
        record_backup(&backups, &manifest, caller).await;
    }
}

/// Answers one request on a blocking thread; returns the manifest of a backup it sent.
fn serve_request(
    request: &str,
    mut stream: std::os::unix::net::UnixStream,
    backups: &Backups,
) -> Option<Manifest> {
    let mut secret_key = backups.secret_key.clone();
    match request.split_once(' ') {
        None if request == BACKUP => {}
        Some((BACKUP, WITHOUT_SECRET_KEY)) => secret_key.include = false,
        _ => {
            let _ =
                writeln!(stream, "error: unknown request {request:?} (this server understands `{BACKUP}`)");
            return None;
        }
    }
    let started = std::time::Instant::now();
    let mut out = AnswerOk { stream: &mut stream, answered: false };
    let taken = write_backup(
        &backups.data_dir,
        &secret_key,
        "running",
        |path| backups.store.snapshot_to(path),
        &mut out,
    );
    let answered = out.answered;
    match taken {
        Ok(manifest) => {
            tracing::info!(
                records = manifest.records(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "backup sent"
            );
            Some(manifest)
        }
        Err(err) => {
            tracing::error!(%err, "backup failed");
            if !answered {
                let _ = writeln!(stream, "error: {err}");
            }
            None
        }
    }
}

/// The audit trail says who took a copy of everything, and when.
async fn record_backup(backups: &Backups, manifest: &Manifest, caller: String) {
    let actor = Actor { kind: "operator_cli".into(), id: caller, label: Some("portcullis backup".into()) };
    let detail = serde_json::json!({
        "records": manifest.records(),
        "schema_version": manifest.schema_version,
        "includes_secret_key": manifest.file(super::SECRET_KEY_FILE).is_some(),
    });
    let record = AuditRecord::new(None, actor, "instance.backup", None, detail, backups.clock.now(), None);
    let written = backups.store.write(move |tx| audit::append(tx, record.clone()).map(|_| ())).await;
    if let Err(err) = written {
        tracing::error!(%err, "the backup could not be recorded in the audit log");
    }
}

/// Writes `ok` before the first byte of the backup, so an error found before then (the snapshot
/// failed) can still be answered as one.
struct AnswerOk<'a, W: Write> {
    stream: &'a mut W,
    answered: bool,
}

impl<W: Write> Write for AnswerOk<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.answered {
            self.stream.write_all(b"ok\n")?;
            self.answered = true;
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Whether a server answers on the data directory's control socket.
pub fn server_is_running(data_dir: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(data_dir.join(SOCKET_FILE)).is_ok()
}

/// Asks the server running on `data_dir` for a backup and copies it into `out`. `Ok(false)`: no
/// server listens there.
pub fn request_backup(
    data_dir: &Path,
    with_secret_key: bool,
    out: &mut impl Write,
) -> Result<bool, BackupError> {
    let mut stream = match std::os::unix::net::UnixStream::connect(data_dir.join(SOCKET_FILE)) {
        Ok(stream) => stream,
        Err(err) if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
            return Ok(false);
        }
        Err(err) => return Err(BackupError::Server(format!("cannot reach its control socket: {err}"))),
    };
    let request = if with_secret_key { BACKUP.to_owned() } else { format!("{BACKUP} {WITHOUT_SECRET_KEY}") };
    writeln!(stream, "{request}").map_err(|err| BackupError::Server(err.to_string()))?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    (&mut reader).take(4096).read_line(&mut answer).map_err(|err| BackupError::Server(err.to_string()))?;
    match answer.trim_end() {
        "ok" => {}
        other => {
            let why = other.strip_prefix("error: ").unwrap_or(other);
            return Err(BackupError::Server(if why.is_empty() {
                "it closed the connection".into()
            } else {
                why.into()
            }));
        }
    }
    io::copy(&mut reader, out).map_err(BackupError::io("cannot receive the backup"))?;
    Ok(true)
}
