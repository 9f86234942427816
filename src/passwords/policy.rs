//! Which passwords may be chosen.
//!
//! In the spirit of NIST SP 800-63B: no composition rules (no "one digit, one symbol"), which push
//! people towards `Password1!`; instead a minimum length, a generous maximum, and an estimate of how
//! guessable the password is (zxcvbn), which also catches passwords built from the person's own email
//! address or name when those are passed as context words.

use std::fmt;

/// A reason a password was refused. Its `Display` is written for the person choosing the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// Fewer characters than the minimum.
    #[error("Use at least {min} characters.")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More characters than the maximum (which bounds the cost of hashing it).
    #[error("Use at most {max} characters.")]
    TooLong {
        /// The maximum, in characters.
        max: usize,
    },
    /// Nothing but spaces.
    #[error("The password cannot be only spaces.")]
    OnlyWhitespace,
    /// Tabs, line breaks and other invisible control characters, which are hard to type again.
    #[error("The password cannot contain control characters such as tabs or line breaks.")]
    ControlCharacter,
    /// Long enough but too easy to guess.
    #[error("{}", weak_message(warning.as_deref(), suggestions))]
    TooWeak {
        /// zxcvbn's explanation of what makes it guessable, when it has one.
        warning: Option<String>,
        /// zxcvbn's advice for a better one.
        suggestions: Vec<String>,
    },
}

fn weak_message(warning: Option<&str>, suggestions: &[String]) -> String {
    let mut message = String::from("This password is too easy to guess.");
    for sentence in warning.into_iter().chain(suggestions.iter().map(String::as_str)) {
        message.push(' ');
        message.push_str(sentence);
    }
    message
}

/// The rules a new password must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (Unicode scalar values).
    pub min_length: usize,
    /// Maximum length in characters; long enough for any passphrase, short enough to bound hashing work.
    pub max_length: usize,
    /// Minimum zxcvbn score, 0 (anything) to 4 (very hard to guess); values above 4 act as 4.
    pub min_strength: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 12, max_length: 256, min_strength: 3 }
    }
}

/// The highest score zxcvbn gives.
const MAX_SCORE: u8 = 4;

impl PasswordPolicy {
    /// Checks `password` against the policy.
    ///
    /// `user_inputs` are words a guesser would try first for this person (their email address, its
    /// local part, their name: see [`context_words`]); a password built from them scores low.
    pub fn check(&self, password: &str, user_inputs: &[&str]) -> Result<(), PolicyViolation> {
        if password.chars().any(char::is_control) {
            return Err(PolicyViolation::ControlCharacter);
        }
        if !password.is_empty() && password.chars().all(char::is_whitespace) {
            return Err(PolicyViolation::OnlyWhitespace);
        }
        let length = password.chars().count();
        if length < self.min_length {
            return Err(PolicyViolation::TooShort { min: self.min_length });
        }
        if length > self.max_length {
            return Err(PolicyViolation::TooLong { max: self.max_length });
        }
        self.check_strength(password, user_inputs)
    }

    /// The rules as one line for the form, e.g. "At least 12 characters; at most 256; …".
    pub fn describe(&self) -> String {
        let mut rules = vec![format!("At least {} characters", self.min_length)];
        rules.push(format!("at most {}", self.max_length));
        if self.min_strength > 0 {
            rules.push("hard to guess: avoid common words, names and your email address".to_owned());
        }
        rules.push("spaces are allowed, and a few uncommon words make a good password".to_owned());
        format!("{}.", rules.join("; "))
    }

