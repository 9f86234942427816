//! The claims of the tokens Portcullis issues, and of userinfo.
//!
//! Every token is tenant scoped: `org_id` names the tenant and `sub` is the user's id in it.
//! Access tokens follow RFC 9068 (`typ: at+jwt`); ID tokens OpenID Connect Core §2.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::store::{access::UserAccessRecord, directory::UserRecord, tenants::TenantRecord};

/// An access token's claims: what introspection and userinfo read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    pub sid: String,
    pub org_id: String,
    pub auth_time: i64,
    /// What the tenant's access policy gave the user when the token was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default)]
    pub programs: Vec<String>,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// The person's claims that scopes release (OpenID Connect Core §5.4), plus the tenant and what
/// the tenant's access policy gives the user (roles, tier, programs), which every token carries.
pub fn user_claims(
    user: &UserRecord,
    tenant: &TenantRecord,
    access: &UserAccessRecord,
    scopes: &[String],
    email_verified: bool,
) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("org_id".into(), json!(tenant.id));
    claims.insert("org_slug".into(), json!(tenant.slug));
    claims.insert("org_name".into(), json!(tenant.display_name));
    claims.insert("roles".into(), json!(access.roles));
    if let Some(tier) = &access.tier {
        claims.insert("tier".into(), json!(tier));
    }
    claims.insert("programs".into(), json!(access.programs));
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    if has("email") {
        if let Some(email) = &user.email {
            claims.insert("email".into(), json!(email));
            claims.insert("email_verified".into(), json!(email_verified));
        }
    }
    if has("profile") {
        claims.insert("preferred_username".into(), json!(user.user_name));
        let name = user.display_name.clone().or_else(|| formatted_name(&user.profile));
        if let Some(name) = name {
            claims.insert("name".into(), json!(name));
        }
        for (claim, attribute) in [("given_name", "givenName"), ("family_name", "familyName")] {
            if let Some(value) = user.profile["name"][attribute].as_str() {
                claims.insert(claim.into(), json!(value));
            }
        }
        if let Some(locale) = user.profile["locale"].as_str() {
            claims.insert("locale".into(), json!(locale));
        }
        if let Some(zone) = user.profile["timezone"].as_str() {
            claims.insert("zoneinfo".into(), json!(zone));
        }
    }
    claims
}

fn formatted_name(profile: &Value) -> Option<String> {
    if let Some(formatted) = profile["name"]["formatted"].as_str() {
        return Some(formatted.to_owned());
    }
    let parts: Vec<&str> =
        ["givenName", "familyName"].iter().filter_map(|a| profile["name"][*a].as_str()).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}
