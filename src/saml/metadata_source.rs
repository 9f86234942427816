//! IdP metadata fetched from a URL: at once when the URL is set, then on the connection's
//! schedule (every `refresh_hours`), so that an IdP's certificate rotation reaches Portcullis
//! without anybody uploading anything.
//!
//! A refresh is trusted like an upload: a signed document must verify against the pinned
//! metadata certificate or the IdP certificates already trusted. A change of the signing
//! certificates is audited with both lists of fingerprints. A failed refresh keeps the last good
//! settings, records why on the connection, and is audited once per new reason.

use std::time::Duration as StdDuration;

use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::metadata::{self, IdpMetadata, MetadataError};
use crate::{
    app::AppState,
    store::{
        StoreError,
        audit::{self, Actor, AuditRecord},
        journal::Subject,
        saml::{self, MetadataSource, SamlConnectionRecord},
    },
};

const FETCH_TIMEOUT: StdDuration = StdDuration::from_secs(10);
const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// How often the schedule is looked at; each connection refreshes on its own period.
const CHECK_EVERY: StdDuration = StdDuration::from_secs(300);
pub const DEFAULT_REFRESH_HOURS: u32 = 24;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the metadata URL cannot be fetched: {0}")]
    Unreachable(String),
    #[error("the metadata URL answered {0}")]
    Status(u16),
    #[error("the metadata is larger than 1 MiB")]
    TooLarge,
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

pub use crate::http::outbound::check_url;

async fn fetch(url: &str) -> Result<String, FetchError> {
    let unreachable = |err: reqwest::Error| FetchError::Unreachable(err.without_url().to_string());
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(unreachable)?;
    let mut response = client.get(url).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_METADATA_BYTES {
            return Err(FetchError::TooLarge);
        }
    }
    String::from_utf8(body).map_err(|_| FetchError::Unreachable("the metadata is not UTF-8".into()))
}

/// Fetches and reads the metadata at `url` for `connection` (trusting what it already trusts).
pub async fn fetch_for(
    connection: &SamlConnectionRecord,
    url: &str,
    now: OffsetDateTime,
) -> Result<IdpMetadata, FetchError> {
    let document = fetch(url).await?;
    let trusted: Vec<String> = match &connection.metadata_certificate {
        Some(pinned) => vec![pinned.clone()],
        None => connection.idp.signing_certificates.clone(),
    };
    Ok(metadata::parse_idp(&document, &metadata::certificates_der(&trusted), now)?)
}

fn fingerprints(certificates: &[String]) -> Vec<String> {
    let der = metadata::certificates_der(certificates);
    der.iter().map(|c| hex::encode_upper(Sha256::digest(c.der_data()))).collect()
}

/// Refreshes one connection now; `actor` is who asked (the schedule, or an admin).
pub async fn refresh(
    state: &AppState,
    connection: &SamlConnectionRecord,
    actor: Actor,
    request_id: Option<String>,
) -> Result<SamlConnectionRecord, FetchError> {
    let Some(source) = connection.metadata_source.clone() else {
        return Ok(connection.clone());
    };
    let now = state.clock.now();
    let fetched = fetch_for(connection, &source.url, now).await;
    let id = connection.id;
    let outcome = match &fetched {
        Ok(read) => Ok(read.clone()),
        Err(err) => Err(err.to_string()),
    };
    let updated = state
        .store
        .write(move |tx| {
            // Re-read: an admin may have changed the connection while the fetch ran.
            let Some(mut current) = saml::connection(tx, id)? else { return Ok(None) };
            let before = current.idp.signing_certificates.clone();
            let subject = Subject { kind: "saml_connection".into(), id: id.to_string(), label: Some(current.name.clone()) };
            let audit = |action: &str, detail: serde_json::Value| {
                audit::append(
                    tx,
                    AuditRecord::new(Some(current.tenant), actor.clone(), action, Some(subject.clone()), detail, now, request_id.clone()),
                )
                .map(|_| ())
            };
            let source = current.metadata_source.get_or_insert(source.clone());
            source.fetched_at = Some(now);
            match &outcome {
                Ok(read) => {
                    source.last_error = None;
                    let after = read.settings.signing_certificates.clone();
                    current.idp = read.settings.clone();
                    current.metadata_valid_until = read.valid_until;
                    if before != after {
                        audit(
                            "saml_connection.certificates_changed",
                            json!({ "before": fingerprints(&before), "after": fingerprints(&after), "source": "metadata_url" }),
                        )?;
                    }
                }
                Err(reason) => {
                    let new_reason = source.last_error.as_deref() != Some(reason.as_str());
                    source.last_error = Some(reason.clone());
                    if new_reason {
                        audit("saml_connection.metadata_refresh_failed", json!({ "reason": reason }))?;
                    }
                }
            }
            current.updated_at = now;
            saml::put_connection(tx, &current)?;
            Ok::<_, StoreError>(Some(current))
        })
        .await
        .map_err(|err| FetchError::Unreachable(err.to_string()))?;
    fetched?;
    Ok(updated.unwrap_or_else(|| connection.clone()))
}

/// Whether a connection's metadata is due for a refresh at `now`.
pub fn due(source: &MetadataSource, now: OffsetDateTime) -> bool {
    source.fetched_at.is_none_or(|at| at + Duration::hours(i64::from(source.refresh_hours)) <= now)
}

/// Refreshes every connection whose metadata is due, for as long as the server runs.
pub async fn refresh_on_schedule(state: AppState) {
    let system = Actor { kind: "system".into(), id: "metadata_refresh".into(), label: None };
    loop {
        let now = state.clock.now();
        match state.store.read(saml::connections_with_metadata_url).await {
            Ok(connections) => {
                for connection in connections {
                    if connection.metadata_source.as_ref().is_some_and(|s| due(s, now)) {
                        if let Err(err) = refresh(&state, &connection, system.clone(), None).await {
                            tracing::warn!(connection = %connection.id, %err, "IdP metadata refresh failed");
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "cannot read the SAML connections to refresh"),
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_due_when_never_fetched_or_its_period_has_passed() {
        let now = OffsetDateTime::now_utc();
        let source = |fetched_at| MetadataSource {
            url: "https://idp".into(),
            refresh_hours: 24,
            fetched_at,
            last_error: None,
        };
        assert!(due(&source(None), now));
        assert!(!due(&source(Some(now - Duration::hours(23))), now));
        assert!(due(&source(Some(now - Duration::hours(24))), now));
    }
}
