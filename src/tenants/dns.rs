//! Proving a tenant owns an email domain: the owner publishes a TXT record named
//! `_portcullis-challenge.<domain>` whose value is `portcullis-domain-verification=<token>`, and
//! [`DomainVerifier::check`] looks it up.
//!
//! The record is only accepted at the challenge label, never at the domain apex: the apex TXT set
//! is shared with SPF and other vendors' tokens, and a dedicated label can be delegated (CNAME) to
//! whoever manages verification without touching the apex.
//!
//! The resolver is ours rather than the C library's so that it can be pointed at an appliance's
//! own resolvers in a closed network, and so that nothing is cached: an owner who has just
//! published the record (or fixed a typo in it) must be able to retry at once, so neither "no such
//! name" nor an old value may be remembered. No DNSSEC validation and no hosts file: the answer
//! comes from the configured resolvers and nowhere else.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::lookup::TxtLookup;
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::TXT;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, ResolveError, Resolver, TokioResolver};

/// The DNS label under which a domain's owner publishes the verification record.
pub const VERIFICATION_LABEL: &str = "_portcullis-challenge";
/// The text of the verification record, before the token.
pub const VERIFICATION_PREFIX: &str = "portcullis-domain-verification=";

/// Where the system's resolvers are listed when none are configured.
const RESOLV_CONF: &str = "/etc/resolv.conf";
const DNS_PORT: u16 = 53;
/// How many of the values found at the name are shown back to the admin.
const MAX_SEEN: usize = 5;
/// How many characters of each value are shown back (a TXT value can be kilobytes long).
const MAX_SEEN_CHARS: usize = 255;

/// How domain verification reaches DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Recursive resolvers to ask, tried over UDP with TCP fallback. Empty: the `nameserver`
    /// lines of /etc/resolv.conf.
    pub resolvers: Vec<SocketAddr>,
    /// How long to wait for one answer from one resolver.
    pub timeout: Duration,
    /// How many times a query is sent before giving up (1 = no retry).
    pub attempts: usize,
}

impl Default for DnsSettings {
    /// The resolv.conf defaults: the system's resolvers, 5 s, 2 tries.
    fn default() -> Self {
        Self { resolvers: Vec::new(), timeout: Duration::from_secs(5), attempts: 2 }
    }
}

/// The outcome of a check that DNS answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The expected record is published.
    Verified,
    /// It is not: `seen` holds the values that are published at the challenge name (at most a
    /// few, each shortened), so the admin can spot a typo or a stale token.
    NotFound { seen: Vec<String> },
}

/// Why DNS could not say whether the record is there. Each message names the resolvers and
/// what happened, so an operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS settings: {0}")]
    Settings(&'static str),
    #[error("cannot read the system resolver list {path}: {source}; configure DNS resolvers explicitly")]
    SystemConfig { path: &'static str, source: std::io::Error },
    #[error("{path} lists no usable nameserver; configure DNS resolvers explicitly")]
    NoSystemResolvers { path: &'static str },
    #[error("`{domain}` is not a valid DNS name: {reason}")]
    InvalidDomain { domain: String, reason: String },
    #[error("no verification token to look for")]
    EmptyToken,
    #[error(
        "no answer from DNS resolver {resolvers} for TXT {name}: timed out after {attempts} attempt(s) of \
         {timeout:?}; check that the resolver is reachable from this host"
    )]
    Timeout { name: String, resolvers: String, timeout: Duration, attempts: usize },
    #[error(
        "DNS resolver {resolvers} answered {code} for TXT {name}; the domain's nameservers may be \
         broken or unreachable from that resolver, try again later"
    )]
    ServerFailure { name: String, resolvers: String, code: String },
    #[error("DNS lookup of TXT {name} through {resolvers} failed: {message}")]
    Lookup { name: String, resolvers: String, message: String },
}

/// Looks up domain verification records through the configured resolvers.
#[derive(Clone)]
pub struct DomainVerifier {
    resolver: TokioResolver,
    /// The resolvers as written in error messages, e.g. `10.0.0.53:53, 10.0.1.53:53`.
    resolvers: String,
    timeout: Duration,
    attempts: usize,
    /// The most a whole check may take: hickory's own timeouts apply per connection, so this
    /// bounds the total across tries, resolvers and the TCP fallback.
    deadline: Duration,
}

