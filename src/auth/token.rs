//! [`TokenManager`]: DPoP-bound access tokens from an RFC 7523 + RFC 9449 token endpoint,
//! cached, single-flight, with refresh-token rotation.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{DATE, HeaderMap};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::clock::{Clock, Skew, SystemClock};
use super::error::AuthError;
use super::jws::{DpopProof, Htu, JwsSigner, ProofRequest};
use super::key::Thumbprint;
use super::signer::{BoxError, Signer};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEFAULT_EXPIRES_IN: u64 = 1800;
/// How long to wait before trying an early renewal again after one failed.
const EARLY_RENEWAL_BACKOFF: Duration = Duration::from_secs(5);

/// A refresh-token store failed.
#[derive(Debug, thiserror::Error)]
#[error("refresh token store error")]
pub struct StoreError(#[source] pub BoxError);

impl StoreError {
    /// Wraps any error.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self(source.into())
    }

    /// True when the store refused a save because another writer replaced the refresh token
    /// since it was read ([`crate::store::StoreError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        self.0
            .downcast_ref::<crate::store::StoreError>()
            .is_some_and(|e| matches!(e, crate::store::StoreError::Conflict { .. }))
    }
}

/// Where a [`TokenManager`] keeps its refresh token across restarts.
///
/// Each renewal of the access token is, in order: [`lock_renewal`](Self::lock_renewal), then
/// [`load_refresh_token`](Self::load_refresh_token) (read afresh every time, so a token
/// rotated by another holder of the same store is the one presented), then the token request,
/// then a save of its successor before the new access token is used, then the lock is
/// released. A store that several processes share (a file slot, a keyring entry, a Vault path)
/// implements the lock and the compare-and-set of
/// [`save_rotated_refresh_token`](Self::save_rotated_refresh_token); without them, two
/// holders can present the same refresh token, which the server takes for a replay and answers
/// by revoking the whole family.
#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// The saved refresh token, if any.
    async fn load_refresh_token(&self) -> Result<Option<SecretString>, StoreError>;

    /// Replaces the saved refresh token, whatever is stored: with the first refresh token of a
    /// new family (after a client-assertion grant), or `None` to delete it (after the server
    /// refused it).
    async fn save_refresh_token(&self, token: Option<&SecretString>) -> Result<(), StoreError>;

    /// Saves `token`, issued by a refresh grant that presented `previous`. A store shared with
    /// other writers makes this a compare-and-set and fails with a conflict
    /// ([`StoreError::is_conflict`]) when the stored token is no longer `previous`.
    ///
    /// The default is `save_refresh_token(Some(token))`.
    async fn save_rotated_refresh_token(
        &self,
        previous: &SecretString,
        token: &SecretString,
    ) -> Result<(), StoreError> {
        let _ = previous;
        self.save_refresh_token(Some(token)).await
    }

    /// Takes the lock that serialises renewals among every holder of this store, other
    /// processes included; it is held from the load of the refresh token to the save of its
    /// successor.
    ///
    /// The default takes no lock, right for a store private to one token manager.
    async fn lock_renewal(&self) -> Result<crate::store::RefreshTokenLock, StoreError> {
        Ok(crate::store::RefreshTokenLock::unshared())
    }
}

/// A [`RefreshTokenStore`] in process memory (the default: the token dies with the process).
#[derive(Default)]
pub struct MemoryRefreshTokenStore {
    token: Mutex<Option<SecretString>>,
}

impl MemoryRefreshTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `token`.
    pub fn with_token(token: SecretString) -> Self {
        Self {
            token: Mutex::new(Some(token)),
        }
    }

    /// The token currently held.
    pub fn current(&self) -> Option<SecretString> {
        self.token.lock().map(|t| t.clone()).unwrap_or(None)
    }
}

impl fmt::Debug for MemoryRefreshTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryRefreshTokenStore([redacted])")
    }
}

#[async_trait]
impl RefreshTokenStore for MemoryRefreshTokenStore {
    async fn load_refresh_token(&self) -> Result<Option<SecretString>, StoreError> {
        Ok(self.current())
    }

