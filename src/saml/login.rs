//! SP-initiated login: `/sso/saml/{connection}/start?request=…` records an AuthnRequest for the
//! app's waiting authorization and sends the browser to the IdP with it. The request's ID is
//! what the Response must answer (`InResponseTo`); RelayState carries the authorization's id so
//! that the IdP hands it back, though the stored request is what Portcullis believes.
//!
//! `?test=…` starts an admin's connection test the same way, for a request made by the admin API.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    SpUrls,
    xml::{self, escape},
};
use crate::{
    app::AppState,
    ids::{AuthRequestId, ConnectionId},
    signin::pages,
    store::{
        StoreError, grants,
        saml::{self, Binding, PendingRequest, SamlConnectionRecord},
        tenants::{self, TenantStatus},
    },
};

const AUTOPOST_JS: &str = "document.forms[0].submit();\n";

#[derive(Debug, Deserialize)]
pub struct StartParams {
    request: Option<String>,
    test: Option<String>,
}

pub async fn start(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    Query(params): Query<StartParams>,
) -> Response {
    let Ok(connection_id) = connection.parse::<ConnectionId>() else {
        return unknown_connection();
    };
    let now = state.clock.now();
    // A test may run before the connection is enabled (a setup wizard's order); a login may not.
    let testing = params.test.is_some();
    let found = state.store.read(move |tx| usable_connection(tx, connection_id, testing)).await;
    let connection = match found {
        Ok(Some(connection)) => connection,
        Ok(None) => return unknown_connection(),
        Err(err) => {
            tracing::error!(%err, "cannot read a SAML connection");
            return pages::unavailable();
        }
    };
    let begun = match (params.request, params.test) {
        (Some(request), None) => begin_login(&state, &connection, &request, now).await,
        (None, Some(test)) => begin_test(&state, &connection, &test, now).await,
        _ => Err(pages::expired_request()),
    };
    match begun {
        Ok((request_id, relay_state, force_authn)) => {
            send_authn_request(&state, &connection, &request_id, &relay_state, force_authn, now)
        }
        Err(page) => page,
    }
}

/// The connection, if it can sign anybody in (or, `for_test`, be tested): enabled (a test does
/// without), with an IdP certificate, of an active tenant.
fn usable_connection(
    src: &impl crate::store::Source,
    id: ConnectionId,
    for_test: bool,
) -> Result<Option<SamlConnectionRecord>, StoreError> {
    let Some(connection) = saml::connection(src, id)? else { return Ok(None) };
    let tenant_active =
        tenants::get(src, connection.tenant)?.is_some_and(|t| t.status == TenantStatus::Active);
    let complete = !connection.idp.signing_certificates.is_empty();
    let usable = (connection.enabled || for_test) && tenant_active && complete;
    Ok(usable.then_some(connection))
}

/// Records the AuthnRequest for a waiting authorization of the app.
async fn begin_login(
    state: &AppState,
    connection: &SamlConnectionRecord,
    request: &str,
    now: OffsetDateTime,
) -> Result<(String, String, bool), Response> {
    let authorization: AuthRequestId = request.parse().map_err(|_| pages::expired_request())?;
    let waiting = state.store.read(move |tx| grants::authorization_request(tx, authorization)).await;
    let waiting = match waiting {
        Ok(Some(waiting)) if waiting.expires_at > now => waiting,
        Ok(_) => return Err(pages::expired_request()),
        Err(err) => {
            tracing::error!(%err, "cannot read an authorization request");
            return Err(pages::unavailable());
        }
    };
    if waiting.tenant.is_some_and(|pinned| pinned != connection.tenant) {
        return Err(pages::error(
            StatusCode::FORBIDDEN,
            "Wrong organisation",
            "The application asked for a sign-in to another organisation. Go back to the application and sign in again.",
        ));
    }
    let pending = PendingRequest {
        connection: connection.id,
        tenant: connection.tenant,
        authorization: Some(authorization),
        test: false,
        answered_at: None,
        test_result: None,
        created_at: now,
        expires_at: (now + state.config.sso_login_lifetime()).min(waiting.expires_at),
    };
    let id = xml::new_id();
    store_pending(state, &id, pending).await?;
    Ok((id, authorization.to_string(), waiting.force_login || waiting.max_age == Some(0)))
}

