//! Lifecycle events for the app: the outbox the directory and sessions write to in their own
//! transactions (`store::journal`), delivered at least once as signed webhooks and served as a
//! feed with a cursor.
//!
//! - `fanout`: follows the outbox and queues one delivery per endpoint that wants each event;
//! - `delivery`: attempts what is due, signs it (`signing`), retries with backoff and jitter,
//!   keeps each resource's events in order, pauses endpoints that keep failing;
//! - `routes`: webhook endpoints, their deliveries and replay, and the feed, in the admin API;
//! - `urls`: which URLs webhooks may go to;
//! - `retention`: forgets old events and finished deliveries.
//!
//! A receiver applies events idempotently by `id` (the `webhook-id` header): a delivery that was
//! answered but not yet recorded when the server stopped is sent again, with the same id.

pub mod delivery;
pub mod fanout;
pub mod retention;
pub mod routes;
pub mod signing;
pub mod urls;

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Notify;

pub use routes::router;

use crate::{
    config::Config,
    ids::EndpointId,
    secrets::SecretBox,
    store::{audit::format_time, journal::EventRecord, webhooks::EndpointRecord},
};
use signing::SigningKey;

/// Every event type, for the endpoints' filters and the documentation.
pub const EVENT_TYPES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deactivated",
    "user.reactivated",
    "user.deleted",
    "user.roles_changed",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.member_added",
    "group.member_removed",
    "session.revoked",
];

/// An event as receivers see it, in a webhook's body and in the feed.
pub fn payload(event: &EventRecord) -> Value {
    json!({
        "id": event.id,
        "type": event.kind,
        "timestamp": format_time(event.occurred_at),
        "sequence": event.seq,
        "tenant_id": event.tenant,
        "subject": { "type": event.subject.kind, "id": event.subject.id, "label": event.subject.label },
        "data": event.data,
    })
}

/// The settings and shared parts of delivery.
pub struct EventsRuntime {
    pub urls: Arc<urls::UrlPolicy>,
    client: reqwest::Client,
    secrets: Arc<SecretBox>,
    /// Wakes the dispatcher: new deliveries, a replay, a resumed endpoint.
    pub wake: Notify,
    pub retry: RetryPolicy,
    pub pause_after: time::Duration,
    pub retention_days: u32,
    /// Opened signing keys per endpoint.
    keys: Mutex<HashMap<EndpointId, CachedKeys>>,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub window: time::Duration,
}

impl EventsRuntime {
    pub fn new(config: &Config, secrets: Arc<SecretBox>) -> Result<Self, String> {
        let urls = Arc::new(urls::UrlPolicy::new(config.webhook_allowed_hosts.clone()));
        let client = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the names itself, past the resolver's check.
            .no_proxy()
            .user_agent(concat!("Portcullis-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(urls::GuardedResolver(Arc::clone(&urls))))
            .build()
            .map_err(|err| err.to_string())?;
        Ok(Self {
            urls,
            client,
            secrets,
            wake: Notify::new(),
            retry: RetryPolicy {
                initial: config.webhook_retry_initial,
                max: config.webhook_retry_max,
                window: time::Duration::try_from(config.webhook_retry_window).unwrap_or(time::Duration::DAY),
            },
            pause_after: time::Duration::try_from(config.webhook_pause_after).unwrap_or(time::Duration::DAY),
            retention_days: config.events_retention_days,
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// Seals a new signing secret for `endpoint`.
    pub fn seal_secret(&self, endpoint: EndpointId, secret: &str) -> Result<String, String> {
        self.secrets.seal(&purpose(endpoint), secret).map_err(|err| err.to_string())
    }

    /// The keys that sign deliveries to `endpoint` at `now`: its current secret and those still
    /// in their overlap after a rotation.
    pub fn signing_keys(
        &self,
        endpoint: &EndpointRecord,
        now: OffsetDateTime,
    ) -> Result<Arc<Vec<SigningKey>>, String> {
        let mut cache = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cached) = cache.get(&endpoint.id) {
            if cached.version == endpoint.updated_at && cached.until.is_none_or(|until| now < until) {
                return Ok(Arc::clone(&cached.keys));
            }
        }
        let in_use: Vec<_> =
            endpoint.secrets.iter().filter(|s| s.expires_at.is_none_or(|at| at > now)).collect();
        let mut keys = Vec::new();
        for secret in &in_use {
            let plain =
                self.secrets.open(&purpose(endpoint.id), &secret.sealed).map_err(|err| err.to_string())?;
            keys.push(SigningKey::parse(&plain)?);
        }
        let keys = Arc::new(keys);
        let until = in_use.iter().filter_map(|s| s.expires_at).min();
        cache
            .insert(endpoint.id, CachedKeys { version: endpoint.updated_at, until, keys: Arc::clone(&keys) });
        Ok(keys)
    }
}

struct CachedKeys {
    /// The endpoint's `updated_at` when they were opened.
    version: OffsetDateTime,
    /// When the first of them expires.
    until: Option<OffsetDateTime>,
    keys: Arc<Vec<SigningKey>>,
}

/// What a sealed secret is bound to: it opens only as this endpoint's.
fn purpose(endpoint: EndpointId) -> String {
    format!("webhook:{endpoint}")
}
