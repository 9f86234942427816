//! Argon2id password hashing.
//!
//! Hashing and verifying are deliberately slow (tens of milliseconds and ~19 MiB of memory with the
//! default parameters): that is what makes a stolen hash expensive to attack. The same slowness would
//! stall an async runtime, so every call here must run on a blocking thread
//! (`tokio::task::spawn_blocking`); the caller does that, this module stays synchronous.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// A password that no account has: the dummy hash is made from it, so that a login for an unknown
/// user can spend as long as a real verify.
const DUMMY_PASSWORD: &str = "portcullis: no such user";

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The configured cost parameters are outside what argon2 accepts (e.g. memory below 8 KiB per lane).
    #[error("argon2 parameters are not valid: {0}")]
    InvalidParams(argon2::Error),
    /// The hash computation itself failed (only for inputs argon2 cannot take, such as a 4 GiB password).
    #[error("the password could not be hashed: {0}")]
    Hashing(argon2::password_hash::Error),
}

/// Hashes and verifies passwords with argon2id at one set of cost parameters.
///
/// The parameters come from the server configuration; hashes made under older parameters still verify
/// (a PHC string carries its own), and [`PasswordHasher::needs_rehash`] tells when to upgrade them.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of [`DUMMY_PASSWORD`] under `params`, made on first use; `None` if that ever failed.
    dummy: OnceLock<Option<String>>,
}

impl Default for PasswordHasher {
    /// OWASP's recommendation for argon2id: m = 19456 KiB, t = 2, p = 1.
    fn default() -> Self {
        Self { params: Params::DEFAULT, dummy: OnceLock::new() }
    }
}

impl PasswordHasher {
    /// A hasher with the given cost: memory in KiB, iterations (time cost) and parallelism (lanes).
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, HashError> {
        let params =
            Params::new(memory_kib, iterations, parallelism, None).map_err(HashError::InvalidParams)?;
        Ok(Self { params, dummy: OnceLock::new() })
    }

    /// The cost parameters new hashes are made with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Hashes `password` with a fresh random salt; the result is a PHC string (`$argon2id$v=19$m=…`).
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        let hash = self.argon2().hash_password(password.as_bytes(), &salt).map_err(HashError::Hashing)?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `phc`. A malformed `phc` never matches.
    ///
    /// The parameters are read from `phc`, so hashes made before a configuration change still verify.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        // `Argon2::default()` is fine here: verification takes algorithm, version and costs from `parsed`.
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    }

    /// Whether `phc` was made with other settings than this hasher's (or cannot be read), so that it
    /// should be replaced by a fresh hash after the next successful verify.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let is_current_algorithm =
            parsed.algorithm == Algorithm::Argon2id.ident() && parsed.version == Some(Version::V0x13.into());
        let Ok(stored) = Params::try_from(&parsed) else {
            return true;
        };
        !is_current_algorithm || !self.same_costs(&stored)
    }

    /// Spends as long as a real [`PasswordHasher::verify`] and always fails.
    ///
    /// Call it when the account does not exist (or has no password), so that "no such user" takes the
    /// same time as "wrong password" and an attacker cannot enumerate accounts by timing logins.
    /// The first call also makes the dummy hash; [`PasswordHasher::warm_up`] does that ahead of time.
    pub fn verify_dummy(&self, password: &str) {
        match self.dummy_hash() {
            Some(phc) => {
                std::hint::black_box(self.verify(password, phc));
            }
            // Unreachable with valid params, but even then spend the cost of one hash.
            None => {
                let _ = std::hint::black_box(self.hash(password));
            }
        }
    }

    /// Makes the dummy hash now (at start-up, on a blocking thread) instead of during the first login
    /// for an unknown user, which would otherwise take twice as long as every later one.
    pub fn warm_up(&self) {
        let _ = self.dummy_hash();
    }

    fn dummy_hash(&self) -> Option<&str> {
        self.dummy.get_or_init(|| self.hash(DUMMY_PASSWORD).ok()).as_deref()
    }

    fn same_costs(&self, stored: &Params) -> bool {
        stored.m_cost() == self.params.m_cost()
            && stored.t_cost() == self.params.t_cost()
            && stored.p_cost() == self.params.p_cost()
            && stored.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                == self.params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters keep the tests fast; one test below uses the defaults.
    fn cheap() -> PasswordHasher {
        PasswordHasher::new(64, 1, 1).unwrap()
    }

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let hasher = cheap();
        let phc = hasher.hash("correct horse battery staple").unwrap();
        assert!(hasher.verify("correct horse battery staple", &phc));
        assert!(!hasher.verify("correct horse battery stapler", &phc));
        assert!(!hasher.verify("", &phc));
    }

    #[test]
    fn each_hash_has_its_own_salt() {
        let hasher = cheap();
        let first = hasher.hash("same password").unwrap();
        let second = hasher.hash("same password").unwrap();
        assert_ne!(first, second);
        assert!(hasher.verify("same password", &first) && hasher.verify("same password", &second));
    }

    #[test]
    fn the_phc_string_is_argon2id_with_the_configured_costs() {
        let phc = PasswordHasher::new(128, 3, 2).unwrap().hash("pw").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=128,t=3,p=2$"), "{phc}");
    }

    #[test]
    fn the_default_is_owasps_recommendation() {
        let hasher = PasswordHasher::default();
        let phc = hasher.hash("a default-cost password").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify("a default-cost password", &phc));
        assert!(!hasher.needs_rehash(&phc));
    }

    #[test]
    fn malformed_hashes_never_verify() {
        let hasher = cheap();
        assert!(!hasher.verify("pw", ""));
        assert!(!hasher.verify("pw", "not a phc string"));
        assert!(!hasher.verify("pw", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$"));
    }

    #[test]
    fn hashes_verify_across_a_change_of_costs_but_ask_for_a_rehash() {
        let old = PasswordHasher::new(64, 1, 1).unwrap();
        let new = PasswordHasher::new(128, 2, 1).unwrap();
        let phc = old.hash("pw").unwrap();
        assert!(new.verify("pw", &phc));
        assert!(new.needs_rehash(&phc));
        assert!(!old.needs_rehash(&phc));
    }

    #[test]
    fn other_algorithms_and_garbage_ask_for_a_rehash() {
        let hasher = cheap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, hasher.params().clone())
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(hasher.verify("pw", &argon2i));
        assert!(hasher.needs_rehash(&argon2i));
        assert!(hasher.needs_rehash("garbage"));
    }

    #[test]
    fn invalid_costs_are_refused() {
        assert!(matches!(PasswordHasher::new(1, 1, 1), Err(HashError::InvalidParams(_))));
        assert!(matches!(PasswordHasher::new(64, 0, 1), Err(HashError::InvalidParams(_))));
        assert!(matches!(PasswordHasher::new(64, 1, 0), Err(HashError::InvalidParams(_))));
    }

    #[test]
    fn the_dummy_verify_uses_a_hash_with_the_configured_costs() {
        let hasher = PasswordHasher::new(96, 2, 1).unwrap();
        hasher.verify_dummy("anything");
        let dummy = hasher.dummy_hash().unwrap();
        assert!(!hasher.needs_rehash(dummy));
        assert!(!hasher.verify("anything", dummy));
        // Made once: a second call reuses it.
        hasher.verify_dummy("something else");
        assert_eq!(hasher.dummy_hash().unwrap(), dummy);
    }
}
