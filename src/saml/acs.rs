//! The Assertion Consumer Service: `POST /sso/saml/{connection}/acs` (HTTP-POST binding).
//!
//! The message is verified (`verify`) and checked (`checks`) off the async threads; then one
//! write transaction marks the request answered and the assertion used, creates a user just in
//! time where allowed, stores the session and issues the app's code (`provider::finish_stored_after`),
//! so that of two posts of the same assertion exactly one signs anybody in. A refusal at any step
//! answers with a page naming the check and leaves an audit record; it changes nothing else.

use std::sync::Arc;

use axum::{
    Extension, Form,
    extract::{Path, State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{
    MAX_POST_BYTES, SpUrls,
    checks::{self, Accepted, Expected},
    mapping::{self, MappedUser, Resolved},
    refusal::{self, Refusal, idp_actor, unavailable},
    verify::{self, Trust},
};
use crate::{
    app::AppState,
    directory::{Change, federated},
    http::{client_ip::ClientIp, middleware::RequestId},
    ids::{AuthRequestId, ConnectionId},
    metrics::SignInMethod,
    provider::{self, Finish, FinishError, FinishFailure, Prelude},
    sessions::{self, SignIn, cookie},
    signin::pages,
    store::{
        StoreError, WriteTx,
        audit::{self, AuditRecord},
        journal::Subject,
        oauth_clients,
        saml::{self, Answering, PendingRequest, SamlConnectionRecord},
        sessions::{self as stored_sessions, IdpSession},
        tenants::{self, TenantRecord, TenantStatus},
    },
};

#[derive(Debug, Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// Who posted, for the session and the audit trail.
struct Poster {
    ip: String,
    user_agent: Option<String>,
    trace: RequestId,
}

/// A refusal and what is known of the message it refused, for the audit record.
struct Refused {
    refusal: Refusal,
    connection: Option<SamlConnectionRecord>,
    detail: serde_json::Value,
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Refused { refusal, connection: None, detail: json!({}) }
    }
}

pub async fn consume(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Extension(trace): Extension<RequestId>,
    form: Result<Form<AcsForm>, FormRejection>,
) -> Response {
    let poster = Poster {
        ip: client.to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect()),
        trace,
    };
    let relay_state = form.as_ref().ok().and_then(|Form(f)| f.relay_state.clone());
    match accept(&state, &connection, form, &poster).await {
        Ok(response) => response,
        Err(mut refused) => {
            if let (Some(connection), Some(relay)) = (&refused.connection, relay_state) {
                report_refused_test(&state, connection, relay, &refused.refusal).await;
            }
            if let Some(fields) = refused.detail.as_object_mut() {
                fields.insert("ip".into(), json!(poster.ip));
                fields.insert("user_agent".into(), json!(poster.user_agent));
            }
            let (refusal, connection) = (&refused.refusal, refused.connection.as_ref());
            match refusal {
                Refusal::Unavailable => state.metrics.sign_in_failed(SignInMethod::Saml),
                _ => state.metrics.sign_in_refused(SignInMethod::Saml, refusal.code()),
            }
            refusal::record(
                &state,
                "sso.saml.refused",
                refusal,
                connection,
                refused.detail.clone(),
                &poster.trace.0,
            )
            .await;
            refused.refusal.page(&poster.trace.0)
        }
    }
}

