//! [`RalioClientBuilder`]: settings, credentials, and the environment path of
//! [`RalioClient::from_env`].

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use reqwest_middleware::Middleware;

use super::{AuthParts, RalioClient, Shared};
use crate::auth::{PrivateKey, RefreshTokenStore, Signer, TokenManager, TokenManagerConfig};
use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, env_var,
    resolve_base_url,
};
use crate::error::{ConfigError, Error, Result};
use crate::scope::Scope;
use crate::store::{CredentialStore, EnvStore, FileStore, Identity};
use crate::transport::RetryPolicy;

/// Where the builder gets the identity from.
pub(super) enum CredentialSource {
    None,
    Store(Arc<dyn CredentialStore>),
    Identity(Identity),
}

/// Adapts a [`CredentialStore`]'s refresh-token slot to the token manager's
/// [`RefreshTokenStore`]: the store's lock serialises renewals across processes, a rotation
/// is saved compare-and-set against the token it replaced, and the first token of a new family
/// replaces whatever is stored.
struct StoreRefreshTokens {
    store: Arc<dyn CredentialStore>,
}

#[async_trait::async_trait]
impl RefreshTokenStore for StoreRefreshTokens {
    async fn load_refresh_token(
        &self,
    ) -> std::result::Result<Option<secrecy::SecretString>, crate::store::StoreError> {
        self.store.load_refresh_token().await
    }

    async fn save_refresh_token(
        &self,
        token: Option<&secrecy::SecretString>,
    ) -> std::result::Result<(), crate::store::StoreError> {
        match token {
            Some(token) => self.store.save_refresh_token(None, token).await,
            None => self.store.clear_refresh_token().await,
        }
    }

    async fn save_rotated_refresh_token(
        &self,
        previous: &secrecy::SecretString,
        token: &secrecy::SecretString,
    ) -> std::result::Result<(), crate::store::StoreError> {
        self.store.save_refresh_token(Some(previous), token).await
    }

    async fn lock_renewal(
        &self,
    ) -> std::result::Result<crate::store::RefreshTokenLock, crate::store::StoreError> {
        self.store.lock_refresh_token().await
    }

    async fn load_refresh_token_record(
        &self,
    ) -> std::result::Result<Option<crate::auth::RefreshTokenRecord>, crate::store::StoreError>
    {
        self.store.load_refresh_token_record().await
    }

    async fn save_refresh_token_record(
        &self,
        token: Option<&secrecy::SecretString>,
        issuer: &str,
    ) -> std::result::Result<(), crate::store::StoreError> {
        match token {
            Some(token) => {
                self.store
                    .save_refresh_token_record(None, token, issuer)
                    .await
            }
            None => self.store.clear_refresh_token().await,
        }
    }

    async fn save_rotated_refresh_token_record(
        &self,
        previous: &secrecy::SecretString,
        token: &secrecy::SecretString,
        issuer: &str,
    ) -> std::result::Result<(), crate::store::StoreError> {
        self.store
            .save_refresh_token_record(Some(previous), token, issuer)
            .await
    }
}

/// Builds a [`RalioClient`].
#[must_use]
pub struct RalioClientBuilder {
    base_url: Option<String>,
    scopes: Option<Vec<Scope>>,
    connect_timeout: Duration,
    read_timeout: Duration,
    read_idle_timeout: Option<Duration>,
    user_agent_suffix: Option<String>,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
    extra: Vec<Arc<dyn Middleware>>,
    credentials: CredentialSource,
}

