//! Portcullis as the OpenID Provider the app talks to. For now: its token signing keys.

pub mod keys;