    async fn save_refresh_token(&self, token: Option<&SecretString>) -> Result<(), StoreError> {
        match self.token.lock() {
            Ok(mut t) => {
                *t = token.cloned();
                Ok(())
            }
            Err(_) => Err(StoreError::new("the in-memory store's lock is poisoned")),
        }
    }
}

/// A DPoP-bound access token.
///
/// `Debug` is redacted; the value is zeroised when the last clone drops.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<SecretString>,
    generation: u64,
}

impl AccessToken {
    /// The token text. It is a credential: put it in the `Authorization` header, never in a log.
    pub fn expose_secret(&self) -> &str {
        self.value.expose_secret()
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
    pub scopes: Vec<String>,
    /// When the token expires, by the local wall clock.
    pub expires_at: SystemTime,
    /// Time left before expiry (monotonic).
    pub expires_in: Duration,
    /// Thumbprint of the key the token is bound to (`cnf.jkt`).
    pub key_thumbprint: Thumbprint,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
}

/// Where and as whom to get tokens.
#[derive(Debug, Clone)]
pub struct TokenManagerConfig {
    token_url: Url,
    audience: String,
    client_id: String,
    scope: Option<String>,
    leeway: Duration,
    assertion_lifetime: Duration,
}

impl TokenManagerConfig {
    /// A configuration for any RFC 7523 + RFC 9449 server. The assertion audience defaults to
    /// the token URL (override with [`TokenManagerConfig::audience`], e.g. for an issuer URL).
    pub fn new(token_url: &str, client_id: impl Into<String>) -> Result<Self, AuthError> {
        let token_htu = Htu::parse(token_url).map_err(|source| AuthError::InvalidUrl {
            url: token_url.split(['?', '#']).next().unwrap_or("").to_owned(),
            source,
        })?;
        let url = Url::parse(token_htu.as_str()).map_err(|_| AuthError::InvalidUrl {
            url: token_htu.as_str().to_owned(),
            source: super::jws::HtuError::NotAbsolute,
        })?;
        if url.scheme() == "http" && !crate::config::is_loopback(&url) {
            return Err(AuthError::InvalidUrl {
                url: token_htu.as_str().to_owned(),
                source: super::jws::HtuError::Insecure,
            });
        }
        Ok(Self {
            audience: token_htu.as_str().to_owned(),
            token_url: url,
            client_id: client_id.into(),
            scope: None,
            leeway: Duration::from_secs(60),
            assertion_lifetime: Duration::from_secs(60),
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
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = scopes
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
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

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    config: TokenManagerConfig,
    signer: Arc<dyn Signer>,
    http: Option<reqwest::Client>,
    store: Option<Arc<dyn RefreshTokenStore>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for dyn RefreshTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenStore")
    }
}

impl TokenManagerBuilder {
    /// The HTTP client for the token endpoint (default: a new `reqwest::Client` with 10 s
    /// connect and 30 s total timeouts).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Where refresh tokens persist (default: memory).
    pub fn refresh_token_store(mut self, store: Arc<dyn RefreshTokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The wall clock for `iat`/`exp` (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the manager. It makes no request until a token is needed.
    pub fn build(self) -> Result<TokenManager, AuthError> {
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(30))
                // A 307/308 would re-send the assertion or refresh token (and the DPoP proof)
                // to wherever it points.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|source| AuthError::TokenTransport {
                    url: self.config.token_url.to_string(),
                    source,
                })?,
        };
        Ok(TokenManager {
            inner: Arc::new(Inner {
                jws: JwsSigner::new(self.signer),
                http,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryRefreshTokenStore::new())),
                clock: self.clock,
                config: self.config,
                cached: RwLock::new(None),
                flight: tokio::sync::Mutex::new(()),
                nonces: Mutex::new(HashMap::new()),
                skew: Skew::default(),
                generation: AtomicU64::new(0),
                has_refresh_token: AtomicBool::new(false),
            }),
        })
    }
}

