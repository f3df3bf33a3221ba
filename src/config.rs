//! Configuration: defaults, the environment rules, the loopback rule, and Vault settings from
//! the environment, each with one definition inside the SDK. Crate-private: users meet these
//! rules through the builder ([`crate::RalioClientBuilder::base_url`],
//! [`crate::RalioClient::from_env`]), the stores' `from_env` constructors and registration.
//!
//! Precedence everywhere (PROTOCOL.md): an explicit argument, then the environment variable,
//! then the default. A variable that is empty or only whitespace counts as unset.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::time::Duration;

/// The production API origin.
pub(crate) const DEFAULT_API_URL: &str = "https://api.ralio.co";
/// Environment variable overriding the API origin.
pub(crate) const ENV_API_URL: &str = "RALIO_API_URL";

pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_READ_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub(crate) const DEFAULT_PER_PAGE: u64 = 50;

/// Whether an environment value counts as unset: empty, or only whitespace.
pub(crate) fn is_unset(value: &OsStr) -> bool {
    value.to_string_lossy().trim().is_empty()
}

/// Reads an environment variable as text; unset, [blank](is_unset) or not UTF-8 is `None`.
pub(crate) fn env_var(name: &str) -> Option<String> {
    env_var_os(name)?.into_string().ok()
}

/// Reads an environment variable as an OS string (for paths); unset or [blank](is_unset) is
/// `None`.
pub(crate) fn env_var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !is_unset(v))
}

/// `localhost`, `127.0.0.0/8` or `::1`: the hosts where `http://` stays on this machine.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A variable that must be set is unset (or blank: empty or only whitespace counts as unset).
/// What [`VaultConfig::from_env`](crate::store::VaultConfig::from_env) returns when a setting
/// is missing.
#[cfg(feature = "vault")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the environment variable {0} is unset")]
pub struct MissingEnvVar(pub(crate) &'static str);

#[cfg(feature = "vault")]
impl MissingEnvVar {
    /// The variable's name (for example `VAULT_ADDR`).
    pub fn name(&self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_counts_as_unset() {
        assert!(is_unset(OsStr::new("")));
        assert!(is_unset(OsStr::new("  \t\n")));
        assert!(!is_unset(OsStr::new(" x ")));
    }
}
