//! Tenants' SAML connections in the admin API (`/api/v1/tenants/{tenant}/saml-connections`), the
//! public SP metadata (`/sso/saml/{connection}/metadata`), and connection tests.
//!
//! A connection is made with its own SP key pairs (signing, encryption); its IdP side is filled
//! from uploaded metadata (`idp_metadata` in JSON, or the raw XML PUT to `…/idp-metadata`) or by
//! hand. It can be saved incomplete, as a setup wizard goes, but not enabled until it has an IdP
//! entity ID, a sign-on URL and a signing certificate.

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    middleware::from_extractor_with_state,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{
    SpUrls,
    metadata::{self, IdpMetadata, MetadataError},
    metadata_source::{self, DEFAULT_REFRESH_HOURS},
    sp_cert, xml,
};
use crate::{
    admin::{AdminAuth, AdminChange},
    app::AppState,
    http::{ApiError, ApiJson, middleware::RequestId},
    ids::ConnectionId,
    store::{
        StoreError,
        journal::Subject,
        saml::{
            self, AttributeMapping, Binding, IdpSettings, MetadataSource, PendingRequest,
            SamlConnectionRecord, SpKeys,
        },
        tenants::TenantRecord,
    },
    tenants::resolve,
};

const DEFAULT_SKEW_SECS: u32 = 120;
const MAX_SKEW_SECS: u32 = 600;
const MAX_CERTIFICATES: usize = 5;
const MAX_REFRESH_HOURS: u32 = 24 * 7;
const NAME_ID_FORMATS: [&str; 5] = [
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos",
];

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tenants/{tenant}/saml-connections", get(list).post(create))
        .route("/tenants/{tenant}/saml-connections/{id}", get(show).patch(update).delete(remove))
        .route("/tenants/{tenant}/saml-connections/{id}/idp-metadata", axum::routing::put(upload_metadata))
        .route("/tenants/{tenant}/saml-connections/{id}/idp-metadata/refresh", post(refresh_metadata))
        .route("/tenants/{tenant}/saml-connections/{id}/sp-metadata", get(admin_sp_metadata))
        .route("/tenants/{tenant}/saml-connections/{id}/sp-keys", post(prepare_rotation))
        .route("/tenants/{tenant}/saml-connections/{id}/sp-keys/activate", post(activate_rotation))
        .route("/tenants/{tenant}/saml-connections/{id}/sp-keys/previous", axum::routing::delete(end_overlap))
        .route("/tenants/{tenant}/saml-connections/{id}/tests", post(start_test))
        .route("/tenants/{tenant}/saml-connections/{id}/tests/{test}", get(show_test))
        .route_layer(from_extractor_with_state::<AdminAuth, _>(state))
}

// ---- views ----

#[derive(Debug, Serialize)]
struct CertificateView {
    /// Base64 DER, as metadata carries it.
    certificate: String,
    sha256_fingerprint: String,
    not_after: Option<String>,
}

fn certificate_view(base64_der: &str) -> CertificateView {
    let der = STANDARD.decode(base64_der).unwrap_or_default();
    CertificateView {
        certificate: base64_der.to_owned(),
        sha256_fingerprint: hex::encode_upper(Sha256::digest(der)),
        not_after: metadata::certificate_not_after(base64_der),
    }
}

#[derive(Debug, Serialize)]
struct IdpView {
    entity_id: String,
    sso_url: String,
    sso_binding: Binding,
    slo_url: Option<String>,
    slo_binding: Binding,
    signing_certificates: Vec<CertificateView>,
    wants_signed_requests: bool,
}

/// What the IdP admin needs from us: every value to paste, and the certificates.
#[derive(Debug, Serialize)]
struct SpView {
    entity_id: String,
    acs_url: String,
    slo_url: String,
    metadata_url: String,
    signing_certificate: String,
    encryption_certificate: String,
    /// During a rotation: the keys published beside the current ones, to take up at the IdP.
    next: Option<SpKeysView>,
    /// After a rotation: the replaced keys are still decrypted with until the overlap ends.
    #[serde(with = "time::serde::rfc3339::option")]
    previous_replaced_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize)]
struct SpKeysView {
    signing_certificate: String,
    encryption_certificate: String,
    #[serde(with = "time::serde::rfc3339")]
    prepared_at: OffsetDateTime,
}

