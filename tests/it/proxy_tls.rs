//! Behind a reverse proxy (`trusted_proxies`: whose `X-Forwarded-For` is believed) and with
//! HTTPS built in (`tls_cert_file`, `tls_key_file`, reloaded on SIGHUP). Certificates are made
//! here with rcgen: a test CA and leaf certificates it signs, so a reload can be checked against
//! the same trust.

use std::{
    io::Write,
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use reqwest::{
    Method,
    blocking::{Client, Response},
};
use serde_json::Value;

use crate::server::{Server, command};

const FORWARDED: &str = "x-forwarded-for";

fn proxied(trusted: Option<&str>) -> Server {
    match trusted {
        Some(ranges) => Server::start_with_settings(&[("PORTCULLIS_TRUSTED_PROXIES", ranges)]),
        None => Server::start(),
    }
}

/// An operator's change made through a proxy that says the client is `forwarded`; the source
/// address its audit record carries.
fn source_of_a_change(server: &Server, slug: &str, forwarded: &str) -> Value {
    let body = serde_json::json!({ "slug": slug, "display_name": slug, "domains": [] });
    let response =
        server.admin(Method::POST, "/api/v1/tenants").header(FORWARDED, forwarded).json(&body).send();
    assert_eq!(response.unwrap().status(), 201);
    let records = server.audit("admin.tenant.create");
    let record = records.last().expect("the change is recorded");
    assert_eq!(record["target"]["label"], slug, "{record:#}");
    record["source_ip"].clone()
}

/// An anonymous SAML post to a connection that does not exist: a refusal recorded with the
/// poster's address, through the ACS handler and the refusal budget.
fn source_of_a_refused_post(server: &Server, forwarded: &str) -> (Value, Value) {
    let acs = "/sso/saml/0190f0b4-7c3a-7cc1-8f65-3a9f0e5b2c11/acs";
    let response = server
        .anonymous(Method::POST, acs)
        .header(FORWARDED, forwarded)
        .form(&[("SAMLResponse", "PHNhbWxwOlJlc3BvbnNlLz4=")])
        .send()
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let records = server.audit("sso.saml.refused");
    let record = records.last().expect("the refusal is recorded");
    (record["source_ip"].clone(), record["detail"]["ip"].clone())
}

#[test]
fn a_trusted_proxys_forwarded_client_is_the_source_of_what_it_does() {
    let server = proxied(Some("127.0.0.1/32"));
    assert_eq!(source_of_a_change(&server, "acme", "203.0.113.9, 127.0.0.1"), "203.0.113.9");
    // The leftmost entries are the client's own and are never believed; a port is dropped.
    assert_eq!(source_of_a_change(&server, "globex", "192.0.2.66, 203.0.113.10:4711"), "203.0.113.10");
    assert_eq!(source_of_a_change(&server, "initech", "[2001:db8::9]:443"), "2001:db8::9");
    // Garbage stops the walk at the last trusted hop: the proxy.
    assert_eq!(source_of_a_change(&server, "hooli", "unknown"), "127.0.0.1");
    let (source, detail) = source_of_a_refused_post(&server, "203.0.113.9");
    assert_eq!((source.as_str(), detail.as_str()), (Some("203.0.113.9"), Some("203.0.113.9")));
}

#[test]
fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    for server in [proxied(None), proxied(Some("10.0.0.0/8, ::1"))] {
        assert_eq!(source_of_a_change(&server, "acme", "203.0.113.9, 127.0.0.1"), "127.0.0.1");
        assert_eq!(source_of_a_change(&server, "globex", "203.0.113.9"), "127.0.0.1");
        let (source, detail) = source_of_a_refused_post(&server, "203.0.113.9");
        assert_eq!((source.as_str(), detail.as_str()), (Some("127.0.0.1"), Some("127.0.0.1")));
    }
}

