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
//! | [`Error::Transport`] | the request could not be sent or its answer not read | retry later |
//! | [`Error::UntrustedCertificate`] | this client does not trust the server's TLS certificate | trust its CA, or fix the URL |
//! | [`Error::Decode`] | the server answered something the SDK could not read | report it |
//! | [`Error::Stream`] | a chat stream failed | check the payment intents before sending again |
//! | [`Error::Timeout`] | a deadline given by the caller passed | wait longer or check later |
//!
//! HTTP errors keep the status, the server's detail, the `WWW-Authenticate` header and the
//! request id ([`ApiError`]). No message ever contains a token, a proof, an assertion or key
//! material: the server's error bodies never echo them, and the SDK does not add them.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::stream::StreamError;
use crate::transport::body::ERROR_BODY_CAP;
use crate::transport::challenge::auth_error;
use crate::transport::retry;

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

impl Error {
    /// A transport failure of `request` as the error it is: a refused server certificate, else
    /// [`Error::Transport`].
    pub(crate) fn transport(
        operation: &'static str,
        request: RequestKind,
        source: reqwest::Error,
    ) -> Error {
        if crate::transport::tls::untrusted_certificate(&source).is_some() {
            Error::UntrustedCertificate {
                operation,
                request,
                source,
            }
        } else {
            Error::Transport { operation, source }
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A server detail longer than this many characters is shortened in messages.
const DETAIL_DISPLAY_CAP: usize = 500;

/// Headers that carry a request id, in order of preference.
const REQUEST_ID_HEADERS: [&str; 4] = [
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "x-amzn-requestid",
];

/// Every error the SDK returns.
#[derive(Debug, thiserror::Error)]
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
    #[error("rate limited ({0}); back off{hint} and retry", hint = retry_hint(.0.retry_after))]
    RateLimit(Box<ApiError>),

    /// Any other HTTP error status.
    #[error("the Ralio API answered with an error ({0}){hint}", hint = api_hint(.0))]
    Api(Box<ApiError>),

    /// Registration of a credential binding failed (invalid, expired or consumed ticket, …).
    #[error(transparent)]
    Registration(#[from] crate::register::RegistrationError),

    /// The auth layer could not authenticate a request (signing, the token endpoint's answer,
    /// the refresh-token store, a repeated DPoP challenge).
    #[error("{operation}: could not authenticate the request with this credential")]
    #[non_exhaustive]
    Credential {
        /// The operation that failed.
        operation: &'static str,
        /// The auth layer's error (boxed: it is large, and this is the rare path).
        #[source]
        source: Box<crate::auth::AuthError>,
    },

    /// A local configuration problem: nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The request could not be sent, or its response could not be read.
    #[error(
        "{operation}: could not reach the Ralio API or read its answer; check the network and retry"
    )]
    #[non_exhaustive]
    Transport {
        /// The operation that failed (for example `transactions.list`).
        operation: &'static str,
        /// The underlying I/O or HTTP error.
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
        what: String,
        /// How long the SDK waited.
        waited: Duration,
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

fn retry_hint(after: Option<Duration>) -> String {
    match after {
        Some(d) => format!(" for {}s", d.as_secs().max(1)),
        None => String::new(),
    }
}

fn api_hint(e: &ApiError) -> &'static str {
    let chat = e.operation.is_some_and(|op| op.starts_with("chat."));
    if chat && e.status.is_server_error() {
        "; the agent may have acted on the message: check the payment intents before sending it again"
    } else if is_retryable_status(e.status) {
        "; this is usually temporary: retry later"
    } else if e.status.is_server_error() {
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
            | Error::Api(e) => retry::Outcome::of_status(e.status),
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
        self.api_error().map(|e| e.status)
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
        self.api_error().and_then(|e| e.retry_after)
    }

    /// Classify an HTTP error response into the variant a caller acts on.
    pub(crate) fn from_api_error(e: ApiError) -> Self {
        let e = Box::new(e);
        match e.status.as_u16() {
            401 => Error::Auth(e),
            403 => Error::Permission(e),
            404 => Error::NotFound(e),
            422 => Error::Validation(e),
            429 => Error::RateLimit(e),
            _ => Error::Api(e),
        }
    }
}

/// The details of an HTTP error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Option<String>,
    detail: Option<String>,
    body: Option<serde_json::Value>,
    www_authenticate: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    operation: Option<&'static str>,
    attempts: u32,
}

impl ApiError {
    /// Build the details from a status, the response headers and (up to 64 KiB of) the body.
    ///
    /// Understands FastAPI bodies (`{"detail": "text"}`, `{"detail": {error, error_description,
    /// used_at?, used_by_host?}}`, `{"detail": [validation errors]}`), OAuth bodies (`{error,
    /// error_description}`) and raw text. For a 401 with an empty body the detail comes from
    /// `WWW-Authenticate`.
    pub fn from_parts(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let body = &body[..body.len().min(ERROR_BODY_CAP)];
        let www_authenticate = header_str(headers, http::header::WWW_AUTHENTICATE.as_str());
        let request_id = REQUEST_ID_HEADERS
            .iter()
            .find_map(|h| header_str(headers, h));
        let retry_after = header_str(headers, http::header::RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let (code, detail, json) = parse_body(body);
        // The challenges fill in what the body did not say (a 401 often has an empty body).
        let (code, detail) = match (code, detail) {
            (code, detail) if code.is_some() && detail.is_some() => (code, detail),
            (code, detail) => match auth_error(headers) {
                Some(challenge) => (
                    code.or(Some(challenge.code)),
                    detail.or(challenge.description),
                ),
                None => (code, detail),
            },
        };
        ApiError {
            status,
            code,
            detail,
            body: json,
            www_authenticate,
            request_id,
            retry_after,
            operation: None,
            attempts: 1,
        }
    }

    /// Details known without a response body (for example from the auth layer's error).
    pub(crate) fn new(status: StatusCode, code: Option<String>, detail: Option<String>) -> Self {
        ApiError {
            status,
            code,
            detail,
            body: None,
            www_authenticate: None,
            request_id: None,
            retry_after: None,
            operation: None,
            attempts: 1,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The server's human-readable detail.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The machine-readable error code (`invalid_token`, `ticket_expired`, …) when present.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The body as JSON, when it was JSON (for example FastAPI's list of validation errors).
    pub fn body(&self) -> Option<&serde_json::Value> {
        self.body.as_ref()
    }

    /// The field errors of a validation failure (FastAPI's `{"detail": [{loc, msg, type}]}`,
    /// usually a 422), one per field, in the server's order; empty for any other answer.
    /// [`detail`](Self::detail) joins the same list into one line for people.
    pub fn validation_errors(&self) -> Vec<ValidationIssue> {
        let Some(serde_json::Value::Array(items)) =
            self.body.as_ref().and_then(|b| b.get("detail"))
        else {
            return Vec::new();
        };
        items.iter().map(ValidationIssue::from_json).collect()
    }

    /// The `WWW-Authenticate` header.
    pub fn www_authenticate(&self) -> Option<&str> {
        self.www_authenticate.as_deref()
    }

    /// The request id from the response headers.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The server's `Retry-After`, in seconds or as an HTTP date, converted to a duration.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The SDK operation that failed (for example `transactions.list`), when known.
    pub fn operation(&self) -> Option<&'static str> {
        self.operation
    }

    /// How many attempts were made before giving up (1 when the call was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation = Some(operation);
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = self.operation {
            write!(f, "{op}: ")?;
        }
        write!(f, "HTTP {}", self.status.as_u16())?;
        if let Some(reason) = self.status.canonical_reason() {
            write!(f, " {reason}")?;
        }
        match (&self.code, &self.detail) {
            (Some(code), Some(detail)) => write!(f, ": {code}: {}", shorten(detail))?,
            (Some(code), None) => write!(f, ": {code}")?,
            (None, Some(detail)) => write!(f, ": {}", shorten(detail))?,
            (None, None) => {}
        }
        if self.attempts > 1 {
            write!(f, ", after {} attempts", self.attempts)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, ", request id {id}")?;
        }
        Ok(())
    }
}

fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(DETAIL_DISPLAY_CAP) {
        Some((cut, _)) => format!("{}…", &s[..cut]).into(),
        None => s.into(),
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `Retry-After` is either delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        Duration::try_from_secs_f64(secs).ok()?
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    // A server number that a caller will add to a clock: bounded, so `now + wait` cannot
    // overflow anywhere.
    Some(wait.min(RETRY_AFTER_MAX))
}

/// The longest `Retry-After` the SDK reports (longer values are cut to this).
pub(crate) const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// `(code, detail, json)` from an error body.
fn parse_body(body: &[u8]) -> (Option<String>, Option<String>, Option<serde_json::Value>) {
    use serde_json::Value;
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        return (None, (!text.is_empty()).then_some(text), None);
    };
    let (code, detail) = match &json {
        Value::Object(map) => match map.get("detail") {
            Some(detail) => describe_detail(detail),
            None => match (map.get("error"), map.get("error_description")) {
                (Some(Value::String(code)), desc) => (
                    Some(code.clone()),
                    desc.and_then(Value::as_str).map(str::to_owned),
                ),
                _ => (None, Some(json.to_string())),
            },
        },
        Value::Null => (None, None),
        Value::String(s) => (None, Some(s.clone())),
        other => (None, Some(other.to_string())),
    };
    (code, detail.filter(|d| !d.is_empty()), Some(json))
}

