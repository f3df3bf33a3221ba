//! [`TokenManagerConfig`]: the token URL, the client, scopes and timing.

use std::time::Duration;

use url::Url;

use super::super::error::AuthError;
use super::super::jws::Htu;
use crate::scope::Scope;

/// Where and as whom to get tokens.
#[derive(Debug, Clone)]
pub struct TokenManagerConfig {
    pub(super) token_url: Url,
    pub(super) audience: String,
    pub(super) client_id: String,
    pub(super) scope: Option<String>,
    pub(super) leeway: Duration,
    pub(super) assertion_lifetime: Duration,
    pub(super) allow_insecure_http: bool,
}

impl TokenManagerConfig {
    /// A configuration for any RFC 7523 + RFC 9449 server. The assertion audience defaults to
    /// the token URL (override with [`TokenManagerConfig::audience`], e.g. for an issuer URL).
    ///
    /// `http://` is refused off loopback (`is_loopback`, crate-private): the token URL, and
    /// every resource URL [`DpopAuth`](crate::auth::DpopAuth) signs for.
    pub fn new(token_url: &str, client_id: impl Into<String>) -> Result<Self, AuthError> {
        Self::with_http_rule(token_url, client_id.into(), false)
    }

    /// Like [`new`](Self::new), but plain `http://` token and resource URLs are accepted on
    /// any host. Tokens, proofs and refresh tokens then cross the network in clear text: for
    /// tests against servers on a private network only.
    pub fn new_allowing_insecure_http(
        token_url: &str,
        client_id: impl Into<String>,
    ) -> Result<Self, AuthError> {
        Self::with_http_rule(token_url, client_id.into(), true)
    }

    /// Whether plain `http://` is accepted off loopback (see
    /// [`new_allowing_insecure_http`](Self::new_allowing_insecure_http)).
    pub fn allows_insecure_http(&self) -> bool {
        self.allow_insecure_http
    }

    fn with_http_rule(
        token_url: &str,
        client_id: String,
        allow_insecure_http: bool,
    ) -> Result<Self, AuthError> {
        let token_htu = Htu::parse(token_url).map_err(|source| AuthError::InvalidUrl {
            url: token_url.split(['?', '#']).next().unwrap_or("").to_owned(),
            source,
        })?;
        let url = Url::parse(token_htu.as_str()).map_err(|_| AuthError::InvalidUrl {
            url: token_htu.as_str().to_owned(),
            source: super::super::jws::HtuError::NotAbsolute,
        })?;
        if url.scheme() == "http" && !crate::config::is_loopback(&url) && !allow_insecure_http {
            return Err(AuthError::InvalidUrl {
                url: token_htu.as_str().to_owned(),
                source: super::super::jws::HtuError::Insecure,
            });
        }
        Ok(Self {
            audience: token_htu.as_str().to_owned(),
            token_url: url,
            client_id,
            scope: None,
            leeway: Duration::from_secs(60),
            assertion_lifetime: Duration::from_secs(60),
            allow_insecure_http,
        })
    }

    /// The Ralio preset: token URL `<base_url>/oauth/token` (a trailing `/` on the base is
    /// dropped), audience the token URL, no scope (the full ceiling of the binding).
    pub fn ralio(base_url: &str, client_id: impl Into<String>) -> Result<Self, AuthError> {
        Self::new(
            &format!("{}/oauth/token", base_url.trim_end_matches('/')),
            client_id,
        )
    }

    /// Sets the client assertion's `aud` (some servers want their issuer URL).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Asks for these scopes (space-joined on the wire). Empty means "the server's default".
    ///
    /// Takes [`Scope`]s or their wire strings: `.scopes([Scope::TransactionsRead])` and
    /// `.scopes(["transactions:read"])` are the same request.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Scope>,
    {
        let scopes: Vec<Scope> = scopes.into_iter().map(Into::into).collect();
        let joined = Scope::join(&scopes);
        self.scope = (!joined.trim().is_empty()).then_some(joined);
        self
    }

    /// Renews tokens this long before they expire (default 60 s; capped at half the token's
    /// lifetime).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Client assertion lifetime (default 60 s, at most 300 s).
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.assertion_lifetime = lifetime.clamp(Duration::from_secs(1), Duration::from_secs(300));
        self
    }

    /// The token URL.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}
