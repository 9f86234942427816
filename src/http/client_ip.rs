//! Who the client is: the TCP peer, or, when the peer is a reverse proxy we trust
//! (`trusted_proxies`), the address that proxy saw, read from `X-Forwarded-For`. Resolved once
//! per request (`resolve`) into `ClientIp`, which rate limits, lockouts and the audit trail's
//! source address use.
//!
//! The walk goes from the right end of `X-Forwarded-For` (what the proxy next to us appended)
//! leftwards, over entries that are themselves trusted proxies, and stops at the first one that
//! is not: that is the client as seen by the outermost proxy we trust. Everything further left
//! was written by the client and is never believed. An entry that is not an address (`unknown`,
//! an obfuscated `_id`, garbage) stops the walk at the last trusted hop reached: a proxy we trust
//! would have written an address there, so the entry came from somewhere we cannot vouch for,
//! and attributing the request to the proxy is wrong only in the safe direction (the proxy's
//! budget, never an address the sender chose).
//!
//! Only `X-Forwarded-For` is read, not RFC 7239 `Forwarded`: it is what nginx, HAProxy, Traefik,
//! Caddy and cloud load balancers append by default, and believing two headers would let a
//! client forge whichever one its proxy passes through untouched.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State, connect_info::Connected},
    http::{HeaderMap, HeaderName, request::Parts},
    middleware::Next,
    response::Response,
    serve::IncomingStream,
};
use ipnet::IpNet;
use tokio::net::TcpListener;

use super::ApiError;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The TCP peer of a connection, whichever listener (plain or TLS) accepted it: the connect
/// info `lib::run` serves with. Only `resolve` should read it; everything else wants `ClientIp`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// The client's address, in the request's extensions (and an extractor for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or_else(|| ApiError::Internal("the client address was not resolved".into()))
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(ranges: Vec<IpNet>) -> Self {
        Self(ranges)
    }

    /// A v4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket reports for an IPv4
    /// peer) matches the IPv4 ranges too.
    fn trust(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

/// Middleware: puts the request's `ClientIp` in its extensions.
pub async fn resolve(
    State(trusted): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(Peer(peer))) = request.extensions().get::<ConnectInfo<Peer>>().copied() {
        let client = client_address(peer.ip(), request.headers(), &trusted);
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

/// The client's address: `peer` as it is unless it is a trusted proxy, else the walk above.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.trust(peer) {
        return peer;
    }
    let mut client = peer;
    // Several header lines are one list in their order (RFC 9110 §5.3): walk them last first.
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(list) = value.to_str() else { return client };
        for entry in list.rsplit(',') {
            let Some(hop) = parse_entry(entry) else { return client };
            client = hop;
            if !trusted.trust(hop) {
                return client;
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, with or without a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:80`, `[2001:db8::1]`); a v4-mapped address becomes the IPv4 address.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn trusted(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn client(peer: &str, forwarded: &[&str], ranges: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        client_address(peer.parse().unwrap(), &headers, &trusted(ranges)).to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(client("198.51.100.7", &["203.0.113.9"], &[]), "198.51.100.7");
        assert_eq!(client("198.51.100.7", &["203.0.113.9"], &["10.0.0.0/8"]), "198.51.100.7");
        // Kept as the socket reports it, as before proxies were configurable.
        assert_eq!(client("::ffff:198.51.100.7", &["203.0.113.9"], &["10.0.0.0/8"]), "::ffff:198.51.100.7");
    }

    #[test]
    fn a_trusted_peer_forwards_the_rightmost_untrusted_entry() {
        let proxies = ["10.0.0.0/8", "127.0.0.1/32"];
        assert_eq!(client("127.0.0.1", &["203.0.113.9"], &proxies), "203.0.113.9");
        assert_eq!(client("127.0.0.1", &["203.0.113.9, 10.1.2.3"], &proxies), "203.0.113.9");
        // The client's own entries further left are never believed.
        assert_eq!(client("127.0.0.1", &["1.1.1.1, 203.0.113.9, 10.1.2.3"], &proxies), "203.0.113.9");
        // Without the header, the proxy itself is the client (its own health checks).
        assert_eq!(client("10.0.0.5", &[], &proxies), "10.0.0.5");
        // Every entry trusted: the leftmost proxy reached.
        assert_eq!(client("10.0.0.5", &["10.9.9.9, 10.0.0.4"], &proxies), "10.9.9.9");
    }

    #[test]
    fn ipv6_ports_and_mapped_addresses() {
        let proxies = ["::1/128", "fd00::/8", "10.0.0.0/8"];
        assert_eq!(client("::1", &["2001:db8::7"], &proxies), "2001:db8::7");
        assert_eq!(client("::1", &["[2001:db8::7]:4711, fd00::2"], &proxies), "2001:db8::7");
        assert_eq!(client("::1", &["[2001:db8::7]"], &proxies), "2001:db8::7");
        assert_eq!(client("::1", &["203.0.113.9:5678"], &proxies), "203.0.113.9");
        assert_eq!(client("::1", &["::ffff:203.0.113.9"], &proxies), "203.0.113.9");
        // A dual-stack socket's v4-mapped peer matches the IPv4 range; so does a mapped entry.
        assert_eq!(client("::ffff:10.0.0.1", &["203.0.113.9"], &proxies), "203.0.113.9");
        assert_eq!(client("::1", &["203.0.113.9, ::ffff:10.2.2.2"], &proxies), "203.0.113.9");
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let proxies = ["10.0.0.0/8"];
        assert_eq!(client("10.0.0.1", &["1.1.1.1", "203.0.113.9, 10.0.0.2"], &proxies), "203.0.113.9");
        assert_eq!(client("10.0.0.1", &["203.0.113.9", "10.0.0.2", "10.0.0.3"], &proxies), "203.0.113.9");
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let proxies = ["10.0.0.0/8"];
        for bad in
            ["unknown", "_hidden", "", " ", "example.com", "1.2.3", "[::1", "1.2.3.4:port", "fe80::1%eth0"]
        {
            assert_eq!(client("10.0.0.1", &[bad], &proxies), "10.0.0.1", "{bad:?}");
            assert_eq!(
                client("10.0.0.1", &[&format!("203.0.113.9, {bad}, 10.0.0.2")], &proxies),
                "10.0.0.2",
                "{bad:?}"
            );
        }
        // Garbage left of the client's entry is never reached.
        assert_eq!(client("10.0.0.1", &["unknown, 203.0.113.9"], &proxies), "203.0.113.9");
        // A header value that is not text.
        let mut headers = HeaderMap::new();
        headers.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap());
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_address(peer, &headers, &trusted(&proxies)), peer);
    }
}
