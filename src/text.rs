//! Rules for the free-text values people type (names, labels), shared by every feature.

/// The value trimmed, if it then has 1 to `max_chars` characters and no control characters.
pub fn label(value: &str, max_chars: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max_chars || value.chars().any(char::is_control) {
        return Err(format!("must be 1 to {max_chars} characters, without control characters"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label("  Acme Corp ", 20).unwrap(), "Acme Corp");
        assert!(label("   ", 20).is_err());
        assert!(label("a\u{0}b", 20).is_err());
        assert!(label("a\nb", 20).is_err());
        assert!(label(&"x".repeat(21), 20).is_err());
        assert!(label(&"é".repeat(20), 20).is_ok());
    }
}