async fn accept(
    state: &AppState,
    connection: &str,
    form: Result<Form<AcsForm>, FormRejection>,
    poster: &Poster,
) -> Result<Response, Refused> {
    let Form(form) = form.map_err(|rejection| match rejection {
        FormRejection::BytesRejection(_) => Refusal::TooLarge { limit: MAX_POST_BYTES },
        _ => Refusal::Malformed("the post carries no SAMLResponse".into()),
    })?;
    let connection = load_connection(state, connection).await?;
    let with_context = |refusal: Refusal, detail: serde_json::Value| Refused {
        refusal,
        connection: Some(connection.clone()),
        detail,
    };
    let xml = decode(&form.saml_response).map_err(|r| with_context(r, json!({})))?;
    let now = state.clock.now();
    let accepted =
        verify_and_check(state, &connection, xml, now).await.map_err(|r| with_context(r, json!({})))?;
    let detail = accepted_detail(&accepted, form.relay_state.as_deref());
    let outcome = match accepted.in_response_to.clone() {
        Some(answered) => answer(state, &connection, &answered, accepted, poster, now).await,
        None if !connection.enabled => Err(Refusal::ConnectionDisabled),
        None if connection.allow_idp_initiated => {
            unsolicited(state, &connection, accepted, poster, now).await
        }
        None => Err(Refusal::Unsolicited),
    };
    outcome.map_err(|refusal| with_context(refusal, detail))
}

async fn load_connection(state: &AppState, reference: &str) -> Result<SamlConnectionRecord, Refused> {
    let id: ConnectionId = reference.parse().map_err(|_| Refusal::UnknownConnection)?;
    let found = state
        .store
        .read(move |tx| {
            let connection = saml::connection(tx, id)?;
            let tenant = connection.as_ref().map(|c| tenants::get(tx, c.tenant)).transpose()?.flatten();
            Ok::<_, StoreError>((connection, tenant))
        })
        .await
        .map_err(|err| {
            tracing::error!(%err, "cannot read a SAML connection");
            Refusal::Unavailable
        })?;
    let (Some(connection), Some(tenant)) = found else {
        return Err(Refusal::UnknownConnection.into());
    };
    // A disabled connection is refused once the message is known not to answer a test: a setup
    // wizard tests a connection before enabling it.
    let refusal = if tenant.status != TenantStatus::Active {
        Some(Refusal::TenantSuspended)
    } else if connection.idp.signing_certificates.is_empty() {
        Some(Refusal::NoIdpCertificate)
    } else {
        None
    };
    match refusal {
        Some(refusal) => Err(Refused { refusal, connection: Some(connection), detail: json!({}) }),
        None => Ok(connection),
    }
}

/// Base64 (IdPs wrap lines) of UTF-8.
fn decode(encoded: &str) -> Result<String, Refusal> {
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes =
        STANDARD.decode(compact).map_err(|_| Refusal::Malformed("SAMLResponse is not base64".into()))?;
    String::from_utf8(bytes).map_err(|_| Refusal::Malformed("SAMLResponse is not UTF-8".into()))
}

/// Signature, decryption and the stateless checks, on a blocking thread: they are CPU work, and
/// a panic in the XML libraries must cost this request only.
async fn verify_and_check(
    state: &AppState,
    connection: &SamlConnectionRecord,
    xml: String,
    now: OffsetDateTime,
) -> Result<Accepted, Refusal> {
    let urls = SpUrls::new(&state.public_url, connection.id);
    let (connection, runtime) = (connection.clone(), Arc::clone(&state.saml));
    let work = tokio::task::spawn_blocking(move || {
        let compiled = runtime.trust(&connection).map_err(|_| Refusal::DecryptionFailed)?;
        let trust = Trust {
            certificates: &compiled.certificates,
            allow_sha1: connection.allow_sha1,
            decryption_keys: &compiled.decryption_keys,
        };
        let verified = verify::verify_response(&xml, &trust)?;
        let expected = Expected {
            acs_url: &urls.acs,
            sp_entity_id: &urls.entity_id,
            idp_entity_id: &connection.idp.entity_id,
            skew: Duration::seconds(i64::from(connection.clock_skew_secs)),
            now,
        };
        checks::check(&verified, &expected)
    });
    work.await.unwrap_or_else(|_| Err(Refusal::Malformed("the message could not be processed".into())))
}

fn accepted_detail(accepted: &Accepted, relay_state: Option<&str>) -> serde_json::Value {
    json!({
        "assertion_id": accepted.assertion_id,
        "in_response_to": accepted.in_response_to,
        "name_id": accepted.name_id,
        "session_index": accepted.session_index,
        "relay_state_present": relay_state.is_some_and(|r| !r.is_empty()),
    })
}

