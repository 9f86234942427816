//! Single Logout (SAML Profiles §4.4), both ways, over HTTP-Redirect and HTTP-POST:
//!
//! - IdP-initiated: a LogoutRequest at `/sso/saml/{connection}/slo` ends the Portcullis sessions
//!   of the person it names (those the connection opened, narrowed to its SessionIndex), which
//!   tells the app through back-channel logout, and is answered with a signed LogoutResponse.
//! - SP-initiated: when the app signs a person out (RP-initiated logout) of a session a SAML IdP
//!   opened, the browser goes to the IdP with a signed LogoutRequest; the IdP's LogoutResponse
//!   comes back here and the browser continues to the app.
//!
//! Incoming messages must be signed: in the document (POST) or over the query (Redirect, Bindings
//! §3.4.4.1, checked over the octets as received). They pass the same XML guard as assertions.

use std::io::Read;

use axum::{
    Extension, Form,
    extract::{Path, RawQuery, State, rejection::FormRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use flate2::read::DeflateDecoder;
use openssl::{hash::MessageDigest, sign::Verifier, x509::X509};
use quick_xml::{
    NsReader,
    events::Event,
    name::{Namespace, ResolveResult},
};
use samael::crypto::{CryptoProvider, ReduceMode, XmlSec};
use serde::Deserialize;
use serde_json::json;
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    SpUrls, guard,
    login::auto_post,
    metadata::certificates_der,
    refusal::{self, Refusal, idp_actor, unavailable},
    xml::{self, escape},
};
use crate::{
    app::AppState,
    http::middleware::RequestId,
    ids::ConnectionId,
    sessions::{self, cookie},
    signin::pages,
    store::{
        StoreError,
        audit::{self, AuditRecord},
        directory,
        journal::Subject,
        saml::{self, Binding, PendingLogout, SamlConnectionRecord},
        sessions::{self as stored_sessions, SessionRecord},
    },
};

const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// How long the IdP has to answer a logout Portcullis started.
const LOGOUT_LIFETIME: Duration = Duration::minutes(10);
/// The most an HTTP-Redirect message may inflate to: a DEFLATE bomb stops here.
const MAX_INFLATED: u64 = 64 * 1024;
/// How long a LogoutRequest without NotOnOrAfter is remembered against replay.
const REPLAY_WINDOW: Duration = Duration::minutes(10);

/// A logout message's fields, read from what its signature covers.
#[derive(Debug, Default, Clone, PartialEq)]
struct LogoutMessage {
    request: bool,
    id: String,
    issuer: String,
    destination: Option<String>,
    issue_instant: Option<OffsetDateTime>,
    not_on_or_after: Option<OffsetDateTime>,
    in_response_to: Option<String>,
    name_id: Option<String>,
    session_indexes: Vec<String>,
    status: Option<String>,
}

/// Reads a LogoutRequest or LogoutResponse. samael's types lose the SessionIndex (it reads an
/// attribute where the schema has an element), so the few fields are read here.
fn parse_logout(xml: &str) -> Result<LogoutMessage, Refusal> {
    let malformed = |m: &str| Refusal::Malformed(m.to_owned());
    let mut reader = NsReader::from_str(xml);
    let (mut message, mut path): (LogoutMessage, Vec<Vec<u8>>) = (LogoutMessage::default(), Vec::new());
    loop {
        let event = reader.read_resolved_event().map_err(|e| Refusal::Malformed(e.to_string()))?;
        let empty = matches!(event.1, Event::Empty(_));
        match event {
            (ResolveResult::Bound(Namespace(ns)), Event::Start(e) | Event::Empty(e)) => {
                let local = e.local_name().as_ref().to_vec();
                if path.is_empty() {
                    message.request = match (ns, local.as_slice()) {
                        (PROTOCOL_NS, b"LogoutRequest") => true,
                        (PROTOCOL_NS, b"LogoutResponse") => false,
                        _ => return Err(malformed("not a LogoutRequest or LogoutResponse")),
                    };
                    root_attributes(&e, &mut message)?;
                } else if ns == PROTOCOL_NS && local == b"StatusCode" && path.len() == 2 {
                    message.status = attribute(&e, b"Value")?;
                }
                if !empty {
                    path.push([ns, b":", local.as_slice()].concat());
                }
            }
            (_, Event::Start(e)) => path.push(e.local_name().as_ref().to_vec()),
            (_, Event::Text(text)) if path.len() == 2 => {
                let text = text.decode().map_err(|e| Refusal::Malformed(e.to_string()))?.trim().to_owned();
                let at = |ns: &[u8], local: &[u8]| path[1] == [ns, b":", local].concat();
                if at(ASSERTION_NS, b"Issuer") {
                    message.issuer.push_str(&text);
                } else if at(ASSERTION_NS, b"NameID") {
                    message.name_id.get_or_insert_with(String::new).push_str(&text);
                } else if at(PROTOCOL_NS, b"SessionIndex") {
                    message.session_indexes.push(text);
                }
            }
            (_, Event::End(_)) => {
                path.pop();
            }
            (_, Event::Eof) => break,
            _ => {}
        }
    }
    if message.id.is_empty() || message.issuer.is_empty() {
        return Err(malformed("the message has no ID or no Issuer"));
    }
    Ok(message)
}

fn attribute(e: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> Result<Option<String>, Refusal> {
    match e.try_get_attribute(name).map_err(|err| Refusal::Malformed(err.to_string()))? {
        Some(a) => Ok(Some(
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| Refusal::Malformed(err.to_string()))?
                .into_owned(),
        )),
        None => Ok(None),
    }
}

fn root_attributes(
    e: &quick_xml::events::BytesStart<'_>,
    message: &mut LogoutMessage,
) -> Result<(), Refusal> {
    let time = |value: Option<String>| -> Result<Option<OffsetDateTime>, Refusal> {
        value
            .map(|v| {
                OffsetDateTime::parse(&v, &Rfc3339)
                    .map_err(|_| Refusal::Malformed(format!("`{v}` is not a time")))
            })
            .transpose()
    };
    message.id = attribute(e, b"ID")?.unwrap_or_default();
    message.destination = attribute(e, b"Destination")?;
    message.in_response_to = attribute(e, b"InResponseTo")?;
    message.issue_instant = time(attribute(e, b"IssueInstant")?)?;
    message.not_on_or_after = time(attribute(e, b"NotOnOrAfter")?)?;
    Ok(())
}

// ---- receiving ----

#[derive(Debug, Deserialize)]
pub struct PostForm {
    #[serde(rename = "SAMLRequest")]
    request: Option<String>,
    #[serde(rename = "SAMLResponse")]
    response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// A message as it arrived: its XML, and whether a signature over the query already vouched for it.
struct Arrived {
    xml: String,
    relay_state: Option<String>,
    query_signature_verified: bool,
}

pub async fn redirect_binding(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    Extension(trace): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let outcome = async {
        let connection = load(&state, &connection).await?;
        let arrived = from_query(query.as_deref().unwrap_or_default(), &connection)
            .map_err(|refusal| (refusal, Some(connection.clone())))?;
        Ok::<_, (Refusal, Option<SamlConnectionRecord>)>((connection, arrived))
    }
    .await;
    respond(&state, &headers, &trace, outcome).await
}

pub async fn post_binding(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    Extension(trace): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    form: Result<Form<PostForm>, FormRejection>,
) -> Response {
    let outcome = async {
        let connection = load(&state, &connection).await?;
        let Form(form) = form.map_err(|_| (Refusal::Malformed("the post cannot be read".into()), None))?;
        let encoded =
            form.request.or(form.response).ok_or((Refusal::Malformed("no SAML message".into()), None))?;
        let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = STANDARD.decode(compact).map_err(|_| (Refusal::Malformed("not base64".into()), None))?;
        let xml = String::from_utf8(bytes).map_err(|_| (Refusal::Malformed("not UTF-8".into()), None))?;
        Ok((connection, Arrived { xml, relay_state: form.relay_state, query_signature_verified: false }))
    }
    .await;
    respond(&state, &headers, &trace, outcome).await
}

async fn load(
    state: &AppState,
    reference: &str,
) -> Result<SamlConnectionRecord, (Refusal, Option<SamlConnectionRecord>)> {
    let id: ConnectionId = reference.parse().map_err(|_| (Refusal::UnknownConnection, None))?;
    match state.store.read(move |tx| saml::connection(tx, id)).await {
        Ok(Some(connection)) if connection.idp.signing_certificates.is_empty() => {
            Err((Refusal::NoIdpCertificate, Some(connection)))
        }
        Ok(Some(connection)) => Ok(connection),
        Ok(None) => Err((Refusal::UnknownConnection, None)),
        Err(err) => {
            tracing::error!(%err, "cannot read a SAML connection");
            Err((Refusal::Unavailable, None))
        }
    }
}

/// Decodes an HTTP-Redirect message and checks the signature over its query as sent.
fn from_query(query: &str, connection: &SamlConnectionRecord) -> Result<Arrived, Refusal> {
    let mut raw: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if raw.iter().any(|(n, _)| *n == name) {
            return Err(Refusal::Malformed(format!("`{name}` is given twice")));
        }
        raw.push((name, value));
    }
    let get = |name: &str| raw.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let decode = |value: &str| -> String {
        url::form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (parameter, message) = match (get("SAMLRequest"), get("SAMLResponse")) {
        (Some(m), None) => ("SAMLRequest", m),
        (None, Some(m)) => ("SAMLResponse", m),
        _ => {
            return Err(Refusal::Malformed("exactly one SAMLRequest or SAMLResponse is expected".into()));
        }
    };
    let (sig_alg, signature) = match (get("SigAlg"), get("Signature")) {
        (Some(a), Some(s)) => (a, s),
        _ => return Err(Refusal::Unsigned),
    };
    let mut signed = format!("{parameter}={message}");
    if let Some(relay) = get("RelayState") {
        signed.push_str(&format!("&RelayState={relay}"));
    }
    signed.push_str(&format!("&SigAlg={sig_alg}"));
    let digest = match decode(sig_alg).as_str() {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => MessageDigest::sha512(),
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" if connection.allow_sha1 => MessageDigest::sha1(),
        other => return Err(Refusal::SignatureAlgorithm(other.to_owned())),
    };
    let signature = STANDARD.decode(decode(signature)).map_err(|_| Refusal::SignatureInvalid)?;
    if !query_signature_verifies(connection, digest, signed.as_bytes(), &signature) {
        return Err(Refusal::SignatureInvalid);
    }
    let deflated = STANDARD.decode(decode(message)).map_err(|_| Refusal::Malformed("not base64".into()))?;
    let mut inflated = String::new();
    DeflateDecoder::new(deflated.as_slice())
        .take(MAX_INFLATED + 1)
        .read_to_string(&mut inflated)
        .map_err(|_| Refusal::Malformed("not DEFLATE-compressed UTF-8".into()))?;
    if inflated.len() as u64 > MAX_INFLATED {
        return Err(Refusal::TooLarge { limit: MAX_INFLATED as usize });
    }
    Ok(Arrived { xml: inflated, relay_state: get("RelayState").map(decode), query_signature_verified: true })
}

fn query_signature_verifies(
    connection: &SamlConnectionRecord,
    digest: MessageDigest,
    signed: &[u8],
    signature: &[u8],
) -> bool {
    certificates_der(&connection.idp.signing_certificates).iter().any(|der| {
        let Ok(key) = X509::from_der(der.der_data()).and_then(|c| c.public_key()) else { return false };
        Verifier::new(digest, &key)
            .and_then(|mut v| {
                v.update(signed)?;
                v.verify(signature)
            })
            .unwrap_or(false)
    })
}

/// Guards, verifies and reads a logout message; checks who sent it, to whom, and when.
fn verify(
    arrived: &Arrived,
    connection: &SamlConnectionRecord,
    urls: &SpUrls,
    now: OffsetDateTime,
) -> Result<LogoutMessage, Refusal> {
    let shape = guard::inspect(&arrived.xml, &guard::Limits::default())
        .map_err(|r| Refusal::Malformed(r.to_string()))?;
    let xml = if arrived.query_signature_verified {
        arrived.xml.clone()
    } else if shape.root_signed {
        let certificates = certificates_der(&connection.idp.signing_certificates);
        XmlSec::reduce_xml_to_signed(&arrived.xml, &certificates, ReduceMode::ValidateAndMarkNoAncestors)
            .map_err(|_| Refusal::SignatureInvalid)?
    } else {
        return Err(Refusal::Unsigned);
    };
    let message = parse_logout(&xml)?;
    if message.issuer != connection.idp.entity_id {
        return Err(Refusal::Issuer { found: message.issuer, expected: connection.idp.entity_id.clone() });
    }
    if let Some(destination) = message.destination.as_deref().filter(|d| *d != urls.slo) {
        return Err(Refusal::Destination { found: destination.to_owned(), expected: urls.slo.clone() });
    }
    let skew = Duration::seconds(i64::from(connection.clock_skew_secs));
    if let Some(issued) = message.issue_instant {
        if issued > now + skew {
            return Err(Refusal::NotYetValid(xml::instant(issued)));
        }
        if issued + REPLAY_WINDOW + skew < now {
            return Err(Refusal::Expired(xml::instant(issued + REPLAY_WINDOW)));
        }
    }
    if let Some(end) = message.not_on_or_after.filter(|end| *end + skew <= now) {
        return Err(Refusal::Expired(xml::instant(end)));
    }
    Ok(message)
}

type Outcome = Result<(SamlConnectionRecord, Arrived), (Refusal, Option<SamlConnectionRecord>)>;

async fn respond(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    trace: &RequestId,
    outcome: Outcome,
) -> Response {
    let (connection, arrived) = match outcome {
        Ok(found) => found,
        Err((refusal, connection)) => return refused(state, trace, refusal, connection.as_ref()).await,
    };
    let now = state.clock.now();
    let urls = SpUrls::new(&state.public_url, connection.id);
    let message = match verify(&arrived, &connection, &urls, now) {
        Ok(message) => message,
        Err(refusal) => return refused(state, trace, refusal, Some(&connection)).await,
    };
    let result = if message.request {
        idp_logout(state, headers, &connection, &urls, message, arrived.relay_state, trace, now).await
    } else {
        finish_sp_logout(state, &connection, message, trace, now).await
    };
    match result {
        Ok(response) => response,
        Err(refusal) => refused(state, trace, refusal, Some(&connection)).await,
    }
}

// ---- IdP-initiated ----

/// Ends the sessions the LogoutRequest names, and answers it.
#[allow(clippy::too_many_arguments)]
async fn idp_logout(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    connection: &SamlConnectionRecord,
    urls: &SpUrls,
    message: LogoutMessage,
    relay_state: Option<String>,
    trace: &RequestId,
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let name_id = message.name_id.clone().ok_or(Refusal::NoSubject)?;
    let (tenant, connection_id, idp) = (connection.tenant, connection.id, format!("saml:{}", connection.id));
    let remember_until =
        message.not_on_or_after.unwrap_or(now + REPLAY_WINDOW).min(now + Duration::hours(24));
    let (message_id, indexes, request_id) =
        (message.id.clone(), message.session_indexes.clone(), trace.0.clone());
    let ended = state
        .store
        .write(move |tx| {
            if !saml::mark_assertion_seen(tx, connection_id, &format!("logout:{message_id}"), remember_until)? {
                return Ok(Err(Refusal::Replayed));
            }
            let user = match directory::user_id_by_name(tx, tenant, &name_id)? {
                Some(id) => Some(id),
                None => directory::user_by_email(tx, tenant, &name_id.to_lowercase())?.map(|u| u.id),
            };
            let mut ended = Vec::new();
            for session in user.map(|u| stored_sessions::of_user(tx, tenant, u)).transpose()?.unwrap_or_default() {
                let named = indexes.is_empty()
                    || session.idp_session.as_ref().and_then(|s| s.session_index.as_ref()).is_some_and(|i| indexes.contains(i));
                if session.idp == idp && session.revoked_at.is_none() && named {
                    if let Some(record) = sessions::end_session(tx, session.id, "idp_logout", now)? {
                        ended.push(record.id);
                    }
                }
            }
            audit::append(
                tx,
                AuditRecord::new(
                    Some(tenant),
                    idp_actor(connection_id),
                    "sso.saml.logout",
                    user.map(|u| Subject { kind: "user".into(), id: u.to_string(), label: None }),
                    json!({ "connection": connection_id, "name_id": name_id, "session_indexes": indexes, "sessions_ended": ended }),
                    now,
                    Some(request_id.clone()),
                ),
            )?;
            Ok::<_, StoreError>(Ok(ended))
        })
        .await
        .map_err(unavailable)??;
    tracing::info!(connection = %connection.id, sessions = ended.len(), "IdP-initiated SAML logout");
    let answer = logout_response_xml(connection, urls, &message.id, now);
    let mut response = send(connection, "SAMLResponse", answer, relay_state.as_deref());
    let secure = state.secure_cookies();
    if cookie::read(headers, cookie::session_name(secure)).is_some() {
        if let Some(clear) = cookie::clear(cookie::session_name(secure), secure) {
            response.headers_mut().append(header::SET_COOKIE, clear);
        }
    }
    Ok(response)
}

fn logout_response_xml(
    connection: &SamlConnectionRecord,
    urls: &SpUrls,
    in_response_to: &str,
    now: OffsetDateTime,
) -> String {
    let id = xml::new_id();
    let destination = connection.idp.slo_url.clone().unwrap_or_default();
    let body = |signature: &str| {
        format!(
            "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
             ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{destination}\" InResponseTo=\"{answered}\">\
             <saml:Issuer>{issuer}</saml:Issuer>{signature}<samlp:Status><samlp:StatusCode Value=\"{SUCCESS}\"/></samlp:Status></samlp:LogoutResponse>",
            instant = xml::instant(now),
            destination = escape(&destination),
            answered = escape(in_response_to),
            issuer = escape(&urls.entity_id),
        )
    };
    message_for_binding(connection, &id, body)
}

/// The message as the IdP's logout binding carries it: unsigned XML for HTTP-Redirect (the
/// signature goes over the query), XML with an enveloped signature for HTTP-POST.
fn message_for_binding(connection: &SamlConnectionRecord, id: &str, body: impl Fn(&str) -> String) -> String {
    match connection.idp.slo_binding {
        Binding::HttpRedirect => body(""),
        Binding::HttpPost => body(&xml::signature_template(id, &connection.sp_signing.certificate_pem)),
    }
}

/// Sends a message to the IdP's logout service, signed for its binding.
fn send(
    connection: &SamlConnectionRecord,
    parameter: &str,
    message: String,
    relay_state: Option<&str>,
) -> Response {
    let destination = connection.idp.slo_url.clone().unwrap_or_default();
    let sent = match connection.idp.slo_binding {
        Binding::HttpRedirect => {
            xml::redirect_query(parameter, &message, relay_state, Some(&connection.sp_signing))
                .map(|query| Redirect::to(&xml::with_query(&destination, &query)).into_response())
        }
        Binding::HttpPost => xml::sign_enveloped(&message, &connection.sp_signing)
            .map(|signed| auto_post(&destination, parameter, &STANDARD.encode(signed), relay_state)),
    };
    sent.unwrap_or_else(|err| {
        tracing::error!(%err, connection = %connection.id, "cannot make a SAML logout message");
        pages::unavailable()
    })
}

// ---- SP-initiated ----

/// Sends the browser to the IdP to end its session there too, when the ended `session` came
/// from a SAML connection with a logout service; the browser then continues to `return_to`.
/// None: nothing to do at an IdP.
pub async fn begin(state: &AppState, session: &SessionRecord, return_to: Option<String>) -> Option<Response> {
    let connection_id: ConnectionId = session.idp.strip_prefix("saml:")?.parse().ok()?;
    let idp_session = session.idp_session.clone()?;
    let connection = state.store.read(move |tx| saml::connection(tx, connection_id)).await.ok()??;
    connection.idp.slo_url.as_ref()?;
    let now = state.clock.now();
    let urls = SpUrls::new(&state.public_url, connection.id);
    let id = xml::new_id();
    let pending = PendingLogout {
        connection: connection.id,
        return_to,
        created_at: now,
        expires_at: now + LOGOUT_LIFETIME,
    };
    let stored_id = id.clone();
    if let Err(err) = state.store.write(move |tx| saml::put_logout(tx, &stored_id, &pending)).await {
        tracing::error!(%err, "cannot store a SAML logout");
        return None;
    }
    let destination = connection.idp.slo_url.clone().unwrap_or_default();
    let body = |signature: &str| {
        let format = idp_session
            .name_id_format
            .as_deref()
            .map(|f| format!(" Format=\"{}\"", escape(f)))
            .unwrap_or_default();
        let index = idp_session
            .session_index
            .as_deref()
            .map(|i| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(i)))
            .unwrap_or_default();
        format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
             ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{destination}\" NotOnOrAfter=\"{until}\">\
             <saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:NameID{format}>{name}</saml:NameID>{index}</samlp:LogoutRequest>",
            instant = xml::instant(now),
            destination = escape(&destination),
            until = xml::instant(now + LOGOUT_LIFETIME),
            issuer = escape(&urls.entity_id),
            name = escape(&idp_session.name_id),
        )
    };
    let message = message_for_binding(&connection, &id, body);
    Some(send(&connection, "SAMLRequest", message, None))
}

