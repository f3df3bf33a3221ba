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
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::clock::{Clock, Skew, SystemClock};
use super::error::AuthError;
use super::jws::{DpopProof, Htu, JwsSigner, ProofRequest};
use super::key::Thumbprint;
use super::signer::Signer;
use crate::scope::Scope;
use crate::store::StoreError;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEFAULT_EXPIRES_IN: u64 = 1800;
/// How long to wait before trying an early renewal again after one failed.
const EARLY_RENEWAL_BACKOFF: Duration = Duration::from_secs(5);

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

    /// The saved refresh token with the token URL that issued it. A token issued by another
    /// token URL is never presented (and is left in place).
    ///
    /// The default is [`load_refresh_token`](Self::load_refresh_token) with no issuer: the token
    /// is then presented to whichever token URL the manager has, as before issuers were kept.
    /// A store that can keep one more field overrides this and the two `*_record` savers.
    async fn load_refresh_token_record(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        Ok(self
            .load_refresh_token()
            .await?
            .map(|refresh_token| RefreshTokenRecord {
                refresh_token,
                issuer: None,
            }))
    }

    /// [`save_refresh_token`](Self::save_refresh_token), recording `issuer` (the token URL)
    /// with the token. The default ignores `issuer`.
    async fn save_refresh_token_record(
        &self,
        token: Option<&SecretString>,
        issuer: &str,
    ) -> Result<(), StoreError> {
        let _ = issuer;
        self.save_refresh_token(token).await
    }

    /// [`save_rotated_refresh_token`](Self::save_rotated_refresh_token), recording `issuer`
    /// (the token URL) with the token. The default ignores `issuer`.
    async fn save_rotated_refresh_token_record(
        &self,
        previous: &SecretString,
        token: &SecretString,
        issuer: &str,
    ) -> Result<(), StoreError> {
        let _ = issuer;
        self.save_rotated_refresh_token(previous, token).await
    }
}

/// A stored refresh token and the token URL that issued it.
///
/// `Debug` is redacted.
#[derive(Clone)]
#[non_exhaustive]
pub struct RefreshTokenRecord {
    /// The refresh token. It is a credential.
    pub refresh_token: SecretString,
    /// The token URL that issued it (`None`: not recorded, e.g. by an older store).
    pub issuer: Option<String>,
}

impl RefreshTokenRecord {
    /// A record of `refresh_token` issued by the token URL `issuer`.
    pub fn new(refresh_token: SecretString, issuer: Option<String>) -> Self {
        Self {
            refresh_token,
            issuer,
        }
    }
}

impl fmt::Debug for RefreshTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("refresh_token", &"[redacted]")
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// A [`RefreshTokenStore`] in process memory (the default: the token dies with the process).
#[derive(Default)]
pub struct MemoryRefreshTokenStore {
    token: Mutex<Option<SecretString>>,
    issuer: Mutex<Option<String>>,
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
            issuer: Mutex::new(None),
        }
    }

    /// A store holding `token`, issued by the token URL `issuer`.
    pub fn with_record(token: SecretString, issuer: impl Into<String>) -> Self {
        Self {
            token: Mutex::new(Some(token)),
            issuer: Mutex::new(Some(issuer.into())),
        }
    }

    /// The token URL that issued the token held, when known.
    pub fn issuer(&self) -> Option<String> {
        self.issuer.lock().map(|i| i.clone()).unwrap_or(None)
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
        self.put(token, None)
    }

    async fn load_refresh_token_record(&self) -> Result<Option<RefreshTokenRecord>, StoreError> {
        Ok(self
            .current()
            .map(|t| RefreshTokenRecord::new(t, self.issuer())))
    }

    async fn save_refresh_token_record(
        &self,
        token: Option<&SecretString>,
        issuer: &str,
    ) -> Result<(), StoreError> {
        self.put(token, Some(issuer))
    }

    async fn save_rotated_refresh_token_record(
        &self,
        _previous: &SecretString,
        token: &SecretString,
        issuer: &str,
    ) -> Result<(), StoreError> {
        self.put(Some(token), Some(issuer))
    }
}

