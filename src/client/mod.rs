//! [`RalioClient`] and its builder ([`RalioClientBuilder`]); the resource namespaces it hands
//! out (`agents()`, `chat()`, `transactions()`, `payment_intents()`) live in
//! [`crate::resources`].
//!
//! Each resource call is a thin typed layer over the generated endpoint ([`crate::api`]): it
//! goes through the middleware stack (the crate-private `transport` module: user agent → the
//! request's `tracing` span (`ralio.request`: operation, method, path, status, attempt,
//! latency; never a secret) → retry policy → DPoP auth → reqwest), and maps failures once into
//! [`Error`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use reqwest_middleware::Middleware;

use crate::api::{self, ByteStream};
use crate::auth::TokenManager;
use crate::error::{ConfigError, Error, Result};
use crate::keys::Signer;
use crate::resources::{Agents, Chat, PaymentIntents, Transactions};
use crate::scope::Scope;
use crate::transport::RetryPolicy;

mod builder;

pub use builder::RalioClientBuilder;
use builder::token_manager;

/// The pieces shared by a client and its [`RalioClient::with_scopes`] siblings.
pub(crate) struct Shared {
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) retry: RetryPolicy,
    pub(crate) read_timeout: Duration,
    pub(crate) read_idle: Option<Duration>,
    pub(crate) user_agent: HeaderValue,
    pub(crate) extra: crate::transport::Layers,
}

impl Shared {
    /// The settings of every stack this client builds (resource calls and token requests).
    pub(crate) fn stack_settings(&self) -> crate::transport::StackSettings {
        crate::transport::StackSettings {
            user_agent: self.user_agent.clone(),
            extra: self.extra.clone(),
            retry: self.retry.clone(),
            read_timeout: self.read_timeout,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) api: api::Client,
    /// The single agent the credential reaches, resolved on first use (shared with siblings).
    pub(crate) agent: Arc<tokio::sync::OnceCell<String>>,
    pub(crate) scopes: Option<Vec<Scope>>,
    pub(crate) auth: Option<AuthParts>,
}

/// What a [`RalioClient::with_scopes`] sibling needs to mint its own tokens.
#[derive(Clone)]
pub(crate) struct AuthParts {
    pub(crate) client_id: String,
    pub(crate) signer: Arc<dyn Signer>,
    pub(crate) tokens: TokenManager,
}

/// The Ralio API client. Cheap to clone (clones share the connection pool and token cache).
///
/// Build one with [`RalioClient::builder`] or [`RalioClient::from_env`].
#[derive(Clone)]
pub struct RalioClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RalioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RalioClient")
            .field("base_url", &self.inner.shared.base_url)
            .field("scopes", &self.inner.scopes)
            .finish_non_exhaustive()
    }
}

impl RalioClient {
    /// A builder with defaults: `RALIO_API_URL` or the production origin, 10 s connect
    /// timeout, 60 s read timeout, 120 s stream idle timeout, the default retry policy.
    pub fn builder() -> RalioClientBuilder {
        RalioClientBuilder::default()
    }

    /// Zero-config: the API URL from `RALIO_API_URL` (else production), and credentials
    /// resolved as the Python SDK does: `RALIO_CLIENT_ID` with `RALIO_PRIVATE_JWK` /
    /// `RALIO_PRIVATE_KEY_PEM` / `RALIO_PRIVATE_KEY_PATH` when set, else the file store in
    /// `RALIO_CONFIG_DIR` or `~/.ralio` (what `ralio register` and the Python SDK write).
    ///
    /// When nothing is found the error says where it looked and what to run.
    pub async fn from_env() -> Result<RalioClient> {
        Self::builder().build_from_env().await
    }

    pub(crate) fn assemble(
        shared: Arc<Shared>,
        auth: Option<AuthParts>,
        scopes: Option<Vec<Scope>>,
        agent: Arc<tokio::sync::OnceCell<String>>,
    ) -> RalioClient {
        let mw = crate::transport::stack(
            shared.http.clone(),
            &shared.stack_settings(),
            crate::transport::Inner::Resources(auth.as_ref().map(|auth| {
                Arc::new(crate::auth::DpopAuth::new(auth.tokens.clone())) as Arc<dyn Middleware>
            })),
        );
        let api = api::Client::new_with_client(&shared.base_url, shared.http.clone(), mw);
        RalioClient {
            inner: Arc::new(Inner {
                shared,
                api,
                agent,
                scopes,
                auth,
            }),
        }
    }

