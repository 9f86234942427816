//! The rules for what a tenant's slug, name and email domains may be.

use super::TenantError;

const MAX_SLUG: usize = 63;
const MAX_DISPLAY_NAME: usize = 200;
const MAX_DOMAIN: usize = 253;

/// Slugs that would be confusing as vanity paths or in support conversations.
const RESERVED_SLUGS: &[&str] = &["admin", "api", "portcullis", "www", "login", "logout", "setup", "static"];

/// A slug is the tenant's vanity path segment: 2 to 63 characters of lower-case letters, digits
/// and single hyphens, starting with a letter and not ending with a hyphen.
pub fn slug(value: &str) -> Result<String, TenantError> {
    let invalid = |message: &str| TenantError::Invalid { field: "slug", message: message.to_owned() };
    let len = value.len();
    if !(2..=MAX_SLUG).contains(&len) {
        return Err(invalid("must be 2 to 63 characters long"));
    }
    if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(invalid("may contain only lower-case letters a-z, digits and hyphens"));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) || value.ends_with('-') || value.contains("--") {
        return Err(invalid("must start with a letter, not end with a hyphen, and not contain `--`"));
    }
    if RESERVED_SLUGS.contains(&value) {
        return Err(invalid("is reserved"));
    }
    Ok(value.to_owned())
}

pub fn display_name(value: &str) -> Result<String, TenantError> {
    crate::text::label(value, MAX_DISPLAY_NAME)
        .map_err(|message| TenantError::Invalid { field: "display_name", message })
}

/// An email domain in its canonical form: lower-case ASCII (internationalised names in their
/// `xn--` form), no trailing dot, at least two labels, a non-numeric top-level label.
pub fn domain(value: &str) -> Result<String, TenantError> {
    let invalid = |message: String| TenantError::Invalid { field: "domain", message };
    let trimmed = value.trim().strip_suffix('.').unwrap_or(value.trim());
    if trimmed.is_empty() || trimmed.len() > MAX_DOMAIN * 4 {
        return Err(invalid("must be a domain name such as acme.com".into()));
    }
    let ascii = idna::domain_to_ascii_strict(trimmed)
        .map_err(|_| invalid(format!("`{value}` is not a valid domain name")))?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if ascii.len() > MAX_DOMAIN || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(invalid(format!("`{value}` is not a valid domain name with at least two labels")));
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(invalid(format!("`{value}` is an IP address, not a domain name")));
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["acme", "acme-corp", "a1", "globex-2"] {
            assert_eq!(slug(ok).unwrap(), ok);
        }
        for bad in
            ["", "a", "Acme", "1acme", "acme-", "ac--me", "acme corp", "ácme", "admin", &"a".repeat(64)]
        {
            assert!(slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domains() {
        assert_eq!(domain("Acme.COM").unwrap(), "acme.com");
        assert_eq!(domain("acme.com.").unwrap(), "acme.com");
        assert_eq!(domain("münchen.de").unwrap(), "xn--mnchen-3ya.de");
        assert_eq!(domain("mail.acme.co.uk").unwrap(), "mail.acme.co.uk");
        for bad in [
            "",
            "com",
            "acme",
            "-acme.com",
            "acme-.com",
            "ac me.com",
            "10.0.0.1",
            "acme..com",
            "a@b.com",
            "*.acme.com",
            "http://acme.com",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(domain(bad).is_err(), "{bad}");
        }
    }
}