impl MemoryRefreshTokenStore {
    fn put(&self, token: Option<&SecretString>, issuer: Option<&str>) -> Result<(), StoreError> {
        let (Ok(mut t), Ok(mut i)) = (self.token.lock(), self.issuer.lock()) else {
            return Err(StoreError::Backend {
                store: "in-memory refresh-token store".to_owned(),
                action: "take its lock".to_owned(),
                hint: "a thread panicked while holding it; restart the process".to_owned(),
                source: None,
            });
        };
        *t = token.cloned();
        *i = token.and(issuer).map(str::to_owned);
        Ok(())
    }
}

/// A DPoP-bound access token.
///
/// `Debug` is redacted; the value is zeroised when the last clone drops.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<TokenValue>,
    generation: u64,
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
    fn new(secret: SecretString, generation: u64) -> Self {
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

/// Where and as whom to get tokens.
#[derive(Debug, Clone)]
pub struct TokenManagerConfig {
    token_url: Url,
    audience: String,
    client_id: String,
    scope: Option<String>,
    leeway: Duration,
    assertion_lifetime: Duration,
    allow_insecure_http: bool,
}

impl TokenManagerConfig {
    /// A configuration for any RFC 7523 + RFC 9449 server. The assertion audience defaults to
    /// the token URL (override with [`TokenManagerConfig::audience`], e.g. for an issuer URL).
    ///
    /// `http://` is refused off loopback ([`crate::config::is_loopback`]): the token URL, and
    /// every resource URL [`super::DpopAuth`] signs for.
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
            source: super::jws::HtuError::NotAbsolute,
        })?;
        if url.scheme() == "http" && !crate::config::is_loopback(&url) && !allow_insecure_http {
            return Err(AuthError::InvalidUrl {
                url: token_htu.as_str().to_owned(),
                source: super::jws::HtuError::Insecure,
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

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    config: TokenManagerConfig,
    signer: Arc<dyn Signer>,
    store: Option<Arc<dyn RefreshTokenStore>>,
    clock: Arc<dyn Clock>,
    stack: crate::transport::StackSettings,
}

impl fmt::Debug for dyn RefreshTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenStore")
    }
}

impl TokenManagerBuilder {
    /// Ignored: the token endpoint always gets a private client that never follows redirects
    /// (10 s connect and 30 s total timeouts). A 307/308 would re-send the client assertion or
    /// refresh token (and the DPoP proof) to whatever origin it names, and a caller's client
    /// may follow redirects.
    #[deprecated(
        note = "ignored: the token endpoint always uses a private client without redirects"
    )]
    pub fn http_client(self, client: reqwest::Client) -> Self {
        drop(client);
        self
    }

    /// The layers every token request goes through (a client's user agent, middleware and
    /// retry policy).
    pub(crate) fn stack_settings(mut self, settings: crate::transport::StackSettings) -> Self {
        self.stack = settings;
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
        let http = token_http_client(&self.config)?;
        let stack = self.stack;
        let inner = Arc::new_cyclic(|manager| Inner {
            api: token_api(&self.config, http, &stack, manager.clone()),
            jws: JwsSigner::new(self.signer),
            store: self
                .store
                .unwrap_or_else(|| Arc::new(MemoryRefreshTokenStore::new())),
            clock: self.clock,
            config: self.config,
            cached: RwLock::new(None),
            flight: Arc::new(tokio::sync::Mutex::new(())),
            nonces: Mutex::new(HashMap::new()),
            skew: Skew::default(),
            resource_skews: Mutex::new(Vec::new()),
            private_store: std::sync::OnceLock::new(),
            generation: AtomicU64::new(0),
            has_refresh_token: AtomicBool::new(false),
        });
        Ok(TokenManager { inner })
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
    /// The generated client of the token endpoint (see `token_api`).
    api: crate::api::Client,
    store: Arc<dyn RefreshTokenStore>,
    clock: Arc<dyn Clock>,
    cached: RwLock<Option<Cached>>,
    /// Held by the task that renews (not by its callers): see [`TokenManager::renew_detached`].
    flight: Arc<tokio::sync::Mutex<()>>,
    nonces: Mutex<HashMap<String, String>>,
    /// The token endpoint's clock offset (assertions and token-endpoint proofs use it).
    skew: Skew,
    /// Every other origin's clock offset, for its own proofs only.
    resource_skews: Mutex<Vec<(Url, Arc<Skew>)>>,
    /// Set when the shared store holds a refresh token of another issuer: that one is left
    /// alone and this manager keeps its own family here.
    private_store: std::sync::OnceLock<Arc<MemoryRefreshTokenStore>>,
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
    scopes: Vec<Scope>,
}

