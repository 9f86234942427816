//! The `portcullis` command: parses the command line, loads the settings, starts logging and
//! calls into the library.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::Context;

use clap::{Args, Parser, Subcommand};
use portcullis::{
    clock::SystemClock,
    config::{self, Config, LogFormat, Sources},
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "Enterprise SSO and SCIM provisioning for B2B SaaS apps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the defaults need no configuration).
    Serve(SettingsArgs),
    /// Print the effective settings, secrets masked, with where each came from.
    Config(SettingsArgs),
    /// Create the data directory, database and keys without serving, printing the first admin
    /// API key if one was generated.
    Init(SettingsArgs),
    /// Token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit log (on a stopped server; a running one answers /api/v1/audit/verify).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write a backup of the data directory to a file, checked before it is kept: from a
    /// running server (through control.sock in its data directory) or from a stopped one.
    Backup {
        #[command(flatten)]
        settings: SettingsArgs,
        /// The backup file to write (replaced only once the new backup has been checked).
        #[arg(
            long,
            short,
            value_name = "FILE",
            required_unless_present = "output_dir",
            conflicts_with = "output_dir"
        )]
        output: Option<PathBuf>,
        /// Write `portcullis-<UTC time>.tar.gz` into this directory instead (nightly backups).
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// With --output-dir: then remove all but the newest N backups there.
        #[arg(long, value_name = "N", conflicts_with = "output", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
        /// Leave out the key that seals stored secrets (keep it safe some other way: without it
        /// a restored server cannot open upstream OIDC client secrets).
        #[arg(long)]
        without_secret_key: bool,
    },
    /// Restore a backup into the data directory of a stopped server, after checking it.
    Restore {
        #[command(flatten)]
        settings: SettingsArgs,
        /// The backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace the database already in the data directory (it is kept, renamed).
        #[arg(long)]
        force: bool,
        /// Only check the backup; change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Exit 0 if the server answers GET /readyz with 200 (for container and service health checks).
    Healthcheck {
        #[command(flatten)]
        settings: SettingsArgs,
        /// The server's base URL [default: derived from the listen setting].
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every tenant's hash chain: exits 1 if a record was changed, removed or inserted.
    Verify {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Only this tenant's chain (its id, or `instance`).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Rebuild the audit search index (`audit/` in the data directory) from the log.
    Reindex {
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make new signing keys, which take over from the active ones after six minutes (on a
    /// stopped server; a running one rotates with POST /api/v1/signing-keys/rotate). Old keys
    /// stay published until their tokens expire.
    Rotate {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Hand over at once rather than after the six minutes apps may cache the JWKS.
        #[arg(long)]
        immediate: bool,
    },
}

/// Flags override `PORTCULLIS_*` environment variables, which override the config file.
#[derive(Args)]
struct SettingsArgs {
    /// A TOML file of settings (also PORTCULLIS_CONFIG).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the database and the audit index live [default: ./portcullis-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// The address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The URL users and IdPs reach this server at [default: derived from --listen].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// A log filter such as `info` or `portcullis=debug` [default: info].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// `text` or `json` [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

impl SettingsArgs {
    fn sources(self) -> Sources {
        let flags = [
            ("data_dir", self.data_dir),
            ("listen", self.listen),
            ("public_url", self.public_url),
            ("log_level", self.log_level),
            ("log_format", self.log_format),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .collect();
        Sources::from_process(self.config, flags)
    }
}

/// What the command line asked for, once its settings are set aside.
enum Action {
    Serve,
    Config,
    Init,
    RotateKeys { immediate: bool },
    VerifyAudit { tenant: Option<String> },
    Reindex,
    Backup { target: BackupTarget, without_secret_key: bool },
    Restore { file: PathBuf, force: bool, check: bool },
    Healthcheck { url: Option<String> },
}

/// Where `portcullis backup` writes.
enum BackupTarget {
    File(PathBuf),
    /// A new dated file in `dir`, then only the newest `keep` of them kept.
    Dir {
        dir: PathBuf,
        keep: Option<u32>,
    },
}

fn main() -> ExitCode {
    let (args, action) = match Cli::parse().command {
        Command::Serve(args) => (args, Action::Serve),
        Command::Config(args) => (args, Action::Config),
        Command::Init(args) => (args, Action::Init),
        Command::Keys(KeysCommand::Rotate { settings, immediate }) => {
            (settings, Action::RotateKeys { immediate })
        }
        Command::Audit(AuditCommand::Verify { settings, tenant }) => {
            (settings, Action::VerifyAudit { tenant })
        }
        Command::Audit(AuditCommand::Reindex { settings }) => (settings, Action::Reindex),
        Command::Backup { settings, output, output_dir, keep, without_secret_key } => {
            let target = match (output, output_dir) {
                (Some(file), _) => BackupTarget::File(file),
                (None, dir) => BackupTarget::Dir { dir: dir.unwrap_or_else(|| PathBuf::from(".")), keep },
            };
            (settings, Action::Backup { target, without_secret_key })
        }
        Command::Restore { settings, file, force, check } => {
            (settings, Action::Restore { file, force, check })
        }
        Command::Healthcheck { settings, url } => (settings, Action::Healthcheck { url }),
    };
    let loaded = match config::load(&args.sources()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("portcullis: {err}");
            return ExitCode::from(2);
        }
    };
    match action {
        Action::Config => {
            print!("{}", loaded.render());
            return ExitCode::SUCCESS;
        }
        // Plain file work: no runtime, no log lines mixed into what they print.
        Action::Backup { target, without_secret_key } => {
            return report(backup(&loaded.config, &target, without_secret_key));
        }
        Action::Restore { file, force, check } => {
            return report(restore(&loaded.config, &file, force, check));
        }
        // Run every few seconds by container engines: one thread, one line when it fails.
        Action::Healthcheck { url } => {
            let checked = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(healthcheck(&loaded.config, url)));
            return report(checked);
        }
        _ => {}
    }
    init_logging(&loaded.config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("portcullis: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match action {
            Action::Init => init(loaded.config).await,
            Action::RotateKeys { immediate } => rotate_keys(loaded.config, immediate).await,
            Action::VerifyAudit { tenant } => verify_audit(loaded.config, tenant).await,
            Action::Reindex => reindex_audit(loaded.config).await,
            Action::Serve
            | Action::Config
            | Action::Backup { .. }
            | Action::Restore { .. }
            | Action::Healthcheck { .. } => serve(loaded.config).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("portcullis: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {} (setting listen): {err}", config.listen))?;
    portcullis::run(config, Arc::new(SystemClock), listener, shutdown_signal()).await
}

async fn init(config: Config) -> anyhow::Result<()> {
    let store = portcullis::open_store(&config).await?;
    let now = time::OffsetDateTime::now_utc();
    match portcullis::instance::initialise(&store, &config, now).await? {
        Some(key) => println!("The first admin API key (shown once, store it now):\n\n    {}\n", key.0),
        None => println!("The data directory {} is initialised.", config.data_dir.display()),
    }
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    Ok(())
}

async fn rotate_keys(config: Config, immediate: bool) -> anyhow::Result<()> {
    let store = portcullis::open_store(&config).await.map_err(|err| {
        anyhow::anyhow!("{err:#}\nA running server rotates its keys with POST /api/v1/signing-keys/rotate.")
    })?;
    let now = time::OffsetDateTime::now_utc();
    let actor = portcullis::store::audit::Actor { kind: "operator_cli".into(), id: whoami(), label: None };
    let handover = portcullis::provider::rotation::Handover { immediate };
    let keys = portcullis::provider::rotation::rotate(&store, now, handover, actor, None).await?;
    for key in keys.iter().filter(|k| k.purpose == portcullis::store::instance_keys::KeyPurpose::TokenSigning)
    {
        let status = portcullis::provider::rotation::status(key, now);
        let when = match status {
            "pending" => key.activates_at.map(|at| format!(" (signs from {at})")),
            "active" => key.retired_at.map(|at| format!(" (until {at})")),
            _ => None,
        };
        println!("{} {} {status}{}", key.algorithm, key.kid, when.unwrap_or_default());
    }
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    Ok(())
}

async fn verify_audit(config: Config, tenant: Option<String>) -> anyhow::Result<()> {
    let store = portcullis::open_store(&config).await.map_err(|err| {
        anyhow::anyhow!("{err:#}\nA running server verifies its audit log with POST /api/v1/audit/verify.")
    })?;
    let report = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.read_now(|tx| portcullis::store::audit::verify(tx, tenant.as_deref()))
        })
        .await??
    };
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    for chain in &report.chains {
        let pruned = chain
            .pruned_through
            .map(|seq| format!(", retention removed records through {seq}"))
            .unwrap_or_default();
        let verdict = if chain.problems.is_empty() { "intact" } else { "BROKEN" };
        println!("{} {verdict}: {} records, head {}{pruned}", chain.chain, chain.records, chain.head_hash);
        for problem in &chain.problems {
            println!("    {problem}");
        }
    }
    if report.unchained > 0 {
        println!("{} records in the log belong to no chain (inserted)", report.unchained);
    }
    if !report.intact() {
        anyhow::bail!("the audit log does not verify: records were changed, removed or inserted");
    }
    println!("The audit log verifies: {} records in {} chains.", report.records(), report.chains.len());
    Ok(())
}

async fn reindex_audit(config: Config) -> anyhow::Result<()> {
    let store = portcullis::open_store(&config).await.map_err(|err| {
        anyhow::anyhow!("{err:#}\nStop the server first; a running server catches its index up by itself.")
    })?;
    let dir = portcullis::audit::index::dir_in(&config.data_dir);
    let settings = portcullis::audit_writer_settings(&config);
    let started = std::time::Instant::now();
    let indexed = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || portcullis::audit::index::rebuild(&dir, settings, &store))
            .await??
    };
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    println!("Indexed {indexed} audit records in {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}

fn report(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("portcullis: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the backup next to `output`, checks it, and only then puts it in `output`'s place.
fn backup(config: &Config, target: &BackupTarget, without_secret_key: bool) -> anyhow::Result<()> {
    use portcullis::backup::{self, SecretKeySource};
    let output = match target {
        BackupTarget::File(file) => file.clone(),
        BackupTarget::Dir { dir, .. } => dir.join(backup::dated_file_name(time::OffsetDateTime::now_utc())),
    };
    let output = output.as_path();
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let partial = tempfile::Builder::new()
        .prefix(".portcullis-backup-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut secret_key = SecretKeySource::of(config);
    secret_key.include &= !without_secret_key;
    let from_server = {
        let mut out = std::io::BufWriter::new(partial.as_file());
        let from_server = backup::control::request_backup(&config.data_dir, !without_secret_key, &mut out)?;
        if !from_server {
            backup::backup_stopped(&config.data_dir, &secret_key, &mut out)?;
        }
        out.flush()?;
        from_server
    };
    partial.as_file().sync_all()?;
    let scratch = tempfile::Builder::new().prefix(".portcullis-check-").tempdir_in(dir)?;
    let verified =
        backup::verify(partial.path(), scratch.path()).context("the new backup does not check out")?;
    partial.persist(output).with_context(|| format!("cannot write {}", output.display()))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    let manifest = &verified.manifest;
    let key = match manifest.file(backup::SECRET_KEY_FILE) {
        Some(_) => "the secret key included",
        None if manifest.secret_key_sha256.is_some() => "WITHOUT the secret key (keep it safe separately)",
        None => "no secret key yet",
    };
    println!(
        "Backed up {} ({}, schema {}): {} records, {} audit records verified, {key}.",
        output.display(),
        if from_server { "from the running server" } else { "from the stopped data directory" },
        manifest.schema_version,
        manifest.records(),
        verified.audit_records,
    );
    if let BackupTarget::Dir { dir, keep: Some(keep) } = target {
        for removed in backup::prune(dir, *keep as usize)? {
            println!("Removed the older backup {}.", removed.display());
        }
    }
    Ok(())
}

fn restore(config: &Config, file: &Path, force: bool, check: bool) -> anyhow::Result<()> {
    use portcullis::backup;
    if check {
        let scratch = tempfile::tempdir()?;
        let verified = backup::verify(file, scratch.path())?;
        let m = &verified.manifest;
        println!(
            "{} is a good backup: Portcullis {}, schema {}, made {} from a {} server; {} records, {} audit records verified.",
            file.display(),
            m.portcullis_version,
            m.schema_version,
            rfc3339(m.created_at),
            m.taken_from,
            m.records(),
            verified.audit_records,
        );
        return Ok(());
    }
    let restored = backup::restore(file, config, force)?;
    let m = &restored.manifest;
    println!(
        "Restored {} into {} (made {}, schema {}): {} records, {} audit records verified.",
        file.display(),
        config.data_dir.display(),
        rfc3339(m.created_at),
        m.schema_version,
        m.records(),
        restored.audit_records,
    );
    if let Some(replaced) = &restored.replaced {
        println!("The database it replaced is kept as {}.", replaced.display());
    }
    if let Some(warning) = &restored.secret_key_warning {
        println!("WARNING: {warning}");
    }
    println!("Start the server: it rebuilds the audit search index and migrates an older schema on start.");
    Ok(())
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// GET /readyz on this server's own listen address.
async fn healthcheck(config: &Config, url: Option<String>) -> anyhow::Result<()> {
    let base = url.unwrap_or_else(|| local_url(config));
    // The probe runs on the server's own host and sends nothing secret; a certificate for the
    // public name does not match the loopback address it talks to.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .danger_accept_invalid_certs(true)
        .build()?;
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let response = client.get(&url).send().await.with_context(|| format!("{url} does not answer"))?;
    anyhow::ensure!(response.status().is_success(), "{url} answered {}", response.status());
    Ok(())
}

/// The listen address as a URL a process on the same host can reach.
fn local_url(config: &Config) -> String {
    let scheme = if config.tls_files().is_some() { "https" } else { "http" };
    let ip = match config.listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, config.listen.port()))
}

/// The operating-system user running the command, for the audit trail.
fn whoami() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
