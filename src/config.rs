//! Settings: built-in defaults, overridden by an optional TOML file, then by `PORTCULLIS_*`
//! environment variables, then by command-line flags. Loaded once at start and passed around as
//! `Arc<Config>`; a bad value stops the start with a message naming the setting, where it came
//! from and what is wrong with it.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::IpNet;
use url::Url;

use crate::events::urls::HostPattern;

/// The prefix of every environment variable Portcullis reads.
pub const ENV_PREFIX: &str = "PORTCULLIS_";
/// The environment variable that names the TOML file (the `--config` flag wins over it).
pub const CONFIG_FILE_ENV: &str = "PORTCULLIS_CONFIG";

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The URL browsers and IdPs reach this server at; derived from the listen address if unset.
    pub public_url: Option<Url>,
    /// Built-in HTTPS: the certificate (PEM, the chain after it) and its private key (PEM). Both
    /// or neither; with both, the listener speaks only HTTPS and re-reads them on SIGHUP.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges); empty:
    /// the client is the TCP peer and forwarded headers are ignored.
    pub trusted_proxies: Vec<IpNet>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub db_cache_mb: usize,
    /// The audit search index's writer: its memory (split between its threads, at least 15 MB
    /// each) and its indexing threads.
    pub audit_index_memory_mb: usize,
    pub audit_index_threads: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// The first admin API key, used only when the database is created.
    pub bootstrap_admin_key: Option<Secret>,
    /// The largest SCIM request body (a group PUT with 10,000 members is about 600 KB).
    pub scim_max_body_bytes: usize,
    /// Sustained SCIM requests per second allowed per token; 0: no limit.
    pub scim_rate_limit: u32,
    /// How many SCIM requests a token may make in a burst above the sustained rate.
    pub scim_rate_burst: u32,
    /// argon2id memory per password hash, in KiB (OWASP's minimum for argon2id is 19456).
    pub password_hash_memory_kib: u32,
    /// The mail relay for password links; None: links are shown to the operator instead.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// `starttls` (the default), `tls` (implicit TLS, usually port 465) or `none`.
    pub smtp_security: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
    pub smtp_from: String,
    /// DNS servers for domain verification (`ip:port`, comma-separated); empty: /etc/resolv.conf.
    pub dns_resolvers: Vec<SocketAddr>,
    /// The key that seals stored secrets (upstream client secrets); None: `secret.key` in the
    /// data directory. Keep it on another volume to keep it out of database backups.
    pub secret_key_file: Option<PathBuf>,
    /// How long a person has to finish signing in at their IdP (SAML or OIDC): long enough for a
    /// password reset or an MFA enrolment there.
    pub sso_login_timeout: Duration,
    /// Google sign-in: the OAuth client made in the Google Cloud console; None: Google is off.
    pub google_client_id: Option<String>,
    pub google_client_secret: Option<Secret>,
    /// Google's issuer; changed only to test against another OpenID Provider.
    pub google_issuer: String,
    /// The only hosts webhooks may go to; empty: any public host over https.
    pub webhook_allowed_hosts: Vec<HostPattern>,
    /// How long a webhook attempt may take.
    pub webhook_timeout: Duration,
    /// The wait before a failed delivery's first retry; it doubles up to `webhook_retry_max`.
    pub webhook_retry_initial: Duration,
    pub webhook_retry_max: Duration,
    /// How long a delivery is retried after its first attempt before it is marked failed.
    pub webhook_retry_window: Duration,
    /// An endpoint failing for this long without a success is paused.
    pub webhook_pause_after: Duration,
    /// Events (the feed) and finished deliveries are kept this many days.
    pub events_retention_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./portcullis-data"),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            public_url: None,
            tls_cert_file: None,
            tls_key_file: None,
            trusted_proxies: Vec::new(),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            max_body_bytes: 1 << 20,
            db_cache_mb: 64,
            audit_index_memory_mb: 32,
            audit_index_threads: 1,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            bootstrap_admin_key: None,
            scim_max_body_bytes: 4 << 20,
            scim_rate_limit: 200,
            scim_rate_burst: 400,
            password_hash_memory_kib: 19_456,
            smtp_host: None,
            smtp_port: 587,
            smtp_security: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
            smtp_from: "Portcullis <no-reply@localhost>".into(),
            dns_resolvers: Vec::new(),
            secret_key_file: None,
            sso_login_timeout: Duration::from_secs(1800),
            google_client_id: None,
            google_client_secret: None,
            google_issuer: GOOGLE_ISSUER.into(),
            webhook_allowed_hosts: Vec::new(),
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_initial: Duration::from_secs(5),
            webhook_retry_max: Duration::from_secs(3600),
            webhook_retry_window: Duration::from_secs(3 * 24 * 3600),
            webhook_pause_after: Duration::from_secs(24 * 3600),
            events_retention_days: 30,
        }
    }
}