    /// A sibling client whose tokens are narrowed to `scopes` (least privilege for one part of
    /// your program). It shares this client's connection pool and settings, and mints its own
    /// tokens (its own refresh-token family, kept in memory).
    ///
    /// Mints this client's token first if it has none, to learn the binding's scopes; a scope
    /// the binding does not hold is [`ConfigError::ScopeNotGranted`].
    ///
    /// ```no_run
    /// # async fn demo(client: &ralio::RalioClient) -> ralio::Result<()> {
    /// use ralio::Scope;
    ///
    /// let reader = client.with_scopes(&[Scope::TransactionsRead]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn with_scopes(&self, scopes: &[Scope]) -> Result<RalioClient> {
        const OP: &str = "with_scopes";
        if scopes.is_empty() {
            return Err(ConfigError::EmptyScopes.into());
        }
        let Some(auth) = &self.inner.auth else {
            return Err(ConfigError::NoClientCredentials { operation: OP }.into());
        };
        let granted = match auth.tokens.token_info() {
            Some(info) => info.scopes,
            None => {
                auth.tokens
                    .access_token()
                    .await
                    .map_err(|e| crate::error::from_auth_error(OP, e))?;
                auth.tokens
                    .token_info()
                    .map(|i| i.scopes)
                    .unwrap_or_default()
            }
        };
        if let Some(missing) = scopes.iter().find(|s| !granted.contains(s)) {
            return Err(ConfigError::ScopeNotGranted {
                scope: missing.clone(),
                granted,
            }
            .into());
        }
        let scopes: Vec<Scope> = scopes.to_vec();
        let shared = Arc::clone(&self.inner.shared);
        let tokens = token_manager(
            &shared,
            &auth.client_id,
            Arc::clone(&auth.signer),
            Some(&scopes),
            None,
        )?;
        let parts = AuthParts {
            client_id: auth.client_id.clone(),
            signer: Arc::clone(&auth.signer),
            tokens,
        };
        Ok(RalioClient::assemble(
            shared,
            Some(parts),
            Some(scopes),
            Arc::clone(&self.inner.agent),
        ))
    }

    /// The token manager of this client (granted scopes, expiry, key thumbprint via
    /// [`TokenManager::token_info`]; never the token itself), when it has credentials.
    pub fn token_manager(&self) -> Option<&TokenManager> {
        self.inner.auth.as_ref().map(|a| &a.tokens)
    }

    /// The API origin this client talks to.
    pub fn base_url(&self) -> &str {
        &self.inner.shared.base_url
    }

    /// The scopes this client's tokens are narrowed to, if narrowed.
    pub fn scopes(&self) -> Option<&[Scope]> {
        self.inner.scopes.as_deref()
    }

    /// The generated low-level layer ([`crate::api`]), for endpoints this layer does not wrap.
    /// Its calls go through this client's stack (auth, retries, tracing) and their errors come
    /// back as [`Error`], classified like every other call's.
    ///
    /// ```no_run
    /// # async fn run(client: ralio::RalioClient) -> ralio::Result<()> {
    /// let agents = client.api().call(|api| api.list_agents().send()).await?;
    /// println!("{} agents (HTTP {})", agents.len(), agents.status());
    /// # Ok(())
    /// # }
    /// ```
    pub fn api(&self) -> LowLevelApi<'_> {
        LowLevelApi { client: self }
    }

    /// The agents this credential can reach (a binding sees exactly its one agent).
    pub fn agents(&self) -> Agents<'_> {
        Agents::new(self)
    }

    /// Talk to the agent.
    pub fn chat(&self) -> Chat<'_> {
        Chat::new(self)
    }

    /// Executed payments.
    pub fn transactions(&self) -> Transactions<'_> {
        Transactions::new(self)
    }

    /// What the agent proposed to pay.
    pub fn payment_intents(&self) -> PaymentIntents<'_> {
        PaymentIntents::new(self)
    }

    /// Run one API call, mapping errors; the value without the response.
    pub(crate) async fn call<T, F>(&self, operation: &'static str, fut: F) -> Result<T>
    where
        F: Future<
            Output = std::result::Result<
                progenitor_client::ResponseValue<T>,
                progenitor_client::Error<ByteStream>,
            >,
        >,
    {
        self.call_raw(operation, fut)
            .await
            .map(progenitor_client::ResponseValue::into_inner)
    }

    /// Run one API call, mapping errors (its span is the transport's: see
    /// [`crate::transport::stack`]).
    async fn call_raw<T, F>(
        &self,
        operation: &'static str,
        fut: F,
    ) -> Result<progenitor_client::ResponseValue<T>>
    where
        F: Future<
            Output = std::result::Result<
                progenitor_client::ResponseValue<T>,
                progenitor_client::Error<ByteStream>,
            >,
        >,
    {
        match fut.await {
            Ok(value) => Ok(value),
            Err(e) => Err(crate::error::from_call(operation, self.base_url(), e).await),
        }
    }

    /// The one agent this credential reaches, resolved once and cached.
    pub(crate) async fn single_agent(&self) -> Result<String> {
        self.inner
            .agent
            .get_or_try_init(|| async {
                let agents = self.agents().list().await?;
                match agents.as_slice() {
                    [one] => Ok(one.id.clone()),
                    [] => Err(Error::Config(ConfigError::NoAgent)),
                    many => Err(Error::Config(ConfigError::AmbiguousAgent {
                        count: many.len(),
                        ids: many.iter().map(|a| a.id.clone()).collect(),
                    })),
                }
            })
            .await
            .cloned()
    }
}

/// The generated low-level layer of a [`RalioClient`] ([`RalioClient::api`]): every generated
/// operation, run through the client's stack, with errors mapped to [`Error`].
#[derive(Clone, Copy)]
pub struct LowLevelApi<'a> {
    client: &'a RalioClient,
}

impl std::fmt::Debug for LowLevelApi<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LowLevelApi")
            .field("base_url", &self.client.base_url())
            .finish()
    }
}

impl<'a> LowLevelApi<'a> {
    /// Runs one generated operation: `operation` gets the generated client and returns the
    /// operation's `send()` future, for example `|api| api.list_agents().send()`. The answer
    /// keeps the status and headers ([`progenitor_client::ResponseValue`]); a failure is the
    /// [`Error`] a resource call would give (errors name the operation `api`).
    pub async fn call<T, F, Fut>(&self, operation: F) -> Result<progenitor_client::ResponseValue<T>>
    where
        F: FnOnce(&'a api::Client) -> Fut,
        Fut: Future<
            Output = std::result::Result<
                progenitor_client::ResponseValue<T>,
                progenitor_client::Error<ByteStream>,
            >,
        >,
    {
        self.client
            .call_raw("api", operation(&self.client.inner.api))
            .await
    }
}

#[cfg(test)]
mod tests;