/// FastAPI's `detail`: a string, an object (`error`, `error_description`, `used_at`,
/// `used_by_host`, …) or a list of validation errors.
fn describe_detail(detail: &serde_json::Value) -> (Option<String>, Option<String>) {
    use serde_json::Value;
    match detail {
        Value::String(s) => (None, Some(s.clone())),
        Value::Object(map) => {
            let code = map.get("error").and_then(Value::as_str).map(str::to_owned);
            let mut text = map
                .get("error_description")
                .or_else(|| map.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let used_at = map.get("used_at").and_then(Value::as_str);
            let used_by = map.get("used_by_host").and_then(Value::as_str);
            if used_at.is_some() || used_by.is_some() {
                let mut extra = String::from("used");
                if let Some(at) = used_at {
                    extra.push_str(&format!(" at {at}"));
                }
                if let Some(by) = used_by {
                    extra.push_str(&format!(" by {by}"));
                }
                text = Some(match text {
                    Some(t) => format!("{t} ({extra})"),
                    None => extra,
                });
            }
            if code.is_none() && text.is_none() {
                return (None, Some(detail.to_string()));
            }
            (code, text)
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(describe_validation_item).collect();
            (None, Some(parts.join("; ")))
        }
        Value::Null => (None, None),
        other => (None, Some(other.to_string())),
    }
}

/// One FastAPI validation error: `{loc: ["query", "page"], msg, type}` → `query.page: msg`.
/// One field error of a validation failure: see [`ApiError::validation_errors`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationIssue {
    /// Where the error is (`["query", "page"]`, `["body", "amount"]`); list indexes as text.
    pub location: Vec<String>,
    /// The server's message (`msg`), or the item itself as JSON when it has none.
    pub message: String,
    /// The machine-readable kind (`type`, e.g. `greater_than_equal`), when given.
    pub kind: Option<String>,
}

