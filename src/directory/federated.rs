//! What SAML and OpenID Connect sign-ins share once a protocol has vouched for a person: the
//! user fields the IdP sent, as the connection maps them, and the user record of someone
//! created just in time.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::{Change, DirectoryError, access, create_user};
use crate::{
    app::AppState,
    ids::{TenantId, UserId},
    store::{
        StoreError, WriteTx,
        access::SignInClaims,
        audit::AuditRecord,
        directory::{self, UserRecord},
        tenants::{self, TenantStatus},
    },
};

/// Appends the audit record of a refused SSO message in a write of its own (a refusal changes
/// nothing else): the failed check's code and reason, then the record's own detail.
pub async fn record_refusal(state: &AppState, check: &'static str, reason: String, mut record: AuditRecord) {
    tracing::info!(check, action = %record.action, "SSO message refused");
    let mut fields = json!({ "check": check, "reason": reason });
    if let (Some(extra), Some(all)) = (record.detail.as_object(), fields.as_object_mut()) {
        all.extend(extra.clone());
    }
    record.detail = fields;
    crate::audit::refusals::record(state, record.refused(check)).await;
}

/// Why a sign-in the IdP vouched for cannot go ahead, found in its own transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAdmitted {
    CannotCreateUser(String),
    UserDeactivated(String),
    TenantSuspended,
}

/// Inside the sign-in's transaction: creates the just-in-time user (`new_user`), then checks
/// that `user` and the tenant are still active. A deactivation or suspension committed since
/// the user was looked up wins: the session it would have revoked must not be made now. The
/// groups and attributes the IdP claimed (`claims`) then feed the tenant's access policy, so the
/// session's first token carries the roles they give.
pub fn admit(
    tx: &WriteTx<'_>,
    change: &Change,
    new_user: Option<&UserRecord>,
    user: UserId,
    claims: Option<&SignInClaims>,
) -> Result<Result<(), NotAdmitted>, StoreError> {
    if let Some(record) = new_user {
        if let Some(claims) = claims {
            access::claims_of_new_user(tx, record, claims)?;
        }
        match create_user(tx, change, record) {
            Ok(()) => {}
            Err(DirectoryError::Store(err)) => return Err(err),
            Err(other) => return Ok(Err(NotAdmitted::CannotCreateUser(other.to_string()))),
        }
    }
    let found = match directory::user(tx, change.tenant, user)? {
        Some(found) if found.active => found,
        other => {
            return Ok(Err(NotAdmitted::UserDeactivated(other.map(|u| u.user_name).unwrap_or_default())));
        }
    };
    if !tenants::get(tx, change.tenant)?.is_some_and(|t| t.status == TenantStatus::Active) {
        return Ok(Err(NotAdmitted::TenantSuspended));
    }
    if let Some(claims) = claims {
        access::signed_in(tx, change, &found, claims.clone())?;
    }
    Ok(Ok(()))
}

/// The user fields an IdP sent, as the connection maps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MappedUser {
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub department: Option<String>,
    pub groups: Vec<String>,
    pub custom: BTreeMap<String, Vec<String>>,
}

impl MappedUser {
    /// What the access policy reads of a sign-in: the groups, the department and the custom
    /// fields.
    pub fn sign_in_claims(&self) -> SignInClaims {
        let mut attributes = self.custom.clone();
        if let Some(department) = &self.department {
            attributes.insert("department".into(), vec![department.clone()]);
        }
        SignInClaims { groups: self.groups.clone(), attributes }
    }
}

/// Who is signing in: a user the directory has, or one to create at this login.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Existing(UserRecord),
    New(UserRecord),
}

impl Resolved {
    pub fn user(&self) -> &UserRecord {
        match self {
            Resolved::Existing(user) | Resolved::New(user) => user,
        }
    }

    /// Who a connection test found: the user who would sign in, or the one who would be made.
    pub fn test_view(&self) -> serde_json::Value {
        match self {
            Resolved::Existing(user) => {
                json!({ "outcome": "existing", "id": user.id, "user_name": user.user_name })
            }
            Resolved::New(user) => json!({ "outcome": "would_be_created", "user_name": user.user_name }),
        }
    }
}

/// A user created just in time, in the SCIM form the directory keeps.
pub fn new_user(tenant: TenantId, email: &str, mapped: &MappedUser, now: OffsetDateTime) -> UserRecord {
    let mut profile = json!({
        "userName": email,
        "emails": [{ "value": email, "type": "work", "primary": true }],
        "active": true,
    });
    if mapped.given_name.is_some() || mapped.family_name.is_some() {
        profile["name"] = json!({ "givenName": mapped.given_name, "familyName": mapped.family_name });
    }
    let display_name = mapped.display_name.clone().or_else(|| {
        let parts: Vec<&str> =
            [&mapped.given_name, &mapped.family_name].into_iter().flatten().map(String::as_str).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    if let Some(name) = &display_name {
        profile["displayName"] = json!(name);
    }
    if let Some(department) = &mapped.department {
        profile["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
            json!({ "department": department });
    }
    UserRecord {
        id: UserId::generate(),
        tenant,
        user_name: email.to_owned(),
        external_id: None,
        active: true,
        email: Some(email.to_owned()),
        emails: vec![email.to_owned()],
        display_name,
        profile,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}
