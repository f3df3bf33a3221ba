//! The transport: the one HTTP client and the one `reqwest-middleware` stack every request
//! goes through (user agent, the request's span, the caller's middleware, traceparent, retry
//! policy, DPoP auth), the seam that runs generated calls through it (`hooks`), the retry
//! policy (`retry`), body caps and `WWW-Authenticate` challenge parsing.
//!
//! # One HTTP client
//!
//! A [`crate::RalioClient`] (with its token manager and its `with_scopes` siblings), a
//! registration (its requests, its poll and the first token) and a token manager used on its
//! own each build exactly one `reqwest::Client`, from `HttpConfig`: the SDK's timeouts, then
//! the caller's adjustments of the `reqwest::ClientBuilder` (TLS roots, client certificate,
//! proxy, pool, ...), then redirects switched off, whatever the caller set. Every request,
//! resource calls, the token endpoint and registration alike, goes through that client, so a
//! private CA or a proxy the caller configured reaches all of them, and none follows a
//! redirect (a 307/308 would re-send an assertion, refresh token or ticket to whatever origin
//! it names, and a DPoP proof is bound to the URL it was signed for). One client is also one
//! read of the system's root certificates.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{Extensions, HeaderValue};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use tracing::Instrument as _;

pub(crate) mod body;
pub(crate) mod challenge;
pub(crate) mod failure;
pub(crate) mod hooks;
pub(crate) mod retry;
pub(crate) mod tls;

pub use retry::{RetryMiddleware, RetryPolicy};

/// A caller's adjustment of the `reqwest::ClientBuilder` the SDK builds its HTTP client from:
/// any `Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static`, given to
/// [`RalioClientBuilder::configure_http`](crate::RalioClientBuilder::configure_http),
/// [`RegisterOptions::configure_http`](crate::register::RegisterOptions::configure_http) or
/// [`TokenManagerBuilder::configure_http`](crate::auth::TokenManagerBuilder::configure_http).
///
/// Each of those builds one client: the SDK's timeouts first (the connect timeout, a per-read
/// timeout, no total timeout), then the adjustments in the order given, then redirects
/// switched off whatever an adjustment set (a redirect would re-send a client assertion, a
/// refresh token or a registration ticket to whatever origin it names, and a DPoP proof is
/// bound to the URL it was signed for). TLS roots (a private CA), client certificates,
/// proxies, pool and keep-alive settings reach every request that client sends.
///
/// ```
/// fn trust(ca: reqwest::Certificate) -> impl ralio::ConfigureHttp {
///     move |http: reqwest::ClientBuilder| http.add_root_certificate(ca.clone())
/// }
/// ```
pub trait ConfigureHttp:
    Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static
{
}

impl<F> ConfigureHttp for F where
    F: Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static
{
}

/// What the one HTTP client is built from: the SDK's timeouts, the caller's adjustments in
/// the order given, and never a redirect. Clones share the client once it is built
/// ([`HttpConfig::client`]); changing a setting starts a new one.
#[derive(Clone)]
pub(crate) struct HttpConfig {
    connect_timeout: Duration,
    read_backstop: Duration,
    configure: Vec<Arc<dyn ConfigureHttp>>,
    built: Arc<OnceLock<reqwest::Client>>,
}

impl Default for HttpConfig {
    /// 10 s to connect; a read may stall for the stream idle timeout (120 s) and a second
    /// before the connection counts as dead.
    fn default() -> Self {
        HttpConfig {
            connect_timeout: crate::config::DEFAULT_CONNECT_TIMEOUT,
            read_backstop: read_backstop(
                crate::config::DEFAULT_READ_TIMEOUT,
                Some(crate::config::DEFAULT_READ_IDLE_TIMEOUT),
            ),
            configure: Vec::new(),
            built: Arc::default(),
        }
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("read_backstop", &self.read_backstop)
            .field("configure", &self.configure.len())
            .finish()
    }
}