/// Gets, caches and renews DPoP-bound access tokens for one client.
///
/// Cheap to clone (shared state). However many tasks ask at once, at most one token request
/// is in flight; tasks that find a valid cached token never wait for it. Managers that share a
/// [`RefreshTokenStore`] (processes on one credential slot) take turns through its renewal lock
/// and always present the token the store holds.
#[derive(Clone, Debug)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: TokenManagerConfig,
    jws: JwsSigner,
    http: reqwest::Client,
    store: Arc<dyn RefreshTokenStore>,
    clock: Arc<dyn Clock>,
    cached: RwLock<Option<Cached>>,
    flight: tokio::sync::Mutex<()>,
    nonces: Mutex<HashMap<String, String>>,
    skew: Skew,
    generation: AtomicU64,
    has_refresh_token: AtomicBool,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("token_url", &self.config.token_url.as_str())
            .field("client_id", &self.config.client_id)
            .field("thumbprint", self.jws.thumbprint())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    renew_at: Instant,
    /// Past this the token is not sent any more (half the leeway before expiry).
    usable_until: Instant,
    expires_at: Instant,
    expires_at_wall: SystemTime,
    scopes: Vec<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    token_type: String,
    #[serde(default)]
    expires_in: Option<serde_json::Number>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

enum Grant<'a> {
    ClientCredentials,
    Refresh(&'a SecretString),
}

enum Failure {
    InvalidGrant,
    Other(AuthError),
}