/// A Response to a request Portcullis sent: a login for the app, or an admin's test.
async fn answer(
    state: &AppState,
    connection: &SamlConnectionRecord,
    answered: &str,
    accepted: Accepted,
    poster: &Poster,
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let (request_id, connection_id, assertion_id) =
        (answered.to_owned(), connection.id, accepted.assertion_id.clone());
    let (pending, seen) = state
        .store
        .read(move |tx| {
            Ok::<_, StoreError>((
                saml::request(tx, &request_id)?,
                saml::assertion_seen(tx, connection_id, &assertion_id)?,
            ))
        })
        .await
        .map_err(unavailable)?;
    let pending = pending_for(pending, connection, now)?;
    if seen {
        return Err(Refusal::Replayed);
    }
    let mapped = mapping::map(&accepted, &connection.attribute_mapping);
    if pending.test {
        return test_result(state, connection, answered, accepted, mapped, poster, now).await;
    }
    if !connection.enabled {
        return Err(Refusal::ConnectionDisabled);
    }
    let authorization = pending.authorization.ok_or(Refusal::UnknownRequest)?;
    let (tenant, resolved) = resolve_user(state, connection, &accepted, &mapped, now).await?;
    let session = sessions::new_session(sign_in(connection, &accepted, &resolved, poster), &tenant, now);
    let prelude =
        one_time_work(connection, Some(answered.to_owned()), &accepted, (&resolved, &mapped), poster, now);
    finish(state, authorization, Finish::New(session), prelude, poster).await
}

/// The request a Response answers, if it may: ours, for this connection, unexpired, unanswered.
fn pending_for(
    pending: Option<PendingRequest>,
    connection: &SamlConnectionRecord,
    now: OffsetDateTime,
) -> Result<PendingRequest, Refusal> {
    match pending {
        None => Err(Refusal::UnknownRequest),
        Some(p) if p.answered_at.is_some() => Err(Refusal::RequestAlreadyAnswered),
        Some(p) if p.connection != connection.id => Err(Refusal::RequestOfAnotherConnection),
        Some(p) if p.expires_at <= now => Err(Refusal::Expired(super::xml::instant(p.expires_at))),
        Some(p) => Ok(p),
    }
}

async fn resolve_user(
    state: &AppState,
    connection: &SamlConnectionRecord,
    accepted: &Accepted,
    mapped: &MappedUser,
    now: OffsetDateTime,
) -> Result<(TenantRecord, Resolved), Refusal> {
    let (tenant_id, jit) = (connection.tenant, connection.jit_provisioning);
    let (accepted, mapped) = (accepted.clone(), mapped.clone());
    let (tenant, resolved) = state
        .store
        .read(move |tx| {
            let tenant = tenants::get(tx, tenant_id)?;
            Ok::<_, StoreError>((tenant, mapping::resolve(tx, tenant_id, &accepted, &mapped, jit, now)?))
        })
        .await
        .map_err(unavailable)?;
    let tenant = tenant.filter(|t| t.status == TenantStatus::Active).ok_or(Refusal::TenantSuspended)?;
    Ok((tenant, resolved?))
}

fn sign_in(
    connection: &SamlConnectionRecord,
    accepted: &Accepted,
    resolved: &Resolved,
    poster: &Poster,
) -> SignIn {
    SignIn {
        tenant: connection.tenant,
        user: resolved.user().id,
        amr: vec!["fed".into()],
        idp: format!("saml:{}", connection.id),
        idp_session_ends_at: accepted.session_not_on_or_after,
        idp_session: Some(IdpSession {
            name_id: accepted.name_id.clone(),
            name_id_format: accepted.name_id_format.clone(),
            session_index: accepted.session_index.clone(),
        }),
        user_agent: poster.user_agent.clone(),
        ip: Some(poster.ip.clone()),
    }
}