/// The per-read timeout of the client: no total timeout (it would cut chat streams); a read
/// that stalls longer than both the response wait and the stream idle timeout means a dead
/// connection.
pub(crate) fn read_backstop(read_timeout: Duration, read_idle: Option<Duration>) -> Duration {
    read_idle.map_or(read_timeout, |idle| idle.max(read_timeout)) + Duration::from_secs(1)
}

impl HttpConfig {
    /// How long to wait for a connection (TCP and TLS).
    pub(crate) fn connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = timeout;
        self.built = Arc::default();
    }

    /// The per-read timeout (see [`read_backstop`]).
    pub(crate) fn read_backstop(&mut self, timeout: Duration) {
        self.read_backstop = timeout;
        self.built = Arc::default();
    }

    /// Adds an adjustment, applied after the SDK's settings and the earlier adjustments.
    pub(crate) fn configure(&mut self, configure: impl ConfigureHttp) {
        self.configure.push(Arc::new(configure));
        self.built = Arc::default();
    }

    /// The client: built on first use, then shared by every clone of this configuration.
    pub(crate) fn client(&self) -> reqwest::Result<reqwest::Client> {
        if let Some(client) = self.built.get() {
            return Ok(client.clone());
        }
        let client = self.build()?;
        Ok(self.built.get_or_init(|| client).clone())
    }

    fn build(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_backstop);
        if self.configure.is_empty() {
            // No caller settings: the process's one TLS configuration (one root store).
            builder = tls::with_shared_tls(builder);
        }
        for configure in &self.configure {
            builder = configure(builder);
        }
        // Last, so no adjustment can switch redirects back on.
        builder.redirect(reqwest::redirect::Policy::none()).build()
    }
}

/// A layer that edits each request before passing it on (the `User-Agent`, a fixed target
/// URL, trace headers).
pub(crate) struct EditRequest<F>(pub(crate) F);

#[async_trait::async_trait]
impl<F> Middleware for EditRequest<F>
where
    F: Fn(&mut reqwest::Request) + Send + Sync + 'static,
{
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        (self.0)(&mut req);
        next.run(req, extensions).await
    }
}

/// The caller's own middleware, in the order added; `Debug` shows how many.
#[derive(Clone, Default)]
pub(crate) struct Layers(Vec<Arc<dyn Middleware>>);

impl Layers {
    pub(crate) fn push(&mut self, layer: Arc<dyn Middleware>) {
        self.0.push(layer);
    }
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} middleware", self.0.len())
    }
}

/// The settings every stack shares: the `User-Agent`, the caller's middleware, the retry
/// policy and the per-attempt time limit.
#[derive(Debug, Clone)]
pub(crate) struct StackSettings {
    pub(crate) user_agent: HeaderValue,
    pub(crate) extra: Layers,
    pub(crate) retry: RetryPolicy,
    pub(crate) read_timeout: Duration,
}

impl Default for StackSettings {
    /// What a token manager or registration used on its own gets: the SDK's `User-Agent`, no
    /// extra middleware, the default retry policy and read timeout.
    fn default() -> Self {
        StackSettings {
            user_agent: HeaderValue::from_static(DEFAULT_USER_AGENT),
            extra: Layers::default(),
            retry: RetryPolicy::default(),
            read_timeout: crate::config::DEFAULT_READ_TIMEOUT,
        }
    }
}

/// `ralio-rust/<version>`.
pub(crate) const DEFAULT_USER_AGENT: &str = concat!("ralio-rust/", env!("CARGO_PKG_VERSION"));

