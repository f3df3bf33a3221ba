//! The error taxonomy: one public [`Error`] for every fallible call of the SDK.
//!
//! Variants follow what a caller does next, and mirror the classes of the official Python and
//! TypeScript SDKs (`RalioAuthError`, `RalioPermissionError`, …):
//!
//! | variant | when | what to do |
//! | --- | --- | --- |
//! | [`Error::Auth`] | HTTP 401: token, proof or client assertion refused | check the binding; re-register if it was revoked |
//! | [`Error::Permission`] | HTTP 403: a scope is missing, or the resource is not yours | ask the owner for a wider ticket |
//! | [`Error::NotFound`] | HTTP 404 | check the id |
//! | [`Error::Validation`] | HTTP 422 | fix the arguments |
//! | [`Error::RateLimit`] | HTTP 429 | wait [`Error::retry_after`] and retry |
//! | [`Error::Api`] | any other HTTP error | retry later if [`Error::is_retryable`], else report |
//! | [`Error::Registration`] | registration refused | get a new ticket from the owner |
//! | [`Error::Credential`] | the auth layer failed (signing, token answer, store) | see the cause |
//! | [`Error::Config`] | local configuration problem | fix the configuration |
//! | [`Error::Transport`] | the request could not be sent or its answer not read | retry later; a refused connection: fix the API URL |
//! | [`Error::UntrustedCertificate`] | this client does not trust the server's TLS certificate | trust its CA, or fix the URL |
//! | [`Error::Decode`] | the server answered something the SDK could not read | report it |
//! | [`Error::Stream`] | a chat stream failed | check the payment intents before sending again |
//! | [`Error::Timeout`] | a deadline given by the caller passed | wait longer or check later |
//! | [`Error::UnknownId`] | an id looked up among the credential's own resources is not there | check the id |
//!
//! `{e}` is one sentence; `{e:?}` (what `main` prints when it returns the error) adds the cause
//! chain, and `{e:#?}` the structure. Every failed call is mapped here, once (the `map` submodule).
//!
//! HTTP errors keep the status, the server's detail, the `WWW-Authenticate` header and the
//! request id ([`ApiError`]). No message ever contains a token, a proof, an assertion or key
//! material: the server's error bodies never echo them, and the SDK does not add them.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::transport::retry;

mod api_error;
mod map;
mod registration;
mod stream;

pub use api_error::ApiError;
pub(crate) use map::{from_auth_error, from_call, registration_call};
pub use registration::{RegistrationError, RegistrationErrorCode};
pub use stream::StreamError;