#[derive(Debug, Serialize)]
struct ConnectionView {
    id: ConnectionId,
    tenant: crate::ids::TenantId,
    name: String,
    enabled: bool,
    /// What is missing before it can be enabled; empty when complete.
    missing: Vec<&'static str>,
    idp: IdpView,
    sp: SpView,
    name_id_format: Option<String>,
    attribute_mapping: AttributeMapping,
    allow_idp_initiated: bool,
    jit_provisioning: bool,
    clock_skew_secs: u32,
    allow_sha1: bool,
    metadata_certificate: Option<CertificateView>,
    metadata_source: Option<SourceView>,
    #[serde(with = "time::serde::rfc3339::option")]
    metadata_valid_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize)]
struct SourceView {
    url: String,
    refresh_hours: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    fetched_at: Option<OffsetDateTime>,
    /// Why the last refresh failed; the connection keeps the settings of the last good one.
    last_error: Option<String>,
}

fn view(connection: &SamlConnectionRecord, public_url: &str) -> ConnectionView {
    let urls = SpUrls::new(public_url, connection.id);
    let idp = &connection.idp;
    ConnectionView {
        id: connection.id,
        tenant: connection.tenant,
        name: connection.name.clone(),
        enabled: connection.enabled,
        missing: missing(idp),
        idp: IdpView {
            entity_id: idp.entity_id.clone(),
            sso_url: idp.sso_url.clone(),
            sso_binding: idp.sso_binding,
            slo_url: idp.slo_url.clone(),
            slo_binding: idp.slo_binding,
            signing_certificates: idp.signing_certificates.iter().map(|c| certificate_view(c)).collect(),
            wants_signed_requests: idp.wants_signed_requests,
        },
        sp: SpView {
            metadata_url: urls.entity_id.clone(),
            entity_id: urls.entity_id,
            acs_url: urls.acs,
            slo_url: urls.slo,
            signing_certificate: connection.sp_signing.certificate_pem.clone(),
            encryption_certificate: connection.sp_encryption.certificate_pem.clone(),
            next: connection.sp_next.as_ref().map(|keys| SpKeysView {
                signing_certificate: keys.signing.certificate_pem.clone(),
                encryption_certificate: keys.encryption.certificate_pem.clone(),
                prepared_at: keys.since,
            }),
            previous_replaced_at: connection.sp_previous.as_ref().map(|keys| keys.since),
        },
        name_id_format: connection.name_id_format.clone(),
        attribute_mapping: connection.attribute_mapping.clone(),
        allow_idp_initiated: connection.allow_idp_initiated,
        jit_provisioning: connection.jit_provisioning,
        clock_skew_secs: connection.clock_skew_secs,
        allow_sha1: connection.allow_sha1,
        metadata_certificate: connection.metadata_certificate.as_deref().map(certificate_view),
        metadata_source: connection.metadata_source.as_ref().map(|s| SourceView {
            url: s.url.clone(),
            refresh_hours: s.refresh_hours,
            fetched_at: s.fetched_at,
            last_error: s.last_error.clone(),
        }),
        metadata_valid_until: connection.metadata_valid_until,
        created_at: connection.created_at,
        updated_at: connection.updated_at,
    }
}

fn missing(idp: &IdpSettings) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if idp.entity_id.is_empty() {
        missing.push("idp.entity_id");
    }
    if idp.sso_url.is_empty() {
        missing.push("idp.sso_url");
    }
    if idp.signing_certificates.is_empty() {
        missing.push("idp.signing_certificates");
    }
    missing
}

/// What the audit trail keeps of a connection: settings and certificate fingerprints, never keys.
fn audited(connection: &SamlConnectionRecord) -> serde_json::Value {
    let fingerprints: Vec<String> =
        connection.idp.signing_certificates.iter().map(|c| certificate_view(c).sha256_fingerprint).collect();
    json!({
        "name": connection.name, "enabled": connection.enabled,
        "idp_entity_id": connection.idp.entity_id, "sso_url": connection.idp.sso_url,
        "sso_binding": connection.idp.sso_binding, "slo_url": connection.idp.slo_url,
        "idp_certificates": fingerprints, "name_id_format": connection.name_id_format,
        "attribute_mapping": connection.attribute_mapping, "allow_idp_initiated": connection.allow_idp_initiated,
        "jit_provisioning": connection.jit_provisioning, "clock_skew_secs": connection.clock_skew_secs,
        "allow_sha1": connection.allow_sha1,
        "metadata_url": connection.metadata_source.as_ref().map(|s| &s.url),
    })
}