/// The IdP's LogoutResponse to a logout Portcullis started: on to the app.
async fn finish_sp_logout(
    state: &AppState,
    connection: &SamlConnectionRecord,
    message: LogoutMessage,
    trace: &RequestId,
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let answered = message.in_response_to.clone().ok_or(Refusal::UnknownRequest)?;
    let (connection_id, tenant, request_id, status) =
        (connection.id, connection.tenant, trace.0.clone(), message.status.clone());
    let pending = state
        .store
        .write(move |tx| {
            let Some(pending) = saml::take_logout(tx, &answered)? else {
                return Ok(Err(Refusal::UnknownRequest));
            };
            if pending.connection != connection_id {
                return Ok(Err(Refusal::RequestOfAnotherConnection));
            }
            audit::append(
                tx,
                AuditRecord::new(
                    Some(tenant),
                    idp_actor(connection_id),
                    "sso.saml.logout_response",
                    None,
                    json!({ "connection": connection_id, "in_response_to": answered, "status": status }),
                    now,
                    Some(request_id.clone()),
                ),
            )?;
            Ok::<_, StoreError>(Ok(pending))
        })
        .await
        .map_err(unavailable)??;
    if pending.expires_at <= now {
        return Err(Refusal::Expired(xml::instant(pending.expires_at)));
    }
    let partial = message.status.as_deref() != Some(SUCCESS);
    Ok(match pending.return_to {
        Some(uri) => Redirect::to(&uri).into_response(),
        None if partial => pages::page(
            StatusCode::OK,
            "You are signed out here",
            "<p>You are signed out of the application. Your identity provider could not end its own session: close the browser to be sure.</p>",
        ),
        None => pages::page(StatusCode::OK, "You are signed out", "<p>You can close this window.</p>"),
    })
}

