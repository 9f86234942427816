//! Built-in HTTPS (`tls_cert_file`, `tls_key_file`), on the OpenSSL the SAML stack links anyway:
//! no second TLS library. Mozilla's intermediate profile (TLS 1.2 and 1.3, forward-secret AEAD
//! ciphers), ALPN `http/1.1` (the server speaks HTTP/1 only).
//!
//! Handshakes run in tasks of their own, each within `HANDSHAKE_TIMEOUT`, and only finished
//! streams reach axum through `TlsListener`: a client that connects and says nothing holds one
//! task for a few seconds, never the accept loop. SIGHUP re-reads both files (a certbot deploy
//! hook, `systemctl reload`); new connections get the new certificate, open ones keep theirs, and
//! files that do not load leave the certificate in force as it was.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use axum::{extract::connect_info::Connected, serve::IncomingStream};
use openssl::{
    pkey::PKey,
    ssl::{AlpnError, Ssl, SslAcceptor, SslMethod, select_next_proto},
    x509::X509,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_openssl::SslStream;

use super::client_ip::Peer;

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; connections beyond are closed at once, so a flood of silent
/// clients costs bounded memory and file descriptors.
const MAX_HANDSHAKES: usize = 1024;
/// ALPN's wire form of the one protocol we speak.
const HTTP_1_1: &[u8] = b"\x08http/1.1";

/// A certificate that cannot be served, and the setting to fix.
#[derive(Debug, thiserror::Error)]
#[error("{message} (setting {setting})")]
pub struct TlsError {
    pub setting: &'static str,
    pub message: String,
}

impl TlsError {
    fn new(setting: &'static str, message: String) -> Self {
        Self { setting, message }
    }
}

/// The certificate in force and the files it came from.
pub struct Certificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<SslAcceptor>>,
}

impl Certificates {
    /// Reads both files; any fault stops the start.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, TlsError> {
        let acceptor = acceptor(cert_file, key_file)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: RwLock::new(Arc::new(acceptor)),
        }))
    }

    /// Reads both files again and serves them from the next handshake on; on an error the
    /// certificate in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = Arc::new(acceptor(&self.cert_file, &self.key_file)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
        Ok(())
    }

    fn current(&self) -> Arc<SslAcceptor> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// An acceptor for the certificate chain in `cert_file` (leaf first) and the key in `key_file`.
fn acceptor(cert_file: &Path, key_file: &Path) -> Result<SslAcceptor, TlsError> {
    let cert_error = |message: String| TlsError::new("tls_cert_file", message);
    let key_error = |message: String| TlsError::new("tls_key_file", message);
    let chain = std::fs::read(cert_file)
        .map_err(|err| cert_error(format!("cannot read {}: {err}", cert_file.display())))?;
    let key = std::fs::read(key_file)
        .map_err(|err| key_error(format!("cannot read {}: {err}", key_file.display())))?;
    let mut chain = X509::stack_from_pem(&chain)
        .map_err(|err| cert_error(format!("{} is not a PEM certificate chain: {err}", cert_file.display())))?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| cert_error(format!("{} holds no PEM certificate", cert_file.display())))?;
    // No passphrase is ever asked for: OpenSSL's default would prompt on the terminal.
    let key = PKey::private_key_from_pem_callback(&key, |_| Ok(0))
        .map_err(|_| key_error(format!("{} is not an unencrypted PEM private key", key_file.display())))?;
    let internal = |err: openssl::error::ErrorStack| cert_error(format!("cannot use the certificate: {err}"));
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(internal)?;
    builder.set_certificate(&leaf).map_err(internal)?;
    for intermediate in chain {
        builder.add_extra_chain_cert(intermediate).map_err(internal)?;
    }
    if !leaf.public_key().is_ok_and(|public| public.public_eq(&key)) {
        return Err(key_error(format!(
            "the key in {} does not belong to the certificate in {} (setting tls_cert_file)",
            key_file.display(),
            cert_file.display()
        )));
    }
    builder.set_private_key(&key).map_err(|err| key_error(format!("cannot use the key: {err}")))?;
    builder.check_private_key().map_err(|err| key_error(format!("cannot use the key: {err}")))?;
    builder
        .set_alpn_select_callback(|_, offered| select_next_proto(HTTP_1_1, offered).ok_or(AlpnError::NOACK));
    tracing::info!(certificate = %cert_file.display(), not_after = %leaf.not_after(), "TLS certificate loaded");
    Ok(builder.build())
}

