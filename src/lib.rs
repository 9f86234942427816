//! Portcullis: enterprise SSO (SAML 2.0, OpenID Connect) and SCIM 2.0 provisioning for a B2B
//! SaaS app, in one binary with its state in redb.
//!
//! `run` is what both `main` and the integration tests call: it opens the data directory,
//! finishes first-start initialisation, serves until `shutdown` resolves, then drains.

pub mod admin;
pub mod app;
pub mod audit;
pub mod backup;
pub mod clock;
pub mod config;
pub mod directory;
pub mod events;
pub mod http;
pub mod ids;
pub mod instance;
pub mod metrics;
pub mod oidc_rp;
pub mod passwords;
pub mod provider;
pub mod saml;
pub mod scim;
pub mod secrets;
pub mod sessions;
pub mod signin;
pub mod store;
pub mod tenants;
pub mod text;

use std::{
    future::{Future, IntoFuture},
    io,
    path::Path,
    sync::Arc,
};

use anyhow::Context;
use tokio::{net::TcpListener, sync::Notify};

use crate::{app::AppState, clock::SharedClock, config::Config, store::Store};

/// Opens the data directory and its database, creating them if needed (readable by their owner
/// only: the database holds private keys).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    create_private_dir(&config.data_dir).with_context(|| {
        format!("cannot create the data directory {} (setting data_dir)", config.data_dir.display())
    })?;
    let (dir, cache) = (config.data_dir.clone(), config.db_cache_mb << 20);
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, cache)).await??;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = config.data_dir.join(store::DATABASE_FILE);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private to its owner", file.display()))?;
    }
    Ok(store)
}

pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Serves on `listener` until `shutdown` resolves; then stops taking connections, lets requests
/// in flight finish (for at most `shutdown_grace`), and commits what the writer has queued.
pub async fn run(
    config: Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    let public_url = config.public_url_for(bound);
    // Before anything is created: a certificate that cannot be served stops the start.
    let certificates = match config.tls_files() {
        Some((cert, key)) => Some(http::tls::Certificates::load(cert, key)?),
        None => None,
    };
    let store = open_store(&config).await?;
    backup::remove_stale_scratch(&config.data_dir);
    if let Some(key) = instance::initialise(&store, &config, clock.now()).await? {
        announce_first_admin_key(&key.0);
    }

    provider::crypto::install();
    let key_records = store.read(store::instance_keys::all).await?;
    let keys = load_keys(&key_records, clock.now())?;
    let signin = signin_runtime(&key_records, &config)?;
    let secrets = Arc::new(
        secrets::SecretBox::load_or_create(&config.secret_key_path())
            .context("the secret key cannot be loaded (setting secret_key_file)")?,
    );
    let oidc = oidc_runtime(Arc::clone(&secrets))?;
    let events = events::EventsRuntime::new(&config, secrets)
        .map_err(|err| anyhow::anyhow!("the webhook client cannot be made: {err}"))?;
    let config = Arc::new(config);
    let grace = config.shutdown_grace;
    let (audit_index, indexer) = start_audit_index(&config, store.clone()).await?;
    let loaded = app::Loaded { keys, signin, oidc, audit: audit_index, events: Arc::new(events) };
    let state = AppState::new(store.clone(), config, clock, public_url.clone(), loaded);
    let router = app::router(state.clone());
    let background = [
        tokio::spawn(directory::sweep_deleted_users(state.store.clone(), state.clock.clone())),
        tokio::spawn(sessions::sweep_ended(state.store.clone(), state.clock.clone())),
        tokio::spawn(sessions::backchannel::deliver_logouts(state.clone())),
        tokio::spawn(provider::rotation::refresh_key_set(state.clone())),
        tokio::spawn(saml::metadata_source::refresh_on_schedule(state.clone())),
        tokio::spawn(audit::retention::sweep_on_schedule(state.store.clone(), state.clock.clone())),
        tokio::spawn(events::fanout::follow_outbox(state.clone())),
        tokio::spawn(events::delivery::deliver(state.clone())),
        tokio::spawn(events::retention::sweep_on_schedule(state.clone())),
    ];

    let control = backup::control::listen(backup::control::Backups {
        store: store.clone(),
        clock: state.clock.clone(),
        data_dir: state.config.data_dir.clone(),
        secret_key: backup::SecretKeySource::of(&state.config),
    });
    let stopping = Arc::new(Notify::new());
    let signal = {
        let (stopping, state) = (Arc::clone(&stopping), state.clone());
        async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            state.start_draining();
            stopping.notify_waiters();
        }
    };
    let hangups = if certificates.is_none() {
        Some(http::tls::ignore_hangups().context("cannot watch for SIGHUP")?)
    } else {
        None
    };
    println!("Portcullis listening on {public_url} (bound to {bound})");
    tracing::info!(%bound, %public_url, "listening");

    let service = router.into_make_service_with_connect_info::<http::client_ip::Peer>();
    let server = match certificates {
        None => axum::serve(listener, service).with_graceful_shutdown(signal).into_future(),
        Some(certificates) => {
            let listener = http::tls::TlsListener::new(listener, certificates)
                .context("cannot watch for SIGHUP to reload the TLS certificate")?;
            axum::serve(listener, service).with_graceful_shutdown(signal).into_future()
        }
    };
    let deadline = async {
        stopping.notified().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served.context("the HTTP server failed")?,
        () = deadline => tracing::warn!(?grace, "requests still in flight after the shutdown grace period; stopping anyway"),
    }
    for task in background {
        task.abort();
    }
    if let Some(control) = control {
        control.close();
    }
    if let Some(hangups) = hangups {
        hangups.abort();
    }
    drop(state);
    tokio::task::spawn_blocking(move || {
        indexer.stop();
        store.shutdown();
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the audit index (rebuilding it if it cannot be used) and starts keeping it up with
/// the log.
async fn start_audit_index(
    config: &Config,
    store: Store,
) -> anyhow::Result<(Arc<audit::AuditIndex>, audit::Indexer)> {
    let dir = audit::index::dir_in(&config.data_dir);
    let settings = audit_writer_settings(config);
    let started = tokio::task::spawn_blocking(move || audit::index::start(&dir, settings, store)).await?;
    started.context("the audit index cannot be opened")
}

pub fn audit_writer_settings(config: &Config) -> audit::WriterSettings {
    audit::WriterSettings {
        memory_bytes: config.audit_index_memory_mb << 20,
        threads: config.audit_index_threads,
    }
}

/// The signing keys in force, from the store.
fn load_keys(
    records: &[store::instance_keys::InstanceKeyRecord],
    now: time::OffsetDateTime,
) -> anyhow::Result<provider::keys::KeyRing> {
    let set = provider::keys::KeySet::from_records(records, now)
        .context("the token signing keys cannot be loaded")?;
    Ok(provider::keys::KeyRing::new(set))
}

/// Password hashing, the link-signing key and the mailer, from the settings and the store.
fn signin_runtime(
    records: &[store::instance_keys::InstanceKeyRecord],
    config: &Config,
) -> anyhow::Result<signin::SignInRuntime> {
    let link_key = instance::link_signing_key(records).context("the link signing key is missing")?;
    let hasher = passwords::PasswordHasher::new(config.password_hash_memory_kib, 2, 1)
        .map_err(|err| anyhow::anyhow!("password_hash_memory_kib: {err}"))?;
    let warm = hasher.clone();
    tokio::task::spawn_blocking(move || warm.warm_up());
    let mailer = match &config.smtp_host {
        None => None,
        Some(host) => {
            let security = match config.smtp_security.as_str() {
                "tls" => passwords::SmtpSecurity::Tls,
                "none" => passwords::SmtpSecurity::None,
                _ => passwords::SmtpSecurity::StartTls,
            };
            let settings = passwords::SmtpSettings {
                host: host.clone(),
                port: config.smtp_port,
                security,
                username: config.smtp_username.clone(),
                password: config.smtp_password.as_ref().map(|s| s.expose().to_owned()),
                from: config.smtp_from.clone(),
                timeout: std::time::Duration::from_secs(15),
            };
            Some(
                passwords::Mailer::new(settings)
                    .map_err(|err| anyhow::anyhow!("the SMTP settings are not usable: {err}"))?,
            )
        }
    };
    Ok(signin::SignInRuntime::new(link_key, hasher, mailer))
}

/// Upstream OpenID Connect: the outgoing HTTP client and the key that seals client secrets.
fn oidc_runtime(secrets: Arc<secrets::SecretBox>) -> anyhow::Result<oidc_rp::OidcRuntime> {
    let outbound = http::outbound::Outbound::new().context("the outgoing HTTP client cannot be made")?;
    Ok(oidc_rp::OidcRuntime::new(outbound, secrets))
}

fn announce_first_admin_key(key: &str) {
    println!(
        "\nPortcullis created its database and the first admin API key.\n\
         It is shown this once and stored only as a digest; keep it somewhere safe:\n\n    {key}\n\n\
         Use it as `Authorization: Bearer <key>` on /api/v1.\n"
    );
}