/// The origin key of a URL (`scheme://host:port`).
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl TokenManager {
    /// Starts a builder; `signer` is the key the tokens are bound to.
    pub fn builder(config: TokenManagerConfig, signer: Arc<dyn Signer>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            config,
            signer,
            http: None,
            store: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TokenManagerConfig {
        &self.inner.config
    }

    /// The thumbprint of the key tokens are bound to.
    pub fn thumbprint(&self) -> &Thumbprint {
        self.inner.jws.thumbprint()
    }

    /// The signer of proofs and assertions.
    pub fn jws_signer(&self) -> &JwsSigner {
        &self.inner.jws
    }

    /// A valid access token: the cached one, else a refreshed or newly minted one.
    ///
    /// Inside the leeway before expiry the cached token is still good: the first task to get
    /// there renews it while the others go on using it, so no caller waits for the token
    /// endpoint until the token is nearly gone. A failed early renewal is logged and tried
    /// again a few seconds later; the still-valid token is returned meanwhile.
    pub async fn access_token(&self) -> Result<AccessToken, AuthError> {
        if let Some(token) = self.fresh_cached(None) {
            return Ok(token);
        }
        if let Some(still_valid) = self.usable_cached() {
            let Ok(_flight) = self.inner.flight.try_lock() else {
                return Ok(still_valid);
            };
            if let Some(token) = self.fresh_cached(None) {
                return Ok(token);
            }
            return match self.renew().await {
                Ok(token) => Ok(token),
                Err(error) => {
                    tracing::warn!(
                        client_id = %self.inner.config.client_id,
                        %error,
                        "early renewal of the access token failed; using the current one, which is still valid"
                    );
                    self.postpone_renewal(still_valid.generation);
                    Ok(still_valid)
                }
            };
        }
        let _flight = self.inner.flight.lock().await;
        // Another task may have renewed it while this one waited.
        if let Some(token) = self.fresh_cached(None) {
            return Ok(token);
        }
        self.renew().await
    }

    /// Replaces `stale` (refused by a resource with `invalid_token`) with a new token. When
    /// another task already replaced it, returns that one without a token request.
    pub async fn force_refresh(&self, stale: &AccessToken) -> Result<AccessToken, AuthError> {
        let _flight = self.inner.flight.lock().await;
        if let Some(token) = self.fresh_cached(Some(stale.generation)) {
            return Ok(token);
        }
        self.renew().await
    }

    /// Drops the cached access token (the refresh token is kept).
    pub fn clear_cached_token(&self) {
        if let Ok(mut c) = self.inner.cached.write() {
            *c = None;
        }
    }

    /// Facts about the current token, or `None` before the first one.
    pub fn token_info(&self) -> Option<TokenInfo> {
        let cached = self.inner.cached.read().ok()?.clone()?;
        let has_refresh_token = self.inner.has_refresh_token.load(Ordering::Relaxed);
        Some(TokenInfo {
            scopes: cached.scopes,
            expires_at: cached.expires_at_wall,
            expires_in: cached.expires_at.saturating_duration_since(Instant::now()),
            key_thumbprint: self.thumbprint().clone(),
            has_refresh_token,
        })
    }

    /// The current time by the server's clock (local clock plus the measured skew), Unix seconds.
    pub fn server_now(&self) -> i64 {
        self.inner.skew.server_now(self.inner.clock.as_ref())
    }

    /// The measured offset server minus local, in seconds.
    pub fn clock_skew_secs(&self) -> i64 {
        self.inner.skew.offset()
    }

    /// The latest DPoP nonce from the origin of `url`.
    pub fn nonce_for(&self, url: &Url) -> Option<String> {
        let nonces = self.inner.nonces.lock().ok()?;
        // Most servers never send a nonce: skip serialising the origin on every request then.
        if nonces.is_empty() {
            return None;
        }
        nonces.get(&origin_of(url)).cloned()
    }

    /// Learns from a response: its `DPoP-Nonce` (kept per origin) and `Date` (clock skew).
    pub fn observe_response(&self, url: &Url, headers: &HeaderMap) {
        if let Some(nonce) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok())
            && let Ok(mut nonces) = self.inner.nonces.lock()
        {
            let origin = origin_of(url);
            if nonces.get(&origin).map(String::as_str) != Some(nonce) {
                tracing::trace!(%origin, "new DPoP nonce");
                nonces.insert(origin, nonce.to_owned());
            }
        }
        if let Some(date) = headers.get(DATE).and_then(|v| v.to_str().ok()) {
            self.inner
                .skew
                .observe_date(self.inner.clock.as_ref(), date);
        }
    }

    /// Signs a DPoP proof for `method` on `url`, with the origin's latest nonce and the
    /// server-corrected time. Returns the proof and the skew used (see
    /// [`TokenManager::skew_moved_since`]).
    pub async fn dpop_proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&AccessToken>,
    ) -> Result<(DpopProof, i64), AuthError> {
        let htu = Htu::from_request_url(url).map_err(|source| AuthError::InvalidUrl {
            url: format!("{}{}", origin_of(url), url.path()),
            source,
        })?;
        let nonce = self.nonce_for(url);
        let skew = self.inner.skew.offset();
        let iat = self.server_now();
        let proof = self
            .inner
            .jws
            .dpop_proof(&ProofRequest {
                htm: method,
                htu: &htu,
                access_token: access_token.map(AccessToken::expose_secret),
                nonce: nonce.as_deref(),
                iat,
            })
            .await
            .map_err(AuthError::Sign)?;
        Ok((proof, skew))
    }

    /// True when the clock-skew estimate moved since `used` was current: a refusal for time
    /// is then worth one retry.
    pub fn skew_moved_since(&self, used: i64) -> bool {
        self.inner.skew.moved_since(used)
    }

    /// The cached token while it is still safe to send (up to half the leeway before expiry),
    /// even when it is due for renewal.
    fn usable_cached(&self) -> Option<AccessToken> {
        let guard = self.inner.cached.read().ok()?;
        let cached = guard.as_ref()?;
        (Instant::now() < cached.usable_until).then(|| cached.token.clone())
    }

    /// After a failed early renewal: try again in a few seconds, not on every call.
    fn postpone_renewal(&self, generation: u64) {
        if let Ok(mut guard) = self.inner.cached.write()
            && let Some(cached) = guard.as_mut()
            && cached.token.generation == generation
        {
            cached.renew_at = (Instant::now() + EARLY_RENEWAL_BACKOFF).min(cached.usable_until);
        }
    }

    fn fresh_cached(&self, not_generation: Option<u64>) -> Option<AccessToken> {
        let guard = self.inner.cached.read().ok()?;
        let cached = guard.as_ref()?;
        if Some(cached.token.generation) == not_generation || Instant::now() >= cached.renew_at {
            return None;
        }
        Some(cached.token.clone())
    }

    async fn renew(&self) -> Result<AccessToken, AuthError> {
        let inner = &self.inner;
        // Held until the successor of the refresh token is saved: another holder of the same
        // store (another process on the same slot) then never presents a token this one has
        // already rotated, which the server would take for a replay and revoke the family.
        let _renewal = inner.store.lock_renewal().await.map_err(AuthError::Store)?;
        // Read afresh under the lock: another holder may have rotated it since the last renewal.
        let stored = inner
            .store
            .load_refresh_token()
            .await
            .map_err(AuthError::Store)?;
        inner
            .has_refresh_token
            .store(stored.is_some(), Ordering::Relaxed);
        if let Some(rt) = stored {
            tracing::debug!(client_id = %inner.config.client_id, "refreshing the access token");
            match self.token_request(Grant::Refresh(&rt)).await {
                Ok(resp) => return self.accept(Some(&rt), resp).await,
                Err(Failure::InvalidGrant) => {
                    tracing::info!(
                        client_id = %inner.config.client_id,
                        "refresh token refused (invalid_grant); minting with a client assertion"
                    );
                    inner.has_refresh_token.store(false, Ordering::Relaxed);
                    if let Err(e) = inner.store.save_refresh_token(None).await {
                        tracing::warn!(error = %e, "could not delete the refused refresh token from the store");
                    }
                }
                // Network failures and other refusals keep the refresh token: it may be fine.
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        tracing::debug!(client_id = %inner.config.client_id, "minting an access token with a client assertion");
        match self.token_request(Grant::ClientCredentials).await {
            Ok(resp) => self.accept(None, resp).await,
            Err(Failure::InvalidGrant) => Err(AuthError::TokenRefused {
                status: 400,
                error: "invalid_grant".to_owned(),
                description: None,
            }),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// Takes a token answer; `presented` is the refresh token the grant presented, if any.
    async fn accept(
        &self,
        presented: Option<&SecretString>,
        (resp, received): (TokenResponse, Instant),
    ) -> Result<AccessToken, AuthError> {
        let inner = &self.inner;
        if !resp.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(AuthError::NotDpopBound {
                token_type: resp.token_type,
            });
        }
        let expires_in = resp
            .expires_in
            .as_ref()
            .and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)))
            .unwrap_or(DEFAULT_EXPIRES_IN);
        if let Some(new_rt) = resp.refresh_token {
            // Persist before use: if the process dies after this, the family is not lost.
            let saved = match presented {
                Some(previous) => {
                    inner
                        .store
                        .save_rotated_refresh_token(previous, &new_rt)
                        .await
                }
                None => inner.store.save_refresh_token(Some(&new_rt)).await,
            };
            match saved {
                Ok(()) => inner.has_refresh_token.store(true, Ordering::Relaxed),
                // A writer that ignores the lock replaced the token meanwhile: keep its token
                // (the next renewal reads it) and use this access token, which is valid.
                Err(e) if e.is_conflict() => tracing::warn!(
                    client_id = %inner.config.client_id,
                    "another writer replaced the refresh token during this renewal; keeping the stored one"
                ),
                Err(e) => return Err(AuthError::Store(e)),
            }
        }
        let lifetime = Duration::from_secs(expires_in);
        let leeway = inner.config.leeway.min(lifetime / 2);
        let scopes = resp
            .scope
            .or_else(|| inner.config.scope.clone())
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let token = AccessToken {
            value: Arc::new(resp.access_token),
            generation: inner.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let cached = Cached {
            token: token.clone(),
            renew_at: received + lifetime - leeway,
            usable_until: received + lifetime - leeway / 2,
            expires_at: received + lifetime,
            expires_at_wall: inner.clock.now() + lifetime,
            scopes,
        };
        if let Ok(mut c) = inner.cached.write() {
            *c = Some(cached);
        }
        tracing::debug!(expires_in, "access token cached");
        Ok(token)
    }

    async fn token_request(&self, grant: Grant<'_>) -> Result<(TokenResponse, Instant), Failure> {
        let inner = &self.inner;
        let config = &inner.config;
        let url = config.token_url.as_str();
        let mut nonce_retried = false;
        let mut skew_retried = false;
        loop {
            let (proof, skew_used) = self
                .dpop_proof("POST", &config.token_url, None)
                .await
                .map_err(Failure::Other)?;
            let mut form: Vec<(&str, &str)> = Vec::with_capacity(5);
            let assertion;
            match grant {
                Grant::ClientCredentials => {
                    let lifetime = i64::try_from(config.assertion_lifetime.as_secs()).unwrap_or(60);
                    assertion = inner
                        .jws
                        .client_assertion(
                            &config.client_id,
                            &config.audience,
                            self.server_now(),
                            lifetime,
                        )
                        .await
                        .map_err(|e| Failure::Other(AuthError::Sign(e)))?;
                    form.push(("grant_type", "client_credentials"));
                    form.push(("client_assertion_type", JWT_BEARER));
                    form.push(("client_assertion", assertion.expose_secret()));
                    if let Some(scope) = &config.scope {
                        form.push(("scope", scope));
                    }
                }
                Grant::Refresh(rt) => {
                    form.push(("grant_type", "refresh_token"));
                    form.push(("refresh_token", rt.expose_secret()));
                    form.push(("client_id", &config.client_id));
                }
            }
            let mut proof_header = reqwest::header::HeaderValue::from_str(proof.expose_secret())
                .map_err(|_| {
                    Failure::Other(AuthError::TokenResponse {
                        status: 0,
                        reason: "the DPoP proof is not a valid header value",
                    })
                })?;
            proof_header.set_sensitive(true);
            let sent = inner
                .http
                .post(config.token_url.clone())
                .header("DPoP", proof_header)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form)
                .send()
                .await;
            let resp = sent.map_err(|source| {
                Failure::Other(AuthError::TokenTransport {
                    url: url.to_owned(),
                    source,
                })
            })?;
            let received = Instant::now();
            self.observe_response(&config.token_url, resp.headers());
            let status = resp.status();
            let has_nonce = resp.headers().contains_key("dpop-nonce");
            let body = crate::transport::body::read_body_capped(
                resp,
                crate::transport::body::ERROR_BODY_CAP,
            )
            .await
            .map_err(|source| {
                Failure::Other(AuthError::TokenTransport {
                    url: url.to_owned(),
                    source,
                })
            })?;
            // The body holds the tokens: keep our copy in a buffer that is wiped on drop.
            let body = Zeroizing::new(body);
            if status.is_success() {
                let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
                    Failure::Other(AuthError::TokenResponse {
                        status: status.as_u16(),
                        reason: "the body is not a JSON token response with access_token and token_type",
                    })
                })?;
                return Ok((parsed, received));
            }
            let err: Option<OAuthErrorBody> = serde_json::from_slice(&body).ok();
            let (code, description) = match err {
                Some(e) => (e.error, e.error_description),
                None => (format!("http_{}", status.as_u16()), None),
            };
            tracing::debug!(status = status.as_u16(), error = %code, "token endpoint refused the request");
            match code.as_str() {
                "use_dpop_nonce" if has_nonce => {
                    if nonce_retried {
                        return Err(Failure::Other(AuthError::NonceChallengeRepeated {
                            origin: origin_of(&config.token_url),
                        }));
                    }
                    nonce_retried = true;
                    continue;
                }
                "invalid_client" | "invalid_dpop_proof" | "invalid_request"
                    if !skew_retried && inner.skew.moved_since(skew_used) =>
                {
                    tracing::info!(
                        offset_secs = inner.skew.offset(),
                        "token request refused while the clock was off; retrying with server time"
                    );
                    skew_retried = true;
                    continue;
                }
                "invalid_grant" if matches!(grant, Grant::Refresh(_)) => {
                    return Err(Failure::InvalidGrant);
                }
                _ => {
                    return Err(Failure::Other(AuthError::TokenRefused {
                        status: status.as_u16(),
                        error: code,
                        description,
                    }));
                }
            }
        }
    }
}
