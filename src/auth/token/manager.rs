//! [`TokenManager`]: the cached token, single-flight renewal, refresh-token rotation through a
//! [`CredentialStore`], and the per-origin clock skew and DPoP nonces.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::{DATE, HeaderMap};
use secrecy::SecretString;
use tokio::time::Instant;
use url::Url;

use super::super::clock::{Clock, Skew, SystemClock};
use super::super::error::AuthError;
use super::super::jws::{DpopProof, Htu, JwsSigner, ProofRequest};
use super::request::{Failure, Grant, is_refusal, token_api, token_http_client};
use super::{AccessToken, TokenInfo, TokenManagerConfig, origin_of, same_origin, token_lifetime};
use crate::keys::{Signer, Thumbprint};
use crate::scope::Scope;
use crate::store::{CredentialStore, MemoryStore, RefreshTokenRecord};
use crate::transport::ConfigureHttp;

/// How long to wait before trying an early renewal again after one failed.
const EARLY_RENEWAL_BACKOFF: Duration = Duration::from_secs(5);

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    config: TokenManagerConfig,
    signer: Arc<dyn Signer>,
    store: Option<Arc<dyn CredentialStore>>,
    clock: Arc<dyn Clock>,
    stack: crate::transport::StackSettings,
    http: crate::transport::HttpConfig,
    /// A [`crate::RalioClient`]'s own HTTP client, when the manager is one of its parts.
    client: Option<reqwest::Client>,
}

impl TokenManagerBuilder {
    /// Adjusts the HTTP client the manager builds for its token requests (TLS roots, a client
    /// certificate, a proxy), as [`ConfigureHttp`] says (10 s to connect). Each token
    /// request's answer must arrive, whole, within 60 s.
    pub fn configure_http(mut self, configure: impl ConfigureHttp) -> Self {
        self.http.configure(configure);
        self
    }

    /// The HTTP client and the layers every token request goes through: a
    /// [`crate::RalioClient`]'s own, so the token endpoint gets the same settings as resource
    /// calls.
    pub(crate) fn transport(
        mut self,
        client: reqwest::Client,
        settings: crate::transport::StackSettings,
    ) -> Self {
        self.client = Some(client);
        self.stack = settings;
        self
    }