impl std::fmt::Debug for RalioClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RalioClientBuilder")
            .field("base_url", &self.base_url)
            .field("scopes", &self.scopes)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("read_idle_timeout", &self.read_idle_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Default for RalioClientBuilder {
    fn default() -> Self {
        RalioClientBuilder {
            base_url: None,
            scopes: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            read_idle_timeout: Some(DEFAULT_READ_IDLE_TIMEOUT),
            user_agent_suffix: None,
            retry: RetryPolicy::default(),
            http: None,
            extra: Vec::new(),
            credentials: CredentialSource::None,
        }
    }
}

impl RalioClientBuilder {
    /// The API origin. Default: `RALIO_API_URL`, else `https://api.ralio.co`. Plain `http://`
    /// is refused except for loopback hosts.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API origin [`build`](Self::build) will use: the one given to
    /// [`base_url`](Self::base_url), else `RALIO_API_URL`, else `https://api.ralio.co`, without
    /// a trailing `/`. Fails as `build` would with [`ConfigError::InvalidUrl`],
    /// [`ConfigError::InsecureUrl`] (plain `http://` off loopback) or
    /// [`ConfigError::UnsupportedScheme`]. Sends nothing.
    pub fn resolved_base_url(&self) -> Result<String> {
        Ok(resolve_base_url(self.base_url.as_deref())?)
    }

    /// Ask for tokens narrowed to these scopes (default: everything the binding holds):
    /// [`Scope`]s or their wire strings.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Scope>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// How long to wait for a connection (TCP and TLS). Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the response to each attempt of a call. Default 60 s. There is no
    /// total timeout: a chat stream may run as long as bytes keep arriving.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long a chat stream may stay silent (no byte, keep-alives included) before it ends
    /// with [`StreamError::IdleTimeout`](crate::StreamError::IdleTimeout). Default 120 s;
    /// `None` waits forever.
    pub fn read_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_idle_timeout = timeout;
        self
    }

    /// Appended to the `User-Agent` (`ralio-rust/<version> <suffix>`), to identify your app.
    pub fn user_agent_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.user_agent_suffix = Some(suffix.into());
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]; [`RetryPolicy::disabled`] turns
    /// retries off).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Use this reqwest client (its pool, proxy and TLS settings) instead of building one.
    /// Configure it without a total timeout (`timeout`), which would cut chat streams.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Add a middleware of your own; it runs outside the retry and auth layers (once per call).
    pub fn middleware(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.extra.push(middleware);
        self
    }

    /// Read the identity (and keep this instance's refresh tokens) in `store`: a
    /// [`FileStore`], a keyring or Vault store, or your own [`CredentialStore`].
    pub fn store(mut self, store: Arc<dyn CredentialStore>) -> Self {
        self.credentials = CredentialSource::Store(store);
        self
    }

    /// Use this client id and private key (refresh tokens stay in memory).
    pub fn credentials(mut self, client_id: impl Into<String>, key: PrivateKey) -> Self {
        self.credentials = CredentialSource::Identity(Identity::new(client_id, key));
        self
    }

    /// Use this identity: a client id with a private key or a [`Signer`] whose key lives
    /// elsewhere (refresh tokens stay in memory).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.credentials = CredentialSource::Identity(identity);
        self
    }

    /// Build the client: checks the URL and settings and loads the identity from the store.
    /// Sends nothing; the first token is minted on the first call.
    ///
    /// Fails with [`ConfigError::NoCredentials`] when neither a store nor credentials were
    /// given, or the store holds none.
    pub async fn build(mut self) -> Result<RalioClient> {
        let (identity, refresh): (Identity, Option<Arc<dyn RefreshTokenStore>>) =
            match std::mem::replace(&mut self.credentials, CredentialSource::None) {
                CredentialSource::Identity(identity) => (identity, None),
                CredentialSource::Store(store) => {
                    match store.load_identity().await.map_err(ConfigError::from)? {
                        Some(identity) => {
                            let adapter: Arc<dyn RefreshTokenStore> =
                                Arc::new(StoreRefreshTokens { store });
                            (identity, Some(adapter))
                        }
                        None => {
                            return Err(ConfigError::NoCredentials {
                                searched: vec![store.describe()],
                            }
                            .into());
                        }
                    }
                }
                CredentialSource::None => {
                    return Err(ConfigError::NoCredentials {
                        searched: vec!["the builder (no store or credentials given)".to_owned()],
                    }
                    .into());
                }
            };
        let scopes = self.scopes.clone();
        let mut client = self.build_unauthenticated()?;
        let parts = AuthParts {
            client_id: identity.client_id().to_owned(),
            signer: identity.signer(),
            tokens: token_manager(
                &client.inner.shared,
                identity.client_id(),
                identity.signer(),
                scopes.as_deref(),
                refresh,
            )?,
        };
        let shared = Arc::clone(&client.inner.shared);
        client = RalioClient::assemble(
            shared,
            Some(parts),
            scopes,
            Arc::new(tokio::sync::OnceCell::new()),
        );
        Ok(client)
    }

    /// Build without an auth layer (in-crate tests against a mock server).
    pub(crate) fn build_unauthenticated(self) -> Result<RalioClient> {
        let base_url = resolve_base_url(self.base_url.as_deref())?;
        let agent = match &self.user_agent_suffix {
            Some(suffix) => format!("ralio-rust/{} {suffix}", env!("CARGO_PKG_VERSION")),
            None => format!("ralio-rust/{}", env!("CARGO_PKG_VERSION")),
        };
        let user_agent = HeaderValue::from_str(&agent).map_err(|_| ConfigError::InvalidHeader {
            what: "the user-agent suffix",
        })?;
        let http = match self.http {
            Some(http) => http,
            None => {
                // No total timeout (it would cut streams); the per-read timeout is a backstop
                // for dead connections, no shorter than the stream idle timeout.
                let read_backstop = self
                    .read_idle_timeout
                    .map_or(self.read_timeout, |idle| idle.max(self.read_timeout));
                reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .read_timeout(read_backstop + Duration::from_secs(1))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(ConfigError::HttpClient)?
            }
        };
        let shared = Arc::new(Shared {
            base_url,
            http,
            retry: self.retry,
            read_timeout: self.read_timeout,
            read_idle: self.read_idle_timeout,
            user_agent,
            extra: self.extra,
        });
        Ok(RalioClient::assemble(
            shared,
            None,
            self.scopes,
            Arc::new(tokio::sync::OnceCell::new()),
        ))
    }
}

