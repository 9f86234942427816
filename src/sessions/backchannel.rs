//! Delivers OpenID Connect Back-Channel Logout 1.0 tokens from the `logout_deliveries` outbox.
//!
//! A logout token is signed at delivery (so its `iat`/`exp` are fresh at every attempt) and POSTed
//! as `logout_token`; a 200 or 204 answer completes the delivery. Anything else is retried with
//! exponential backoff and jitter, up to `MAX_ATTEMPTS`, after which the delivery is dropped and
//! logged. A slow client holds up only its own delivery: each runs in its own task, bounded by
//! the HTTP timeout.

use std::time::Duration as StdDuration;

use rand::Rng;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::{
    app::AppState,
    store::{
        StoreError,
        logout_deliveries::{self, LogoutDeliveryRecord},
        oauth_clients,
    },
};

/// How often the outbox is looked at when it is idle.
const POLL: StdDuration = StdDuration::from_millis(200);
const BATCH: usize = 64;
const HTTP_TIMEOUT: StdDuration = StdDuration::from_secs(5);
/// About a day of retries: 5 s doubling up to an hour between attempts.
pub const MAX_ATTEMPTS: u32 = 30;
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token is good for two minutes after it is signed.
const TOKEN_LIFETIME: Duration = Duration::minutes(2);

/// Runs until the server stops.
pub async fn deliver_logouts(state: AppState) {
    let client = match reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(err) => return tracing::error!(%err, "cannot start back-channel logout delivery"),
    };
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let now = state.clock.now();
        let due = state.store.read(move |tx| logout_deliveries::due(tx, now, BATCH)).await.unwrap_or_else(
            |err: StoreError| {
                tracing::warn!(%err, "cannot read the logout outbox");
                Vec::new()
            },
        );
        let idle = due.is_empty();
        for delivery in due {
            in_flight.spawn(attempt(state.clone(), client.clone(), delivery));
        }
        // Wait for this round before reading again, so a delivery is never attempted twice at once.
        while in_flight.join_next().await.is_some() {}
        if idle {
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn attempt(state: AppState, client: reqwest::Client, delivery: LogoutDeliveryRecord) {
    let outcome = send(&state, &client, &delivery).await;
    let now = state.clock.now();
    let result = match outcome {
        Ok(()) => {
            tracing::info!(client_id = %delivery.client, session = %delivery.session, "back-channel logout delivered");
            let done = delivery.clone();
            state.store.write(move |tx| logout_deliveries::remove(tx, &done)).await
        }
        Err(reason) if delivery.attempts + 1 >= MAX_ATTEMPTS => {
            tracing::warn!(client_id = %delivery.client, %reason, "back-channel logout abandoned after its last attempt");
            let done = delivery.clone();
            state.store.write(move |tx| logout_deliveries::remove(tx, &done)).await
        }
        Err(reason) => {
            tracing::info!(client_id = %delivery.client, %reason, attempt = delivery.attempts + 1, "back-channel logout will be retried");
            let next = LogoutDeliveryRecord {
                attempts: delivery.attempts + 1,
                due_at: now + backoff(delivery.attempts),
                last_error: Some(reason),
                ..delivery.clone()
            };
            state.store.write(move |tx| logout_deliveries::reschedule(tx, &delivery, &next)).await
        }
    };
    if let Err(err) = result {
        tracing::warn!(%err, "cannot record a back-channel logout attempt");
    }
}

/// 5 s, 10 s, 20 s, … up to an hour, each with up to 20% random jitter.
fn backoff(attempts: u32) -> Duration {
    let base = 5.0 * 2f64.powi(attempts.min(20) as i32);
    let capped = base.min(3600.0);
    let jitter = rand::rng().random_range(0.0..=0.2) * capped;
    Duration::seconds_f64(capped + jitter)
}

async fn send(
    state: &AppState,
    client: &reqwest::Client,
    delivery: &LogoutDeliveryRecord,
) -> Result<(), String> {
    let found =
        state.store.read(|tx| oauth_clients::get(tx, delivery.client)).await.map_err(|e| e.to_string())?;
    // A client deleted meanwhile has nobody to tell; sign with its algorithm otherwise.
    let Some(oauth_client) = found else {
        return Ok(());
    };
    let token = logout_token(state, &oauth_client, delivery, state.clock.now())?;
    let response = client
        .post(&delivery.uri)
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        .map_err(|err| format!("cannot reach the client: {}", without_url(&err)))?;
    match response.status().as_u16() {
        200 | 204 => Ok(()),
        status => Err(format!("the client answered {status}")),
    }
}

fn without_url(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_owned()
}

fn logout_token(
    state: &AppState,
    client: &oauth_clients::OAuthClientRecord,
    delivery: &LogoutDeliveryRecord,
    now: OffsetDateTime,
) -> Result<String, String> {
    let claims = json!({
        "iss": state.public_url.as_ref(),
        "aud": client.id,
        "iat": now.unix_timestamp(),
        "exp": (now + TOKEN_LIFETIME).unix_timestamp(),
        "jti": uuid::Uuid::new_v4(),
        "sub": delivery.user,
        "sid": delivery.session,
        "org_id": delivery.tenant,
        "events": { LOGOUT_EVENT: {} },
    });
    state
        .keys
        .current()
        .sign(client.id_token_signing_alg, "logout+jwt", &claims, now)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_to_an_hour_with_bounded_jitter() {
        for (attempts, base) in [(0, 5.0), (1, 10.0), (3, 40.0), (12, 3600.0), (29, 3600.0)] {
            let delay = backoff(attempts).as_seconds_f64();
            assert!(delay >= base && delay <= base * 1.2, "attempt {attempts}: {delay}");
        }
    }
}