/// A certificate authority for the tests, and leaf certificates for 127.0.0.1 it signs.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(rcgen::DnType::CommonName, "Portcullis test CA");
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { issuer: Issuer::new(params, key), pem }
    }

    /// A leaf certificate and its key written to `{name}.crt` and `{name}.key` in `dir`; the
    /// certificate's DER.
    fn leaf(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        // The file holds the chain: the leaf, then the CA (which a client may or may not need).
        std::fs::write(&cert_file, format!("{}{}", cert.pem(), self.pem)).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file, cert.der().to_vec())
    }

    /// A client that trusts this CA only, opens a new connection for every request (so each
    /// sees the certificate served at that moment) and reports the server's certificate.
    fn client(&self) -> Client {
        Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .tls_info(true)
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

fn served_certificate(response: &Response) -> Vec<u8> {
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS information");
    info.peer_certificate().expect("the server's certificate").to_vec()
}

fn start_tls(ca: &TestCa, cert: &Path, key: &Path) -> Server {
    let mut server = Server::start_with_settings(&[
        ("PORTCULLIS_TLS_CERT_FILE", cert.to_str().unwrap()),
        ("PORTCULLIS_TLS_KEY_FILE", key.to_str().unwrap()),
    ]);
    server.use_client(ca.client());
    server
}

#[test]
fn https_is_served_with_the_certificate_and_plain_http_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key, der) = ca.leaf(dir.path(), "server");
    let server = start_tls(&ca, &cert, &key);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "the derived public URL is https: {}",
        server.base
    );

    let health = server.anonymous(Method::GET, "/healthz").send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
    assert_eq!(served_certificate(&health), der);
    assert_eq!(server.get("/api/v1/tenants").status(), 200, "the admin API over HTTPS");
    // The issuer the provider announces is the https origin, so cookies are Secure.
    let discovery: Value = server.get("/.well-known/openid-configuration").json().unwrap();
    assert_eq!(discovery["issuer"], server.base.as_str());

    let plain = server.base.replacen("https://", "http://", 1);
    let refused = Client::new().get(format!("{plain}/healthz")).timeout(Duration::from_secs(30)).send();
    assert!(refused.is_err(), "plain HTTP to the HTTPS port: {refused:?}");
    // And the server is none the worse for it.
    assert_eq!(server.anonymous(Method::GET, "/healthz").send().unwrap().status(), 200);
}

#[test]
fn a_client_that_never_finishes_its_handshake_does_not_hold_up_others() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf(dir.path(), "server");
    let server = start_tls(&ca, &cert, &key);
    let address = server.base.trim_start_matches("https://").to_owned();
    // Enough of them that waiting out each one's handshake time in turn would take longer than
    // the client's 30 s: the requests succeed only if handshakes do not wait for one another.
    let mut stalled: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(&address).unwrap()).collect();
    // One sends the first bytes of a ClientHello, and then nothing.
    stalled[0].write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    for _ in 0..3 {
        assert_eq!(server.anonymous(Method::GET, "/healthz").send().unwrap().status(), 200);
    }
    drop(stalled);
}

#[test]
fn a_certificate_that_cannot_be_served_stops_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, _, _) = ca.leaf(dir.path(), "one");
    let (_, other_key, _) = ca.leaf(dir.path(), "two");
    let missing = dir.path().join("missing.pem");
    // (settings, exit status, what stderr must say)
    type Case<'a> = (Vec<(&'a str, &'a Path)>, i32, &'a [&'a str]);
    let cases: [Case; 4] = [
        (
            vec![("PORTCULLIS_TLS_CERT_FILE", &cert), ("PORTCULLIS_TLS_KEY_FILE", &other_key)],
            1,
            &["tls_key_file", "does not belong to the certificate"],
        ),
        (
            vec![("PORTCULLIS_TLS_CERT_FILE", &missing), ("PORTCULLIS_TLS_KEY_FILE", &other_key)],
            1,
            &["tls_cert_file", "missing.pem"],
        ),
        (vec![("PORTCULLIS_TLS_CERT_FILE", &cert)], 2, &["`tls_cert_file`", "`tls_key_file`"]),
        (vec![("PORTCULLIS_TLS_KEY_FILE", &other_key)], 2, &["`tls_key_file`", "`tls_cert_file`"]),
    ];
    for (settings, status, expected) in cases {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).env("PORTCULLIS_DATA_DIR", data.path());
        for (name, path) in settings {
            cmd.env(name, path);
        }
        let output = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{stderr}");
        for text in expected {
            assert!(stderr.contains(text), "expected {text} in: {stderr}");
        }
        assert!(!data.path().join("portcullis.redb").exists(), "nothing is created: {stderr}");
    }
}

fn hang_up(server: &Server) {
    let status = Command::new("sh").arg("-c").arg(format!("kill -HUP {}", server.pid())).status().unwrap();
    assert!(status.success());
}

/// Waits (a bounded while) for the server's log to say `text` `count` times.
fn wait_for_log(server: &Server, text: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.stderr().matches(text).count() < count {
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{}", server.stderr());
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_serves_the_renewed_certificate_and_a_bad_renewal_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key, first) = ca.leaf(dir.path(), "server");
    let server = start_tls(&ca, &cert, &key);
    let served = || served_certificate(&server.anonymous(Method::GET, "/healthz").send().unwrap());
    assert_eq!(served(), first);

    // Renewed as certbot does it: new files in place of the old, then a reload.
    let (new_cert, new_key, second) = ca.leaf(dir.path(), "renewed");
    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    hang_up(&server);
    wait_for_log(&server, "the TLS certificate was reloaded", 1);
    assert_eq!(served(), second);

    // A renewal that went wrong (a key of another certificate): the last good one stays.
    let (_, wrong_key, _) = ca.leaf(dir.path(), "wrong");
    std::fs::rename(&wrong_key, &key).unwrap();
    hang_up(&server);
    wait_for_log(&server, "was not reloaded", 1);
    assert!(server.stderr().contains("tls_key_file"), "{}", server.stderr());
    assert_eq!(served(), second);
    assert_eq!(server.get("/api/v1/tenants").status(), 200);
}
