//! [`RalioClientBuilder`]: settings, credentials, and the environment path of
//! [`RalioClient::from_env`].

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use reqwest_middleware::Middleware;

use super::{AuthParts, RalioClient, Shared};
use crate::auth::{TokenManager, TokenManagerConfig};
use crate::config::{DEFAULT_READ_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, env_var};
use crate::error::{ConfigError, Error, Result};
use crate::keys::{PrivateKey, Signer};
use crate::origin::resolve_base_url;
use crate::scope::Scope;
use crate::store::{CredentialStore, EnvStore, FileStore, Identity};
use crate::transport::{ConfigureHttp, HttpConfig, Layers, RetryPolicy};

/// Where the builder gets the identity from.
#[derive(Debug)]
pub(super) enum CredentialSource {
    None,
    Store(Arc<dyn CredentialStore>),
    Identity(Identity),
}

/// Builds a [`RalioClient`].
#[must_use]
#[derive(Debug)]
pub struct RalioClientBuilder {
    base_url: Option<String>,
    scopes: Option<Vec<Scope>>,
    read_timeout: Duration,
    read_idle_timeout: Option<Duration>,
    user_agent_suffix: Option<String>,
    retry: RetryPolicy,
    http: HttpConfig,
    extra: Layers,
    credentials: CredentialSource,
}

impl Default for RalioClientBuilder {
    fn default() -> Self {
        RalioClientBuilder {
            base_url: None,
            scopes: None,
            read_timeout: DEFAULT_READ_TIMEOUT,
            read_idle_timeout: Some(DEFAULT_READ_IDLE_TIMEOUT),
            user_agent_suffix: None,
            retry: RetryPolicy::default(),
            http: HttpConfig::default(),
            extra: Layers::default(),
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

    /// How long to wait for a connection (TCP and TLS), for every request. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout(timeout);
        self
    }

    /// How long to wait for the response to each attempt of a call. Default 60 s. There is no
    /// total timeout: a chat stream may run as long as bytes keep arriving. Token and
    /// registration answers are small: for them the limit covers the whole answer.
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

    /// Adjusts the HTTP client the SDK builds: TLS roots (a private CA), a client certificate,
    /// a proxy, pool and keep-alive settings, anything `reqwest::ClientBuilder` offers.
    ///
    /// The client gets the SDK's settings first (the [`connect_timeout`](Self::connect_timeout),
    /// a per-read timeout as long as the longer of the [`read_timeout`](Self::read_timeout)
    /// and the [`read_idle_timeout`](Self::read_idle_timeout) plus a second, no total
    /// timeout), then `configure` (calls add up, in order), then redirects are switched off,
    /// whatever `configure` set ([`ConfigureHttp`] says why).
    ///
    /// That one client sends every request of this client and of its
    /// [`with_scopes`](RalioClient::with_scopes) siblings: resource calls and the token
    /// endpoint alike (registration has the same setting,
    /// [`RegisterOptions::configure_http`](crate::register::RegisterOptions::configure_http)).
    /// Avoid a total `timeout`: it would cut chat streams. The `User-Agent` is the SDK's (see
    /// [`user_agent_suffix`](Self::user_agent_suffix)).
    ///
    /// ```no_run
    /// # async fn demo(ca_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = reqwest::Certificate::from_pem(ca_pem)?;
    /// let client = ralio::RalioClient::builder()
    ///     .configure_http(move |http| http.add_root_certificate(ca.clone()))
    ///     .build_from_env()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn configure_http(mut self, configure: impl ConfigureHttp) -> Self {
        self.http.configure(configure);
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
        let (identity, refresh): (Identity, Option<Arc<dyn CredentialStore>>) =
            match std::mem::replace(&mut self.credentials, CredentialSource::None) {
                CredentialSource::Identity(identity) => (identity, None),
                CredentialSource::Store(store) => {
                    match store.load_identity().await.map_err(ConfigError::from)? {
                        Some(identity) => (identity, Some(store)),
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
        let mut config = self.http;
        config.read_backstop(crate::transport::read_backstop(
            self.read_timeout,
            self.read_idle_timeout,
        ));
        let http = config.client().map_err(ConfigError::HttpClient)?;
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
    refresh: Option<Arc<dyn CredentialStore>>,
) -> Result<TokenManager> {
    let op = "auth.configure";
    let mut config = TokenManagerConfig::ralio(&shared.base_url, client_id).map_err(|source| {
        Error::Credential {
            operation: op,
            step: None,
            source: Box::new(source),
        }
    })?;
    if let Some(scopes) = scopes {
        config = config.scopes(scopes);
    }
    // The client's own HTTP client and layers: one client, one stack, for every request.
    let mut builder = TokenManager::builder(config, signer)
        .transport(shared.http.clone(), shared.stack_settings());
    if let Some(refresh) = refresh {
        builder = builder.refresh_token_store(refresh);
    }
    builder.build().map_err(|source| Error::Credential {
        operation: op,
        step: None,
        source: Box::new(source),
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