/// A request the SDK sends: the call's own, or one it makes for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestKind {
    /// The call's own request to the API.
    Resource,
    /// The token request (a new or refreshed access token) made for the call.
    Token,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Resource => "request",
            RequestKind::Token => "token request",
        })
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the SDK returns.
///
/// `Display` is one sentence that says what failed and what to do; `{:?}` (what `main`
/// prints when it returns this error) is that sentence followed by its causes, one a line;
/// `{:#?}` shows the structure (variant and fields).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// HTTP 401: the access token, the DPoP proof or the client assertion was refused.
    #[error(
        "authentication failed ({0}); the credential binding may be revoked or its key replaced: \
         check it in the console and register again with a new ticket if needed"
    )]
    Auth(Box<ApiError>),

    /// HTTP 403: the token lacks the scope the call needs, or the resource is not yours.
    #[error(
        "permission denied ({0}); the credential lacks the scope this call needs or does not own \
         the resource: ask the owner for a ticket with the scope"
    )]
    Permission(Box<ApiError>),

    /// HTTP 404: the resource does not exist (or is not visible to this credential).
    #[error("not found ({0}); check the id")]
    NotFound(Box<ApiError>),

    /// HTTP 422: invalid arguments or a business rule refused the request.
    #[error("request refused as invalid ({0}); fix the arguments named in the detail")]
    Validation(Box<ApiError>),

    /// HTTP 429: rate limited. [`Error::retry_after`] says how long the server asked to wait.
    #[error("rate limited ({0}); back off{hint} and retry", hint = retry_hint(.0.retry_after()))]
    RateLimit(Box<ApiError>),

    /// Any other HTTP error status.
    #[error("the Ralio API answered with an error ({0}){hint}", hint = api_hint(.0))]
    Api(Box<ApiError>),

    /// Registration of a credential binding failed (invalid, expired or consumed ticket, …).
    #[error(transparent)]
    Registration(#[from] RegistrationError),

    /// The auth layer could not authenticate a request (signing, the token endpoint's answer,
    /// the refresh-token store, a repeated DPoP challenge).
    #[error("{}: could not authenticate the request with this credential", Call(operation, *step))]
    #[non_exhaustive]
    Credential {
        /// The call that failed (for example `chat.send`).
        operation: &'static str,
        /// The step inside that call that failed, when it is another operation (for example
        /// `agents.list`, the agent lookup of `chat.send`).
        step: Option<&'static str>,
        /// The auth layer's error (boxed: it keeps [`Error`] small).
        #[source]
        source: Box<crate::auth::AuthError>,
    },

    /// A local configuration problem: nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The request could not be sent, or its response could not be read.
    #[error("{}", transport_message(operation, *step, *failure, target.as_deref()))]
    #[non_exhaustive]
    Transport {
        /// The call that failed (for example `transactions.list`).
        operation: &'static str,
        /// The step inside that call that failed, when it is another operation (for example
        /// `agents.list`, the agent lookup of `chat.send`).
        step: Option<&'static str>,
        /// How the request failed: refused, timed out, …
        failure: TransportFailure,
        /// Where the request went: origin and path, without the query (for example
        /// `http://127.0.0.1:8080/oauth/token` when the token request failed).
        target: Option<String>,
        /// The underlying I/O or HTTP error (its own message leaves the URL to `target`).
        #[source]
        source: reqwest::Error,
    },

    /// This client does not trust the server's TLS certificate (issued by a certificate
    /// authority it was not given, expired, or another host's): the request was not sent, and
    /// sending it again will not help. Trust the CA with
    /// [`RalioClientBuilder::configure_http`](crate::RalioClientBuilder::configure_http)
    /// (`add_root_certificate`) or the system's roots, or fix the URL.
    #[error(
        "{operation}: the {request} to {} was not sent: {}",
        crate::transport::tls::shown_url(.source),
        crate::transport::tls::Untrusted::of(.source)
    )]
    #[non_exhaustive]
    UntrustedCertificate {
        /// The operation that failed (for example `transactions.list`).
        operation: &'static str,
        /// Which request was refused: the call's own, or the token request made for it.
        request: RequestKind,
        /// The HTTP client's error (the TLS error is among its causes).
        #[source]
        source: reqwest::Error,
    },

    /// The server answered with a body the SDK could not read.
    #[error(
        "{operation}: the server's answer could not be read as {expected}; report this with the request id"
    )]
    #[non_exhaustive]
    Decode {
        /// The operation that failed.
        operation: &'static str,
        /// What the SDK expected (for example `a page of transactions`).
        expected: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A chat stream failed after it started.
    #[error(transparent)]
    Stream(#[from] StreamError),

    /// A deadline set by the caller passed before the awaited state was reached.
    #[error("{what} did not happen within {waited:?}; check again later or wait longer")]
    #[non_exhaustive]
    Timeout {
        /// What was awaited.
        what: Awaited,
        /// How long the SDK waited.
        waited: Duration,
    },

    /// A resource looked up by id among this credential's own was not there. No HTTP 404 came
    /// back: the API has no endpoint for one such resource, so the SDK searched the list.
    #[error(
        "{operation}: no {resource} with id {id:?} among this credential's {resource}s; check the id"
    )]
    #[non_exhaustive]
    UnknownId {
        /// The operation that searched (for example `payment_intents.get`).
        operation: &'static str,
        /// What kind of resource was looked for.
        resource: ResourceKind,
        /// The id that was not found.
        id: String,
    },

    /// A failure inside the middleware stack that is none of the above.
    #[error("{operation}: a request middleware failed")]
    #[non_exhaustive]
    Middleware {
        /// The operation that failed.
        operation: &'static str,
        /// The middleware's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return self.fmt_structure(f);
        }
        write!(f, "{self}")?;
        let mut cause = std::error::Error::source(self);
        if cause.is_some() {
            f.write_str("\n\nCaused by:")?;
        }
        let mut n = 0;
        while let Some(e) = cause {
            write!(f, "\n    {n}: {e}")?;
            n += 1;
            cause = e.source();
        }
        Ok(())
    }
}