/// What axum accepts from: TLS streams whose handshake is done, with their peer.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(SslStream<TcpStream>, SocketAddr)>,
    /// The accept loop and the SIGHUP watcher: they end with the listener.
    tasks: Vec<JoinHandle<()>>,
}

impl TlsListener {
    /// Starts accepting on `tcp`. The SIGHUP handler is in place when this returns, so a reload
    /// asked for after the start is never taken for a hangup (whose default ends the process).
    pub fn new(tcp: TcpListener, certificates: Arc<Certificates>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        #[cfg(unix)]
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut tasks = vec![tokio::spawn(accept_loop(tcp, Arc::clone(&certificates), sender))];
        #[cfg(unix)]
        tasks.push(tokio::spawn(reload_on_hangup(hangup, certificates)));
        Ok(Self { local, ready, tasks })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = SslStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop never ends while the listener lives; should it, serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

async fn accept_loop(
    tcp: TcpListener,
    certificates: Arc<Certificates>,
    ready: mpsc::Sender<(SslStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                accept_failed(err).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            tracing::debug!(%peer, "too many TLS handshakes in progress: connection closed");
            continue;
        };
        let (acceptor, ready) = (certificates.current(), ready.clone());
        tokio::spawn(async move {
            let finished = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, stream)).await;
            drop(permit);
            match finished {
                // A send fails only once the server stopped taking connections.
                Ok(Ok(tls)) => drop(ready.send((tls, peer)).await),
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn handshake(acceptor: &SslAcceptor, tcp: TcpStream) -> Result<SslStream<TcpStream>, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|err| err.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|err| err.to_string())?;
    Pin::new(&mut stream).accept().await.map_err(|err| err.to_string())?;
    Ok(stream)
}

/// As axum's own listener does: a connection that went away is nothing; anything else (out of
/// file descriptors) is logged and waited out for a second rather than spun on.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%err, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(unix)]
async fn reload_on_hangup(mut hangup: tokio::signal::unix::Signal, certificates: Arc<Certificates>) {
    while hangup.recv().await.is_some() {
        let certificates = Arc::clone(&certificates);
        match tokio::task::spawn_blocking(move || certificates.reload()).await {
            Ok(Ok(())) => tracing::info!("SIGHUP: the TLS certificate was reloaded"),
            Ok(Err(err)) => {
                tracing::error!(%err, "SIGHUP: the TLS certificate was not reloaded; the one in force stays")
            }
            Err(err) => tracing::error!(%err, "SIGHUP: the TLS certificate reload failed"),
        }
    }
}

/// Without built-in TLS there is nothing to reload, but `systemctl reload` must not stop the
/// server (SIGHUP's default action): the hangup is logged and otherwise ignored.
#[cfg(unix)]
pub fn ignore_hangups() -> io::Result<JoinHandle<()>> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: nothing to reload (settings are read at start; restart to change them)");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
        let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    #[test]
    fn each_fault_names_the_setting_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let (_, other_key) = pair(dir.path(), "b");
        assert!(Certificates::load(&cert, &key).is_ok());
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem").unwrap();
        let cases = [
            (&missing, &key, "tls_cert_file"),
            (&cert, &missing, "tls_key_file"),
            (&garbage, &key, "tls_cert_file"),
            (&key, &key, "tls_cert_file"),
            (&cert, &garbage, "tls_key_file"),
            (&cert, &cert, "tls_key_file"),
            (&cert, &other_key, "tls_key_file"),
        ];
        for (cert_file, key_file, setting) in cases {
            let err = Certificates::load(cert_file, key_file).err().unwrap();
            assert_eq!(err.setting, setting, "{err}");
            assert!(err.to_string().contains(&format!("(setting {setting})")), "{err}");
        }
        let err = Certificates::load(&cert, &other_key).err().unwrap().to_string();
        assert!(err.contains("does not belong to the certificate"), "{err}");
    }

    #[test]
    fn a_reload_that_fails_keeps_the_certificate_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let certificates = Certificates::load(&cert, &key).unwrap();
        let before = certificates.current();
        std::fs::write(&key, "gone").unwrap();
        assert_eq!(certificates.reload().unwrap_err().setting, "tls_key_file");
        assert!(Arc::ptr_eq(&before, &certificates.current()));
        let (new_cert, new_key) = pair(dir.path(), "b");
        std::fs::rename(new_cert, &cert).unwrap();
        std::fs::rename(new_key, &key).unwrap();
        certificates.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &certificates.current()));
    }
}
