//! The API origin: the one the SDK talks to (an explicit URL, else `RALIO_API_URL`, else
//! production) and the rules it must meet (`https://`, or `http://` on a loopback host only;
//! an origin, not a path). Apart from [`crate::config`] so that the configuration rules stay a
//! leaf that every module may read, while these name the caller-facing [`ConfigError`].

use crate::config::{DEFAULT_API_URL, ENV_API_URL, env_var, is_loopback};
use crate::error::ConfigError;

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
        return Err(ConfigError::UrlNotAnOrigin {
            url: url.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