/// What sits inside the common layers of a stack.
pub(crate) enum Inner {
    /// Resource calls: the DPoP auth layer (`crate::auth::DpopAuth`) when there are
    /// credentials, directly inside the retry layer so it can resend from the retry layer's
    /// copy of each request. Answers may be streams: each attempt's limit covers the wait for
    /// the response headers.
    Resources(Option<Arc<dyn Middleware>>),
    /// The token endpoint and registration: small answers, read whole within each attempt's
    /// limit (a server trickling a body cannot hold the request open), with this layer (the
    /// token request's own proof) innermost, and every request sent to `target` when set (a
    /// token endpoint that is not at `/oauth/token`).
    SmallAnswers {
        innermost: Option<Arc<dyn Middleware>>,
        target: Option<url::Url>,
    },
}

/// Assembles the one stack, outermost first: the request target (small answers), user agent,
/// the request's span ([`RequestSpan`]), the caller's middleware, traceparent (feature
/// `opentelemetry`), the retry policy (each attempt bounded by `read_timeout`), and the
/// innermost layer (DPoP auth for resource calls, the token request's own proof for the token
/// endpoint), so every attempt is signed afresh.
pub(crate) fn stack(
    http: reqwest::Client,
    settings: &StackSettings,
    inner: Inner,
) -> ClientWithMiddleware {
    let (innermost, target, shares_copy, whole_answer) = match inner {
        Inner::Resources(auth) => {
            let shares = auth.is_some();
            (auth, None, shares, false)
        }
        Inner::SmallAnswers { innermost, target } => (innermost, target, false, true),
    };
    let mut stack = reqwest_middleware::ClientBuilder::new(http);
    if let Some(target) = target {
        // Every request to one URL (a token endpoint whose path is not the generated
        // operation's `/oauth/token`).
        stack = stack.with(EditRequest(move |req: &mut reqwest::Request| {
            *req.url_mut() = target.clone();
        }));
    }
    stack = stack
        .with(EditRequest({
            let agent = settings.user_agent.clone();
            move |req: &mut reqwest::Request| {
                req.headers_mut()
                    .insert(http::header::USER_AGENT, agent.clone());
            }
        }))
        .with(RequestSpan);
    for m in &settings.extra.0 {
        stack = stack.with_arc(Arc::clone(m));
    }
    #[cfg(feature = "opentelemetry")]
    {
        stack = stack.with(EditRequest(crate::otel::add_traceparent));
    }
    let mut retry = RetryMiddleware::new(settings.retry.clone())
        .with_attempt_timeout(Some(settings.read_timeout));
    if shares_copy {
        retry = retry.sharing_its_copy();
    }
    if whole_answer {
        retry = retry.reading_whole_answers();
    }
    stack = stack.with(retry);
    if let Some(layer) = innermost {
        stack = stack.with_arc(layer);
    }
    stack.build()
}

/// The generated operation a request belongs to, put in the middleware extensions by the
/// seam ([`hooks`]) for the span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OperationId(pub(crate) &'static str);

/// Opens one span per request, `ralio.request`, around everything inside it (the caller's
/// middleware, traceparent, every attempt): `operation` (the generated operation, for example
/// `list_transactions`, `create_token`, `register_credential_binding`), `method`, `path` (the
/// URL path: never the query or the host's credentials), and, when the request ends, `status`
/// (of the last answer), `attempt` (how many attempts it took, from the retry layer) and
/// `latency_ms`. Never a header or a body.
pub(crate) struct RequestSpan;

#[async_trait::async_trait]
impl Middleware for RequestSpan {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let span = tracing::info_span!(
            "ralio.request",
            operation = extensions.get::<OperationId>().map_or("", |op| op.0),
            method = req.method().as_str(),
            path = req.url().path(),
            status = tracing::field::Empty,
            attempt = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        if span.is_disabled() {
            return next.run(req, extensions).await;
        }
        let started = Instant::now();
        let result = next.run(req, extensions).instrument(span.clone()).await;
        if let Some(retry::Attempts(n)) = extensions.get::<retry::Attempts>() {
            span.record("attempt", n);
        }
        if let Ok(response) = &result {
            span.record("status", response.status().as_u16());
        }
        span.record(
            "latency_ms",
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        );
        result
    }
}