/// A test request is made by the admin API; this only sends it.
async fn begin_test(
    state: &AppState,
    connection: &SamlConnectionRecord,
    test: &str,
    now: OffsetDateTime,
) -> Result<(String, String, bool), Response> {
    let id = test.to_owned();
    let pending = state.store.read(move |tx| saml::request(tx, &id)).await.map_err(|err| {
        tracing::error!(%err, "cannot read a SAML test request");
        pages::unavailable()
    })?;
    match pending {
        // RelayState carries the test's id, so that a Response refused before its signature is
        // trusted can still be reported to the test that sent for it.
        Some(p)
            if p.test && p.connection == connection.id && p.answered_at.is_none() && p.expires_at > now =>
        {
            Ok((test.to_owned(), test.to_owned(), true))
        }
        _ => Err(pages::expired_request()),
    }
}

async fn store_pending(state: &AppState, id: &str, pending: PendingRequest) -> Result<(), Response> {
    let id = id.to_owned();
    state.store.write(move |tx| saml::put_request(tx, &id, &pending)).await.map_err(|err| {
        tracing::error!(%err, "cannot store a SAML request");
        pages::unavailable()
    })
}

/// The AuthnRequest (SAML Core §3.4.1): answered by HTTP-POST to our ACS, with the NameID format
/// the connection asks for. Always signed: the SP metadata says so.
pub fn authn_request_xml(
    connection: &SamlConnectionRecord,
    urls: &SpUrls,
    id: &str,
    force_authn: bool,
    now: OffsetDateTime,
    signature: &str,
) -> String {
    let policy = match &connection.name_id_format {
        Some(format) => format!("<samlp:NameIDPolicy Format=\"{}\" AllowCreate=\"true\"/>", escape(format)),
        None => "<samlp:NameIDPolicy AllowCreate=\"true\"/>".to_owned(),
    };
    format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
         ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{destination}\" \
         AssertionConsumerServiceURL=\"{acs}\" ProtocolBinding=\"{post}\"{force}>\
         <saml:Issuer>{issuer}</saml:Issuer>{signature}{policy}</samlp:AuthnRequest>",
        id = escape(id),
        instant = xml::instant(now),
        destination = escape(&connection.idp.sso_url),
        acs = escape(&urls.acs),
        post = Binding::POST_URN,
        force = if force_authn { " ForceAuthn=\"true\"" } else { "" },
        issuer = escape(&urls.entity_id),
    )
}

fn send_authn_request(
    state: &AppState,
    connection: &SamlConnectionRecord,
    id: &str,
    relay_state: &str,
    force_authn: bool,
    now: OffsetDateTime,
) -> Response {
    let urls = SpUrls::new(&state.public_url, connection.id);
    let relay_state = (!relay_state.is_empty()).then_some(relay_state);
    let sent = match connection.idp.sso_binding {
        Binding::HttpRedirect => {
            let xml = authn_request_xml(connection, &urls, id, force_authn, now, "");
            xml::redirect_query("SAMLRequest", &xml, relay_state, Some(&connection.sp_signing))
                .map(|query| Redirect::to(&xml::with_query(&connection.idp.sso_url, &query)).into_response())
        }
        Binding::HttpPost => {
            let template = xml::signature_template(id, &connection.sp_signing.certificate_pem);
            let xml = authn_request_xml(connection, &urls, id, force_authn, now, &template);
            xml::sign_enveloped(&xml, &connection.sp_signing).map(|signed| {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(signed);
                auto_post(&connection.idp.sso_url, "SAMLRequest", &encoded, relay_state)
            })
        }
    };
    sent.unwrap_or_else(|err| {
        tracing::error!(%err, connection = %connection.id, "cannot make an AuthnRequest");
        pages::unavailable()
    })
}

/// The HTTP-POST binding: a form the browser submits to `action` (by the one-line script served
/// from this origin, or by the person where scripts are off).
pub fn auto_post(action: &str, parameter: &str, value: &str, relay_state: Option<&str>) -> Response {
    let relay = relay_state.map(|r| pages::hidden("RelayState", r)).unwrap_or_default();
    let body = format!(
        "<form method=\"post\" action=\"{action}\">{message}{relay}\
         <p>Your identity provider is waiting.</p><button type=\"submit\">Continue</button></form>\
         <script src=\"/assets/autopost.js\"></script>",
        action = escape(action),
        message = pages::hidden(parameter, value),
    );
    let mut response = pages::page(StatusCode::OK, "Continuing to sign in", &body);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

pub async fn autopost_script() -> Response {
    let mut response = AUTOPOST_JS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

fn unknown_connection() -> Response {
    pages::error(
        StatusCode::NOT_FOUND,
        "Single sign-on is not available",
        "This organisation's single sign-on is not set up or is switched off. Contact your IT administrator.",
    )
}