fn subject(connection: &SamlConnectionRecord) -> Subject {
    Subject {
        kind: "saml_connection".into(),
        id: connection.id.to_string(),
        label: Some(connection.name.clone()),
    }
}

// ---- settings ----

/// The IdP side, entered by hand; on PATCH each field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdpInput {
    entity_id: Option<String>,
    sso_url: Option<String>,
    sso_binding: Option<Binding>,
    #[serde(default, deserialize_with = "crate::http::present")]
    slo_url: Option<Option<String>>,
    slo_binding: Option<Binding>,
    signing_certificates: Option<Vec<String>>,
    wants_signed_requests: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    name: Option<String>,
    enabled: Option<bool>,
    /// IdP metadata XML: fills `idp` (and the NameID format, if none is set).
    idp_metadata: Option<String>,
    /// Where to fetch the IdP metadata from, now and every `metadata_refresh_hours`; null stops.
    #[serde(default, deserialize_with = "crate::http::present")]
    metadata_url: Option<Option<String>>,
    metadata_refresh_hours: Option<u32>,
    idp: Option<IdpInput>,
    #[serde(default, deserialize_with = "crate::http::present")]
    metadata_certificate: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::present")]
    name_id_format: Option<Option<String>>,
    attribute_mapping: Option<AttributeMapping>,
    allow_idp_initiated: Option<bool>,
    jit_provisioning: Option<bool>,
    clock_skew_secs: Option<u32>,
    allow_sha1: Option<bool>,
}

impl Settings {
    /// Fetches the metadata of a new `metadata_url` and sets the schedule; the rest is `apply`'s.
    async fn apply_source(
        &mut self,
        connection: &mut SamlConnectionRecord,
        now: OffsetDateTime,
    ) -> Result<(), ApiError> {
        let hours = self.metadata_refresh_hours.take();
        if let Some(hours) = hours {
            if !(1..=MAX_REFRESH_HOURS).contains(&hours) {
                return Err(ApiError::invalid(
                    "metadata_refresh_hours",
                    format!("must be 1 to {MAX_REFRESH_HOURS}"),
                ));
            }
            if let Some(source) = &mut connection.metadata_source {
                source.refresh_hours = hours;
            }
        }
        match self.metadata_url.take() {
            None => {}
            Some(None) => connection.metadata_source = None,
            Some(Some(url)) => {
                let url = check_url("metadata_url", &url)?;
                let read = metadata_source::fetch_for(connection, &url, now)
                    .await
                    .map_err(|err| ApiError::invalid("metadata_url", err.to_string()))?;
                apply_metadata(connection, read);
                connection.metadata_source = Some(MetadataSource {
                    url,
                    refresh_hours: hours.unwrap_or(DEFAULT_REFRESH_HOURS),
                    fetched_at: Some(now),
                    last_error: None,
                });
            }
        }
        Ok(())
    }

    /// Applies the settings given to `connection`, checking each.
    fn apply(self, connection: &mut SamlConnectionRecord, now: OffsetDateTime) -> Result<(), ApiError> {
        if let Some(name) = self.name {
            connection.name = crate::text::label(&name, 100).map_err(|m| ApiError::invalid("name", m))?;
        }
        if let Some(pinned) = self.metadata_certificate {
            connection.metadata_certificate = pinned
                .map(|c| metadata::normalise_certificate(&c))
                .transpose()
                .map_err(|m| ApiError::invalid("metadata_certificate", m))?;
        }
        if let Some(document) = self.idp_metadata {
            let read = read_metadata(connection, &document, now)
                .map_err(|e| ApiError::invalid("idp_metadata", e.to_string()))?;
            apply_metadata(connection, read);
        }
        if let Some(idp) = self.idp {
            idp.apply(&mut connection.idp)?;
        }
        if let Some(format) = self.name_id_format {
            connection.name_id_format = format.map(check_name_id_format).transpose()?;
        }
        if let Some(mapping) = self.attribute_mapping {
            connection.attribute_mapping = check_mapping(mapping)?;
        }
        if let Some(skew) = self.clock_skew_secs {
            if skew > MAX_SKEW_SECS {
                return Err(ApiError::invalid(
                    "clock_skew_secs",
                    format!("must be 0 to {MAX_SKEW_SECS} seconds"),
                ));
            }
            connection.clock_skew_secs = skew;
        }
        connection.allow_idp_initiated = self.allow_idp_initiated.unwrap_or(connection.allow_idp_initiated);
        connection.jit_provisioning = self.jit_provisioning.unwrap_or(connection.jit_provisioning);
        connection.allow_sha1 = self.allow_sha1.unwrap_or(connection.allow_sha1);
        connection.enabled = self.enabled.unwrap_or(connection.enabled);
        let missing = missing(&connection.idp);
        if connection.enabled && !missing.is_empty() {
            return Err(ApiError::invalid(
                "enabled",
                format!("the connection cannot be enabled before it has {}", missing.join(", ")),
            ));
        }
        Ok(())
    }
}