    /// An HTTP configuration whose client is shared with others (registration's first token).
    pub(crate) fn http_config(mut self, http: crate::transport::HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Where refresh tokens persist (default: a [`MemoryStore`], lost with the process). Only
    /// the store's refresh-token slot is used: each renewal takes
    /// [`lock_refresh_token`](CredentialStore::lock_refresh_token), reads
    /// [`load_refresh_token`](CredentialStore::load_refresh_token) afresh, and saves the
    /// successor compare-and-set before the new access token is used, so managers in several
    /// processes can share one slot without replaying a rotated token.
    pub fn refresh_token_store(mut self, store: Arc<dyn CredentialStore>) -> Self {
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
        let http = match self.client {
            Some(client) => client,
            None => token_http_client(&self.config, &self.http)?,
        };
        let stack = self.stack;
        let inner = Arc::new_cyclic(|manager| Inner {
            api: token_api(&self.config, http, &stack, manager.clone()),
            jws: JwsSigner::new(self.signer),
            store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
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
/// refresh-token slot of a [`CredentialStore`] (processes on one slot) take turns through its lock
/// and always present the token the store holds.
#[derive(Clone, Debug)]
pub struct TokenManager {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) config: TokenManagerConfig,
    pub(super) jws: JwsSigner,
    /// The generated client of the token endpoint (see `token_api`).
    pub(super) api: crate::api::Client,
    store: Arc<dyn CredentialStore>,
    clock: Arc<dyn Clock>,
    cached: RwLock<Option<Cached>>,
    /// Held by the task that renews (not by its callers): see [`TokenManager::renew_detached`].
    flight: Arc<tokio::sync::Mutex<()>>,
    nonces: Mutex<HashMap<String, String>>,
    /// The token endpoint's clock offset (assertions and token-endpoint proofs use it).
    pub(super) skew: Skew,
    /// Every other origin's clock offset, for its own proofs only.
    resource_skews: Mutex<Vec<(Url, Arc<Skew>)>>,
    /// Set when the shared store holds a refresh token of another issuer: that one is left
    /// alone and this manager keeps its own family here.
    private_store: std::sync::OnceLock<Arc<MemoryStore>>,
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

impl TokenManager {
    /// Starts a builder; `signer` is the key the tokens are bound to.
    pub fn builder(config: TokenManagerConfig, signer: Arc<dyn Signer>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            config,
            signer,
            store: None,
            clock: Arc::new(SystemClock),
            stack: crate::transport::StackSettings::default(),
            http: crate::transport::HttpConfig::default(),
            client: None,
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
                        // Debug-escaped: the server's description may hold CR, LF or bidi
                        // controls that would forge or reorder log lines.
                        error = ?error.to_string(),
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
    fn store(&self) -> Arc<dyn CredentialStore> {
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
            .get(super::super::jws::DPOP_NONCE)
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
    /// server-corrected time (see [`clock_skew_secs_for`](Self::clock_skew_secs_for)).
    pub async fn dpop_proof(
        &self,
        method: &http::Method,
        url: &Url,
        access_token: Option<&AccessToken>,
    ) -> Result<DpopProof, AuthError> {
        let htu = Htu::from_request_url(url).map_err(|source| AuthError::InvalidUrl {
            url: format!("{}{}", origin_of(url), url.path()),
            source,
        })?;
        let nonce = self.nonce_for(url);
        let origin_skew = self.skew_for(url);
        let iat = origin_skew.get().server_now(self.inner.clock.as_ref());
        self.inner
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
            .map_err(AuthError::Sign)
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
        let _renewal = inner
            .store
            .lock_refresh_token()
            .await
            .map_err(AuthError::Store)?;
        // Read afresh under the lock: another holder may have rotated it since the last renewal.
        let mut stored = self
            .store()
            .load_refresh_token()
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
            let _ = inner.private_store.set(Arc::new(MemoryStore::new()));
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
                    if let Err(e) = self.store().clear_refresh_token().await {
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

    /// Persists a refresh token the server issued (rotated from `presented`, or the first of a
    /// new family), before anything else is done with its answer: if the process dies after
    /// this, the family is not lost.
    pub(super) async fn save_rotated(
        &self,
        presented: Option<&SecretString>,
        new_rt: SecretString,
    ) -> Result<(), AuthError> {
        let inner = &self.inner;
        let record =
            RefreshTokenRecord::new(new_rt, Some(inner.config.token_url.as_str().to_owned()));
        match self.store().save_refresh_token(presented, &record).await {
            Ok(()) => {
                inner.has_refresh_token.store(true, Ordering::Relaxed);
                Ok(())
            }
            // A writer that ignores the lock replaced the token meanwhile: keep its token
            // (the next renewal reads it) and use this access token, which is valid.
            Err(e) if e.is_conflict() => {
                tracing::warn!(
                    client_id = %inner.config.client_id,
                    "another writer replaced the refresh token during this renewal; keeping the stored one"
                );
                Ok(())
            }
            Err(e) => Err(AuthError::Store(e)),
        }
    }

    /// Takes a token answer; `presented` is the refresh token the grant presented, if any.
    async fn accept(
        &self,
        presented: Option<&SecretString>,
        (resp, received): (crate::api::types::TokenResponse, Instant),
    ) -> Result<AccessToken, AuthError> {
        let inner = &self.inner;
        // Saved before the rest of the answer is judged: the server has already rotated the
        // presented token, so dropping its successor would make the next renewal a replay
        // (and the server revoke the family).
        if let Some(new_rt) = resp
            .refresh_token
            .map(crate::redacted::RedactedString::into_secret)
        {
            self.save_rotated(presented, new_rt).await?;
        }
        if !resp.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(AuthError::NotDpopBound {
                token_type: resp.token_type,
            });
        }
        let lifetime = token_lifetime(resp.expires_in);
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
}