    fn check_strength(&self, password: &str, user_inputs: &[&str]) -> Result<(), PolicyViolation> {
        if self.min_strength == 0 {
            return Ok(());
        }
        let inputs: Vec<&str> = user_inputs.iter().copied().filter(|word| !word.trim().is_empty()).collect();
        let estimate = zxcvbn::zxcvbn(password, &inputs);
        if u8::from(estimate.score()) >= self.min_strength.min(MAX_SCORE) {
            return Ok(());
        }
        let feedback = estimate.feedback();
        Err(PolicyViolation::TooWeak {
            warning: feedback.and_then(|f| f.warning()).map(|warning| warning.to_string()),
            suggestions: feedback
                .map(|f| f.suggestions().iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        })
    }
}

impl fmt::Display for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The words to pass as `user_inputs` for a person: the email address, its local part and its parts
/// split on `.`, `_`, `-`, `+`, and each word of the display name.
pub fn context_words<'a>(email: &'a str, display_name: Option<&'a str>) -> Vec<&'a str> {
    let local_part = email.rsplit_once('@').map_or(email, |(local, _)| local);
    let mut words = vec![email, local_part];
    words.extend(local_part.split(['.', '_', '-', '+']));
    words.extend(display_name.into_iter().flat_map(str::split_whitespace));
    words.retain(|word| word.chars().count() >= 3);
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_uncommon_passphrase_is_accepted() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("velvet otter juggles quantum marmalade", &[]), Ok(()));
    }

    #[test]
    fn a_short_password_names_the_minimum() {
        let error = PasswordPolicy::default().check("x7$Kq!2", &[]).unwrap_err();
        assert_eq!(error, PolicyViolation::TooShort { min: 12 });
        assert_eq!(error.to_string(), "Use at least 12 characters.");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let policy = PasswordPolicy { min_length: 12, max_length: 12, min_strength: 0 };
        assert_eq!(policy.check("ééééééééééé", &[]), Err(PolicyViolation::TooShort { min: 12 }));
        assert_eq!(policy.check("éééééééééééé", &[]), Ok(()));
    }

    #[test]
    fn an_overlong_password_names_the_maximum() {
        let policy = PasswordPolicy::default();
        let error = policy.check(&"correct horse ".repeat(20), &[]).unwrap_err();
        assert_eq!(error, PolicyViolation::TooLong { max: 256 });
        assert_eq!(error.to_string(), "Use at most 256 characters.");
    }

    #[test]
    fn common_passwords_are_too_weak_and_say_why() {
        let error = PasswordPolicy::default().check("password1234", &[]).unwrap_err();
        let PolicyViolation::TooWeak { warning, suggestions } = &error else {
            unreachable!("expected TooWeak, got {error:?}");
        };
        assert!(warning.is_some() || !suggestions.is_empty());
        let message = error.to_string();
        assert!(message.starts_with("This password is too easy to guess."), "{message}");
        assert!(message.len() > "This password is too easy to guess.".len(), "{message}");
    }

    #[test]
    fn a_password_built_from_the_persons_email_is_too_weak() {
        let policy = PasswordPolicy::default();
        let password = "margaretthatcher1925";
        let words = context_words("margaret.thatcher1925@example.org", Some("Margaret Thatcher"));
        assert_eq!(policy.check(password, &[]), Ok(()), "it should pass without context");
        assert!(matches!(policy.check(password, &words), Err(PolicyViolation::TooWeak { .. })));
    }

    #[test]
    fn whitespace_only_and_control_characters_are_refused() {
        let policy = PasswordPolicy::default();
        let error = policy.check(&" ".repeat(20), &[]).unwrap_err();
        assert_eq!(error, PolicyViolation::OnlyWhitespace);
        assert_eq!(error.to_string(), "The password cannot be only spaces.");
        let error = policy.check("velvet otter\tjuggles marmalade", &[]).unwrap_err();
        assert_eq!(error, PolicyViolation::ControlCharacter);
        assert!(error.to_string().contains("control characters"));
        assert_eq!(
            policy.check("velvet otter\u{0}juggles marmalade", &[]),
            Err(PolicyViolation::ControlCharacter)
        );
    }

    #[test]
    fn strength_zero_checks_only_the_length() {
        let policy = PasswordPolicy { min_strength: 0, ..PasswordPolicy::default() };
        assert_eq!(policy.check("password1234", &[]), Ok(()));
    }

    #[test]
    fn the_description_states_the_rules() {
        let text = PasswordPolicy::default().describe();
        assert!(text.starts_with("At least 12 characters; at most 256;"), "{text}");
        assert!(text.contains("email address"), "{text}");
        let lax = PasswordPolicy { min_length: 8, max_length: 64, min_strength: 0 }.describe();
        assert!(lax.starts_with("At least 8 characters; at most 64;"), "{lax}");
        assert!(!lax.contains("email address"), "{lax}");
    }

    #[test]
    fn context_words_cover_the_address_its_parts_and_the_name() {
        let words = context_words("jane.doe+work@example.com", Some("Jane Q Doe"));
        for expected in ["jane.doe+work@example.com", "jane.doe+work", "jane", "doe", "work", "Jane", "Doe"] {
            assert!(words.contains(&expected), "{expected} missing from {words:?}");
        }
        assert!(!words.contains(&"Q"), "one-letter words are noise: {words:?}");
    }
}