impl IdpInput {
    fn apply(self, idp: &mut IdpSettings) -> Result<(), ApiError> {
        if let Some(entity_id) = self.entity_id {
            let entity_id = entity_id.trim().to_owned();
            if entity_id.is_empty() || entity_id.len() > 1024 {
                return Err(ApiError::invalid("idp.entity_id", "must be 1 to 1024 characters"));
            }
            idp.entity_id = entity_id;
        }
        if let Some(url) = self.sso_url {
            idp.sso_url = check_url("idp.sso_url", &url)?;
        }
        if let Some(slo) = self.slo_url {
            idp.slo_url = slo.map(|u| check_url("idp.slo_url", &u)).transpose()?;
        }
        idp.sso_binding = self.sso_binding.unwrap_or(idp.sso_binding);
        idp.slo_binding = self.slo_binding.unwrap_or(idp.slo_binding);
        idp.wants_signed_requests = self.wants_signed_requests.unwrap_or(idp.wants_signed_requests);
        if let Some(certificates) = self.signing_certificates {
            if certificates.len() > MAX_CERTIFICATES {
                return Err(ApiError::invalid(
                    "idp.signing_certificates",
                    format!("at most {MAX_CERTIFICATES}"),
                ));
            }
            let mut checked: Vec<String> = Vec::new();
            for (index, certificate) in certificates.iter().enumerate() {
                let normalised = metadata::normalise_certificate(certificate).map_err(|m| {
                    ApiError::invalid("idp.signing_certificates", format!("certificate {}: {m}", index + 1))
                })?;
                if !checked.contains(&normalised) {
                    checked.push(normalised);
                }
            }
            idp.signing_certificates = checked;
        }
        Ok(())
    }
}

/// An IdP address: HTTPS, or HTTP to this machine (a test IdP).
fn check_url(field: &'static str, value: &str) -> Result<String, ApiError> {
    metadata_source::check_url(value).map_err(|message| ApiError::invalid(field, message))
}

fn check_name_id_format(format: String) -> Result<String, ApiError> {
    if NAME_ID_FORMATS.contains(&format.as_str()) {
        Ok(format)
    } else {
        Err(ApiError::invalid("name_id_format", format!("must be one of {}", NAME_ID_FORMATS.join(", "))))
    }
}

fn check_mapping(mapping: AttributeMapping) -> Result<AttributeMapping, ApiError> {
    let names = [
        &mapping.email,
        &mapping.given_name,
        &mapping.family_name,
        &mapping.display_name,
        &mapping.groups,
        &mapping.department,
    ];
    let too_long = |s: &String| s.is_empty() || s.len() > 512;
    if names.into_iter().flatten().any(too_long) || mapping.custom.values().any(too_long) {
        return Err(ApiError::invalid("attribute_mapping", "attribute names must be 1 to 512 characters"));
    }
    if mapping.custom.len() > 50 || mapping.custom.keys().any(|k| crate::text::label(k, 64).is_err()) {
        return Err(ApiError::invalid(
            "attribute_mapping",
            "at most 50 custom fields, each named in 1 to 64 characters",
        ));
    }
    Ok(mapping)
}

/// Reads IdP metadata for `connection`: a signature must verify against the pinned metadata
/// certificate, or else the IdP certificates the connection already trusts.
fn read_metadata(
    connection: &SamlConnectionRecord,
    document: &str,
    now: OffsetDateTime,
) -> Result<IdpMetadata, MetadataError> {
    let trusted: Vec<String> = match &connection.metadata_certificate {
        Some(pinned) => vec![pinned.clone()],
        None => connection.idp.signing_certificates.clone(),
    };
    metadata::parse_idp(document, &metadata::certificates_der(&trusted), now)
}

