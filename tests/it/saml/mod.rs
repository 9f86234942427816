//! Portcullis as a SAML service provider, against an independent identity provider: pysaml2 and
//! the xmlsec1 command, driven through `scripts/saml-idp` (tests/saml/idp.py). The IdP makes
//! every Response, signature and encryption here; Portcullis' own messages are read back by it.

mod attacks;
mod connections;
mod login;
mod logout;
mod samlify;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use openidconnect::OAuth2TokenResponse;
use openssl::{
    asn1::Asn1Time,
    hash::MessageDigest,
    pkey::PKey,
    rsa::Rsa,
    x509::{X509, X509NameBuilder},
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    provider::{App, Browser, Page, Pending, callback_params},
    server::Server,
};

pub const IDP_ENTITY: &str = "https://idp.example.test/saml";
/// Where the IdP would take the browser; nothing listens there: the tests play the browser.
pub const IDP_SSO: &str = "http://127.0.0.1:9/idp/sso";
pub const IDP_SLO: &str = "http://127.0.0.1:9/idp/slo";
/// Where the app starts a login for a tenant (OpenID Connect third-party initiated login).
pub const APP_LOGIN: &str = "http://127.0.0.1:9/login";

/// The identity provider: its key pair, and its tool.
pub struct Idp {
    dir: TempDir,
}

fn key_pair(dir: &Path, name: &str) {
    let rsa = Rsa::generate(2048).unwrap();
    let key = PKey::from_rsa(rsa).unwrap();
    let mut subject = X509NameBuilder::new().unwrap();
    subject.append_entry_by_text("CN", name).unwrap();
    let subject = subject.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&subject).unwrap();
    builder.set_issuer_name(&subject).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    builder.set_not_after(&Asn1Time::days_from_now(365).unwrap()).unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), builder.build().to_pem().unwrap()).unwrap();
}

impl Idp {
    pub fn new() -> Idp {
        let dir = tempfile::tempdir().unwrap();
        key_pair(dir.path(), "idp");
        key_pair(dir.path(), "attacker");
        key_pair(dir.path(), "rotated");
        Idp { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    pub fn write(&self, name: &str, contents: &str) -> String {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
        self.path(name)
    }

    /// Runs the tool; returns its stdout, failing the test with its stderr when it fails.
    pub fn tool(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.0, "saml-idp {args:?} failed:\n{}", output.2);
        output.1
    }

    /// Runs the tool: (succeeded, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/saml-idp");
        let output = Command::new(script).args(args).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Metadata naming the IdP certificates `certificates` (key names: `idp`, `rotated`, …) and
    /// the sign-on URL `sso`, signed with the key `signer`.
    pub fn metadata_signed_by(&self, signer: &str, certificates: &[&str], sso: &str) -> String {
        let (key, first) =
            (self.path(&format!("{signer}.key")), self.path(&format!("{}.crt", certificates[0])));
        let mut args =
            vec!["metadata", "--idp", IDP_ENTITY, "--cert", &first, "--sso", sso, "--sign", "--key", &key];
        let more: Vec<String> = certificates[1..].iter().map(|c| self.path(&format!("{c}.crt"))).collect();
        for certificate in &more {
            args.extend(["--second-cert", certificate.as_str()]);
        }
        self.tool(&args)
    }

    /// The IdP's metadata, signed by its own key when `signed`.
    pub fn metadata(&self, signed: bool) -> String {
        let (cert, key) = (self.path("idp.crt"), self.path("idp.key"));
        let mut args =
            vec!["metadata", "--idp", IDP_ENTITY, "--cert", &cert, "--sso", IDP_SSO, "--slo", IDP_SLO];
        if signed {
            args.extend(["--sign", "--key", &key]);
        }
        self.tool(&args)
    }
}

/// A tenant `acme` (domain acme.test, verified) with a SAML connection to `idp`, a user
/// ada@acme.test, and the app.
pub struct Sso {
    pub app: App,
    pub tenant: String,
    pub connection: Value,
    pub user: String,
}

impl Sso {
    pub fn set_up(server: &Server, idp: &Idp, settings: Value) -> Sso {
        let tenant = server.create_tenant("acme", &["acme.test"]);
        let tenant_id = tenant["id"].as_str().unwrap().to_owned();
        let verified = server.post(
            &format!("/api/v1/tenants/{tenant_id}/domains/acme.test/verify"),
            json!({ "method": "manual" }),
        );
        assert_eq!(verified.status(), 200);
        let user = server.post(
            &format!("/api/v1/tenants/{tenant_id}/users"),
            json!({ "email": "ada@acme.test", "display_name": "Ada Lovelace" }),
        );
        assert_eq!(user.status(), 201);
        let user: Value = user.json().unwrap();
        let mut body = json!({ "name": "Acme Okta", "idp_metadata": idp.metadata(false) });
        for (key, value) in settings.as_object().unwrap() {
            body[key] = value.clone();
        }
        let connection = server.post(&format!("/api/v1/tenants/{tenant_id}/saml-connections"), body);
        assert_eq!(connection.status(), 201, "{}", connection.text().unwrap());
        let connection: Value = connection.json().unwrap();
        idp.write(
            "sp.xml",
            &server.get(&Self::path_of(&tenant_id, &connection, "/sp-metadata")).text().unwrap(),
        );
        idp.write("sp-encryption.crt", connection["sp"]["encryption_certificate"].as_str().unwrap());
        let app = App::register(server, json!({ "initiate_login_uri": APP_LOGIN }));
        Sso { app, tenant: tenant_id, connection, user: user["id"].as_str().unwrap().to_owned() }
    }