impl Error {
    /// The variant and its fields, for `{:#?}`.
    fn fmt_structure(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Auth(e) => f.debug_tuple("Auth").field(e).finish(),
            Error::Permission(e) => f.debug_tuple("Permission").field(e).finish(),
            Error::NotFound(e) => f.debug_tuple("NotFound").field(e).finish(),
            Error::Validation(e) => f.debug_tuple("Validation").field(e).finish(),
            Error::RateLimit(e) => f.debug_tuple("RateLimit").field(e).finish(),
            Error::Api(e) => f.debug_tuple("Api").field(e).finish(),
            Error::Registration(e) => f.debug_tuple("Registration").field(e).finish(),
            Error::Config(e) => f.debug_tuple("Config").field(e).finish(),
            Error::Stream(e) => f.debug_tuple("Stream").field(e).finish(),
            Error::Credential {
                operation,
                step,
                source,
            } => f
                .debug_struct("Credential")
                .field("operation", operation)
                .field("step", step)
                .field("source", source)
                .finish(),
            Error::Transport {
                operation,
                step,
                failure,
                target,
                source,
            } => f
                .debug_struct("Transport")
                .field("operation", operation)
                .field("step", step)
                .field("failure", failure)
                .field("target", target)
                .field("source", source)
                .finish(),
            Error::UntrustedCertificate {
                operation,
                request,
                source,
            } => f
                .debug_struct("UntrustedCertificate")
                .field("operation", operation)
                .field("request", request)
                .field("source", source)
                .finish(),
            Error::Decode {
                operation,
                expected,
                source,
            } => f
                .debug_struct("Decode")
                .field("operation", operation)
                .field("expected", expected)
                .field("source", source)
                .finish(),
            Error::Timeout { what, waited } => f
                .debug_struct("Timeout")
                .field("what", what)
                .field("waited", waited)
                .finish(),
            Error::UnknownId {
                operation,
                resource,
                id,
            } => f
                .debug_struct("UnknownId")
                .field("operation", operation)
                .field("resource", resource)
                .field("id", id)
                .finish(),
            Error::Middleware { operation, source } => f
                .debug_struct("Middleware")
                .field("operation", operation)
                .field("source", source)
                .finish(),
        }
    }
}

/// How a request failed without an answer ([`Error::Transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportFailure {
    /// The address refused the connection: nothing listens there, most likely a wrong URL.
    ConnectionRefused,
    /// Connecting or waiting for the answer took longer than the timeout.
    TimedOut,
    /// The connection could not be made (name resolution, TLS, a reset).
    Connect,
    /// The request was sent, or may have been, and its answer could not be read.
    Exchange,
}

impl TransportFailure {
    /// Classifies a reqwest error.
    pub(crate) fn of(e: &reqwest::Error) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            {
                return TransportFailure::ConnectionRefused;
            }
            cause = c.source();
        }
        if e.is_timeout() {
            TransportFailure::TimedOut
        } else if e.is_connect() {
            TransportFailure::Connect
        } else {
            TransportFailure::Exchange
        }
    }
}

/// `chat.send`, or `chat.send (during agents.list)`.
struct Call<'a>(&'a str, Option<&'a str>);

impl fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(step) if step != self.0 => write!(f, "{} (during {step})", self.0),
            _ => f.write_str(self.0),
        }
    }
}

fn transport_message(
    operation: &str,
    step: Option<&str>,
    failure: TransportFailure,
    target: Option<&str>,
) -> String {
    let call = Call(operation, step);
    let target = target.unwrap_or("the Ralio API");
    match failure {
        TransportFailure::ConnectionRefused => format!(
            "{call}: {target} refused the connection: nothing listens there; check the API URL \
             (RALIO_API_URL, or the base URL given to the client)"
        ),
        TransportFailure::TimedOut => {
            format!("{call}: {target} did not answer in time; check the network and retry")
        }
        TransportFailure::Connect => format!(
            "{call}: could not connect to {target}; check the API URL, the network and the TLS \
             settings, then retry"
        ),
        TransportFailure::Exchange => format!(
            "{call}: the request to {target} failed before its answer was read; check the \
             network and retry"
        ),
    }
}

fn retry_hint(after: Option<Duration>) -> String {
    match after {
        Some(d) => format!(" for {}s", d.as_secs().max(1)),
        None => String::new(),
    }
}

fn api_hint(e: &ApiError) -> &'static str {
    let chat = e.operation().is_some_and(|op| op.starts_with("chat."));
    if chat && e.status().is_server_error() {
        "; the agent may have acted on the message: check the payment intents before sending it again"
    } else if is_retryable_status(e.status()) {
        "; this is usually temporary: retry later"
    } else if e.status().is_server_error() {
        "; report it with the request id"
    } else {
        ""
    }
}

