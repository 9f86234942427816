//! From verified claims to a directory user: the connection's claim mapping (standard claim
//! names by default, and the ones Entra ID uses where they differ), and the lookup of the user:
//! the user this IdP subject was before, then the userName, then the email address, then a new
//! user where just-in-time creation is on.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::refusal::Refusal;
use crate::{
    directory::federated::{MappedUser, Resolved, new_user},
    ids::TenantId,
    store::{Source, StoreError, directory, oidc, oidc::ClaimMapping, tenants::TenantRecord},
};

/// Not `email`: an address is matched only when the IdP vouches for it (`email_verified`).
const USER_NAME: &[&str] = &["preferred_username", "upn"];
const EMAIL: &[&str] = &["email"];
const GIVEN_NAME: &[&str] = &["given_name"];
const FAMILY_NAME: &[&str] = &["family_name"];
const DISPLAY_NAME: &[&str] = &["name"];
const GROUPS: &[&str] = &["groups", "roles"];
const DEPARTMENT: &[&str] = &["department"];

/// Where a verified login leads.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A user of a tenant (boxed: the records are large).
    One(Box<(TenantRecord, Resolved)>),
    /// The person has accounts in several organisations: they choose.
    Several(Vec<TenantRecord>),
    Refused(Refusal),
}

/// A verified person, as the connection maps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub subject: String,
    pub user_name: Option<String>,
    pub mapped: MappedUser,
    /// The IdP vouches for the address (`email_verified` is not false).
    pub email_verified: bool,
}

/// A claim's values: a string, or the strings, numbers and booleans of an array.
fn values(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    let text = |value: &Value| match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match claims.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(text).filter(|v| !v.is_empty()).collect(),
        Some(value) => text(value).filter(|v| !v.is_empty()).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Whether the ID token lacks a claim the mapping needs: the email address, and every claim the
/// admin mapped by name. Userinfo is then asked for the rest (OpenID Connect Core §5.3).
pub fn lacks_claims(claims: &Map<String, Value>, mapping: &ClaimMapping) -> bool {
    let configured = [
        &mapping.user_name,
        &mapping.email,
        &mapping.given_name,
        &mapping.family_name,
        &mapping.display_name,
        &mapping.groups,
        &mapping.department,
    ];
    let email = mapping.email.as_deref().unwrap_or(EMAIL[0]);
    !claims.contains_key(email)
        || configured
            .into_iter()
            .flatten()
            .chain(mapping.custom.values())
            .any(|name| !claims.contains_key(name))
}

pub fn map(subject: &str, claims: &Map<String, Value>, mapping: &ClaimMapping) -> Person {
    let all = |configured: &Option<String>, defaults: &[&str]| -> Vec<String> {
        match configured {
            Some(name) => values(claims, name),
            None => {
                defaults.iter().map(|name| values(claims, name)).find(|v| !v.is_empty()).unwrap_or_default()
            }
        }
    };
    let first = |configured: &Option<String>, defaults: &[&str]| all(configured, defaults).into_iter().next();
    let email = first(&mapping.email, EMAIL).filter(|e| e.contains('@')).map(|e| e.to_lowercase());
    let email_verified = !matches!(claims.get("email_verified"), Some(Value::Bool(false)))
        && !matches!(claims.get("email_verified"), Some(Value::String(s)) if s == "false");
    Person {
        subject: subject.to_owned(),
        user_name: first(&mapping.user_name, USER_NAME),
        email_verified,
        mapped: MappedUser {
            email,
            given_name: first(&mapping.given_name, GIVEN_NAME),
            family_name: first(&mapping.family_name, FAMILY_NAME),
            display_name: first(&mapping.display_name, DISPLAY_NAME),
            department: first(&mapping.department, DEPARTMENT),
            groups: all(&mapping.groups, GROUPS),
            custom: mapping
                .custom
                .iter()
                .map(|(field, claim)| (field.clone(), values(claims, claim)))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        },
    }
}

/// Finds who `person` is in `tenant`: deactivated users are refused; a stranger is created only
/// where `jit` allows it and the IdP vouches for the address.
pub fn resolve(
    src: &impl Source,
    tenant: TenantId,
    upstream: &str,
    person: &Person,
    jit: bool,
    now: OffsetDateTime,
) -> Result<Result<Resolved, Refusal>, StoreError> {
    let trusted_email = person.mapped.email.as_deref().filter(|_| person.email_verified);
    let linked = match oidc::subject_user(src, upstream, &person.subject, tenant)? {
        Some(id) => directory::user(src, tenant, id)?,
        None => None,
    };
    let found = match linked {
        Some(user) => Some(user),
        None => {
            let by_name = match &person.user_name {
                Some(name) => directory::user_id_by_name(src, tenant, name)?
                    .map(|id| directory::user(src, tenant, id))
                    .transpose()?
                    .flatten(),
                None => None,
            };
            match (by_name, trusted_email) {
                (Some(user), _) => Some(user),
                (None, Some(email)) => directory::user_by_email(src, tenant, email)?,
                (None, None) => None,
            }
        }
    };
    Ok(match found {
        Some(user) if user.active => Ok(Resolved::Existing(user)),
        Some(user) => Err(Refusal::UserDeactivated(user.user_name)),
        None if !jit => Err(Refusal::UnknownUser(
            person
                .user_name
                .clone()
                .or_else(|| person.mapped.email.clone())
                .unwrap_or_else(|| person.subject.clone()),
        )),
        None => match (&person.mapped.email, trusted_email) {
            (_, Some(email)) => Ok(Resolved::New(new_user(tenant, email, &person.mapped, now))),
            (Some(_), None) => Err(Refusal::EmailUnverified),
            (None, None) => Err(Refusal::NoEmail("email".into())),
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn standard_claims_map_without_configuration() {
        let person = map(
            "00u1",
            &claims(json!({
                "preferred_username": "ada@corp.test", "email": "Ada@Corp.test", "email_verified": true,
                "given_name": "Ada", "family_name": "Lovelace", "name": "Ada Lovelace",
                "groups": ["Engineering", "Admins"], "department": "R&D",
            })),
            &ClaimMapping::default(),
        );
        assert_eq!(person.user_name.as_deref(), Some("ada@corp.test"));
        assert_eq!(person.mapped.email.as_deref(), Some("ada@corp.test"));
        assert_eq!(person.mapped.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(person.mapped.groups, ["Engineering", "Admins"]);
        assert_eq!(person.mapped.department.as_deref(), Some("R&D"));
        assert!(person.email_verified);
    }

    #[test]
    fn configured_claims_win_and_an_unverified_address_is_flagged() {
        let mapping = ClaimMapping {
            email: Some("mail".into()),
            groups: Some("memberOf".into()),
            custom: [("cost_center".to_owned(), "costCenter".to_owned())].into(),
            ..ClaimMapping::default()
        };
        let person = map(
            "s",
            &claims(json!({
                "email": "ignored@corp.test", "mail": "grace@corp.test", "email_verified": false,
                "memberOf": "Sales", "costCenter": 42,
            })),
            &mapping,
        );
        assert_eq!(person.mapped.email.as_deref(), Some("grace@corp.test"));
        assert_eq!(person.mapped.groups, ["Sales"]);
        assert_eq!(person.mapped.custom["cost_center"], ["42"]);
        assert!(!person.email_verified);
        assert_eq!(person.user_name, None, "an unverified address never stands in for the userName");
    }
}