pub(super) fn token_manager(
    shared: &Shared,
    client_id: &str,
    signer: Arc<dyn Signer>,
    scopes: Option<&[Scope]>,
    refresh: Option<Arc<dyn RefreshTokenStore>>,
) -> Result<TokenManager> {
    let op = "auth.configure";
    let mut config = TokenManagerConfig::ralio(&shared.base_url, client_id).map_err(|source| {
        Error::Credential {
            operation: op,
            source,
        }
    })?;
    if let Some(scopes) = scopes {
        config = config.scopes(scopes);
    }
    // The token manager keeps its own private client: the caller's `http_client` may follow
    // redirects, which must never re-send an assertion or refresh token elsewhere.
    let mut builder = TokenManager::builder(config, signer).stack_settings(shared.stack_settings());
    if let Some(refresh) = refresh {
        builder = builder.refresh_token_store(refresh);
    }
    builder.build().map_err(|source| Error::Credential {
        operation: op,
        source,
    })
}

impl RalioClientBuilder {
    /// Resolve credentials as [`RalioClient::from_env`] does, keeping this builder's other
    /// settings. An explicit store or credentials set on the builder win.
    pub async fn build_from_env(mut self) -> Result<RalioClient> {
        if !matches!(self.credentials, CredentialSource::None) {
            return self.build().await;
        }
        if env_var("RALIO_CLIENT_ID").is_some() {
            self.credentials = CredentialSource::Store(Arc::new(EnvStore::from_env()));
            return self.build().await;
        }
        let file = FileStore::from_env().map_err(ConfigError::from)?;
        let searched = vec![
            format!(
                "{} (RALIO_CONFIG_DIR or ~/.ralio)",
                file.credentials_path().display()
            ),
            "the environment (RALIO_CLIENT_ID is unset)".to_owned(),
        ];
        let store: Arc<dyn CredentialStore> = Arc::new(file);
        match store.load_identity().await.map_err(ConfigError::from)? {
            Some(_) => {
                self.credentials = CredentialSource::Store(store);
                self.build().await
            }
            None => Err(ConfigError::NoCredentials { searched }.into()),
        }
    }
}