/// Whether a response with this status may succeed if sent again (the retry classifier's
/// answer, for any method).
fn is_retryable_status(status: StatusCode) -> bool {
    retry::classify(retry::Outcome::of_status(status)) != retry::Retry::Never
}

impl Error {
    /// Whether the same call may succeed if made again later.
    ///
    /// The retry policy's own classifier answers (see [`RetryPolicy`](crate::RetryPolicy)): true for
    /// rate limits, 408/502/503/504, connection failures, timeouts and transport failures after
    /// the request may have been sent; false for 500 and every other status. The SDK already
    /// retried where that was safe; a chat message that failed this way may still have been
    /// processed: look at the payment intents before sending it again.
    pub fn is_retryable(&self) -> bool {
        let outcome = match self {
            Error::Auth(e)
            | Error::Permission(e)
            | Error::NotFound(e)
            | Error::Validation(e)
            | Error::RateLimit(e)
            | Error::Api(e) => retry::Outcome::of_status(e.status()),
            // A refused connection to the configured address is a wrong URL more often than a
            // server restarting: the retry layer has already tried again where it could.
            Error::Transport {
                failure: TransportFailure::ConnectionRefused,
                ..
            } => return false,
            Error::Transport { source, .. } => retry::Outcome::of_reqwest(source),
            Error::Timeout { .. } => retry::Outcome::SentMaybe,
            Error::Stream(e) => return e.is_retryable(),
            _ => retry::Outcome::Local,
        };
        retry::classify(outcome) != retry::Retry::Never
    }

    /// The details of an HTTP error response, when the error came from one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Error::Auth(e)
            | Error::Permission(e)
            | Error::NotFound(e)
            | Error::Validation(e)
            | Error::RateLimit(e)
            | Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status of the error response, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.api_error().map(ApiError::status)
    }

    /// The server's human-readable detail, when there was one.
    pub fn detail(&self) -> Option<&str> {
        self.api_error().and_then(ApiError::detail)
    }

    /// The machine-readable error code (OAuth `error` or the registration code), when present.
    pub fn code(&self) -> Option<&str> {
        self.api_error().and_then(ApiError::code)
    }

    /// The `WWW-Authenticate` header of the error response, when present.
    pub fn www_authenticate(&self) -> Option<&str> {
        self.api_error().and_then(ApiError::www_authenticate)
    }

    /// The request id the server gave this request, when present: quote it in bug reports.
    pub fn request_id(&self) -> Option<&str> {
        self.api_error().and_then(ApiError::request_id)
    }

    /// How long the server asked to wait before retrying (`Retry-After`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.api_error().and_then(|e| e.retry_after())
    }

    /// The same error, named after the caller's call `operation`, the operation that failed
    /// kept as the step inside it (`chat.send` during `agents.list`).
    pub(crate) fn during(self, operation: &'static str) -> Self {
        match self {
            Error::Transport {
                operation: step,
                step: None,
                failure,
                target,
                source,
            } => Error::Transport {
                operation,
                step: Some(step),
                failure,
                target,
                source,
            },
            Error::Credential {
                operation: step,
                step: None,
                source,
            } => Error::Credential {
                operation,
                step: Some(step),
                source,
            },
            Error::Auth(e) => Error::Auth(Box::new(e.during(operation))),
            Error::Permission(e) => Error::Permission(Box::new(e.during(operation))),
            Error::NotFound(e) => Error::NotFound(Box::new(e.during(operation))),
            Error::Validation(e) => Error::Validation(Box::new(e.during(operation))),
            Error::RateLimit(e) => Error::RateLimit(Box::new(e.during(operation))),
            Error::Api(e) => Error::Api(Box::new(e.during(operation))),
            other => other,
        }
    }

    /// Classify an HTTP error response into the variant a caller acts on.
    pub(crate) fn from_api_error(e: ApiError) -> Self {
        let e = Box::new(e);
        match e.status().as_u16() {
            401 => Error::Auth(e),
            403 => Error::Permission(e),
            404 => Error::NotFound(e),
            422 => Error::Validation(e),
            429 => Error::RateLimit(e),
            _ => Error::Api(e),
        }
    }
}