    fn path_of(tenant: &str, connection: &Value, suffix: &str) -> String {
        format!("/api/v1/tenants/{tenant}/saml-connections/{}{suffix}", connection["id"].as_str().unwrap())
    }

    pub fn api_path(&self, suffix: &str) -> String {
        Self::path_of(&self.tenant, &self.connection, suffix)
    }

    pub fn acs(&self) -> String {
        self.connection["sp"]["acs_url"].as_str().unwrap().to_owned()
    }

    pub fn sp_entity(&self) -> String {
        self.connection["sp"]["entity_id"].as_str().unwrap().to_owned()
    }

    /// The browser opens the app's authorization `url` and signs in as `email`, choosing single
    /// sign-on where passwords are offered too; returns Portcullis' answer at the end (a redirect
    /// to the IdP, or the page that posts to it).
    pub fn begin(&self, server: &Server, browser: &mut Browser, url: &str, email: &str) -> Page {
        let first = browser.get(url);
        let login = browser.follow(server, first);
        assert_eq!(login.status, 200, "{}", login.body);
        let mut sent = browser.submit(server, &login, &[("email", email)]);
        if sent.status == 200 && sent.body.contains("Use my password instead") {
            let at = sent.body.find("href=\"/sso/saml/").unwrap() + "href=\"".len();
            let link = sent.body[at..at + sent.body[at..].find('"').unwrap()].replace("&amp;", "&");
            sent = browser.get(&server.url(&link));
        }
        browser.follow(server, sent)
    }

    /// The app sends the browser to sign in as `email`; Portcullis sends it on to the IdP.
    /// Returns the app's pending authorization, the AuthnRequest as the IdP read it, and the
    /// RelayState.
    pub fn start(
        &self,
        server: &Server,
        idp: &Idp,
        browser: &mut Browser,
        email: &str,
    ) -> (Pending, Value, String) {
        let pending = self.app.authorize(&["openid", "email"]);
        let at_idp = self.begin(server, browser, &pending.url, email);
        let location =
            at_idp.location.clone().unwrap_or_else(|| panic!("not sent to the IdP: {}", at_idp.body));
        assert!(location.starts_with(IDP_SSO), "{location}");
        let sp = idp.path("sp.xml");
        let request: Value =
            serde_json::from_str(&idp.tool(&["parse-authn", "--sp-metadata", &sp, "--query", &location]))
                .unwrap();
        let relay_state = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "RelayState")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        (pending, request, relay_state)
    }

    /// A Response from the IdP to the request `id` (None: unsolicited), with `extra` options.
    pub fn response(&self, idp: &Idp, in_response_to: Option<&str>, nameid: &str, extra: &[&str]) -> String {
        let (key, cert, sp, acs) = (idp.path("idp.key"), idp.path("idp.crt"), self.sp_entity(), self.acs());
        let mut args = vec![
            "response",
            "--idp",
            IDP_ENTITY,
            "--sp",
            &sp,
            "--acs",
            &acs,
            "--key",
            &key,
            "--cert",
            &cert,
            "--nameid",
            nameid,
            "--session-index",
            "_idp-session-1",
        ];
        if let Some(id) = in_response_to {
            args.extend(["--in-response-to", id]);
        }
        args.extend(extra);
        idp.tool(&args)
    }
}

/// The claims of a JWT, unverified (the app's library verified it).
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// What the app and the browser hold after a sign-in.
pub struct SignedIn {
    pub claims: Value,
    pub id_token: String,
    pub access_token: String,
    pub browser: Browser,
}

/// `nameid` signs in through the IdP (typing `email` at Portcullis) with a Response made with
/// `options`; returns the tokens, or the page that refused.
pub fn sign_in(
    server: &Server,
    idp: &Idp,
    sso: &Sso,
    email: &str,
    nameid: &str,
    options: &[&str],
) -> Result<SignedIn, String> {
    let mut browser = Browser::new();
    let (pending, request, relay_state) = sso.start(server, idp, &mut browser, email);
    assert_eq!(request["signature_valid"], true, "the IdP verified our AuthnRequest: {request}");
    assert_eq!(request["acs_url"], sso.acs());
    let mut options = options.to_vec();
    let cert = idp.path("sp-encryption.crt");
    if options.contains(&"--encrypt") {
        options.extend(["--sp-cert", cert.as_str()]);
    }
    let xml = sso.response(idp, Some(request["id"].as_str().unwrap()), nameid, &options);
    let back = post_response(&mut browser, &sso.acs(), &xml, &relay_state);
    if back.status != 303 {
        return Err(back.body);
    }
    let params = callback_params(back.location.as_deref().unwrap());
    assert_eq!(params["state"], pending.state);
    let tokens = sso.app.exchange(&params["code"], pending.verifier);
    let id_token = tokens.extra_fields().id_token().unwrap().to_string();
    let access_token = tokens.access_token().secret().clone();
    Ok(SignedIn { claims: claims_of(&id_token), id_token, access_token, browser })
}

/// The browser posts `xml` to the ACS, as the IdP's page makes it do.
pub fn post_response(browser: &mut Browser, acs: &str, xml: &str, relay_state: &str) -> Page {
    let encoded = STANDARD.encode(xml);
    browser.post(acs, &[("SAMLResponse", encoded.as_str()), ("RelayState", relay_state)])
}

/// The audit records of `action`, newest last.
pub fn audit(server: &Server, action: &str) -> Vec<Value> {
    let response = server.get(&format!("/api/v1/audit?action={action}&limit=100"));
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    body["items"].as_array().unwrap().clone()
}