/// What must commit with the sign-in: the request answered, the assertion used, the new user,
/// the user and tenant still active. Checked again here, in the transaction, because two posts of
/// one assertion may race, and so may a SCIM deactivation.
fn one_time_work(
    connection: &SamlConnectionRecord,
    answered: Option<String>,
    accepted: &Accepted,
    (resolved, mapped): (&Resolved, &MappedUser),
    poster: &Poster,
    now: OffsetDateTime,
) -> Prelude<Refusal> {
    let claims = mapped.sign_in_claims();
    let (connection_id, tenant) = (connection.id, connection.tenant);
    let (assertion_id, remember_until) = (accepted.assertion_id.clone(), accepted.remember_until);
    let new_user = match resolved {
        Resolved::New(user) => Some(user.clone()),
        Resolved::Existing(_) => None,
    };
    let change = Change {
        tenant,
        actor: idp_actor(connection_id),
        channel: "sso",
        request_id: Some(poster.trace.0.clone()),
        now,
    };
    let detail = json!({ "connection": connection_id, "assertion_id": assertion_id, "session_index": accepted.session_index });
    let user_id = resolved.user().id;
    Arc::new(move |tx: &WriteTx<'_>| {
        if let Some(request) = &answered {
            match saml::answer_request(tx, request, now)? {
                Answering::Answered(p) if p.connection == connection_id => {}
                Answering::Answered(_) => {
                    return Err(FinishError::Refused(Refusal::RequestOfAnotherConnection));
                }
                Answering::AlreadyAnswered(_) => {
                    return Err(FinishError::Refused(Refusal::RequestAlreadyAnswered));
                }
                Answering::Unknown => return Err(FinishError::Refused(Refusal::UnknownRequest)),
            }
        }
        if !saml::mark_assertion_seen(tx, connection_id, &assertion_id, remember_until)? {
            return Err(FinishError::Refused(Refusal::Replayed));
        }
        federated::admit(tx, &change, new_user.as_ref(), user_id, Some(&claims))?
            .map_err(|refused| FinishError::Refused(refused.into()))?;
        let subject = Subject { kind: "user".into(), id: user_id.to_string(), label: None };
        change.audit(tx, "saml.login", subject, detail.clone())?;
        Ok(())
    })
}

async fn finish(
    state: &AppState,
    authorization: AuthRequestId,
    how: Finish,
    prelude: Prelude<Refusal>,
    poster: &Poster,
) -> Result<Response, Refusal> {
    let finished =
        provider::finish_stored_after(state, authorization, how, Some(prelude), poster.trace.clone()).await;
    state.metrics.sign_in_finished(SignInMethod::Saml, &finished);
    match finished {
        Ok(response) => Ok(response),
        Err(FinishFailure { error: FinishError::Refused(refusal), .. }) => Err(refusal),
        Err(FinishFailure { response, .. }) => Ok(response),
    }
}