fn apply_metadata(connection: &mut SamlConnectionRecord, read: IdpMetadata) {
    connection.idp = read.settings;
    connection.metadata_valid_until = read.valid_until;
    if connection.name_id_format.is_none() {
        connection.name_id_format =
            read.name_id_formats.into_iter().find(|f| NAME_ID_FORMATS.contains(&f.as_str()));
    }
}

/// A new signing and encryption key pair for the SP, named after the tenant.
async fn new_sp_keys(slug: &str, now: OffsetDateTime) -> Result<SpKeys, ApiError> {
    let slug = slug.to_owned();
    let made = tokio::task::spawn_blocking(move || {
        Ok::<_, sp_cert::CertificateError>(SpKeys {
            signing: sp_cert::generate(&format!("Portcullis SAML {slug} signing"), now)?,
            encryption: sp_cert::generate(&format!("Portcullis SAML {slug} encryption"), now)?,
            since: now,
        })
    });
    made.await
        .map_err(|_| ApiError::Internal("key generation failed".into()))?
        .map_err(|err| ApiError::Internal(err.to_string()))
}

// ---- handlers ----

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("the tenant has no SAML connection `{id}`"))
}

/// The tenant and its connection `id`.
async fn find(
    state: &AppState,
    reference: String,
    id: &str,
) -> Result<(TenantRecord, SamlConnectionRecord), ApiError> {
    let connection_id: ConnectionId = id.parse().map_err(|_| not_found(id))?;
    let found = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &reference)?;
            let connection = saml::connection(tx, connection_id)?.filter(|c| c.tenant == tenant.id);
            Ok::<_, ApiError>((tenant, connection))
        })
        .await?;
    match found {
        (tenant, Some(connection)) => Ok((tenant, connection)),
        _ => Err(not_found(id)),
    }
}

async fn list(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let connections = state
        .store
        .read(move |tx| {
            let tenant = resolve(tx, &reference)?;
            Ok::<_, ApiError>(saml::tenant_connections(tx, tenant.id)?)
        })
        .await?;
    let items: Vec<ConnectionView> = connections.iter().map(|c| view(c, &state.public_url)).collect();
    Ok(ApiJson(json!({ "items": items })))
}

async fn show(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    Ok(ApiJson(view(&connection, &state.public_url)))
}

async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path(reference): Path<String>,
    ApiJson(settings): ApiJson<Settings>,
) -> Result<(StatusCode, ApiJson<ConnectionView>), ApiError> {
    let now = state.clock.now();
    let lookup = reference.clone();
    let tenant = state.store.read(move |tx| resolve(tx, &lookup)).await?;
    if settings.name.is_none() {
        return Err(ApiError::invalid("name", "is required"));
    }
    let keys = new_sp_keys(&tenant.slug, now).await?;
    let mut connection = SamlConnectionRecord {
        id: ConnectionId::generate(),
        tenant: tenant.id,
        name: String::new(),
        enabled: false,
        idp: IdpSettings::default(),
        name_id_format: None,
        attribute_mapping: AttributeMapping::default(),
        allow_idp_initiated: false,
        jit_provisioning: false,
        clock_skew_secs: DEFAULT_SKEW_SECS,
        allow_sha1: false,
        sp_signing: keys.signing,
        sp_encryption: keys.encryption,
        sp_next: None,
        sp_previous: None,
        metadata_source: None,
        metadata_certificate: None,
        metadata_valid_until: None,
        created_at: now,
        updated_at: now,
    };
    let enable = settings.enabled;
    let mut settings = settings;
    settings.apply_source(&mut connection, now).await?;
    settings.apply(&mut connection, now)?;
    // Complete settings made in one call are enabled unless told otherwise.
    if enable.is_none() && missing(&connection.idp).is_empty() {
        connection.enabled = true;
    }
    let change = AdminChange::new(auth, &request, now);
    let stored = connection.clone();
    state
        .store
        .write(move |tx| {
            saml::put_connection(tx, &stored)?;
            change.audit(
                tx,
                Some(stored.tenant),
                "saml_connection.create",
                subject(&stored),
                audited(&stored),
            )
        })
        .await?;
    tracing::info!(connection = %connection.id, tenant = %connection.tenant, "SAML connection created");
    Ok((StatusCode::CREATED, ApiJson(view(&connection, &state.public_url))))
}