/// A local configuration problem, found before anything was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No credentials were found anywhere the SDK looked.
    #[error(
        "no credentials in {}; run `ralio register` with the ticket the owner sent you \
         (or set RALIO_CLIENT_ID and RALIO_PRIVATE_JWK)",
        searched.join(", nor in ")
    )]
    #[non_exhaustive]
    NoCredentials {
        /// Where the SDK looked, in order.
        searched: Vec<String>,
    },

    /// The API URL could not be parsed.
    #[error(
        "the API URL {url:?} is not a valid URL; set RALIO_API_URL to an origin such as https://api.ralio.co"
    )]
    #[non_exhaustive]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },

    /// Plain `http://` was given for a host that is not loopback.
    #[error(
        "refusing plain http:// for {host}: tokens and proofs would cross the network \
         unencrypted; use https:// (http:// is allowed only for localhost, 127.0.0.1 and ::1)"
    )]
    #[non_exhaustive]
    InsecureUrl {
        /// The host that was refused.
        host: String,
    },

    /// The API URL's scheme is neither `https` nor `http`.
    #[error("unsupported URL scheme {scheme:?} in the API URL; use https://")]
    #[non_exhaustive]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },

    /// The credential reaches no agent, so chat needs an explicit agent id.
    #[error(
        "this credential reaches no agent; ask the owner to bind it to an agent, or pass an agent id"
    )]
    NoAgent,

    /// The credential reaches several agents, so chat needs an explicit agent id.
    #[error(
        "this credential reaches {count} agents ({}); pass the agent id to use with `.agent_id(…)`",
        ids.join(", ")
    )]
    #[non_exhaustive]
    AmbiguousAgent {
        /// How many agents the credential reaches.
        count: usize,
        /// Their ids.
        ids: Vec<String>,
    },

    /// `with_scopes` asked for a scope the credential binding does not hold.
    #[error(
        "scope \"{scope}\" is not granted to this credential (granted: {}); ask the owner for \
         a ticket that includes it and register again",
        crate::Scope::join(granted)
    )]
    #[non_exhaustive]
    ScopeNotGranted {
        /// The scope asked for.
        scope: crate::Scope,
        /// The scopes the binding holds.
        granted: Vec<crate::Scope>,
    },

    /// `with_scopes` was given no scope.
    #[error("with_scopes needs at least one scope, for example \"transactions:read\"")]
    EmptyScopes,

    /// A user-agent suffix or header value could not be used in an HTTP header.
    #[error("{what} contains characters not allowed in an HTTP header; use visible ASCII")]
    #[non_exhaustive]
    InvalidHeader {
        /// Which value was refused.
        what: &'static str,
    },

    /// The credential store failed (missing or unreadable credentials, permissions, backend).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),

    /// The HTTP client could not be built.
    #[error("could not build the HTTP client; check the TLS and proxy settings of the environment")]
    HttpClient(#[source] reqwest::Error),

    /// The API URL has a query or fragment: only an origin can be used.
    #[error(
        "the API URL {url:?} has a query or fragment; give only the origin, such as https://api.ralio.co"
    )]
    #[non_exhaustive]
    UrlNotAnOrigin {
        /// The URL as given.
        url: String,
    },

    /// The call needs credentials and the client was built without any.
    #[error(
        "{operation}: this client has no credentials; build it with credentials (RalioClient::from_env, or a credential store)"
    )]
    #[non_exhaustive]
    NoClientCredentials {
        /// The call that needs them.
        operation: &'static str,
    },

    /// A value given to a call could not be put into the request (the generated layer refused
    /// it). Nothing was sent.
    #[error("{operation}: the request could not be built ({detail}); check the arguments")]
    #[non_exhaustive]
    InvalidRequest {
        /// The operation.
        operation: &'static str,
        /// What the generated layer said.
        detail: String,
    },
}

/// What a [`Error::Timeout`] was waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Awaited {
    /// A response to one attempt of an API call (the per-attempt time limit).
    #[non_exhaustive]
    Response {
        /// The operation (for example `transactions.list`).
        operation: &'static str,
    },
    /// The reply to a chat message. The agent may have acted meanwhile.
    ChatReply,
    /// The owner's decision on a payment intent.
    #[non_exhaustive]
    Decision {
        /// The payment intent.
        intent_id: String,
    },
}

impl fmt::Display for Awaited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Awaited::Response { operation } => write!(f, "a response to {operation}"),
            Awaited::ChatReply => f.write_str(
                "the chat reply (the agent may have acted: check the payment intents before sending again)",
            ),
            Awaited::Decision { intent_id } => {
                write!(f, "a decision on payment intent {intent_id}")
            }
        }
    }
}

/// A kind of resource, as [`Error::UnknownId`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A payment intent.
    PaymentIntent,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::PaymentIntent => "payment intent",
        })
    }
}

#[cfg(test)]
mod tests;
