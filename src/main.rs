//! The `portcullis` command: parses the command line, loads the settings, starts logging and
//! calls into the library.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

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
    };
    let loaded = match config::load(&args.sources()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("portcullis: {err}");
            return ExitCode::from(2);
        }
    };
    if matches!(action, Action::Config) {
        print!("{}", loaded.render());
        return ExitCode::SUCCESS;
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
            Action::Serve | Action::Config => serve(loaded.config).await,
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
