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

/// Assembles the stack, outermost first: user agent, the caller's middleware, traceparent
/// (feature `opentelemetry`), the retry policy (each attempt bounded by `read_timeout`), and
/// DPoP auth when there are `tokens` (innermost, so every attempt carries a fresh proof).
pub(crate) fn stack(
    http: reqwest::Client,
    user_agent: HeaderValue,
    extra: &[Arc<dyn Middleware>],
    retry: RetryPolicy,
    read_timeout: Duration,
    tokens: Option<TokenManager>,
) -> ClientWithMiddleware {
    let mut stack = reqwest_middleware::ClientBuilder::new(http).with(UserAgent(user_agent));
    for m in extra {
        stack = stack.with_arc(Arc::clone(m));
    }
    #[cfg(feature = "opentelemetry")]
    {
        stack = stack.with(crate::otel::TraceParent);
    }
    stack = stack.with(RetryMiddleware::new(retry).with_attempt_timeout(Some(read_timeout)));
    if let Some(tokens) = tokens {
        stack = stack.with(DpopAuth::new(tokens));
    }
    stack.build()
}