async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
    ApiJson(settings): ApiJson<Settings>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, current) = find(&state, reference, &id).await?;
    let now = state.clock.now();
    let (mut connection, mut settings) = (current.clone(), settings);
    settings.apply_source(&mut connection, now).await?;
    settings.apply(&mut connection, now)?;
    save(&state, auth, &request, current, connection, now).await
}

/// `PUT …/idp-metadata` with the IdP's metadata XML as the body.
async fn upload_metadata(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, current) = find(&state, reference, &id).await?;
    let document =
        std::str::from_utf8(&body).map_err(|_| ApiError::invalid("idp_metadata", "is not UTF-8"))?;
    let now = state.clock.now();
    let read = read_metadata(&current, document, now)
        .map_err(|e| ApiError::invalid("idp_metadata", e.to_string()))?;
    let mut connection = current.clone();
    apply_metadata(&mut connection, read);
    save(&state, auth, &request, current, connection, now).await
}

/// Fetches the IdP metadata from the connection's URL now, rather than on its schedule.
async fn refresh_metadata(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    if connection.metadata_source.is_none() {
        return Err(ApiError::invalid("metadata_url", "the connection has no metadata URL"));
    }
    let actor = auth.actor();
    let refreshed = metadata_source::refresh(&state, &connection, actor, Some(request.0.clone()))
        .await
        .map_err(|err| ApiError::invalid("metadata_url", err.to_string()))?;
    Ok(ApiJson(view(&refreshed, &state.public_url)))
}

/// Stores a changed connection, audited with its before and after.
async fn save(
    state: &AppState,
    auth: AdminAuth,
    request: &RequestId,
    before: SamlConnectionRecord,
    mut after: SamlConnectionRecord,
    now: OffsetDateTime,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    after.updated_at = now;
    let change = AdminChange::new(auth, request, now);
    let stored = after.clone();
    state
        .store
        .write(move |tx| {
            saml::put_connection(tx, &stored)?;
            let detail = json!({ "before": audited(&before), "after": audited(&stored) });
            change.audit(tx, Some(stored.tenant), "saml_connection.update", subject(&stored), detail)
        })
        .await?;
    Ok(ApiJson(view(&after, &state.public_url)))
}

