//! Home-realm discovery: which way of signing in a person is sent to.
//!
//! The decision is a pure function of facts read from the store (the tenant the address's
//! verified domain belongs to, or the tenant the app pinned; that tenant's SSO connection and
//! policy; whether Google sign-in is on), so every branch is tested here without a server.
//! Unverified domains never route: anyone can add a domain to a tenant, only its owner can
//! publish the DNS record.

use crate::ids::TenantId;

/// What routing needs to know about a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantFacts {
    pub id: TenantId,
    pub name: String,
    /// Its enabled SSO connection (`saml:<id>` or `oidc:<id>`), if it has one.
    pub sso_connection: Option<String>,
    /// Its people may not fall back to a password or Google.
    pub require_sso: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The tenant the app pinned (`organization`, a vanity URL): wins over the address.
    pub pinned: Option<TenantFacts>,
    /// The tenant owning the address's domain, if that domain is verified.
    pub verified_domain_owner: Option<TenantFacts>,
    pub google_enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// To the tenant's IdP. With `password_allowed`, people who had a password before SSO was
    /// added may still use it.
    Sso { tenant: TenantId, name: String, connection: String, password_allowed: bool },
    /// The tenant demands SSO but has no connection yet: nobody can sign in.
    SsoNotConfigured { tenant: TenantId, name: String },
    /// A password, in `tenant` or (None) in whichever tenant the address has an account;
    /// `google` says whether Google sign-in is offered beside it.
    Password { tenant: Option<TenantId>, google: bool },
}

pub fn decide(facts: &Facts) -> Route {
    let tenant = facts.pinned.as_ref().or(facts.verified_domain_owner.as_ref());
    match tenant {
        Some(tenant) => match (&tenant.sso_connection, tenant.require_sso) {
            (Some(connection), required) => Route::Sso {
                tenant: tenant.id,
                name: tenant.name.clone(),
                connection: connection.clone(),
                password_allowed: !required,
            },
            (None, true) => Route::SsoNotConfigured { tenant: tenant.id, name: tenant.name.clone() },
            (None, false) => Route::Password { tenant: Some(tenant.id), google: facts.google_enabled },
        },
        None => Route::Password { tenant: None, google: facts.google_enabled },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(sso: Option<&str>, require_sso: bool) -> TenantFacts {
        TenantFacts {
            id: TenantId::generate(),
            name: "Acme".into(),
            sso_connection: sso.map(str::to_owned),
            require_sso,
        }
    }

    #[test]
    fn a_verified_domain_with_sso_goes_to_its_idp() {
        let acme = tenant(Some("saml:1"), false);
        let facts = Facts { verified_domain_owner: Some(acme.clone()), ..Facts::default() };
        assert_eq!(
            decide(&facts),
            Route::Sso {
                tenant: acme.id,
                name: "Acme".into(),
                connection: "saml:1".into(),
                password_allowed: true
            }
        );
    }

    #[test]
    fn required_sso_forbids_the_password_fallback() {
        let acme = tenant(Some("oidc:2"), true);
        let facts =
            Facts { verified_domain_owner: Some(acme.clone()), google_enabled: true, ..Facts::default() };
        assert_eq!(
            decide(&facts),
            Route::Sso {
                tenant: acme.id,
                name: "Acme".into(),
                connection: "oidc:2".into(),
                password_allowed: false
            }
        );
        let unconfigured = tenant(None, true);
        let facts = Facts { verified_domain_owner: Some(unconfigured.clone()), ..Facts::default() };
        assert_eq!(decide(&facts), Route::SsoNotConfigured { tenant: unconfigured.id, name: "Acme".into() });
    }

    #[test]
    fn a_tenant_without_sso_uses_passwords_and_google_when_on() {
        let acme = tenant(None, false);
        let facts =
            Facts { verified_domain_owner: Some(acme.clone()), google_enabled: true, ..Facts::default() };
        assert_eq!(decide(&facts), Route::Password { tenant: Some(acme.id), google: true });
    }

    #[test]
    fn an_address_no_tenant_has_verified_goes_to_password_or_google() {
        assert_eq!(decide(&Facts::default()), Route::Password { tenant: None, google: false });
        let facts = Facts { google_enabled: true, ..Facts::default() };
        assert_eq!(decide(&facts), Route::Password { tenant: None, google: true });
    }

    #[test]
    fn a_pinned_tenant_wins_over_the_address() {
        let (pinned, other) = (tenant(Some("saml:p"), false), tenant(Some("saml:o"), false));
        let facts =
            Facts { pinned: Some(pinned.clone()), verified_domain_owner: Some(other), google_enabled: false };
        assert_eq!(
            decide(&facts),
            Route::Sso {
                tenant: pinned.id,
                name: "Acme".into(),
                connection: "saml:p".into(),
                password_allowed: true
            }
        );
    }
}