async fn refused(
    state: &AppState,
    trace: &RequestId,
    refusal: Refusal,
    connection: Option<&SamlConnectionRecord>,
) -> Response {
    refusal::record(state, "sso.saml.logout_refused", &refusal, connection, json!({}), &trace.0).await;
    refusal.page(&trace.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_request_keeps_its_session_index_and_name_id() {
        let xml = r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://sp/slo" NotOnOrAfter="2026-01-01T00:10:00Z"><saml:Issuer>https://idp</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">ada@acme.test</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex><samlp:SessionIndex>_s2</samlp:SessionIndex></samlp:LogoutRequest>"#;
        let message = parse_logout(xml).unwrap();
        assert!(message.request);
        assert_eq!(message.id, "_l1");
        assert_eq!(message.issuer, "https://idp");
        assert_eq!(message.name_id.as_deref(), Some("ada@acme.test"));
        assert_eq!(message.session_indexes, ["_s1", "_s2"]);
        assert_eq!(message.destination.as_deref(), Some("https://sp/slo"));
        assert!(message.not_on_or_after.is_some());
    }

    #[test]
    fn a_logout_response_keeps_its_status_and_request() {
        let xml = r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" InResponseTo="_l1"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">https://idp</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#;
        let message = parse_logout(xml).unwrap();
        assert!(!message.request);
        assert_eq!(message.in_response_to.as_deref(), Some("_l1"));
        assert_eq!(message.status.as_deref(), Some(SUCCESS));
    }

    #[test]
    fn other_documents_are_not_logout_messages() {
        assert!(
            parse_logout("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"x\"/>")
                .is_err()
        );
        assert!(parse_logout("<LogoutRequest ID=\"x\"/>").is_err());
    }
}
