//! What a first start creates: the instance's keys and the first operator credential. Runs at
//! every start and creates only what is missing, so a start interrupted half-way completes on
//! the next one.

use time::OffsetDateTime;

use crate::{
    admin,
    config::Config,
    provider,
    store::{
        Store, StoreError,
        admin_keys::{self, AdminKeyRecord},
        audit::{self, Actor, AuditRecord},
        instance_keys::{self, InstanceKeyRecord, KeyPurpose},
        journal::Subject,
        oauth_clients::SigningAlgorithm,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    TokenKey(#[from] provider::keys::KeyGenerationError),
}

fn link_signing_record(now: OffsetDateTime) -> InstanceKeyRecord {
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    InstanceKeyRecord {
        kid: format!("link-{}", uuid::Uuid::now_v7().simple()),
        purpose: KeyPurpose::LinkSigning,
        algorithm: "HS256".into(),
        private_key_pem: hex::encode(secret),
        public_jwk: None,
        certificate_pem: None,
        created_at: now,
        activates_at: None,
        retired_at: None,
    }
}

/// The active link-signing secret.
pub fn link_signing_key(records: &[InstanceKeyRecord]) -> Option<[u8; 32]> {
    let record = records.iter().find(|k| k.purpose == KeyPurpose::LinkSigning && k.retired_at.is_none())?;
    hex::decode(&record.private_key_pem).ok()?.try_into().ok()
}

/// The first admin API key, if this start generated one: shown once, never stored in clear.
pub struct GeneratedAdminKey(pub String);

pub async fn initialise(
    store: &Store,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Option<GeneratedAdminKey>, InitError> {
    let (keys, admin_key_count) =
        store.read(|tx| Ok::<_, StoreError>((instance_keys::all(tx)?, admin_keys::all(tx)?.len()))).await?;
    let has = |purpose, algorithm: &str| {
        keys.iter().any(|k: &InstanceKeyRecord| {
            k.purpose == purpose
                && k.retired_at.is_none()
                && (algorithm.is_empty() || k.algorithm == algorithm)
        })
    };

    let mut new_keys = Vec::new();
    for algorithm in [SigningAlgorithm::ES256, SigningAlgorithm::RS256] {
        if !has(KeyPurpose::TokenSigning, algorithm.as_str()) {
            let generated = tokio::task::spawn_blocking(move || provider::keys::generate(algorithm, now))
                .await
                .map_err(|_| StoreError::Panicked)??;
            new_keys.push(generated);
            tracing::info!(algorithm = algorithm.as_str(), "generated a token signing key");
        }
    }
    if !has(KeyPurpose::LinkSigning, "") {
        new_keys.push(link_signing_record(now));
        tracing::info!("generated the link signing key");
    }

    // The first key, and where it came from (for the audit trail).
    let (first_admin_key, shown): (Option<(AdminKeyRecord, &'static str)>, Option<GeneratedAdminKey>) =
        match (admin_key_count, &config.bootstrap_admin_key) {
            (0, Some(supplied)) => {
                tracing::info!("the first admin API key is the one given in PORTCULLIS_BOOTSTRAP_ADMIN_KEY");
                (Some((admin::keys_record_for(supplied.expose(), now), "bootstrap_admin_key")), None)
            }
            (0, None) => {
                let issued = admin::issue_key("first admin key".into(), admin_keys::KeyScope::Admin, now);
                (Some((issued.record, "generated")), Some(GeneratedAdminKey(issued.key)))
            }
            (_, Some(_)) => {
                tracing::info!(
                    "PORTCULLIS_BOOTSTRAP_ADMIN_KEY is ignored: the database already has admin API keys"
                );
                (None, None)
            }
            (_, None) => (None, None),
        };

    if new_keys.is_empty() && first_admin_key.is_none() {
        return Ok(None);
    }
    store
        .write(move |tx| {
            for key in &new_keys {
                instance_keys::put(tx, key)?;
            }
            if !new_keys.is_empty() {
                // Which keys the instance made for itself (ids and algorithms, never the keys).
                let made: Vec<_> = new_keys
                    .iter()
                    .map(|k| serde_json::json!({ "kid": k.kid, "purpose": k.purpose, "algorithm": k.algorithm }))
                    .collect();
                let target = Subject { kind: "instance_keys".into(), id: "instance".into(), label: None };
                let record = AuditRecord::new(
                    None,
                    Actor::system("init"),
                    "instance_keys.create",
                    Some(target),
                    serde_json::json!({ "created": made }),
                    now,
                    None,
                );
                audit::append(tx, record)?;
            }
            if let Some((record, origin)) = &first_admin_key {
                admin_keys::insert(tx, record)?;
                let (target, detail) = (admin::key_subject(record), serde_json::json!({ "origin": origin }));
                let created = AuditRecord::new(
                    None,
                    Actor::system("init"),
                    "admin.admin_key.create",
                    Some(target),
                    detail,
                    now,
                    None,
                );
                audit::append(tx, created)?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(shown)
}
