//! End-to-end tests: each starts the real `portcullis serve` on an ephemeral port with its own
//! temporary data directory and talks HTTP to it. One binary (modules below) to keep link time
//! down; tests run in parallel and share nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod admin_keys;
mod audit;
mod backup;
mod bad_input;
mod cli;
mod dashboard;
mod domains;
mod http_basics;
mod lifecycle;
mod metrics;
mod oidc;
mod openapi;
mod provider;
mod proxy_tls;
mod saml;
mod scim;
mod server;
mod support;
mod tenants;
mod upgrade;
mod webhooks;
