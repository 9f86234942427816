//! Email and password sign-in: the logic, without HTTP or storage.
//!
//! - [`hash`]: argon2id hashing, verification, rehash detection, and a dummy verify so that unknown
//!   accounts cost as much time as wrong passwords. Slow by design: callers run it on a blocking thread.
//! - [`policy`]: which new passwords are accepted (length and guessability, no composition rules).
//! - [`lockout`]: per-account lock after repeated failures, and a per-client token bucket.
//! - [`reset`]: signed, expiring, single-use reset and invitation links that need no stored state.
//! - [`mailer`]: sending the reset email through SMTP.
//!
//! Everything here is pure or takes its time as an argument (`now`), so the server's clock stays the
//! only reader of wall time, and every rule can be tested at any instant.

pub mod hash;
pub mod lockout;
pub mod mailer;
pub mod policy;
pub mod reset;

#[cfg(test)]
pub(crate) mod smtp_sink;

pub use hash::{HashError, PasswordHasher};
pub use lockout::{FailureRecord, LockoutPolicy, LoginThrottle, RetryAfter};
pub use mailer::{MailError, Mailer, SmtpSecurity, SmtpSettings};
pub use policy::{PasswordPolicy, PolicyViolation, context_words};
pub use reset::{ResetClaims, ResetError, ResetPurpose, ResetSigner, credential_fingerprint, peek};