impl DomainVerifier {
    /// Builds the resolver; with no resolvers configured, reads /etc/resolv.conf once, now.
    pub fn new(settings: &DnsSettings) -> Result<Self, DnsError> {
        check_settings(settings)?;
        let servers =
            if settings.resolvers.is_empty() { system_resolvers()? } else { settings.resolvers.clone() };
        let mut builder =
            Resolver::builder_with_config(resolver_config(&servers), TokioConnectionProvider::default());
        configure(builder.options_mut(), settings);
        Ok(Self {
            resolver: builder.build(),
            resolvers: list(&servers),
            timeout: settings.timeout,
            attempts: settings.attempts,
            deadline: deadline(settings, servers.len()),
        })
    }

    /// Whether `_portcullis-challenge.<domain>` holds `portcullis-domain-verification=<token>`.
    /// A missing name or a name without TXT records is `NotFound`, not an error: the owner has
    /// simply not published yet.
    pub async fn check(&self, domain: &str, token: &str) -> Result<Verification, DnsError> {
        if token.trim().is_empty() {
            return Err(DnsError::EmptyToken);
        }
        let name = challenge_name(domain)?;
        let expected = format!("{VERIFICATION_PREFIX}{token}");
        match tokio::time::timeout(self.deadline, self.resolver.txt_lookup(name.clone())).await {
            Ok(Ok(found)) => Ok(verdict(published_values(&found), &expected)),
            Ok(Err(error)) => self.not_found_or_error(&name, error),
            Err(_elapsed) => Err(self.timed_out(&name)),
        }
    }

    /// Sorts a failed lookup: NXDOMAIN and "no TXT here" mean not published; SERVFAIL,
    /// REFUSED and the like (which hickory also reports as "no records") mean DNS is broken.
    fn not_found_or_error(&self, name: &Name, error: ResolveError) -> Result<Verification, DnsError> {
        match error.proto().map(|proto| proto.kind()) {
            Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => match response_code {
                ResponseCode::NXDomain | ResponseCode::NoError => Ok(Verification::NotFound { seen: vec![] }),
                code => Err(DnsError::ServerFailure {
                    name: name.to_string(),
                    resolvers: self.resolvers.clone(),
                    code: format!("{} (rcode {})", code.to_str(), u16::from(*code)),
                }),
            },
            Some(ProtoErrorKind::Timeout) => Err(self.timed_out(name)),
            _ => Err(DnsError::Lookup {
                name: name.to_string(),
                resolvers: self.resolvers.clone(),
                message: error.to_string(),
            }),
        }
    }

    fn timed_out(&self, name: &Name) -> DnsError {
        DnsError::Timeout {
            name: name.to_string(),
            resolvers: self.resolvers.clone(),
            timeout: self.timeout,
            attempts: self.attempts,
        }
    }
}

fn check_settings(settings: &DnsSettings) -> Result<(), DnsError> {
    if settings.timeout.is_zero() {
        return Err(DnsError::Settings("the timeout must be more than zero"));
    }
    if settings.attempts == 0 {
        return Err(DnsError::Settings("attempts must be at least 1"));
    }
    Ok(())
}

/// Every resolver over UDP and over TCP, for answers too long for a datagram and for UDP errors.
fn resolver_config(servers: &[SocketAddr]) -> ResolverConfig {
    let mut config = ResolverConfig::new();
    for &server in servers {
        config.add_name_server(NameServerConfig::new(server, Protocol::Udp));
        config.add_name_server(NameServerConfig::new(server, Protocol::Tcp));
    }
    config
}

/// No caching of any kind (size 0 and zero TTL bounds, in case either alone still kept an
/// entry for an instant), no hosts file, no DNSSEC.
fn configure(options: &mut ResolverOpts, settings: &DnsSettings) {
    options.timeout = settings.timeout;
    // hickory counts retries after the first try.
    options.attempts = settings.attempts.saturating_sub(1);
    options.try_tcp_on_error = true;
    options.cache_size = 0;
    options.positive_max_ttl = Some(Duration::ZERO);
    options.negative_max_ttl = Some(Duration::ZERO);
    options.use_hosts_file = ResolveHosts::Never;
    options.validate = false;
}

