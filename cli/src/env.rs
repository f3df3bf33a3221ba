//! The command's environment: its variables and the rule every one of them follows (empty or
//! only whitespace counts as unset, as in the SDK).
//!
//! The SDK reads its own variables (`RALIO_API_URL`, `RALIO_CONFIG_DIR`, the key and Vault
//! variables, `RALIO_REGISTRATION_TICKET`) where they apply; the command names only the few it
//! checks itself.

/// The variable holding the default registration ticket (read by `ralio::register::register`
/// when no ticket is given).
pub const TICKET_VAR: &str = "RALIO_REGISTRATION_TICKET";

/// Reads an environment variable as text; unset, blank or not UTF-8 is `None`.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !is_blank(v))
}

/// Empty, or only whitespace.
fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

#[cfg(test)]
mod tests {
    #[test]
    fn blank_counts_as_unset() {
        assert!(super::is_blank(""));
        assert!(super::is_blank("  \t\n"));
        assert!(!super::is_blank(" x "));
        assert_eq!(super::var("RALIO_CLI_TEST_NEVER_SET"), None);
    }
}
