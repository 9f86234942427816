//! Sign-in sessions: starting one, recognising it from its browser cookie, and ending it.
//!
//! Ending a session is always done inside the transaction of the change that ends it (a logout,
//! an operator's revocation, a deactivation by SCIM, a suspended tenant). That same commit marks
//! the session revoked, queues a back-channel logout token for every client of the session that
//! has a back-channel logout URI, and appends a `session.revoked` event: from the commit on,
//! introspection answers inactive and refresh fails, and nothing is lost if the process dies.

pub mod backchannel;
pub mod cookie;
mod routes;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

pub use routes::router;

use crate::{
    ids::{ClientId, DeliveryId, EntryId, SessionId, TenantId, UserId},
    store::{
        Source, StoreError, WriteTx, grants,
        journal::{self, EventRecord, Subject},
        logout_deliveries::{self, LogoutDeliveryRecord},
        oauth_clients,
        sessions::{self, IdpSession, SessionRecord},
        tenants::TenantRecord,
    },
};

/// Activity is written at most this often per session, so that checking a session stays a
/// read. The idle limit is therefore honoured to within this interval.
pub const TOUCH_INTERVAL: Duration = Duration::minutes(5);

/// Deletes ended sessions a week after they end, expired codes and tokens, and SAML requests and
/// replay-cache entries past their time: at start, then every ten minutes, in batches that keep
/// the writer free for requests.
pub async fn sweep_ended(store: crate::store::Store, clock: crate::clock::SharedClock) {
    const BATCH: usize = 500;
    loop {
        loop {
            let now = clock.now();
            let purged = store
                .write(move |tx| {
                    Ok::<_, StoreError>(
                        sessions::purge_ended(tx, now, BATCH)?
                            + grants::purge_expired(tx, now, BATCH)?
                            + crate::store::saml::purge_expired(tx, now, BATCH)?
                            + crate::store::oidc::purge_expired(tx, now, BATCH)?,
                    )
                })
                .await;
            match purged {
                Ok(n) if n > 0 => tracing::debug!(purged = n, "purged ended sessions and expired grants"),
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(%err, "could not purge ended sessions");
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    }
}

/// How a person signed in: what a new session records.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub tenant: TenantId,
    pub user: UserId,
    /// RFC 8176 methods: `pwd` for a password, `fed` for a federated login.
    pub amr: Vec<String>,
    /// `password`, `google`, `saml:<connection>`, `oidc:<connection>`.
    pub idp: String,
    /// The IdP's own limit on the session (SAML SessionNotOnOrAfter, an ID token's policy).
    pub idp_session_ends_at: Option<OffsetDateTime>,
    /// The IdP's handle on the sign-in, for Single Logout.
    pub idp_session: Option<IdpSession>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A session about to be stored, and the cookie value that will present it.
pub struct NewSession {
    pub record: SessionRecord,
    pub cookie_value: String,
}

/// Makes a session for a sign-in under the tenant's policy. Random and pure: call it before
/// queueing the write that stores `record`.
pub fn new_session(sign_in: SignIn, tenant: &TenantRecord, now: OffsetDateTime) -> NewSession {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let policy = tenant.session_policy;
    let policy_end = now + Duration::hours(i64::from(policy.max_hours()));
    let expires_at = sign_in.idp_session_ends_at.map_or(policy_end, |idp_end| idp_end.min(policy_end));
    let id = SessionId::generate();
    let record = SessionRecord {
        id,
        tenant: sign_in.tenant,
        user: sign_in.user,
        secret_digest: Sha256::digest(secret).into(),
        created_at: now,
        expires_at,
        idle_timeout_secs: policy.idle_minutes().saturating_mul(60),
        last_active_at: now,
        amr: sign_in.amr,
        idp: sign_in.idp,
        clients: Vec::new(),
        user_agent: sign_in.user_agent,
        ip: sign_in.ip,
        revoked_at: None,
        revoked_reason: None,
        idp_session: sign_in.idp_session,
    };
    NewSession { record, cookie_value: format!("{id}.{}", URL_SAFE_NO_PAD.encode(secret)) }
}

/// The live session a cookie value presents, if any. Compares the secret in constant time.
pub fn from_cookie(
    src: &impl Source,
    cookie_value: &str,
    now: OffsetDateTime,
) -> Result<Option<SessionRecord>, StoreError> {
    let Some((id, secret)) = cookie_value.split_once('.') else {
        return Ok(None);
    };
    let (Ok(id), Ok(secret)) = (id.parse::<SessionId>(), URL_SAFE_NO_PAD.decode(secret)) else {
        return Ok(None);
    };
    let Some(session) = sessions::get(src, id)? else {
        return Ok(None);
    };
    let digest: [u8; 32] = Sha256::digest(&secret).into();
    let matches: bool = subtle::ConstantTimeEq::ct_eq(&digest[..], &session.secret_digest[..]).into();
    Ok((matches && session.is_live(now)).then_some(session))
}

/// Records activity and the client the session now serves. Writes only when something changed
/// or the last activity is older than `TOUCH_INTERVAL`; returns whether the session is live.
pub fn touch(
    tx: &WriteTx<'_>,
    id: SessionId,
    client: Option<ClientId>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Some(mut session) = sessions::get(tx, id)? else {
        return Ok(false);
    };
    if !session.is_live(now) {
        return Ok(false);
    }
    let mut changed = false;
    if let Some(client) = client.filter(|c| !session.clients.contains(c)) {
        session.clients.push(client);
        changed = true;
    }
    if now - session.last_active_at >= TOUCH_INTERVAL {
        session.last_active_at = now;
        changed = true;
    }
    if changed {
        sessions::put(tx, &session)?;
    }
    Ok(true)
}

/// The store tally (`WriteTx::tally`) of sessions ended, by reason: the metrics' revocations.
pub const REVOKED_TALLY: &str = "sessions_revoked";

/// Every reason a session is ended for, as `end_*` are called with: the metrics start each at 0.
/// A reason is a literal (`&'static str`), so the metric's label values stay a fixed set.
pub const REVOCATION_REASONS: &[&str] = &[
    "logout",
    "idp_logout",
    "admin",
    "user_deactivated",
    "user_deleted",
    "password_changed",
    "password_removed",
    "tenant_suspended",
    "tenant_deleted",
];

/// Ends one session; returns it if it was live.
pub fn end_session(
    tx: &WriteTx<'_>,
    id: SessionId,
    reason: &'static str,
    now: OffsetDateTime,
) -> Result<Option<SessionRecord>, StoreError> {
    let revoked = sessions::revoke(tx, id, reason, now)?;
    if let Some(session) = &revoked {
        after_revocation(tx, session, now)?;
        tx.tally(REVOKED_TALLY, reason, 1);
    }
    Ok(revoked)
}

/// Ends every live session of a user; returns how many there were.
pub fn end_user_sessions(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    user: UserId,
    reason: &'static str,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let revoked = sessions::revoke_user(tx, tenant, user, reason, now)?;
    for session in &revoked {
        after_revocation(tx, session, now)?;
    }
    tally_revoked(tx, reason, revoked.len());
    Ok(revoked.len())
}

/// Ends every live session of a tenant; returns how many there were.
pub fn end_tenant_sessions(
    tx: &WriteTx<'_>,
    tenant: TenantId,
    reason: &'static str,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let revoked = sessions::revoke_tenant(tx, tenant, reason, now)?;
    for session in &revoked {
        after_revocation(tx, session, now)?;
    }
    tally_revoked(tx, reason, revoked.len());
    Ok(revoked.len())
}

fn tally_revoked(tx: &WriteTx<'_>, reason: &'static str, count: usize) {
    if count > 0 {
        tx.tally(REVOKED_TALLY, reason, count as u64);
    }
}

/// Queues the back-channel logout of each client of the session and announces its end.
fn after_revocation(
    tx: &WriteTx<'_>,
    session: &SessionRecord,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for client in &session.clients {
        let Some(uri) = oauth_clients::get(tx, *client)?.and_then(|c| c.backchannel_logout_uri) else {
            continue;
        };
        logout_deliveries::enqueue(
            tx,
            &LogoutDeliveryRecord {
                id: DeliveryId::generate(),
                client: *client,
                uri,
                tenant: session.tenant,
                user: session.user,
                session: session.id,
                created_at: now,
                due_at: now,
                attempts: 0,
                last_error: None,
            },
        )?;
    }
    journal::append_event(
        tx,
        EventRecord {
            id: EntryId::generate(),
            seq: 0,
            tenant: session.tenant,
            kind: "session.revoked".into(),
            occurred_at: now,
            subject: Subject { kind: "session".into(), id: session.id.to_string(), label: None },
            data: json!({ "session": {
                "id": session.id, "user": session.user, "reason": session.revoked_reason,
                "idp": session.idp, "created_at": session.created_at.unix_timestamp(),
            }}),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        sessions::tests::session_record,
        tenants::{SessionPolicy, TenantStatus},
        testing,
    };

    fn tenant(policy: SessionPolicy) -> TenantRecord {
        let now = OffsetDateTime::UNIX_EPOCH;
        TenantRecord {
            id: TenantId::generate(),
            slug: "acme".into(),
            display_name: "Acme".into(),
            status: TenantStatus::Active,
            seat_limit: None,
            deleted_user_retention_days: None,
            session_policy: policy,
            require_sso: false,
            google_hosted_domains: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    fn sign_in(tenant: &TenantRecord, idp_end: Option<OffsetDateTime>) -> SignIn {
        SignIn {
            tenant: tenant.id,
            user: UserId::generate(),
            amr: vec!["pwd".into()],
            idp: "password".into(),
            idp_session_ends_at: idp_end,
            idp_session: None,
            user_agent: None,
            ip: None,
        }
    }

    #[test]
    fn a_session_ends_no_later_than_the_idp_says() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let acme = tenant(SessionPolicy { idle_minutes: Some(30), max_hours: Some(10) });
        let plain = new_session(sign_in(&acme, None), &acme, now).record;
        assert_eq!((plain.expires_at, plain.idle_timeout_secs), (now + Duration::hours(10), 1800));
        let short = new_session(sign_in(&acme, Some(now + Duration::hours(2))), &acme, now).record;
        assert_eq!(short.expires_at, now + Duration::hours(2));
        let long = new_session(sign_in(&acme, Some(now + Duration::days(3))), &acme, now).record;
        assert_eq!(long.expires_at, now + Duration::hours(10));
    }

    #[tokio::test]
    async fn only_the_exact_cookie_presents_a_live_session() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let acme = tenant(SessionPolicy::default());
        let NewSession { record, cookie_value } = new_session(sign_in(&acme, None), &acme, now);
        let (id, stored) = (record.id, record.clone());
        store.write(move |tx| sessions::put(tx, &stored)).await.unwrap();

        let found = |value: String, at: OffsetDateTime| {
            let store = store.clone();
            async move { store.read(move |tx| from_cookie(tx, &value, at)).await.unwrap().map(|s| s.id) }
        };
        assert_eq!(found(cookie_value.clone(), now).await, Some(id));
        let (id_part, secret) = cookie_value.split_once('.').unwrap();
        let mut forged = secret.to_owned();
        forged.replace_range(0..1, if secret.starts_with('A') { "B" } else { "A" });
        assert_eq!(found(format!("{id_part}.{forged}"), now).await, None);
        assert_eq!(found(id_part.to_owned(), now).await, None);
        assert_eq!(found(format!("{}.{secret}", SessionId::generate()), now).await, None);
        assert_eq!(found(cookie_value.clone(), now + Duration::days(2)).await, None);

        store.write(move |tx| end_session(tx, id, "logout", now)).await.unwrap();
        assert_eq!(found(cookie_value, now).await, None);
    }

    #[tokio::test]
    async fn ending_sessions_queues_a_logout_for_each_client_with_a_logout_uri_and_an_event() {
        let (_dir, store) = testing::store();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let (t, ada) = (TenantId::generate(), UserId::generate());
        let client = |uri: Option<&str>| crate::provider::clients::tests::client_record(uri, now);
        let (with_uri, without_uri) = (client(Some("https://app.test/bcl")), client(None));
        let mut session = session_record(t, ada, now);
        session.clients = vec![with_uri.id, without_uri.id];
        let other = session_record(t, ada, now);
        store
            .write(move |tx| {
                oauth_clients::put(tx, &with_uri)?;
                oauth_clients::put(tx, &without_uri)?;
                sessions::put(tx, &session)?;
                sessions::put(tx, &other)
            })
            .await
            .unwrap();
        let ended = store.write(move |tx| end_user_sessions(tx, t, ada, "admin", now)).await.unwrap();
        assert_eq!(ended, 2);
        let (queued, events) = store
            .read(move |tx| {
                Ok::<_, StoreError>((logout_deliveries::due(tx, now, 10)?, journal::events_after(tx, 0, 10)?))
            })
            .await
            .unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].uri, "https://app.test/bcl");
        assert_eq!(events.iter().filter(|e| e.kind == "session.revoked").count(), 2);
        // Ending them again finds nothing live: no second logout, no second event.
        assert_eq!(store.write(move |tx| end_user_sessions(tx, t, ada, "admin", now)).await.unwrap(), 0);
        let tallied = store.write_stats().tallies.get(&(REVOKED_TALLY, "admin")).copied();
        assert_eq!(tallied, Some(2), "the metrics count sessions, not calls");
    }
}
