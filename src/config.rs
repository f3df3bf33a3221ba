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

use crate::error::ConfigError;

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

/// Checks an API origin: `https://`, or `http://` only for loopback hosts. Drops a trailing `/`.
pub(crate) fn validate_base_url(url: &str) -> std::result::Result<String, ConfigError> {
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
        return Err(ConfigError::Invalid {
            what: "API URL",
            problem: format!(
                "{url:?} has a query or fragment; give only the origin, such as https://api.ralio.co"
            ),
        });
    }
    Ok(trimmed.to_owned())
}

/// The API origin to use: `explicit`, else `RALIO_API_URL`, else [`DEFAULT_API_URL`], checked
/// by [`validate_base_url`] (the default needs no check).
pub(crate) fn resolve_base_url(explicit: Option<&str>) -> Result<String, ConfigError> {
    match explicit.map(str::to_owned).or_else(|| env_var(ENV_API_URL)) {
        Some(url) => validate_base_url(&url),
        None => Ok(DEFAULT_API_URL.to_owned()),
    }
}

/// The AppRole auth mount used unless `VAULT_APPROLE_MOUNT` names another.
#[cfg(feature = "vault")]
pub(crate) const DEFAULT_APPROLE_MOUNT: &str = "approle";

/// A variable that must be set is unset (or [blank](is_unset)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the environment variable {0} is unset")]
pub(crate) struct MissingEnvVar(pub(crate) &'static str);

/// Vault settings from the environment: `VAULT_ADDR` with `VAULT_TOKEN`, or AppRole
/// (`VAULT_ROLE_ID`, `VAULT_SECRET_ID`, `VAULT_APPROLE_MOUNT`, default `approle`); a token wins
/// when both are set. `VAULT_NAMESPACE`; the KV v2 mount and path from `RALIO_VAULT_MOUNT`
/// and `RALIO_VAULT_PATH` (defaults `secret` and `ralio`).
///
/// Fails with the first variable that is missing.
#[cfg(feature = "vault")]
pub(crate) fn vault_from_env() -> Result<crate::store::VaultConfig, MissingEnvVar> {
    vault_from(env_var)
}

/// [`vault_from_env`] over any lookup (tests).
#[cfg(feature = "vault")]
fn vault_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<crate::store::VaultConfig, MissingEnvVar> {
    use crate::store::{VaultAuth, VaultConfig};
    use secrecy::SecretString;
    let addr = var("VAULT_ADDR").ok_or(MissingEnvVar("VAULT_ADDR"))?;
    let auth = match (
        var("VAULT_TOKEN"),
        var("VAULT_ROLE_ID"),
        var("VAULT_SECRET_ID"),
    ) {
        (Some(token), _, _) => VaultAuth::Token(SecretString::from(token)),
        (None, Some(role_id), Some(secret_id)) => VaultAuth::AppRole {
            mount: var("VAULT_APPROLE_MOUNT").unwrap_or_else(|| DEFAULT_APPROLE_MOUNT.into()),
            role_id,
            secret_id: SecretString::from(secret_id),
        },
        (None, Some(_), None) => return Err(MissingEnvVar("VAULT_SECRET_ID")),
        (None, None, _) => return Err(MissingEnvVar("VAULT_TOKEN")),
    };
    let mut config = VaultConfig::new(addr, auth);
    if let Some(namespace) = var("VAULT_NAMESPACE") {
        config = config.namespace(namespace);
    }
    if let Some(mount) = var("RALIO_VAULT_MOUNT") {
        config = config.kv_mount(mount);
    }
    if let Some(path) = var("RALIO_VAULT_PATH") {
        config = config.path(path);
    }
    Ok(config)
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

    #[cfg(feature = "vault")]
    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[cfg(feature = "vault")]
    #[test]
    fn vault_settings_take_a_token_or_approle() {
        let token = vault_from(lookup(&[
            ("VAULT_ADDR", "http://127.0.0.1:8200"),
            ("VAULT_TOKEN", "s.secret"),
            ("VAULT_ROLE_ID", "role"),
            ("VAULT_SECRET_ID", "sid"),
        ]))
        .unwrap();
        let shown = format!("{token:?}");
        assert!(shown.contains("Token([redacted])"), "{shown}");
        assert!(!shown.contains("s.secret"), "{shown}");

        let approle = vault_from(lookup(&[
            ("VAULT_ADDR", "http://127.0.0.1:8200"),
            ("VAULT_ROLE_ID", "role-1"),
            ("VAULT_SECRET_ID", "sid-secret"),
            ("RALIO_VAULT_MOUNT", "kv"),
            ("RALIO_VAULT_PATH", "agents/a"),
        ]))
        .unwrap();
        let shown = format!("{approle:?}");
        assert!(shown.contains("AppRole"), "{shown}");
        assert!(shown.contains("mount: \"approle\""), "{shown}");
        assert!(shown.contains("role-1"), "{shown}");
        assert!(!shown.contains("sid-secret"), "{shown}");
        assert!(shown.contains("kv_mount: \"kv\""), "{shown}");
        assert!(shown.contains("path: \"agents/a\""), "{shown}");
    }

    #[cfg(feature = "vault")]
    #[test]
    fn vault_settings_name_the_missing_variable() {
        let addr = ("VAULT_ADDR", "http://127.0.0.1:8200");
        assert_eq!(
            vault_from(lookup(&[])).unwrap_err(),
            MissingEnvVar("VAULT_ADDR")
        );
        assert_eq!(
            vault_from(lookup(&[addr])).unwrap_err(),
            MissingEnvVar("VAULT_TOKEN")
        );
        assert_eq!(
            vault_from(lookup(&[addr, ("VAULT_ROLE_ID", "r")])).unwrap_err(),
            MissingEnvVar("VAULT_SECRET_ID")
        );
    }
}
