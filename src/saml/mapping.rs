//! From an accepted assertion to a directory user: the connection's attribute mapping (with the
//! names Okta, Entra ID and ADFS send by default where a field is not mapped), the lookup of the
//! provisioned user, and the record of a user created just in time.

use time::OffsetDateTime;

use super::{checks::Accepted, refusal::Refusal};
pub use crate::directory::federated::{MappedUser, Resolved};
use crate::{
    directory::federated::new_user,
    ids::TenantId,
    store::{Source, StoreError, directory, saml::AttributeMapping},
};

const EMAIL: &[&str] = &[
    "email",
    "mail",
    "emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];
const GIVEN_NAME: &[&str] = &[
    "firstName",
    "givenName",
    "given_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "urn:oid:2.5.4.42",
];
const FAMILY_NAME: &[&str] = &[
    "lastName",
    "surname",
    "sn",
    "family_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "urn:oid:2.5.4.4",
];
const DISPLAY_NAME: &[&str] = &[
    "displayName",
    "name",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "urn:oid:2.16.840.1.113730.3.1.241",
];
const GROUPS: &[&str] = &[
    "groups",
    "memberOf",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.xmlsoap.org/claims/Group",
];
const DEPARTMENT: &[&str] =
    &["department", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department"];

pub fn map(accepted: &Accepted, mapping: &AttributeMapping) -> MappedUser {
    let attributes = &accepted.attributes;
    let values = |configured: &Option<String>, defaults: &[&str]| -> Vec<String> {
        match configured {
            Some(name) => attributes.get(name).cloned().unwrap_or_default(),
            None => defaults.iter().find_map(|name| attributes.get(*name)).cloned().unwrap_or_default(),
        }
    };
    let first = |configured: &Option<String>, defaults: &[&str]| {
        values(configured, defaults).into_iter().map(|v| v.trim().to_owned()).find(|v| !v.is_empty())
    };
    let email = first(&mapping.email, EMAIL)
        .or_else(|| accepted.name_id.contains('@').then(|| accepted.name_id.clone()))
        .map(|e| e.to_lowercase());
    MappedUser {
        email,
        given_name: first(&mapping.given_name, GIVEN_NAME),
        family_name: first(&mapping.family_name, FAMILY_NAME),
        display_name: first(&mapping.display_name, DISPLAY_NAME),
        department: first(&mapping.department, DEPARTMENT),
        groups: values(&mapping.groups, GROUPS),
        custom: mapping
            .custom
            .iter()
            .filter_map(|(field, attribute)| attributes.get(attribute).map(|v| (field.clone(), v.clone())))
            .collect(),
    }
}

/// Finds the user by the NameID as userName (how Okta and Entra ID provision), then by email;
/// deactivated users are refused; a stranger is created only where the connection allows it.
pub fn resolve(
    src: &impl Source,
    tenant: TenantId,
    accepted: &Accepted,
    mapped: &MappedUser,
    jit: bool,
    now: OffsetDateTime,
) -> Result<Result<Resolved, Refusal>, StoreError> {
    let by_name = directory::user_id_by_name(src, tenant, &accepted.name_id)?
        .map(|id| directory::user(src, tenant, id))
        .transpose()?
        .flatten();
    let found = match (by_name, &mapped.email) {
        (Some(user), _) => Some(user),
        (None, Some(email)) => directory::user_by_email(src, tenant, email)?,
        (None, None) => None,
    };
    Ok(match found {
        Some(user) if user.active => Ok(Resolved::Existing(user)),
        Some(user) => Err(Refusal::UserDeactivated(user.user_name)),
        None if !jit => Err(Refusal::UnknownUser(accepted.name_id.clone())),
        None => match &mapped.email {
            Some(email) => Ok(Resolved::New(new_user(tenant, email, mapped, now))),
            None => Err(Refusal::NoEmail("email".into())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(name_id: &str, attributes: &[(&str, &[&str])]) -> Accepted {
        Accepted {
            assertion_id: "_a".into(),
            in_response_to: None,
            name_id: name_id.into(),
            name_id_format: None,
            session_index: None,
            session_not_on_or_after: None,
            remember_until: OffsetDateTime::now_utc(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
            authn_context: None,
        }
    }

    #[test]
    fn entra_ids_claim_names_map_without_configuration() {
        let assertion = accepted(
            "ada@corp.test",
            &[
                ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", &["Ada@Corp.test"]),
                ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", &["Ada"]),
                ("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", &["g1", "g2"]),
            ],
        );
        let mapped = map(&assertion, &AttributeMapping::default());
        assert_eq!(mapped.email.as_deref(), Some("ada@corp.test"));
        assert_eq!(mapped.given_name.as_deref(), Some("Ada"));
        assert_eq!(mapped.groups, ["g1", "g2"]);
    }

    #[test]
    fn a_configured_attribute_wins_and_the_name_id_is_the_email_of_last_resort() {
        let assertion = accepted("u123@corp.test", &[("mail", &["other@corp.test"]), ("Dept", &["Sales"])]);
        let mapping = AttributeMapping {
            email: Some("workEmail".into()),
            department: Some("Dept".into()),
            custom: [("cost_center".to_owned(), "Dept".to_owned())].into(),
            ..AttributeMapping::default()
        };
        let mapped = map(&assertion, &mapping);
        assert_eq!(mapped.email.as_deref(), Some("u123@corp.test"));
        assert_eq!(mapped.department.as_deref(), Some("Sales"));
        assert_eq!(mapped.custom["cost_center"], ["Sales"]);
    }
}