/// Google's issuer identifier (its discovery document is below it).
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

impl Config {
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file.clone().unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// `sso_login_timeout` as a span of time.
    pub fn sso_login_lifetime(&self) -> time::Duration {
        time::Duration::try_from(self.sso_login_timeout).unwrap_or(time::Duration::minutes(30))
    }

    /// Google sign-in's client, when both halves are set.
    pub fn google_client(&self) -> Option<(&str, &Secret)> {
        Some((self.google_client_id.as_deref()?, self.google_client_secret.as_ref()?))
    }

    /// The certificate and key files, when HTTPS is built in (`load` refuses one without the other).
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert_file.as_deref()?, self.tls_key_file.as_deref()?))
    }

    /// The public base URL (no trailing slash): the configured one, or one derived from the
    /// address the server actually bound (which matters when the configured port is 0), over
    /// https when the certificate is built in.
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => {
                let ip = match bound.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                let scheme = if self.tls_files().is_some() { "https" } else { "http" };
                format!("{scheme}://{}", SocketAddr::new(ip, bound.port()))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret setting: its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a setting's effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Environment(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Environment(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting `{key}` (from {origin}): {message}")]
    Invalid { key: &'static str, origin: Origin, message: String },
    #[error("unknown setting `{key}` in {origin}; known settings: {known}")]
    Unknown { key: String, origin: Origin, known: String },
    #[error("cannot read the config file {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// One setting: its name (the TOML key; upper-cased with the prefix, the environment variable),
/// how to parse it, and how to show it.
struct Setting {
    key: &'static str,
    secret: bool,
    parse: fn(&mut Config, &str) -> Result<(), String>,
    show: fn(&Config) -> Option<String>,
}

const SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        secret: false,
        parse: |c, v| {
            if v.trim().is_empty() {
                return Err("must not be empty".into());
            }
            c.data_dir = PathBuf::from(v);
            Ok(())
        },
        show: |c| Some(c.data_dir.display().to_string()),
    },
    Setting {
        key: "listen",
        secret: false,
        parse: |c, v| {
            c.listen = v
                .parse()
                .map_err(|_| format!("`{v}` is not an IP address and port such as 127.0.0.1:8080"))?;
            Ok(())
        },
        show: |c| Some(c.listen.to_string()),
    },
    Setting {
        key: "public_url",
        secret: false,
        parse: |c, v| {
            c.public_url = Some(parse_public_url(v)?);
            Ok(())
        },
        show: |c| c.public_url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_owned()),
    },
    Setting {
        key: "tls_cert_file",
        secret: false,
        parse: |c, v| {
            c.tls_cert_file = parse_optional_path(v);
            Ok(())
        },
        show: |c| c.tls_cert_file.as_ref().map(|p| p.display().to_string()),
    },
    Setting {
        key: "tls_key_file",
        secret: false,
        parse: |c, v| {
            c.tls_key_file = parse_optional_path(v);
            Ok(())
        },
        show: |c| c.tls_key_file.as_ref().map(|p| p.display().to_string()),
    },
    Setting {
        key: "trusted_proxies",
        secret: false,
        parse: |c, v| {
            c.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(parse_proxy_range)
                .collect::<Result<_, _>>()?;
            Ok(())
        },
        show: |c| Some(c.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
    },
    Setting {
        key: "log_level",
        secret: false,
        parse: |c, v| {
            tracing_subscriber::EnvFilter::try_new(v).map_err(|e| {
                format!("`{v}` is not a log filter such as `info` or `portcullis=debug`: {e}")
            })?;
            c.log_level = v.to_owned();
            Ok(())
        },
        show: |c| Some(c.log_level.clone()),
    },
    Setting {
        key: "log_format",
        secret: false,
        parse: |c, v| {
            c.log_format = match v {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("`{v}` is not one of `text`, `json`")),
            };
            Ok(())
        },
        show: |c| {
            Some(match c.log_format {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            })
        },
    },
    Setting {
        key: "max_body_bytes",
        secret: false,
        parse: |c, v| {
            c.max_body_bytes = parse_in_range(v, 1024, 64 << 20)?;
            Ok(())
        },
        show: |c| Some(c.max_body_bytes.to_string()),
    },
    Setting {
        key: "db_cache_mb",
        secret: false,
        parse: |c, v| {
            c.db_cache_mb = parse_in_range(v, 1, 1 << 16)?;
            Ok(())
        },
        show: |c| Some(c.db_cache_mb.to_string()),
    },
    Setting {
        key: "audit_index_memory_mb",
        secret: false,
        parse: |c, v| {
            c.audit_index_memory_mb = parse_in_range(v, 15, 4096)?;
            Ok(())
        },
        show: |c| Some(c.audit_index_memory_mb.to_string()),
    },
    Setting {
        key: "audit_index_threads",
        secret: false,
        parse: |c, v| {
            c.audit_index_threads = parse_in_range(v, 1, 8)?;
            Ok(())
        },
        show: |c| Some(c.audit_index_threads.to_string()),
    },
    Setting {
        key: "request_timeout_secs",
        secret: false,
        parse: |c, v| {
            c.request_timeout = Duration::from_secs(parse_in_range(v, 1, 3600)? as u64);
            Ok(())
        },
        show: |c| Some(c.request_timeout.as_secs().to_string()),
    },
    Setting {
        key: "shutdown_grace_secs",
        secret: false,
        parse: |c, v| {
            c.shutdown_grace = Duration::from_secs(parse_in_range(v, 0, 3600)? as u64);
            Ok(())
        },
        show: |c| Some(c.shutdown_grace.as_secs().to_string()),
    },
    Setting {
        key: "bootstrap_admin_key",
        secret: true,
        parse: |c, v| {
            crate::admin::validate_supplied_key(v)?;
            c.bootstrap_admin_key = Some(Secret(v.to_owned()));
            Ok(())
        },
        show: |c| c.bootstrap_admin_key.as_ref().map(|s| s.0.clone()),
    },
    Setting {
        key: "scim_max_body_bytes",
        secret: false,
        parse: |c, v| {
            c.scim_max_body_bytes = parse_in_range(v, 1024, 64 << 20)?;
            Ok(())
        },
        show: |c| Some(c.scim_max_body_bytes.to_string()),
    },
    Setting {
        key: "scim_rate_limit",
        secret: false,
        parse: |c, v| {
            c.scim_rate_limit = parse_in_range(v, 0, 1_000_000)? as u32;
            Ok(())
        },
        show: |c| Some(c.scim_rate_limit.to_string()),
    },
    Setting {
        key: "scim_rate_burst",
        secret: false,
        parse: |c, v| {
            c.scim_rate_burst = parse_in_range(v, 1, 1_000_000)? as u32;
            Ok(())
        },
        show: |c| Some(c.scim_rate_burst.to_string()),
    },
    Setting {
        key: "password_hash_memory_kib",
        secret: false,
        parse: |c, v| {
            c.password_hash_memory_kib = parse_in_range(v, 8, 1 << 21)? as u32;
            Ok(())
        },
        show: |c| Some(c.password_hash_memory_kib.to_string()),
    },
    Setting {
        key: "smtp_host",
        secret: false,
        parse: |c, v| {
            c.smtp_host = Some(v.trim().to_owned()).filter(|h| !h.is_empty());
            Ok(())
        },
        show: |c| c.smtp_host.clone(),
    },
    Setting {
        key: "smtp_port",
        secret: false,
        parse: |c, v| {
            c.smtp_port = parse_in_range(v, 1, 65535)? as u16;
            Ok(())
        },
        show: |c| Some(c.smtp_port.to_string()),
    },
    Setting {
        key: "smtp_security",
        secret: false,
        parse: |c, v| match v.trim() {
            value @ ("starttls" | "tls" | "none") => {
                c.smtp_security = value.to_owned();
                Ok(())
            }
            other => Err(format!("`{other}` is not one of starttls, tls, none")),
        },
        show: |c| Some(c.smtp_security.clone()),
    },
    Setting {
        key: "smtp_username",
        secret: false,
        parse: |c, v| {
            c.smtp_username = Some(v.to_owned()).filter(|u| !u.is_empty());
            Ok(())
        },
        show: |c| c.smtp_username.clone(),
    },
    Setting {
        key: "smtp_password",
        secret: true,
        parse: |c, v| {
            c.smtp_password = Some(Secret(v.to_owned()));
            Ok(())
        },
        show: |c| c.smtp_password.as_ref().map(|s| s.0.clone()),
    },
    Setting {
        key: "smtp_from",
        secret: false,
        parse: |c, v| {
            c.smtp_from = v.trim().to_owned();
            Ok(())
        },
        show: |c| Some(c.smtp_from.clone()),
    },
    Setting {
        key: "dns_resolvers",
        secret: false,
        parse: |c, v| {
            c.dns_resolvers = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<SocketAddr>().map_err(|_| format!("`{s}` is not an ip:port address")))
                .collect::<Result<_, _>>()?;
            Ok(())
        },
        show: |c| Some(c.dns_resolvers.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
    },
    Setting {
        key: "secret_key_file",
        secret: false,
        parse: |c, v| {
            if v.trim().is_empty() {
                return Err("must not be empty".into());
            }
            c.secret_key_file = Some(PathBuf::from(v));
            Ok(())
        },
        show: |c| Some(c.secret_key_path().display().to_string()),
    },
    Setting {
        key: "sso_login_timeout_secs",
        secret: false,
        parse: |c, v| {
            c.sso_login_timeout = Duration::from_secs(parse_in_range(v, 5, 3600)? as u64);
            Ok(())
        },
        show: |c| Some(c.sso_login_timeout.as_secs().to_string()),
    },
    Setting {
        key: "google_client_id",
        secret: false,
        parse: |c, v| {
            c.google_client_id = Some(v.trim().to_owned()).filter(|id| !id.is_empty());
            Ok(())
        },
        show: |c| c.google_client_id.clone(),
    },
    Setting {
        key: "google_client_secret",
        secret: true,
        parse: |c, v| {
            c.google_client_secret = Some(Secret(v.trim().to_owned())).filter(|s| !s.0.is_empty());
            Ok(())
        },
        show: |c| c.google_client_secret.as_ref().map(|s| s.0.clone()),
    },
    Setting {
        key: "google_issuer",
        secret: false,
        parse: |c, v| {
            let url = Url::parse(v.trim()).map_err(|e| format!("`{v}` is not an absolute URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!("`{v}` must be an https:// URL"));
            }
            c.google_issuer = url.as_str().trim_end_matches('/').to_owned();
            Ok(())
        },
        show: |c| Some(c.google_issuer.clone()),
    },
    Setting {
        key: "webhook_allowed_hosts",
        secret: false,
        parse: |c, v| {
            c.webhook_allowed_hosts = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(HostPattern::parse)
                .collect::<Result<_, _>>()?;
            Ok(())
        },
        show: |c| Some(c.webhook_allowed_hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
    },
    Setting {
        key: "webhook_timeout_secs",
        secret: false,
        parse: |c, v| {
            c.webhook_timeout = Duration::from_secs(parse_in_range(v, 1, 60)? as u64);
            Ok(())
        },
        show: |c| Some(c.webhook_timeout.as_secs().to_string()),
    },
    Setting {
        key: "webhook_retry_initial_ms",
        secret: false,
        parse: |c, v| {
            c.webhook_retry_initial = Duration::from_millis(parse_in_range(v, 10, 3_600_000)? as u64);
            Ok(())
        },
        show: |c| Some(c.webhook_retry_initial.as_millis().to_string()),
    },
    Setting {
        key: "webhook_retry_max_secs",
        secret: false,
        parse: |c, v| {
            c.webhook_retry_max = Duration::from_secs(parse_in_range(v, 1, 86_400)? as u64);
            Ok(())
        },
        show: |c| Some(c.webhook_retry_max.as_secs().to_string()),
    },
    Setting {
        key: "webhook_retry_window_secs",
        secret: false,
        parse: |c, v| {
            c.webhook_retry_window = Duration::from_secs(parse_in_range(v, 1, 30 * 86_400)? as u64);
            Ok(())
        },
        show: |c| Some(c.webhook_retry_window.as_secs().to_string()),
    },
    Setting {
        key: "webhook_pause_after_secs",
        secret: false,
        parse: |c, v| {
            c.webhook_pause_after = Duration::from_secs(parse_in_range(v, 1, 30 * 86_400)? as u64);
            Ok(())
        },
        show: |c| Some(c.webhook_pause_after.as_secs().to_string()),
    },
    Setting {
        key: "events_retention_days",
        secret: false,
        parse: |c, v| {
            c.events_retention_days = parse_in_range(v, 1, 3650)? as u32;
            Ok(())
        },
        show: |c| Some(c.events_retention_days.to_string()),
    },
];

fn parse_in_range(value: &str, min: usize, max: usize) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{value}` is not a whole number from {min} to {max}")),
    }
}

/// An empty value unsets the path (so an environment variable can clear a file's setting).
fn parse_optional_path(value: &str) -> Option<PathBuf> {
    Some(value.trim()).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// A proxy's address (`10.0.0.7`, `::1`) or range (`10.0.0.0/8`). A range with host bits set
/// (`10.0.0.7/8`) is refused: it trusts far more than the address it names, usually by mistake.
fn parse_proxy_range(value: &str) -> Result<IpNet, String> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net = value
        .parse::<IpNet>()
        .map_err(|_| format!("`{value}` is not an IP address or a CIDR range such as 10.0.0.0/8"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{value}` has host bits set: write {} for the range or {} for the one address",
            net.trunc(),
            IpNet::from(net.addr())
        ));
    }
    Ok(net)
}

