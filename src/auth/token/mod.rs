//! [`TokenManager`]: DPoP-bound access tokens from an RFC 7523 + RFC 9449 token endpoint,
//! cached, single-flight, with refresh-token rotation.
//!
//! - `config`: [`TokenManagerConfig`], where and as whom to get tokens.
//! - `manager`: [`TokenManager`] and its builder: the cache, single-flight renewal, refresh
//!   tokens kept in a [`CredentialStore`](crate::store::CredentialStore), clock skew and nonces.
//! - `request`: one token request (client-assertion or refresh grant) through the token
//!   endpoint's stack, with its own DPoP proof, and what its answer means.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::keys::Thumbprint;
use crate::scope::Scope;

mod config;
mod manager;
mod request;

pub use config::TokenManagerConfig;
pub use manager::{TokenManager, TokenManagerBuilder};

const DEFAULT_EXPIRES_IN: u64 = 1800;

/// A DPoP-bound access token.
///
/// `Debug` is redacted; the value is zeroised when the last clone drops.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<TokenValue>,
    pub(super) generation: u64,
}

/// The token and what every request derives from it, computed once per token rather than once
/// per request: the proof's `ath` and the `Authorization` header.
struct TokenValue {
    secret: SecretString,
    ath: String,
    /// `DPoP <token>`, marked sensitive; `None` when the token cannot go in a header.
    authorization: Option<reqwest::header::HeaderValue>,
}

impl AccessToken {
    pub(super) fn new(secret: SecretString, generation: u64) -> Self {
        let ath = super::jws::ath(secret.expose_secret());
        let authorization =
            reqwest::header::HeaderValue::from_str(&format!("DPoP {}", secret.expose_secret()))
                .ok()
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                });
        AccessToken {
            value: Arc::new(TokenValue {
                secret,
                ath,
                authorization,
            }),
            generation,
        }
    }

    /// The token text. It is a credential: put it in the `Authorization` header, never in a log.
    pub fn expose_secret(&self) -> &str {
        self.value.secret.expose_secret()
    }

    /// base64url(SHA-256(token)), the `ath` of proofs sent with it.
    pub(crate) fn ath(&self) -> &str {
        &self.value.ath
    }

    /// The `Authorization: DPoP <token>` value (sensitive), or `None` when the token has
    /// characters a header cannot carry.
    pub(crate) fn authorization(&self) -> Option<&reqwest::header::HeaderValue> {
        self.value.authorization.as_ref()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken([redacted], generation {})", self.generation)
    }
}

/// What callers may know about the current token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Scopes granted (the response's `scope`, else the ones asked for).
    pub scopes: Vec<Scope>,
    /// When the token expires, by the local wall clock.
    pub expires_at: SystemTime,
    /// Time left before expiry (monotonic).
    pub expires_in: Duration,
    /// Thumbprint of the key the token is bound to (`cnf.jkt`).
    pub key_thumbprint: Thumbprint,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
}

/// The shortest and longest access-token lifetime believed: `expires_in` is a server number
/// that meets the clock (`Instant + lifetime`), so it is clamped before it can overflow.
const TOKEN_LIFETIME_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 60 * 60));

/// The lifetime an `expires_in` stands for: absent means 1800 s; negative, zero or huge values
/// are clamped to [`TOKEN_LIFETIME_BOUNDS`].
pub(crate) fn token_lifetime(expires_in: Option<i64>) -> Duration {
    let (min, max) = TOKEN_LIFETIME_BOUNDS;
    let secs = match expires_in {
        None => DEFAULT_EXPIRES_IN,
        Some(secs) => u64::try_from(secs).unwrap_or(0),
    };
    Duration::from_secs(secs).clamp(min, max)
}

/// The origin key of a URL (`scheme://host:port`).
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether two URLs have the same origin (scheme, host, port), without serialising either.
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}
