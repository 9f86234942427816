//! Which URLs webhooks may be sent to. By default: `https` URLs of hosts on the public internet,
//! checked when an endpoint is saved (an address in the URL) and again at every connection (what
//! the name resolves to, so a name that later points inside — DNS rebinding — is refused too).
//! Internal addresses (loopback, private networks, link-local such as the cloud metadata service
//! at 169.254.169.254, unique-local IPv6) are reachable only through the allow list,
//! `webhook_allowed_hosts`: once it is set, only the hosts it names are, over `http` or `https`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use url::{Host, Url};

/// An entry of `webhook_allowed_hosts`: `hooks.example.com`, `hooks.example.com:8443`,
/// `*.example.com` (any subdomain), `10.0.0.5`, `[fd00::5]:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lowercase; a leading `.` for a wildcard (`.example.com`).
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim().to_ascii_lowercase();
        let (wildcard, rest) = match value.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, value.as_str()),
        };
        let url = Url::parse(&format!("http://{rest}"))
            .ok()
            .filter(|url| url.path() == "/" && url.username().is_empty() && url.query().is_none())
            .ok_or_else(|| format!("`{value}` is not a host, host:port or *.domain"))?;
        let host = url.host_str().ok_or_else(|| format!("`{value}` names no host"))?;
        if wildcard && !matches!(url.host(), Some(Host::Domain(_))) {
            return Err(format!("`{value}`: a wildcard goes before a domain name"));
        }
        let host = if wildcard { format!(".{host}") } else { host.to_owned() };
        Ok(Self { host, port: url.port() })
    }

    fn matches_host(&self, host: &str) -> bool {
        match self.host.strip_prefix('.') {
            Some(domain) => host.ends_with(&self.host) && host.len() > domain.len() + 1,
            None => self.host == host,
        }
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.matches_host(host) && (self.port.is_none() || self.port == port)
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match self.host.strip_prefix('.') {
            Some(domain) => format!("*.{domain}"),
            None => self.host.clone(),
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

/// The operator's rule for webhook URLs.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    allowed: Vec<HostPattern>,
}

impl UrlPolicy {
    pub fn new(allowed: Vec<HostPattern>) -> Self {
        Self { allowed }
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.allowed.iter().any(|pattern| pattern.matches(host, port))
    }

    /// Checks an endpoint's URL; returns it as it will be used.
    pub fn check(&self, value: &str) -> Result<Url, String> {
        let value = value.trim();
        if value.len() > 2000 {
            return Err("is longer than 2,000 characters".into());
        }
        let url = Url::parse(value).map_err(|_| format!("`{value}` is not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{value}` is not an http(s) URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        let host = url.host_str().ok_or_else(|| format!("`{value}` names no host"))?.to_owned();
        if self.allows(&host, url.port_or_known_default()) {
            return Ok(url);
        }
        if !self.allowed.is_empty() {
            return Err(format!(
                "`{host}` is not one of the hosts allowed by the setting webhook_allowed_hosts"
            ));
        }
        if url.scheme() != "https" {
            return Err("must use https (plain http only to hosts named in webhook_allowed_hosts)".into());
        }
        let internal = match url.host() {
            Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
            None => true,
        };
        if internal {
            return Err(format!(
                "`{host}` is an internal address; allow it with the setting webhook_allowed_hosts"
            ));
        }
        Ok(url)
    }

    /// Filters what `host` resolves to (see the module's comment).
    fn filter(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, InternalAddress> {
        if self.allowed.iter().any(|pattern| pattern.matches_host(host)) {
            return Ok(addrs);
        }
        let public: Vec<SocketAddr> = addrs.into_iter().filter(|addr| is_public(addr.ip())).collect();
        if public.is_empty() {
            return Err(InternalAddress(host.to_owned()));
        }
        Ok(public)
    }
}

/// The refusal of a name that resolves only to internal addresses.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to internal addresses (see the setting webhook_allowed_hosts)")]
pub struct InternalAddress(pub String);

/// Whether an address is on the public internet (what `IpAddr::is_global` will say once stable).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 (embeds IPv4 addresses)
}

/// The resolver of the webhook client: the system's, filtered by the policy.
pub struct GuardedResolver(pub Arc<UrlPolicy>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.filter(&host, addrs)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> UrlPolicy {
        UrlPolicy::new(allowed.iter().map(|p| HostPattern::parse(p).unwrap()).collect())
    }

    #[test]
    fn by_default_only_https_to_public_hosts() {
        let default = policy(&[]);
        assert!(default.check("https://hooks.example.com/portcullis").is_ok());
        assert!(default.check("https://203.0.114.7/hook").is_ok());
        for refused in [
            "http://hooks.example.com/",
            "https://169.254.169.254/latest/meta-data/",
            "https://127.0.0.1/",
            "https://localhost:8443/",
            "https://10.1.2.3/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:192.168.0.1]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://[::]/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "not a url",
        ] {
            assert!(default.check(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_allow_list_names_the_only_hosts_and_may_open_internal_ones() {
        let list = policy(&["127.0.0.1", "*.corp.example", "hooks.example.com:8443"]);
        assert!(list.check("http://127.0.0.1:9000/hook").is_ok());
        assert!(list.check("https://a.corp.example/").is_ok());
        assert!(list.check("https://corp.example/").is_err(), "a wildcard needs a subdomain");
        assert!(list.check("https://hooks.example.com:8443/").is_ok());
        assert!(list.check("https://hooks.example.com/").is_err(), "another port");
        assert!(list.check("https://elsewhere.example.com/").is_err());
        assert!(list.check("https://169.254.169.254/").is_err());
    }

    #[test]
    fn names_resolving_inside_are_refused_unless_allowed() {
        let default = policy(&[]);
        let inside: SocketAddr = "10.0.0.8:0".parse().unwrap();
        let outside: SocketAddr = "203.0.114.9:0".parse().unwrap();
        assert!(default.filter("rebind.example", vec![inside]).is_err());
        assert_eq!(default.filter("mixed.example", vec![inside, outside]).unwrap(), [outside]);
        assert_eq!(policy(&["*.corp.example"]).filter("a.corp.example", vec![inside]).unwrap(), [inside]);
    }

    #[test]
    fn patterns_parse_and_print_back() {
        for good in ["hooks.example.com", "*.example.com", "10.0.0.5", "[fd00::5]:8080", "HOST.example:1"] {
            let parsed = HostPattern::parse(good).unwrap();
            assert_eq!(parsed.to_string(), good.to_ascii_lowercase());
        }
        for bad in ["", "https://x/", "x/y", "*.10.0.0.1", "user@host"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