enum Grant<'a> {
    ClientCredentials,
    Refresh(&'a SecretString),
}

enum Failure {
    InvalidGrant,
    Other(AuthError),
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

/// The token endpoint's HTTP client: private, never following redirects.
fn token_http_client(config: &TokenManagerConfig) -> Result<reqwest::Client, AuthError> {
    crate::transport::private_client().map_err(|source| AuthError::TokenTransport {
        url: config.token_url.to_string(),
        source,
    })
}

/// One origin's clock offset: the token endpoint's lives in the manager, the others in a map.
enum SkewRef {
    Token(TokenManager),
    Other(Arc<Skew>),
}

impl SkewRef {
    fn get(&self) -> &Skew {
        match self {
            SkewRef::Token(tm) => &tm.inner.skew,
            SkewRef::Other(skew) => skew,
        }
    }
}

/// A 4xx from the token endpoint that refuses the grant itself; 408 and 429 say "not now",
/// not "no".
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// The origin key of a URL (`scheme://host:port`).
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether two URLs have the same origin (scheme, host, port), without serialising either.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl TokenManager {
    /// Starts a builder; `signer` is the key the tokens are bound to.
    pub fn builder(config: TokenManagerConfig, signer: Arc<dyn Signer>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            config,
            signer,
            store: None,
            clock: Arc::new(SystemClock),
            stack: crate::transport::StackSettings::default(),
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
            let Ok(flight) = self.inner.flight.clone().try_lock_owned() else {
                return Ok(still_valid);
            };
            if let Some(token) = self.fresh_cached(None) {
                return Ok(token);
            }
            return match self.renew_detached(flight).await {
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
        let flight = self.inner.flight.clone().lock_owned().await;
        // Another task may have renewed it while this one waited.
        if let Some(token) = self.fresh_cached(None) {
            return Ok(token);
        }
        self.renew_detached(flight).await
    }

    /// Replaces `stale` (refused by a resource with a 401) with a new token: a refresh, else a
    /// mint. Single-flight: a caller whose `stale` token was already replaced (by a renewal that
    /// was in flight or has finished) gets the replacement without a token request; only a
    /// refusal of the current token starts a renewal.
    pub async fn force_refresh(&self, stale: &AccessToken) -> Result<AccessToken, AuthError> {
        let flight = self.inner.flight.clone().lock_owned().await;
        if let Some(token) = self.fresh_cached(Some(stale.generation)) {
            return Ok(token);
        }
        self.renew_detached(flight).await
    }

    /// Runs [`renew`](Self::renew) to completion in a task of its own, holding `flight` until
    /// it ends, and waits for it. A caller that times out or is dropped stops waiting, but the
    /// renewal goes on: a refresh token the server has already rotated is still saved, and no
    /// second renewal starts before this one ends.
    async fn renew_detached(
        &self,
        flight: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<AccessToken, AuthError> {
        let this = self.clone();
        let renewal = async move {
            let result = this.renew().await;
            drop(flight);
            result
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.spawn(renewal).await.unwrap_or_else(|e| {
                tracing::warn!(panicked = e.is_panic(), "the token renewal task did not finish");
                Err(AuthError::Internal {
                    action: "renew the token: the renewal task ended without an answer (it panicked, or the runtime is shutting down)",
                })
            }),
            // Not inside a Tokio runtime (reqwest needs one, so this is rare): run it here.
            Err(_) => renewal.await,
        }
    }

    /// The store renewals read and write: the configured one, unless it holds another
    /// issuer's refresh token (then a private in-memory one).
    fn store(&self) -> Arc<dyn RefreshTokenStore> {
        match self.inner.private_store.get() {
            Some(private) => private.clone(),
            None => self.inner.store.clone(),
        }
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

    /// The current time by the token endpoint's clock (local clock plus the offset measured
    /// from that endpoint's `Date` headers), Unix seconds: the clock of client assertions.
    pub fn server_now(&self) -> i64 {
        self.inner.skew.server_now(self.inner.clock.as_ref())
    }

    /// The measured offset token endpoint minus local, in seconds (at most ±1 h).
    pub fn clock_skew_secs(&self) -> i64 {
        self.inner.skew.offset()
    }

    /// The measured offset of `url`'s origin minus local, in seconds (at most ±1 h). Each
    /// origin has its own: a resource server's `Date` never moves the token endpoint's clock.
    pub fn clock_skew_secs_for(&self, url: &Url) -> i64 {
        self.skew_for(url).get().offset()
    }

    /// The clock offset of `url`'s origin; the token endpoint's origin is the assertions' one.
    fn skew_for(&self, url: &Url) -> SkewRef {
        // Twice per request (the proof's `iat`, then the answer's `Date`): compare origins in
        // place rather than serialising them into new strings each time.
        if same_origin(url, &self.inner.config.token_url) {
            return SkewRef::Token(self.clone());
        }
        let mut skews = match self.inner.resource_skews.lock() {
            Ok(skews) => skews,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, skew)) = skews.iter().find(|(origin, _)| same_origin(origin, url)) {
            return SkewRef::Other(Arc::clone(skew));
        }
        let skew = Arc::new(Skew::default());
        skews.push((url.clone(), Arc::clone(&skew)));
        SkewRef::Other(skew)
    }

    /// The latest DPoP nonce from the origin of `url`.
    pub(crate) fn nonce_for(&self, url: &Url) -> Option<String> {
        let nonces = self.inner.nonces.lock().ok()?;
        // Most servers never send a nonce: skip serialising the origin on every request then.
        if nonces.is_empty() {
            return None;
        }
        nonces.get(&origin_of(url)).cloned()
    }

    /// Learns from a response: its `DPoP-Nonce` (kept per origin) and `Date` (clock skew).
    pub(crate) fn observe_response(&self, url: &Url, headers: &HeaderMap) {
        if let Some(nonce) = headers
            .get(super::jws::DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            && let Ok(mut nonces) = self.inner.nonces.lock()
        {
            let origin = origin_of(url);
            if nonces.get(&origin).map(String::as_str) != Some(nonce) {
                tracing::trace!(%origin, "new DPoP nonce");
                nonces.insert(origin, nonce.to_owned());
            }
        }
        if let Some(date) = headers.get(DATE).and_then(|v| v.to_str().ok()) {
            self.skew_for(url)
                .get()
                .observe_date(self.inner.clock.as_ref(), date);
        }
    }

    /// Signs a DPoP proof for `method` on `url`, with the origin's latest nonce and the
    /// server-corrected time. Returns the proof and the clock skew (seconds, server minus
    /// local) it was signed with.
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
        let origin_skew = self.skew_for(url);
        let skew = origin_skew.get().offset();
        let iat = origin_skew.get().server_now(self.inner.clock.as_ref());
        let proof = self
            .inner
            .jws
            .dpop_proof_with_ath(
                &ProofRequest {
                    htm: method,
                    htu: &htu,
                    access_token: access_token.map(AccessToken::expose_secret),
                    nonce: nonce.as_deref(),
                    iat,
                },
                access_token.map(AccessToken::ath),
            )
            .await
            .map_err(AuthError::Sign)?;
        Ok((proof, skew))
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
        let issuer = inner.config.token_url.as_str();
        // Held until the successor of the refresh token is saved: another holder of the same
        // store (another process on the same slot) then never presents a token this one has
        // already rotated, which the server would take for a replay and revoke the family.
        let _renewal = inner.store.lock_renewal().await.map_err(AuthError::Store)?;
        // Read afresh under the lock: another holder may have rotated it since the last renewal.
        let mut stored = self
            .store()
            .load_refresh_token_record()
            .await
            .map_err(AuthError::Store)?;
        if let Some(record) = &stored
            && let Some(other) = record.issuer.as_deref()
            && other != issuer
        {
            // Never send a refresh token to a token URL that did not issue it (an `--api-url`
            // pointing elsewhere would receive the production token), and leave it in place.
            tracing::warn!(
                client_id = %inner.config.client_id,
                stored_issuer = other,
                token_url = issuer,
                "the stored refresh token was issued by another token URL; leaving it alone and keeping this session's refresh tokens in memory"
            );
            let _ = inner
                .private_store
                .set(Arc::new(MemoryRefreshTokenStore::new()));
            stored = None;
        }
        inner
            .has_refresh_token
            .store(stored.is_some(), Ordering::Relaxed);
        if let Some(RefreshTokenRecord {
            refresh_token: rt, ..
        }) = stored
        {
            tracing::debug!(client_id = %inner.config.client_id, "refreshing the access token");
            match self.token_request(Grant::Refresh(&rt)).await {
                Ok(resp) => return self.accept(Some(&rt), resp).await,
                Err(Failure::InvalidGrant) => {
                    tracing::info!(
                        client_id = %inner.config.client_id,
                        "refresh token refused (invalid_grant); minting with a client assertion"
                    );
                    inner.has_refresh_token.store(false, Ordering::Relaxed);
                    if let Err(e) = self.store().save_refresh_token_record(None, issuer).await {
                        tracing::warn!(error = %e, "could not delete the refused refresh token from the store");
                    }
                }
                // Any other refusal (`invalid_client`, a 400 with an unknown code, ...): one
                // fresh mint, as the official clients do. The refresh token stays stored until
                // the mint's own replaces it.
                Err(Failure::Other(AuthError::TokenRefused {
                    status,
                    error,
                    description: _,
                })) if is_refusal(status.as_u16()) => {
                    tracing::info!(
                        client_id = %inner.config.client_id,
                        status = status.as_u16(),
                        %error,
                        "refresh refused; minting with a client assertion"
                    );
                }
                // Transport failures, 5xx, 408 and 429 keep the refresh token: it may be fine.
                Err(Failure::Other(e)) => return Err(e),
            }
        }
        tracing::debug!(client_id = %inner.config.client_id, "minting an access token with a client assertion");
        match self.token_request(Grant::ClientCredentials).await {
            Ok(resp) => self.accept(None, resp).await,
            Err(Failure::InvalidGrant) => Err(AuthError::TokenRefused {
                status: http::StatusCode::BAD_REQUEST,
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
        (resp, received): (crate::api::types::TokenResponse, Instant),
    ) -> Result<AccessToken, AuthError> {
        let inner = &self.inner;
        if !resp.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(AuthError::NotDpopBound {
                token_type: resp.token_type,
            });
        }
        let lifetime = token_lifetime(resp.expires_in);
        if let Some(new_rt) = resp
            .refresh_token
            .map(crate::redacted::RedactedString::into_secret)
        {
            // Persist before use: if the process dies after this, the family is not lost.
            let store = self.store();
            let issuer = inner.config.token_url.as_str();
            let saved = match presented {
                Some(previous) => {
                    store
                        .save_rotated_refresh_token_record(previous, &new_rt, issuer)
                        .await
                }
                None => store.save_refresh_token_record(Some(&new_rt), issuer).await,
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
        let leeway = inner.config.leeway.min(lifetime / 2);
        let scopes = resp
            .scope
            .or_else(|| inner.config.scope.clone())
            .map(|s| Scope::split(&s))
            .unwrap_or_default();
        let token = AccessToken::new(
            resp.access_token.into_secret(),
            inner.generation.fetch_add(1, Ordering::Relaxed) + 1,
        );
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
        tracing::debug!(expires_in = lifetime.as_secs(), "access token cached");
        Ok(token)
    }

    async fn token_request(
        &self,
        grant: Grant<'_>,
    ) -> Result<(crate::api::types::TokenResponse, Instant), Failure> {
        use crate::api::types::builder::BodyCreateTokenOauthTokenPost as Body;
        use crate::redacted::RedactedString;
        let inner = &self.inner;
        let config = &inner.config;
        let url = config.token_url.as_str();
        let mut nonce_retried = false;
        let mut skew_retried = false;
        loop {
            let body = match grant {
                Grant::ClientCredentials => {
                    let lifetime = i64::try_from(config.assertion_lifetime.as_secs()).unwrap_or(60);
                    let assertion = inner
                        .jws
                        .client_assertion(
                            &config.client_id,
                            &config.audience,
                            self.server_now(),
                            lifetime,
                        )
                        .await
                        .map_err(|e| Failure::Other(AuthError::Sign(e)))?;
                    Body::default()
                        .grant_type("client_credentials".to_owned())
                        .client_assertion_type(Some(JWT_BEARER.to_owned()))
                        .client_assertion(Some(RedactedString::new(assertion.expose_secret())))
                        .scope(config.scope.clone())
                }
                Grant::Refresh(rt) => Body::default()
                    .grant_type("refresh_token".to_owned())
                    .refresh_token(Some(RedactedString::new(rt.expose_secret())))
                    .client_id(Some(config.client_id.clone())),
            };
            // The proof layer of the token stack signs with the skew current at sending time.
            let skew_used = inner.skew.offset();
            let sent = inner.api.create_token().body(body).send().await;
            let received = Instant::now();
            let (status, headers, body) = match sent {
                Ok(answer) => return Ok((answer.into_inner(), received)),
                Err(e) => token_failure(e, url).await.map_err(Failure::Other)?,
            };
            let has_nonce = headers.contains_key("dpop-nonce");
            let err: Option<crate::api::types::OAuthErrorResponse> =
                serde_json::from_slice(&body).ok();
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
                        status,
                        error: code,
                        description,
                    }));
                }
            }
        }
    }
}

/// A refused token request as status, headers and (at most [`ERROR_BODY_CAP`] bytes of) body;
/// every other failure as the [`AuthError`] it is.
///
/// [`ERROR_BODY_CAP`]: crate::transport::body::ERROR_BODY_CAP
async fn token_failure(
    e: progenitor_client::Error<crate::api::ByteStream>,
    url: &str,
) -> Result<(http::StatusCode, HeaderMap, Zeroizing<Vec<u8>>), AuthError> {
    use crate::transport::failure::{CallFailure, unpack};
    match unpack(e).await {
        CallFailure::Answer(answer) => Ok((answer.status, answer.headers, answer.body)),
        // The URL is printed once, by the outer error: reqwest's own message would repeat it.
        CallFailure::Transport(source) => Err(AuthError::TokenTransport {
            url: url.to_owned(),
            source: source.without_url(),
        }),
        CallFailure::Middleware(source) => Err(match source.downcast::<AuthError>() {
            Ok(auth) => auth,
            Err(source) => AuthError::TokenRequestFailed {
                url: url.to_owned(),
                source: source.into(),
            },
        }),
        CallFailure::Body(_) => Err(AuthError::TokenResponse {
            status: http::StatusCode::OK,
            reason: "the body could not be read in full (cut short, or over the size cap)",
        }),
        CallFailure::Payload(_) => Err(AuthError::TokenResponse {
            status: http::StatusCode::OK,
            reason: "the body is not a JSON token response with access_token and token_type",
        }),
        CallFailure::Request(problem) => Err(AuthError::TokenRequestFailed {
            url: url.to_owned(),
            source: problem.into(),
        }),
    }
}

/// The token endpoint's stack: the generated `create_token` operation over a private client
/// (no redirects) and the common layers (user agent, the caller's middleware, traceparent,
/// retry policy), with the request's own DPoP proof innermost instead of the auth layer.
fn token_api(
    config: &TokenManagerConfig,
    http: reqwest::Client,
    settings: &crate::transport::StackSettings,
    manager: std::sync::Weak<Inner>,
) -> crate::api::Client {
    let url = config.token_url.as_str();
    let (base, target) = match url.strip_suffix(TOKEN_PATH) {
        Some(base) => (base.to_owned(), None),
        // Another server's token URL: the operation is the same, only the target differs.
        None => (origin_of(&config.token_url), Some(config.token_url.clone())),
    };
    let proof: Arc<dyn reqwest_middleware::Middleware> = Arc::new(TokenProof(manager));
    let stack = crate::transport::stack(http.clone(), settings, Some(proof), target, false);
    crate::api::Client::new_with_client(&base, http, stack)
}

/// The path of the generated token operation.
const TOKEN_PATH: &str = "/oauth/token";

/// Signs each attempt of a token request with a fresh DPoP proof (no `ath`: there is no
/// access token yet) and learns the `DPoP-Nonce` and `Date` of each answer.
struct TokenProof(std::sync::Weak<Inner>);

#[async_trait]
impl reqwest_middleware::Middleware for TokenProof {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let Some(inner) = self.0.upgrade() else {
            return Err(reqwest_middleware::Error::middleware(
                AuthError::TokenRequestFailed {
                    url: req.url().to_string(),
                    source: "the token manager was dropped while its request was in flight".into(),
                },
            ));
        };
        let manager = TokenManager { inner };
        let url = req.url().clone();
        let (proof, _skew) = manager
            .dpop_proof("POST", &url, None)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let mut header =
            reqwest::header::HeaderValue::from_str(proof.expose_secret()).map_err(|_| {
                reqwest_middleware::Error::middleware(AuthError::Internal {
                    action: "send the DPoP proof: it is not a valid header value",
                })
            })?;
        header.set_sensitive(true);
        req.headers_mut().insert(super::jws::DPOP, header);
        let response = next.run(req, extensions).await?;
        manager.observe_response(&url, response.headers());
        Ok(response)
    }
}