/// Every try may wait on UDP and then TCP, for each resolver in turn.
fn deadline(settings: &DnsSettings, servers: usize) -> Duration {
    let waits = settings.attempts.saturating_mul(servers.max(1)).saturating_mul(2);
    settings.timeout.saturating_mul(u32::try_from(waits).unwrap_or(u32::MAX))
}

fn list(servers: &[SocketAddr]) -> String {
    servers.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(", ")
}

/// Reads the system resolvers the way the C library does: the `nameserver` lines of
/// /etc/resolv.conf, on port 53. Read here rather than through hickory's `system-config`
/// feature, which would add a dependency for these few lines.
fn system_resolvers() -> Result<Vec<SocketAddr>, DnsError> {
    let text = std::fs::read_to_string(RESOLV_CONF)
        .map_err(|source| DnsError::SystemConfig { path: RESOLV_CONF, source })?;
    let servers = nameservers(&text);
    if servers.is_empty() {
        return Err(DnsError::NoSystemResolvers { path: RESOLV_CONF });
    }
    Ok(servers)
}

/// The addresses of resolv.conf's `nameserver` lines. An IPv6 address with a zone
/// (`fe80::1%eth0`) is skipped: a socket address cannot carry the interface name.
fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(address)) => address.parse::<IpAddr>().ok(),
                _ => None,
            }
        })
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .collect()
}

/// `_portcullis-challenge.<domain>.`, fully qualified so that no search domain is appended.
fn challenge_name(domain: &str) -> Result<Name, DnsError> {
    let trimmed = domain.trim().trim_end_matches('.');
    let invalid = |reason: String| DnsError::InvalidDomain { domain: domain.to_owned(), reason };
    if trimmed.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    Name::from_utf8(format!("{VERIFICATION_LABEL}.{trimmed}.")).map_err(|error| invalid(error.to_string()))
}

/// Each TXT record's character-strings joined, as DNS providers split values over 255 bytes.
fn published_values(found: &TxtLookup) -> Vec<String> {
    found.iter().map(joined).collect()
}