async fn remove(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    let change = AdminChange::new(auth, &request, state.clock.now());
    state
        .store
        .write(move |tx| {
            if let Some(removed) = saml::delete_connection(tx, connection.id)? {
                change.audit(
                    tx,
                    Some(removed.tenant),
                    "saml_connection.delete",
                    subject(&removed),
                    json!({}),
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn xml_response(document: String) -> Response {
    let mut response = document.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"portcullis-sp-metadata.xml\""),
    );
    response
}

async fn admin_sp_metadata(
    State(state): State<AppState>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    Ok(xml_response(metadata::sp_metadata(&connection, &SpUrls::new(&state.public_url, connection.id))))
}

/// The public SP metadata: what the entity ID resolves to.
pub async fn sp_metadata(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(connection_id) = id.parse::<ConnectionId>() else {
        return ApiError::NotFound("no SAML connection here".into()).into_response();
    };
    match state.store.read(move |tx| saml::connection(tx, connection_id)).await {
        Ok(Some(connection)) => {
            xml_response(metadata::sp_metadata(&connection, &SpUrls::new(&state.public_url, connection.id)))
        }
        Ok(None) => ApiError::NotFound("no SAML connection here".into()).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// The first step of an SP key rotation: new keys, published in the SP metadata beside the
/// current ones and accepted for decryption, while requests are still signed with the current
/// key. The IdP admin uploads the new SP metadata, then the rotation is activated.
async fn prepare_rotation(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<(StatusCode, ApiJson<ConnectionView>), ApiError> {
    let (tenant, current) = find(&state, reference, &id).await?;
    let now = state.clock.now();
    let mut connection = current.clone();
    connection.sp_next = Some(new_sp_keys(&tenant.slug, now).await?);
    let saved =
        save_keys(&state, auth, &request, connection, "saml_connection.sp_keys_prepared", now).await?;
    Ok((StatusCode::CREATED, saved))
}

/// The second step: the next keys sign and are the ones published; the replaced ones are still
/// decrypted with (an IdP may encrypt to the old certificate a while longer).
async fn activate_rotation(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, mut connection) = find(&state, reference, &id).await?;
    let Some(next) = connection.sp_next.take() else {
        return Err(ApiError::Conflict {
            code: "no_rotation",
            field: None,
            message: "there are no next SP keys: prepare a rotation first (POST …/sp-keys)".into(),
        });
    };
    let now = state.clock.now();
    let replaced = SpKeys {
        signing: std::mem::replace(&mut connection.sp_signing, next.signing),
        encryption: std::mem::replace(&mut connection.sp_encryption, next.encryption),
        since: now,
    };
    connection.sp_previous = Some(replaced);
    save_keys(&state, auth, &request, connection, "saml_connection.sp_keys_activated", now).await
}

/// The last step: the replaced keys are forgotten.
async fn end_overlap(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    let (_, mut connection) = find(&state, reference, &id).await?;
    connection.sp_previous = None;
    let now = state.clock.now();
    save_keys(&state, auth, &request, connection, "saml_connection.sp_keys_retired", now).await
}

/// Stores a connection whose SP keys changed, audited with the certificates' fingerprints.
async fn save_keys(
    state: &AppState,
    auth: AdminAuth,
    request: &RequestId,
    mut connection: SamlConnectionRecord,
    action: &'static str,
    now: OffsetDateTime,
) -> Result<ApiJson<ConnectionView>, ApiError> {
    connection.updated_at = now;
    let fingerprint = |pem: &str| certificate_view(&xml::certificate_base64(pem)).sha256_fingerprint;
    let detail = json!({
        "signing": fingerprint(&connection.sp_signing.certificate_pem),
        "encryption": fingerprint(&connection.sp_encryption.certificate_pem),
        "next_signing": connection.sp_next.as_ref().map(|k| fingerprint(&k.signing.certificate_pem)),
        "next_encryption": connection.sp_next.as_ref().map(|k| fingerprint(&k.encryption.certificate_pem)),
        "previous_kept": connection.sp_previous.is_some(),
    });
    let change = AdminChange::new(auth, request, now);
    let stored = connection.clone();
    state
        .store
        .write(move |tx| {
            saml::put_connection(tx, &stored)?;
            change.audit(tx, Some(stored.tenant), action, subject(&stored), detail.clone())
        })
        .await?;
    Ok(ApiJson(view(&connection, &state.public_url)))
}

/// Starts a connection test: the admin opens `start_url` in a browser and signs in at the IdP;
/// the outcome is shown there and kept here (`GET …/tests/{test}`).
async fn start_test(
    State(state): State<AppState>,
    auth: AdminAuth,
    Extension(request): Extension<RequestId>,
    Path((reference, id)): Path<(String, String)>,
) -> Result<(StatusCode, ApiJson<serde_json::Value>), ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    let missing = missing(&connection.idp);
    if !missing.is_empty() {
        return Err(ApiError::invalid(
            "connection",
            format!("the connection needs {} before a test", missing.join(", ")),
        ));
    }
    let now = state.clock.now();
    let test = xml::new_id();
    let pending = PendingRequest {
        connection: connection.id,
        tenant: connection.tenant,
        authorization: None,
        test: true,
        answered_at: None,
        test_result: None,
        created_at: now,
        expires_at: now + state.config.sso_login_lifetime(),
    };
    let change = AdminChange::new(auth, &request, now);
    let stored = (test.clone(), pending.clone());
    state
        .store
        .write(move |tx| {
            saml::put_request(tx, &stored.0, &stored.1)?;
            change.audit(
                tx,
                Some(stored.1.tenant),
                "saml_connection.test",
                subject(&connection),
                json!({ "test": stored.0 }),
            )
        })
        .await?;
    let urls = SpUrls::new(&state.public_url, pending.connection);
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({
            "id": test,
            "start_url": format!("{}?test={test}", urls.start),
            "expires_at": xml::instant(pending.expires_at),
        })),
    ))
}

async fn show_test(
    State(state): State<AppState>,
    Path((reference, id, test)): Path<(String, String, String)>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let (_, connection) = find(&state, reference, &id).await?;
    let lookup = test.clone();
    let pending = state.store.read(move |tx| saml::request(tx, &lookup)).await?;
    match pending.filter(|p| p.test && p.connection == connection.id) {
        Some(p) => Ok(ApiJson(json!({
            "id": test,
            "status": if p.answered_at.is_some() { "done" } else { "waiting" },
            "result": p.test_result,
        }))),
        None => Err(ApiError::NotFound(format!("no test `{test}` (tests are kept for 30 minutes)"))),
    }
}
