//! Who is calling a tenant's SCIM endpoints: `ScimClient` proves the request carries a usable
//! bearer token of the tenant named in the path, within the token's rate limit.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRequestParts, RawPathParams},
    http::request::Parts,
};

use super::{ScimError, refusals::CallerSlot, tokens};
use crate::{
    app::AppState,
    directory::Change,
    http::{
        auth::{BearerError, bearer_token},
        middleware::RequestId,
    },
    ids::{ScimTokenId, TenantId},
    store::{
        audit::Actor,
        scim_tokens::{self, ScimTokenRecord},
        tenants::{self, TenantRecord, TenantStatus},
    },
};

/// A token's last use is written at most this often: reads stay reads.
const TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);

/// The verified caller of a SCIM endpoint.
#[derive(Debug, Clone)]
pub struct ScimClient {
    pub tenant: TenantRecord,
    pub token: ScimTokenId,
    pub token_name: String,
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)
            .map_err(|err| match err {
                BearerError::Missing => {
                    ScimError::unauthorized("send the tenant's SCIM token as `Authorization: Bearer <token>`")
                }
                BearerError::Malformed => {
                    ScimError::unauthorized("the Authorization header is not `Bearer <token>`")
                }
            })?
            .to_owned();
        // Any failure below answers the same: a caller learns nothing about other tenants.
        let refused = || ScimError::unauthorized("the token is not valid for this SCIM endpoint");
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| refused())?;
        let tenant_id: TenantId = params
            .iter()
            .find(|(name, _)| *name == "tenant")
            .and_then(|(_, value)| value.parse().ok())
            .ok_or_else(refused)?;
        let digest = tokens::digest(&token);
        let found = match state.scim.cached(&digest) {
            Some(found) => Some(found),
            None => {
                let generation = state.scim.revocations();
                let found = state
                    .store
                    .read(move |tx| {
                        let Some(token) = scim_tokens::by_digest(tx, &digest)? else { return Ok(None) };
                        Ok::<_, ScimError>(tenants::get(tx, token.tenant)?.map(|tenant| (token, tenant)))
                    })
                    .await?;
                if let Some(found) = &found {
                    state.scim.remember(digest, found.clone(), generation);
                }
                found
            }
        };
        let now = state.clock.now();
        let Some((token, tenant)) =
            found.filter(|(token, _)| token.tenant == tenant_id && token.is_usable(now))
        else {
            return Err(refused());
        };
        if tenant.status == TenantStatus::Suspended {
            return Err(ScimError::forbidden("this tenant is suspended"));
        }
        state.scim.limiter.admit(token.id)?;
        if token.last_used_at.is_none_or(|at| now - at >= TOUCH_INTERVAL) && state.scim.claim_touch(token.id)
        {
            let (store, tenant, id) = (state.store.clone(), token.tenant, token.id);
            tokio::spawn(async move {
                if let Err(err) = store.write(move |tx| scim_tokens::touch(tx, tenant, id, now)).await {
                    tracing::warn!(%err, "could not record a SCIM token's last use");
                }
            });
        }
        let client = ScimClient { tenant, token: token.id, token_name: token.name };
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.fill(client.tenant.id, client.actor());
        }
        Ok(client)
    }
}

/// How long a verified token and its tenant are reused without reading the store. A revoked
/// token is forgotten at once (`forget`); a change to its tenant (suspension) is seen within this.
const VERIFIED_FOR: Duration = Duration::from_secs(1);
/// Verified tokens kept at most; past this the cache starts over.
const MAX_VERIFIED: usize = 10_000;

type Verified = (ScimTokenRecord, TenantRecord);

impl ScimClient {
    /// The directory change this request makes, for events and the audit trail.
    pub fn change(&self, request: &RequestId, now: time::OffsetDateTime) -> Change {
        Change {
            tenant: self.tenant.id,
            actor: self.actor(),
            channel: "scim",
            request_id: Some(request.0.clone()),
            now,
        }
    }

