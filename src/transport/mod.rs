//! The transport: the `reqwest-middleware` stack every request goes through (user agent, the
//! caller's middleware, traceparent, retry policy, DPoP auth), the seam that runs generated
//! calls through it ([`hooks`]), the retry policy ([`retry`]), body caps and
//! `WWW-Authenticate` challenge parsing.

use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderValue};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};

use crate::auth::{DpopAuth, TokenManager};

pub(crate) mod body;
pub(crate) mod challenge;
pub(crate) mod failure;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod retry;

pub use retry::{RetryMiddleware, RetryPolicy};

/// The private HTTP client of the token endpoint and registration: 10 s connect and 30 s total
/// timeouts, and never a redirect (a 307/308 would re-send an assertion, refresh token or
/// ticket to whatever origin it names). A caller's client is never used there, since it may
/// follow redirects.
pub(crate) fn private_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(crate::config::DEFAULT_CONNECT_TIMEOUT)
        .timeout(PRIVATE_CLIENT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The total timeout of [`private_client`] requests (token and registration answers are small).
const PRIVATE_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets `User-Agent` on every request.
pub(crate) struct UserAgent(HeaderValue);

#[async_trait::async_trait]
impl Middleware for UserAgent {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        req.headers_mut()
            .insert(http::header::USER_AGENT, self.0.clone());
        next.run(req, extensions).await
    }
}

/// The settings every stack shares: the `User-Agent`, the caller's middleware, the retry
/// policy and the per-attempt time limit.
#[derive(Clone)]
pub(crate) struct StackSettings {
    pub(crate) user_agent: HeaderValue,
    pub(crate) extra: Vec<Arc<dyn Middleware>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) read_timeout: Duration,
}

impl std::fmt::Debug for StackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackSettings")
            .field("user_agent", &self.user_agent)
            .field("extra", &self.extra.len())
            .field("retry", &self.retry)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

impl Default for StackSettings {
    /// What a token manager or registration used on its own gets: the SDK's `User-Agent`, no
    /// extra middleware, the default retry policy and read timeout.
    fn default() -> Self {
        StackSettings {
            user_agent: HeaderValue::from_static(DEFAULT_USER_AGENT),
            extra: Vec::new(),
            retry: RetryPolicy::default(),
            read_timeout: crate::config::DEFAULT_READ_TIMEOUT,
        }
    }
}

/// `ralio-rust/<version>`.
pub(crate) const DEFAULT_USER_AGENT: &str = concat!("ralio-rust/", env!("CARGO_PKG_VERSION"));

/// Assembles the stack, outermost first: the request target (when `target` is set: every
/// request goes to that URL, for a token endpoint that is not at `/oauth/token`), user agent,
/// the caller's middleware, traceparent (feature `opentelemetry`), the retry policy (each
/// attempt bounded by `read_timeout`), and the `innermost` layer (DPoP auth for resource
/// calls, the token request's own proof for the token endpoint), so every attempt is signed
/// afresh.
pub(crate) fn stack(
    http: reqwest::Client,
    settings: &StackSettings,
    innermost: Option<Arc<dyn Middleware>>,
    target: Option<url::Url>,
    innermost_resends_from_retry_copy: bool,
) -> ClientWithMiddleware {
    let mut stack = reqwest_middleware::ClientBuilder::new(http);
    if let Some(target) = target {
        stack = stack.with(Target(target));
    }
    stack = stack.with(UserAgent(settings.user_agent.clone()));
    for m in &settings.extra {
        stack = stack.with_arc(Arc::clone(m));
    }
    #[cfg(feature = "opentelemetry")]
    {
        stack = stack.with(crate::otel::TraceParent);
    }
    let mut retry = RetryMiddleware::new(settings.retry.clone())
        .with_attempt_timeout(Some(settings.read_timeout));
    if innermost_resends_from_retry_copy {
        retry = retry.sharing_its_copy();
    }
    stack = stack.with(retry);
    if let Some(layer) = innermost {
        stack = stack.with_arc(layer);
    }
    stack.build()
}

/// The authenticated stack of resource calls.
pub(crate) fn resource_stack(
    http: reqwest::Client,
    settings: &StackSettings,
    tokens: Option<TokenManager>,
) -> ClientWithMiddleware {
    // Innermost, directly inside the retry layer (`stack` puts nothing in between), so it can
    // resend from the retry layer's copy of each request.
    let shares = tokens.is_some();
    let auth = tokens.map(|t| Arc::new(DpopAuth::new(t)) as Arc<dyn Middleware>);
    stack(http, settings, auth, None, shares)
}

/// Sends every request to one URL (a token endpoint whose path is not the generated
/// operation's `/oauth/token`).
struct Target(url::Url);

#[async_trait::async_trait]
impl Middleware for Target {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        *req.url_mut() = self.0.clone();
        next.run(req, extensions).await
    }
}
