//! Configuration: defaults, the environment rules, the loopback rule, and Vault settings from
//! the environment. The SDK and the `ralio` command both read their settings through here, so
//! "unset", "loopback" and "the Vault variables" each have one definition.
//!
//! Precedence everywhere (PROTOCOL.md): an explicit argument, then the environment variable,
//! then the default. A variable that is empty or only whitespace counts as unset.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::time::Duration;

use crate::error::ConfigError;

/// The production API origin.
pub const DEFAULT_API_URL: &str = "https://api.ralio.co";
/// Environment variable overriding the API origin.
pub const ENV_API_URL: &str = "RALIO_API_URL";

pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_READ_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
pub(crate) const DEFAULT_PER_PAGE: u64 = 50;

/// Whether an environment value counts as unset: empty, or only whitespace.
pub fn is_unset(value: &OsStr) -> bool {
    value.to_string_lossy().trim().is_empty()
}

/// Reads an environment variable as text; unset, [blank](is_unset) or not UTF-8 is `None`.
pub fn env_var(name: &str) -> Option<String> {
    env_var_os(name)?.into_string().ok()
}

/// Reads an environment variable as an OS string (for paths); unset or [blank](is_unset) is
/// `None`.
pub fn env_var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !is_unset(v))
}

/// `localhost`, `127.0.0.0/8` or `::1`: the hosts where `http://` stays on this machine.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Checks an API origin: `https://`, or `http://` only for loopback hosts. Drops a trailing `/`.
pub fn validate_base_url(url: &str) -> std::result::Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).map_err(|source| ConfigError::InvalidUrl {
        url: url.to_owned(),
        source,
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            if !is_loopback(&parsed) {
                return Err(ConfigError::InsecureUrl {
                    host: parsed.host_str().unwrap_or_default().to_owned(),
                });
            }
        }
        other => {
            return Err(ConfigError::UnsupportedScheme {
                scheme: other.to_owned(),
            });
        }
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::UrlNotAnOrigin {
            url: url.to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

/// A variable that must be set is unset (or [blank](is_unset)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the environment variable {0} is unset")]
pub struct MissingEnvVar(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_counts_as_unset() {
        assert!(is_unset(OsStr::new("")));
        assert!(is_unset(OsStr::new("  \t\n")));
        assert!(!is_unset(OsStr::new(" x ")));
    }

    #[test]
    fn plain_http_only_for_loopback_hosts() {
        for ok in [
            "http://localhost:1",
            "http://LOCALHOST",
            "http://127.0.0.2",
            "http://[::1]:8",
        ] {
            assert!(validate_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://localhost.evil.com",
            "http://10.0.0.1",
            "http://[::2]",
        ] {
            assert!(validate_base_url(bad).is_err(), "{bad}");
        }
    }
}
