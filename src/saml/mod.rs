//! The SAML 2.0 service provider. For now: the instance's SP certificate.

pub mod sp_cert;