fn parse_public_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("`{value}` is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{value}` must start with https:// (or http:// for local testing)"));
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{value}` must name a host and carry no user or password"));
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(format!(
            "`{value}` must be a bare origin such as https://id.example.com (no path, query or fragment)"
        ));
    }
    Ok(url)
}

/// The raw inputs of a load: the config file (if any), the environment, and the flags given.
#[derive(Debug, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub flags: Vec<(&'static str, String)>,
}

impl Sources {
    /// The process environment's `PORTCULLIS_*` variables, with the file named by `--config`
    /// or `PORTCULLIS_CONFIG`.
    pub fn from_process(config_flag: Option<PathBuf>, flags: Vec<(&'static str, String)>) -> Self {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let file = config_flag
            .or_else(|| env.iter().find(|(k, _)| k == CONFIG_FILE_ENV).map(|(_, v)| PathBuf::from(v)));
        Self { file, env, flags }
    }
}

/// The effective settings and where each came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub origins: BTreeMap<&'static str, Origin>,
}

pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let mut loaded = Loaded { config: Config::default(), origins: BTreeMap::new() };
    if let Some(path) = &sources.file {
        for (key, value) in read_file(path)? {
            loaded.apply(&key, &value, Origin::File(path.clone()))?;
        }
    }
    for (name, value) in &sources.env {
        if name == CONFIG_FILE_ENV {
            continue;
        }
        let key = name.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
        loaded.apply(&key, value, Origin::Environment(name.clone()))?;
    }
    for (key, value) in &sources.flags {
        loaded.apply(key, value, Origin::Flag(flag_name(key)))?;
    }
    loaded.check_pairs()?;
    Ok(loaded)
}

fn flag_name(key: &'static str) -> &'static str {
    match key {
        "data_dir" => "data-dir",
        "public_url" => "public-url",
        "log_level" => "log-level",
        "log_format" => "log-format",
        other => other,
    }
}

fn read_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let file_error = |message: String| ConfigError::File { path: path.to_owned(), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(file_error(format!(
                        "`{key}` must be a string or a number, not a {}",
                        other.type_str()
                    )));
                }
            };
            Ok((key, value))
        })
        .collect()
}

/// Every setting's effective value as text, secrets masked (`None`: not set): what the
/// dashboard's instance page shows.
pub fn effective(config: &Config) -> Vec<(&'static str, Option<String>)> {
    SETTINGS
        .iter()
        .map(|setting| {
            let value = (setting.show)(config).map(|v| if setting.secret { "***".to_owned() } else { v });
            (setting.key, value)
        })
        .collect()
}

impl Loaded {
    /// Settings that only make sense together: a certificate without its key (or the reverse)
    /// would otherwise serve plain HTTP where HTTPS was meant.
    fn check_pairs(&self) -> Result<(), ConfigError> {
        let (cert, key) = (&self.config.tls_cert_file, &self.config.tls_key_file);
        let (set, missing) = match (cert.is_some(), key.is_some()) {
            (true, false) => ("tls_cert_file", "tls_key_file"),
            (false, true) => ("tls_key_file", "tls_cert_file"),
            _ => return Ok(()),
        };
        Err(ConfigError::Invalid {
            key: set,
            origin: self.origins.get(set).cloned().unwrap_or(Origin::Default),
            message: format!("needs `{missing}` too: set both for HTTPS, or neither for plain HTTP"),
        })
    }

    fn apply(&mut self, key: &str, value: &str, origin: Origin) -> Result<(), ConfigError> {
        let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
            let known = SETTINGS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ");
            let key = match &origin {
                Origin::Environment(name) => name.clone(),
                _ => key.to_owned(),
            };
            return Err(ConfigError::Unknown { key, origin, known });
        };
        (setting.parse)(&mut self.config, value).map_err(|message| ConfigError::Invalid {
            key: setting.key,
            origin: origin.clone(),
            message,
        })?;
        self.origins.insert(setting.key, origin);
        Ok(())
    }

    /// The effective settings as TOML, secrets masked, each with its origin.
    pub fn render(&self) -> String {
        let mut out = String::from("# Effective Portcullis settings (secrets masked)\n");
        for setting in SETTINGS {
            let origin = self.origins.get(setting.key).cloned().unwrap_or(Origin::Default);
            let line = match (setting.show)(&self.config) {
                Some(_) if setting.secret => format!("{} = \"***\"", setting.key),
                Some(value) => format!("{} = {}", setting.key, toml::Value::String(value)),
                None if setting.key == "public_url" => {
                    let derived = self.config.public_url_for(self.config.listen);
                    format!("# public_url = {}  (derived from listen)", toml::Value::String(derived))
                }
                None => format!("# {} is not set", setting.key),
            };
            out.push_str(&format!("{line:<60} # {origin}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let loaded = load(&Sources::default()).unwrap();
        assert_eq!(loaded.config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(loaded.config.data_dir, PathBuf::from("./portcullis-data"));
        assert_eq!(loaded.config.public_url_for(loaded.config.listen), "http://127.0.0.1:8080");
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1000\"\ndata_dir = \"/from/file\"\nmax_body_bytes = 4096\n",
        )
        .unwrap();
        let sources = Sources {
            file: Some(path.clone()),
            env: env(&[("PORTCULLIS_LISTEN", "127.0.0.1:2000"), ("PORTCULLIS_LOG_LEVEL", "debug")]),
            flags: vec![("log_level", "warn".into())],
        };
        let loaded = load(&sources).unwrap();
        assert_eq!(loaded.config.listen.port(), 2000);
        assert_eq!(loaded.config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(loaded.config.max_body_bytes, 4096);
        assert_eq!(loaded.config.log_level, "warn");
        assert_eq!(loaded.origins["data_dir"], Origin::File(path));
        assert_eq!(loaded.origins["log_level"], Origin::Flag("log-level"));
    }

    #[test]
    fn a_bad_value_names_the_setting_and_its_source() {
        let sources = Sources { env: env(&[("PORTCULLIS_LISTEN", "localhost")]), ..Default::default() };
        let message = load(&sources).unwrap_err().to_string();
        assert!(message.contains("`listen`"), "{message}");
        assert!(message.contains("PORTCULLIS_LISTEN"), "{message}");
        assert!(message.contains("localhost"), "{message}");
    }

    #[test]
    fn unknown_settings_are_refused() {
        let sources = Sources { env: env(&[("PORTCULLIS_LISTN", "x")]), ..Default::default() };
        assert!(matches!(load(&sources), Err(ConfigError::Unknown { .. })));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let sources = Sources { file: Some(path), ..Default::default() };
        assert!(matches!(load(&sources), Err(ConfigError::Unknown { .. })));
    }

    #[test]
    fn public_urls_must_be_bare_http_origins() {
        for bad in
            ["ftp://x.test", "https://x.test/path", "https://u:p@x.test", "x.test", "https://x.test/?q"]
        {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
        let sources =
            Sources { env: env(&[("PORTCULLIS_PUBLIC_URL", "https://id.acme.test/")]), ..Default::default() };
        let config = load(&sources).unwrap().config;
        assert_eq!(config.public_url_for(config.listen), "https://id.acme.test");
    }

    #[test]
    fn numbers_are_range_checked() {
        let sources = Sources { env: env(&[("PORTCULLIS_MAX_BODY_BYTES", "12")]), ..Default::default() };
        let message = load(&sources).unwrap_err().to_string();
        assert!(message.contains("max_body_bytes") && message.contains("1024"), "{message}");
    }

    #[test]
    fn rendering_masks_secrets() {
        let key = "k".repeat(40);
        let sources = Sources { env: env(&[("PORTCULLIS_BOOTSTRAP_ADMIN_KEY", &key)]), ..Default::default() };
        let loaded = load(&sources).unwrap();
        let shown = loaded.render();
        assert!(!shown.contains(&key), "{shown}");
        assert!(shown.contains("bootstrap_admin_key = \"***\""), "{shown}");
        assert!(!format!("{:?}", loaded.config).contains(&key));
        // What is rendered is itself a valid config file (comments aside).
        shown.parse::<toml::Table>().unwrap();
    }

    #[test]
    fn a_certificate_needs_its_key_and_makes_the_derived_url_https() {
        let sources =
            Sources { env: env(&[("PORTCULLIS_TLS_CERT_FILE", "/etc/tls/cert.pem")]), ..Default::default() };
        let message = load(&sources).unwrap_err().to_string();
        assert!(message.contains("`tls_cert_file`") && message.contains("`tls_key_file`"), "{message}");
        assert!(message.contains("PORTCULLIS_TLS_CERT_FILE"), "{message}");
        let sources =
            Sources { env: env(&[("PORTCULLIS_TLS_KEY_FILE", "/etc/tls/key.pem")]), ..Default::default() };
        let message = load(&sources).unwrap_err().to_string();
        assert!(message.starts_with("invalid setting `tls_key_file`"), "{message}");

        let both = [
            ("PORTCULLIS_TLS_CERT_FILE", "/etc/tls/cert.pem"),
            ("PORTCULLIS_TLS_KEY_FILE", "/etc/tls/key.pem"),
        ];
        let loaded = load(&Sources { env: env(&both), ..Default::default() }).unwrap();
        assert_eq!(loaded.config.public_url_for(loaded.config.listen), "https://127.0.0.1:8080");
        assert!(loaded.render().contains("https://127.0.0.1:8080"));
        // A configured public URL is taken as it is.
        let mut with_url = both.to_vec();
        with_url.push(("PORTCULLIS_PUBLIC_URL", "https://id.acme.test"));
        let config = load(&Sources { env: env(&with_url), ..Default::default() }).unwrap().config;
        assert_eq!(config.public_url_for(config.listen), "https://id.acme.test");
        // An empty value unsets a file's setting, so both are unset again.
        let mut cleared = both.to_vec();
        cleared.extend([("PORTCULLIS_TLS_CERT_FILE", ""), ("PORTCULLIS_TLS_KEY_FILE", " ")]);
        let config = load(&Sources { env: env(&cleared), ..Default::default() }).unwrap().config;
        assert!(config.tls_files().is_none());
    }

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let list = "10.0.0.0/8, 192.0.2.7 ,::1,fd00::/8,";
        let sources = Sources { env: env(&[("PORTCULLIS_TRUSTED_PROXIES", list)]), ..Default::default() };
        let loaded = load(&sources).unwrap();
        let shown: Vec<String> = loaded.config.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "::1/128", "fd00::/8"]);
        assert!(loaded.render().contains("trusted_proxies = \"10.0.0.0/8,192.0.2.7/32,::1/128,fd00::/8\""));
        assert!(Config::default().trusted_proxies.is_empty());
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0.*", "10.0.0.7/8"] {
            let sources = Sources { env: env(&[("PORTCULLIS_TRUSTED_PROXIES", bad)]), ..Default::default() };
            let message = load(&sources).unwrap_err().to_string();
            assert!(message.contains("`trusted_proxies`") && message.contains(bad), "{message}");
        }
        let message = parse_proxy_range("10.0.0.7/8").unwrap_err();
        assert!(message.contains("10.0.0.0/8") && message.contains("10.0.0.7/32"), "{message}");
    }

    #[test]
    fn unspecified_listen_addresses_derive_a_loopback_url() {
        let config = Config::default();
        assert_eq!(config.public_url_for("0.0.0.0:9000".parse().unwrap()), "http://127.0.0.1:9000");
        assert_eq!(config.public_url_for("[::]:9000".parse().unwrap()), "http://[::1]:9000");
    }
}