/// IdP-initiated login: a session, then the app is asked to start a login for the tenant
/// (OpenID Connect third-party initiated login), which the session answers at once.
async fn unsolicited(
    state: &AppState,
    connection: &SamlConnectionRecord,
    accepted: Accepted,
    poster: &Poster,
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let mapped = mapping::map(&accepted, &connection.attribute_mapping);
    let (tenant, resolved) = resolve_user(state, connection, &accepted, &mapped, now).await?;
    let session = sessions::new_session(sign_in(connection, &accepted, &resolved, poster), &tenant, now);
    let prelude = one_time_work(connection, None, &accepted, (&resolved, &mapped), poster, now);
    let record = session.record.clone();
    let client = state
        .store
        .write(move |tx| {
            prelude(tx)?;
            stored_sessions::put(tx, &record)?;
            Ok::<_, FinishError<Refusal>>(
                oauth_clients::all(tx)?.into_iter().find_map(|c| c.initiate_login_uri),
            )
        })
        .await
        .map_err(|err| match err {
            FinishError::Refused(refusal) => refusal,
            FinishError::Store(err) => unavailable(err),
            _ => Refusal::Unavailable,
        })?;
    state.metrics.signed_in(SignInMethod::Saml);
    let mut response = match client {
        Some(uri) => {
            let issuer = state.public_url.to_string();
            provider::redirect_with(&uri, &[("iss", issuer.as_str()), ("organization", tenant.slug.as_str())])
        }
        None => pages::page(
            StatusCode::OK,
            "You are signed in",
            &format!(
                "<p>You are signed in to {}. Open the application to continue.</p>",
                pages::escape(&tenant.display_name)
            ),
        ),
    };
    let secure = state.secure_cookies();
    if let Some(set) = cookie::set(
        cookie::session_name(secure),
        &session.cookie_value,
        Some(session.record.expires_at - now),
        secure,
    ) {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    Ok(response)
}

/// A Response refused for a connection test (RelayState names the test): the test ends with
/// the check that failed, so the admin who started it sees why where they wait, not only in the
/// IdP's tab. RelayState is not signed, so this records a failure and never a success, and only
/// for an unanswered test of this very connection.
async fn report_refused_test(
    state: &AppState,
    connection: &SamlConnectionRecord,
    relay_state: String,
    refusal: &Refusal,
) {
    let now = state.clock.now();
    let connection_id = connection.id;
    let result = json!({
        "ok": false, "stage": "message", "check": refusal.code(), "reason": refusal.to_string(),
        "at": super::xml::instant(now),
    });
    let recorded = state
        .store
        .write(move |tx| {
            let is_open_test = saml::request(tx, &relay_state)?
                .is_some_and(|p| p.test && p.connection == connection_id && p.answered_at.is_none());
            if is_open_test {
                saml::answer_request(tx, &relay_state, now)?;
                saml::record_test_result(tx, &relay_state, result.clone())?;
            }
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(err) = recorded {
        tracing::error!(%err, "cannot record a refused connection test");
    }
}

/// An admin's connection test: everything checked, nothing signed in. The outcome is shown and
/// kept with the test request for the admin API.
async fn test_result(
    state: &AppState,
    connection: &SamlConnectionRecord,
    answered: &str,
    accepted: Accepted,
    mapped: MappedUser,
    poster: &Poster,
    now: OffsetDateTime,
) -> Result<Response, Refusal> {
    let resolution = resolve_user(state, connection, &accepted, &mapped, now).await;
    let user = match &resolution {
        Ok((_, resolved)) => resolved.test_view(),
        Err(refusal) => {
            json!({ "outcome": "refused", "check": refusal.code(), "reason": refusal.to_string() })
        }
    };
    let result = json!({
        "ok": resolution.is_ok(),
        "name_id": accepted.name_id, "name_id_format": accepted.name_id_format,
        "session_index": accepted.session_index, "attributes": accepted.attributes,
        "mapped": mapped, "user": user, "at": super::xml::instant(now),
    });
    let (request, stored, connection_id, tenant) =
        (answered.to_owned(), result.clone(), connection.id, connection.tenant);
    let failed_check = resolution.as_ref().err().map(Refusal::code);
    let trace = poster.trace.0.clone();
    state
        .store
        .write(move |tx| {
            if !matches!(saml::answer_request(tx, &request, now)?, Answering::Answered(_)) {
                return Ok(false);
            }
            saml::record_test_result(tx, &request, stored.clone())?;
            let record = AuditRecord::new(
                Some(tenant),
                idp_actor(connection_id),
                "sso.saml.test",
                Some(Subject { kind: "saml_connection".into(), id: connection_id.to_string(), label: None }),
                stored.clone(),
                now,
                Some(trace.clone()),
            );
            audit::append(
                tx,
                match failed_check {
                    Some(check) => record.refused(check),
                    None => record,
                },
            )?;
            Ok::<_, StoreError>(true)
        })
        .await
        .map_err(unavailable)?
        .then_some(())
        .ok_or(Refusal::RequestAlreadyAnswered)?;
    Ok(pages::connection_test("SAML connection test", &result))
}