    /// The token, as the audit trail names who acted.
    pub fn actor(&self) -> Actor {
        Actor { kind: "scim_token".into(), id: self.token.to_string(), label: Some(self.token_name.clone()) }
    }

    /// The tenant's SCIM base URL.
    pub fn base_url(&self, public_url: &str) -> String {
        format!("{public_url}/scim/v2/{}", self.tenant.id)
    }
}

/// Per-token state kept in memory: recently verified tokens, rate-limit buckets and pending
/// last-use writes.
#[derive(Debug)]
pub struct ScimRuntime {
    pub limiter: RateLimiter,
    verified: Mutex<HashMap<[u8; 32], (Verified, Instant)>>,
    revocations: AtomicU64,
    touched: Mutex<HashMap<ScimTokenId, Instant>>,
}

impl ScimRuntime {
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        Self {
            limiter: RateLimiter::new(rate_per_second, burst),
            verified: Mutex::new(HashMap::new()),
            revocations: AtomicU64::new(0),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// A token (by digest) verified less than `VERIFIED_FOR` ago, with its tenant.
    fn cached(&self, digest: &[u8; 32]) -> Option<Verified> {
        let verified = self.verified.lock().ok()?;
        let (found, at) = verified.get(digest)?;
        (at.elapsed() < VERIFIED_FOR).then(|| found.clone())
    }

    /// Counts revocations, so that a lookup that raced with one is not remembered.
    fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    /// Remembers a token verified by a lookup that began at revocation count `generation`, unless
    /// a token was revoked since (the lookup may have read it before the revocation committed).
    fn remember(&self, digest: [u8; 32], found: Verified, generation: u64) {
        if let Ok(mut verified) = self.verified.lock() {
            if self.revocations() != generation {
                return;
            }
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(digest, (found, Instant::now()));
        }
    }

    /// Stops accepting a token from memory: called when it is revoked.
    pub fn forget(&self, digest: &[u8; 32]) {
        if let Ok(mut verified) = self.verified.lock() {
            self.revocations.fetch_add(1, Ordering::SeqCst);
            verified.remove(digest);
        }
    }

    /// Whether this request should write the token's last use (one writer per interval).
    fn claim_touch(&self, token: ScimTokenId) -> bool {
        let Ok(mut touched) = self.touched.lock() else { return false };
        let now = Instant::now();
        let interval = Duration::from_secs(60);
        match touched.get(&token) {
            Some(at) if now.duration_since(*at) < interval => false,
            _ => {
                touched.insert(token, now);
                true
            }
        }
    }
}

/// A token bucket per SCIM token: `burst` requests at once, refilled at `rate` per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<ScimTokenId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate_per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the token's bucket, or says how many seconds to wait.
    pub fn admit(&self, token: ScimTokenId) -> Result<(), ScimError> {
        self.admit_at(token, Instant::now())
    }

    fn admit_at(&self, token: ScimTokenId, now: Instant) -> Result<(), ScimError> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let bucket = buckets.entry(token).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / self.rate).ceil().max(1.0);
            Err(ScimError::rate_limited(wait as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3);
        let (token, other) = (ScimTokenId::generate(), ScimTokenId::generate());
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit_at(token, start).is_ok());
        }
        let refused = limiter.admit_at(token, start).unwrap_err();
        assert_eq!((refused.status.as_u16(), refused.retry_after), (429, Some(1)));
        assert!(limiter.admit_at(other, start).is_ok(), "buckets are per token");
        assert!(limiter.admit_at(token, start + Duration::from_millis(500)).is_ok());
        assert!(limiter.admit_at(token, start + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn a_zero_rate_means_no_limit() {
        let limiter = RateLimiter::new(0, 1);
        let token = ScimTokenId::generate();
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.admit_at(token, now).is_ok()));
    }
}