impl ValidationIssue {
    fn from_json(item: &serde_json::Value) -> Self {
        use serde_json::Value;
        let location = item
            .get("loc")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .map(|p| match p {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = item
            .get("msg")
            .and_then(Value::as_str)
            .map_or_else(|| item.to_string(), str::to_owned);
        let kind = item.get("type").and_then(Value::as_str).map(str::to_owned);
        Self {
            location,
            message,
            kind,
        }
    }
}

fn describe_validation_item(item: &serde_json::Value) -> String {
    use serde_json::Value;
    let loc = item.get("loc").and_then(Value::as_array).map(|parts| {
        parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    });
    let msg = item.get("msg").and_then(Value::as_str);
    match (loc, msg) {
        (Some(loc), Some(msg)) => format!("{loc}: {msg}"),
        (None, Some(msg)) => msg.to_owned(),
        _ => item.to_string(),
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

    /// A value in the builder or the environment is out of range or malformed.
    #[error("{what}: {problem}")]
    #[non_exhaustive]
    Invalid {
        /// The setting at fault.
        what: &'static str,
        /// What is wrong with it and how to fix it.
        problem: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn api(status: u16, headers: &[(&str, &str)], body: &str) -> Error {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let e = ApiError::from_parts(StatusCode::from_u16(status).unwrap(), &map, body.as_bytes())
            .with_operation("transactions.list");
        Error::from_api_error(e)
    }

    #[test]
    fn statuses_map_to_the_variants_of_the_official_sdks() {
        assert!(matches!(api(401, &[], ""), Error::Auth(_)));
        assert!(matches!(api(403, &[], ""), Error::Permission(_)));
        assert!(matches!(api(404, &[], ""), Error::NotFound(_)));
        assert!(matches!(api(422, &[], ""), Error::Validation(_)));
        assert!(matches!(api(429, &[], ""), Error::RateLimit(_)));
        assert!(matches!(api(400, &[], ""), Error::Api(_)));
        assert!(matches!(api(500, &[], ""), Error::Api(_)));
        assert!(matches!(api(503, &[], ""), Error::Api(_)));
    }

    #[test]
    fn fastapi_string_detail() {
        let e = api(
            404,
            &[("x-request-id", "req-7")],
            r#"{"detail":"Payment intent not found"}"#,
        );
        assert_eq!(e.detail(), Some("Payment intent not found"));
        assert_eq!(e.request_id(), Some("req-7"));
        assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
        assert!(!e.is_retryable());
    }

    #[test]
    fn fastapi_validation_list_names_the_fields() {
        let body = r#"{"detail":[{"loc":["query","page"],"msg":"Input should be greater than or equal to 1","type":"greater_than_equal"},{"loc":["query","per_page",0],"msg":"bad"}]}"#;
        let e = api(422, &[], body);
        assert_eq!(
            e.detail(),
            Some("query.page: Input should be greater than or equal to 1; query.per_page.0: bad")
        );
        assert!(e.api_error().unwrap().body().unwrap()["detail"].is_array());
        let issues = e.api_error().unwrap().validation_errors();
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].location, ["query", "page"]);
        assert_eq!(
            issues[0].message,
            "Input should be greater than or equal to 1"
        );
        assert_eq!(issues[0].kind.as_deref(), Some("greater_than_equal"));
        assert_eq!(issues[1].location, ["query", "per_page", "0"]);
        assert_eq!(issues[1].kind, None);
        // Any other body has no field errors.
        let other = api(400, &[], r#"{"detail":"bad request"}"#);
        assert!(other.api_error().unwrap().validation_errors().is_empty());
    }

    #[test]
    fn registration_detail_object_with_used_at_and_host() {
        let body = r#"{"detail":{"error":"ticket_already_consumed","error_description":"This ticket was already used","used_at":"2026-04-01T10:00:00Z","used_by_host":"build-7"}}"#;
        let e = api(409, &[], body);
        assert_eq!(e.code(), Some("ticket_already_consumed"));
        assert_eq!(
            e.detail(),
            Some("This ticket was already used (used at 2026-04-01T10:00:00Z by build-7)")
        );
    }

    #[test]
    fn oauth_body() {
        let e = api(
            400,
            &[],
            r#"{"error":"invalid_grant","error_description":"refresh token replayed"}"#,
        );
        assert_eq!(e.code(), Some("invalid_grant"));
        assert_eq!(e.detail(), Some("refresh token replayed"));
    }

    #[test]
    fn raw_text_and_empty_bodies() {
        let e = api(502, &[], "  <html>Bad gateway</html>\n");
        assert_eq!(e.detail(), Some("<html>Bad gateway</html>"));
        assert!(e.is_retryable());
        let e = api(500, &[], "");
        assert_eq!(e.detail(), None);
        let e = api(500, &[], "null");
        assert_eq!(e.detail(), None);
        let e = api(500, &[], r#"{"unexpected":true}"#);
        assert_eq!(e.detail(), Some(r#"{"unexpected":true}"#));
    }

    #[test]
    fn huge_bodies_are_capped_in_messages() {
        let body = "x".repeat(10 * ERROR_BODY_CAP);
        let e = api(500, &[], &body);
        assert_eq!(e.detail().unwrap().len(), ERROR_BODY_CAP);
        let shown = e.to_string();
        assert!(shown.len() < 1000, "message is {} bytes", shown.len());
        assert!(shown.contains('…'));
    }

    #[test]
    fn www_authenticate_fills_in_a_missing_detail() {
        let e = api(
            401,
            &[(
                "www-authenticate",
                r#"DPoP error="invalid_dpop_proof", error_description="htu does not match \"x\"", algs="ES256""#,
            )],
            "",
        );
        assert_eq!(e.code(), Some("invalid_dpop_proof"));
        assert_eq!(e.detail(), Some(r#"htu does not match "x""#));
        assert!(e.www_authenticate().unwrap().starts_with("DPoP "));
        // With a body detail, the header still gives the code.
        let e = api(
            401,
            &[("www-authenticate", "DPoP error=invalid_token")],
            r#"{"detail":"token expired"}"#,
        );
        assert_eq!(e.code(), Some("invalid_token"));
        assert_eq!(e.detail(), Some("token expired"));
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let e = api(429, &[("retry-after", "3")], r#"{"detail":"slow down"}"#);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(10))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(10));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        for huge in ["18446744073709551615", "1e300", "99999999999999999999999"] {
            let wait = parse_retry_after(huge, now);
            assert!(
                wait.is_none_or(|w| w <= RETRY_AFTER_MAX),
                "{huge}: {wait:?}"
            );
            assert!(wait.is_none_or(|w| std::time::Instant::now().checked_add(w).is_some()));
        }
        assert_eq!(
            parse_retry_after("18446744073709551615", now),
            Some(RETRY_AFTER_MAX)
        );
    }

    #[test]
    fn messages_tell_the_caller_what_to_do() {
        let cases = vec![
            api(
                401,
                &[(
                    "www-authenticate",
                    r#"DPoP error="invalid_token", error_description="token revoked""#,
                )],
                "",
            ),
            api(
                403,
                &[("x-request-id", "req-1")],
                r#"{"detail":"Missing scope: transactions:read"}"#,
            ),
            api(404, &[], r#"{"detail":"Not Found"}"#),
            api(
                422,
                &[],
                r#"{"detail":[{"loc":["query","page"],"msg":"Input should be greater than or equal to 1"}]}"#,
            ),
            api(
                429,
                &[("retry-after", "2")],
                r#"{"detail":"Rate limit exceeded"}"#,
            ),
            api(503, &[], "upstream unavailable"),
            api(500, &[], ""),
            Error::from_api_error(
                ApiError::from_parts(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"")
                    .with_operation("chat.send"),
            ),
            Error::Config(ConfigError::NoCredentials {
                searched: vec!["/home/me/.ralio/credentials.json".into()],
            }),
            Error::Config(ConfigError::NoCredentials {
                searched: vec![
                    "/home/me/.ralio/credentials.json (RALIO_CONFIG_DIR or ~/.ralio)".into(),
                    "the environment (RALIO_CLIENT_ID is unset)".into(),
                ],
            }),
            Error::Config(ConfigError::InsecureUrl {
                host: "api.example.com".into(),
            }),
            Error::Config(ConfigError::AmbiguousAgent {
                count: 2,
                ids: vec!["ag_1".into(), "ag_2".into()],
            }),
            Error::Config(ConfigError::ScopeNotGranted {
                scope: crate::Scope::AgentsConfig,
                granted: vec![crate::Scope::AgentsExecute, crate::Scope::TransactionsRead],
            }),
            Error::Timeout {
                what: "a decision on payment intent pi_1".into(),
                waited: Duration::from_secs(30),
            },
        ];
        let shown: Vec<String> = cases.iter().map(ToString::to_string).collect();
        insta::assert_yaml_snapshot!(shown);
    }

    #[test]
    fn api_errors_have_no_source_so_nothing_prints_twice() {
        use std::error::Error as _;
        let e = api(500, &[], "boom");
        assert!(e.source().is_none());
        assert_eq!(e.to_string().matches("boom").count(), 1);
    }
}