fn joined(record: &TXT) -> String {
    let bytes: Vec<u8> = record.txt_data().iter().flat_map(|part| part.iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Verified if any value, without surrounding whitespace, is exactly the expected one; other
/// values at the name (another vendor's, an old token) do not matter.
fn verdict(values: Vec<String>, expected: &str) -> Verification {
    if values.iter().any(|value| value.trim() == expected) {
        return Verification::Verified;
    }
    let seen = values.into_iter().take(MAX_SEEN).map(|value| value.chars().take(MAX_SEEN_CHARS).collect());
    Verification::NotFound { seen: seen.collect() }
}

/// The end-to-end tests' DNS server, shared rather than copied.
#[cfg(test)]
#[path = "../../tests/it/support/dns.rs"]
mod test_server;

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Instant;

    use super::test_server::TestDns;
    use super::*;

    const DOMAIN: &str = "acme.test";
    const NAME: &str = "_portcullis-challenge.acme.test";
    const TOKEN: &str = "k3Jd9sQ";
    const RECORD: &str = "portcullis-domain-verification=k3Jd9sQ";

    fn verifier_for(servers: Vec<SocketAddr>, timeout: Duration) -> DomainVerifier {
        DomainVerifier::new(&DnsSettings { resolvers: servers, timeout, attempts: 1 }).unwrap()
    }

    fn verifier(dns: &TestDns) -> DomainVerifier {
        verifier_for(vec![dns.addr()], Duration::from_secs(2))
    }

    fn not_found(seen: &[&str]) -> Verification {
        Verification::NotFound { seen: seen.iter().map(|s| s.to_string()).collect() }
    }

    #[tokio::test]
    async fn verified_when_the_record_is_published() {
        let dns = TestDns::start();
        dns.set_txt(NAME, [[RECORD]]);
        assert_eq!(verifier(&dns).check(DOMAIN, TOKEN).await.unwrap(), Verification::Verified);
    }

    #[tokio::test]
    async fn split_character_strings_are_joined() {
        let dns = TestDns::start();
        dns.set_txt(NAME, [["portcullis-domain-", "verification=k3J", "d9sQ"]]);
        assert_eq!(verifier(&dns).check(DOMAIN, TOKEN).await.unwrap(), Verification::Verified);
    }

    #[tokio::test]
    async fn surrounding_whitespace_is_ignored_but_the_value_must_match_exactly() {
        let dns = TestDns::start();
        let verifier = verifier(&dns);
        dns.set_txt(NAME, [[format!("  {RECORD}\t")]]);
        assert_eq!(verifier.check(DOMAIN, TOKEN).await.unwrap(), Verification::Verified);
        dns.set_txt(NAME, [[RECORD.to_uppercase()]]);
        assert_eq!(verifier.check(DOMAIN, TOKEN).await.unwrap(), not_found(&[&RECORD.to_uppercase()]));
    }

    #[tokio::test]
    async fn a_wrong_token_is_not_found_and_shows_what_is_published() {
        let dns = TestDns::start();
        dns.set_txt(NAME, [["portcullis-domain-verification=old"]]);
        let outcome = verifier(&dns).check(DOMAIN, TOKEN).await.unwrap();
        assert_eq!(outcome, not_found(&["portcullis-domain-verification=old"]));
    }

    #[tokio::test]
    async fn a_missing_name_is_not_found_with_nothing_seen() {
        let dns = TestDns::start();
        dns.set_txt("_portcullis-challenge.other.test", [[RECORD]]);
        assert_eq!(verifier(&dns).check(DOMAIN, TOKEN).await.unwrap(), not_found(&[]));
    }

    #[tokio::test]
    async fn a_name_without_txt_records_is_not_found() {
        let dns = TestDns::start();
        dns.set_txt(NAME, Vec::<Vec<String>>::new());
        assert_eq!(verifier(&dns).check(DOMAIN, TOKEN).await.unwrap(), not_found(&[]));
    }

    #[tokio::test]
    async fn the_record_is_not_accepted_at_the_domain_apex() {
        let dns = TestDns::start();
        dns.set_txt(DOMAIN, [[RECORD]]);
        assert_eq!(verifier(&dns).check(DOMAIN, TOKEN).await.unwrap(), not_found(&[]));
    }

    #[tokio::test]
    async fn a_record_published_after_a_failed_check_is_found_at_once() {
        let dns = TestDns::start();
        let verifier = verifier(&dns);
        assert_eq!(verifier.check(DOMAIN, TOKEN).await.unwrap(), not_found(&[]));
        let asked = dns.queries();
        dns.set_txt(NAME, [[RECORD]]);
        assert_eq!(verifier.check(DOMAIN, TOKEN).await.unwrap(), Verification::Verified);
        assert!(dns.queries() > asked, "the second check must reach the server");
    }

    #[tokio::test]
    async fn a_corrected_record_and_a_removed_one_are_seen_at_once() {
        let dns = TestDns::start();
        let verifier = verifier(&dns);
        dns.set_txt(NAME, [["portcullis-domain-verification=typo"]]);
        assert_eq!(
            verifier.check(DOMAIN, TOKEN).await.unwrap(),
            not_found(&["portcullis-domain-verification=typo"])
        );
        dns.set_txt(NAME, [[RECORD]]);
        assert_eq!(verifier.check(DOMAIN, TOKEN).await.unwrap(), Verification::Verified);
        dns.remove(NAME);
        assert_eq!(verifier.check(DOMAIN, TOKEN).await.unwrap(), not_found(&[]));
        assert_eq!(dns.queries(), 3);
    }

    #[tokio::test]
    async fn an_unrelated_value_is_ignored_when_the_right_one_is_present() {
        let dns = TestDns::start();
        dns.set_txt(NAME, [["v=spf1 -all"], ["portcullis-domain-verification=old"], [RECORD]]);
        assert_eq!(verifier(&dns).check(DOMAIN, TOKEN).await.unwrap(), Verification::Verified);
    }

    #[tokio::test]
    async fn seen_values_are_limited_in_number_and_length() {
        let dns = TestDns::start();
        let long = ["a".repeat(200), "b".repeat(200)];
        let mut records = vec![long.to_vec()];
        records.extend((0..9).map(|i| vec![format!("other-{i}")]));
        dns.set_txt(NAME, records);
        let Verification::NotFound { seen } = verifier(&dns).check(DOMAIN, TOKEN).await.unwrap() else {
            panic!("expected NotFound");
        };
        assert_eq!(seen.len(), MAX_SEEN);
        assert!(seen.iter().all(|value| value.chars().count() <= MAX_SEEN_CHARS));
        let long_seen = seen.iter().find(|value| value.starts_with('a')).unwrap();
        assert_eq!(long_seen.len(), MAX_SEEN_CHARS);
        assert!(long_seen.ends_with('b'), "character-strings are joined before shortening");
    }

    #[tokio::test]
    async fn an_answer_too_long_for_udp_comes_over_tcp() {
        let dns = TestDns::start();
        let mut records: Vec<Vec<String>> = (0..4).map(|i| vec![format!("{i}{}", "x".repeat(200))]).collect();
        records.push(vec![RECORD.to_owned()]);
        dns.set_txt(NAME, records);
        assert_eq!(verifier(&dns).check(DOMAIN, TOKEN).await.unwrap(), Verification::Verified);
        assert_eq!(dns.queries(), 2, "a truncated UDP answer, then the full one over TCP");
    }

    #[tokio::test]
    async fn a_resolver_that_does_not_answer_is_an_error_within_the_timeout() {
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = silent.local_addr().unwrap();
        let verifier = verifier_for(vec![address], Duration::from_millis(300));
        let started = Instant::now();
        let error = verifier.check(DOMAIN, TOKEN).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert!(matches!(error, DnsError::Timeout { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&address.to_string()), "{message}");
        assert!(message.contains(NAME), "{message}");
    }

    #[tokio::test]
    async fn servfail_is_an_error_naming_the_resolver() {
        let dns = TestDns::start();
        dns.set_txt(NAME, [[RECORD]]);
        dns.set_servfail(true);
        let error = verifier(&dns).check(DOMAIN, TOKEN).await.unwrap_err();
        assert!(matches!(error, DnsError::ServerFailure { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&dns.addr().to_string()) && message.contains("Server Failure"), "{message}");
        dns.set_servfail(false);
    }

    #[tokio::test]
    async fn bad_input_is_rejected_before_any_query() {
        let dns = TestDns::start();
        let verifier = verifier(&dns);
        assert!(matches!(verifier.check("", TOKEN).await, Err(DnsError::InvalidDomain { .. })));
        assert!(matches!(verifier.check("bad domain", TOKEN).await, Err(DnsError::InvalidDomain { .. })));
        assert!(matches!(verifier.check(DOMAIN, " ").await, Err(DnsError::EmptyToken)));
        assert_eq!(dns.queries(), 0);
    }

    #[test]
    fn settings_must_allow_a_query() {
        let zero_timeout = DnsSettings { timeout: Duration::ZERO, ..DnsSettings::default() };
        assert!(matches!(DomainVerifier::new(&zero_timeout), Err(DnsError::Settings(_))));
        let no_attempt = DnsSettings { attempts: 0, ..DnsSettings::default() };
        assert!(matches!(DomainVerifier::new(&no_attempt), Err(DnsError::Settings(_))));
    }

    #[test]
    fn the_challenge_name_is_fully_qualified_and_normalised() {
        assert_eq!(challenge_name("Acme.TEST.").unwrap().to_ascii(), "_portcullis-challenge.acme.test.");
        assert_eq!(
            challenge_name("münchen.de").unwrap().to_ascii(),
            "_portcullis-challenge.xn--mnchen-3ya.de."
        );
    }

    #[test]
    fn nameservers_are_read_from_resolv_conf() {
        let text = "# generated\nsearch corp.example\nnameserver 10.0.0.53\n  nameserver\t::1\n\
                    nameserver fe80::1%eth0\noptions timeout:1\n;nameserver 9.9.9.9\nnameserver junk\n";
        let expected: Vec<SocketAddr> = vec!["10.0.0.53:53".parse().unwrap(), "[::1]:53".parse().unwrap()];
        assert_eq!(nameservers(text), expected);
    }
}
