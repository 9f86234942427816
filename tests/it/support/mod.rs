//! Peers the end-to-end tests start on loopback.

pub mod dns;
pub mod smtp;
