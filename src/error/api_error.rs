//! [`ApiError`]: what an HTTP error answer said, read through the API document's error
//! schemas (`RegistrationErrorResponse`, `HTTPValidationError`, `ErrorResponse`,
//! `OAuthErrorResponse`), with the headers a caller acts on.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use serde::Deserialize as _;
use serde_json::Value;

use crate::api::types::{
    Detail, ErrorResponse, HttpValidationError, OAuthErrorResponse, RegistrationErrorResponse,
    ValidationError,
};
use crate::transport::body::ERROR_BODY_CAP;
use crate::transport::challenge::auth_error;
use crate::transport::retry::parse_retry_after;

/// A server detail longer than this many characters is shortened in messages.
const DETAIL_DISPLAY_CAP: usize = 500;

/// Headers that carry a request id, in order of preference.
const REQUEST_ID_HEADERS: [&str; 4] = [
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "x-amzn-requestid",
];

/// The details of an HTTP error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Option<String>,
    detail: Option<String>,
    body: Option<Value>,
    validation: Vec<ValidationError>,
    used: Option<TicketUse>,
    www_authenticate: Option<String>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    operation: Option<&'static str>,
    step: Option<&'static str>,
    attempts: u32,
}

/// When and where a consumed registration ticket was used, as the server said.
#[derive(Debug, Clone, Default)]
pub(crate) struct TicketUse {
    pub(crate) at: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) by_host: Option<String>,
}

impl ApiError {
    /// Build the details from a status, the response headers and (up to 64 KiB of) the body.
    ///
    /// Reads the API document's error bodies: FastAPI's `{"detail": "text"}`, a registration
    /// refusal `{"detail": {error, error_description, used_at?, used_by_host?}}`, validation
    /// errors `{"detail": [{loc, msg, type}]}`, OAuth's `{error, error_description}`; any other
    /// JSON or text is kept as the detail. For a 401 with an empty body the code and detail come
    /// from `WWW-Authenticate`.
    pub fn from_parts(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let body = &body[..body.len().min(ERROR_BODY_CAP)];
        let www_authenticate = header_str(headers, http::header::WWW_AUTHENTICATE.as_str());
        let request_id = REQUEST_ID_HEADERS
            .iter()
            .find_map(|h| header_str(headers, h));
        let retry_after = header_str(headers, http::header::RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let mut read = ReadBody::from_bytes(body);
        // The challenges fill in what the body did not say (a 401 often has an empty body).
        if (read.code.is_none() || read.detail.is_none())
            && let Some(challenge) = auth_error(headers)
        {
            read.code = read.code.or(Some(challenge.code));
            read.detail = read.detail.or(challenge.description);
        }
        ApiError {
            status,
            code: read.code,
            detail: read.detail.filter(|d| !d.is_empty()),
            body: read.json,
            validation: read.validation,
            used: read.used,
            www_authenticate,
            request_id,
            retry_after,
            operation: None,
            step: None,
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
            validation: Vec::new(),
            used: None,
            www_authenticate: None,
            request_id: None,
            retry_after: None,
            operation: None,
            step: None,
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

    /// The body as JSON, when it was JSON.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The field errors of a validation failure (the document's `HTTPValidationError`, usually
    /// a 422), one per field, in the server's order; empty for any other answer.
    /// [`detail`](Self::detail) joins the same list into one line for people.
    pub fn validation_errors(&self) -> &[ValidationError] {
        &self.validation
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

    /// The step inside [`operation`](Self::operation) that got this answer, when it is another
    /// operation (`agents.list`, the agent lookup of `chat.send`).
    pub fn step(&self) -> Option<&'static str> {
        self.step
    }

    /// How many attempts were made before giving up (1 when the call was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When and where a consumed ticket was used (registration refusals only).
    pub(crate) fn ticket_use(&self) -> Option<&TicketUse> {
        self.used.as_ref()
    }

    pub(crate) fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Named after the caller's call `operation`, the operation that got the answer kept as
    /// the step.
    pub(crate) fn during(mut self, operation: &'static str) -> Self {
        if self.step.is_none() {
            self.step = self.operation;
        }
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
            write!(f, "{}: ", super::Call(op, self.step))?;
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

/// What an error body says.
#[derive(Default)]
struct ReadBody {
    code: Option<String>,
    detail: Option<String>,
    json: Option<Value>,
    validation: Vec<ValidationError>,
    used: Option<TicketUse>,
}

impl ReadBody {
    /// Reads the body through the document's error schemas, the most specific first; what
    /// fits none of them is kept as text.
    fn from_bytes(body: &[u8]) -> Self {
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            return ReadBody {
                detail: (!text.is_empty()).then_some(text),
                ..ReadBody::default()
            };
        };
        let mut read = Self::from_json(&json);
        read.json = Some(json);
        read
    }

    fn from_json(json: &Value) -> Self {
        if let Ok(RegistrationErrorResponse { detail }) =
            RegistrationErrorResponse::deserialize(json)
        {
            let used = TicketUse {
                at: detail.used_at,
                by_host: detail.used_by_host.filter(|h| !h.is_empty()),
            };
            let mut text = detail.error_description.filter(|d| !d.is_empty());
            if let Some(context) = used.describe() {
                text = Some(match text {
                    Some(t) => format!("{t} ({context})"),
                    None => context,
                });
            }
            return ReadBody {
                code: Some(detail.error),
                detail: text,
                used: Some(used),
                ..ReadBody::default()
            };
        }
        if json.get("detail").is_some_and(Value::is_array)
            && let Ok(HttpValidationError { detail }) = HttpValidationError::deserialize(json)
        {
            return ReadBody {
                detail: Some(
                    detail
                        .iter()
                        .map(describe_field_error)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                validation: detail,
                ..ReadBody::default()
            };
        }
        if let Ok(ErrorResponse { detail }) = ErrorResponse::deserialize(json) {
            let (detail, validation) = match detail {
                Detail::String(text) => (Some(text), Vec::new()),
                Detail::Object(map) => (Some(Value::Object(map).to_string()), Vec::new()),
                // A list that is not all documented field errors: each item that is one is
                // read as one, the others are shown as they came.
                Detail::Array(items) => {
                    let mut fields = Vec::new();
                    let parts: Vec<String> = items
                        .iter()
                        .map(|item| match ValidationError::deserialize(item) {
                            Ok(field) => {
                                let text = describe_field_error(&field);
                                fields.push(field);
                                text
                            }
                            Err(_) => describe_undocumented_item(item),
                        })
                        .collect();
                    (Some(parts.join("; ")), fields)
                }
                // A detail of a shape the document does not describe: shown as sent.
                Detail::Other(value) => ((!value.is_null()).then(|| value.to_string()), Vec::new()),
            };
            return ReadBody {
                detail,
                validation,
                ..ReadBody::default()
            };
        }
        if let Ok(OAuthErrorResponse {
            error,
            error_description,
        }) = OAuthErrorResponse::deserialize(json)
        {
            return ReadBody {
                code: Some(error),
                detail: error_description,
                ..ReadBody::default()
            };
        }
        ReadBody {
            detail: match json {
                Value::Null => None,
                Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            },
            ..ReadBody::default()
        }
    }
}

impl TicketUse {
    /// `used at 2026-04-01T10:00:00Z by build-7`, or `None` when the server said neither.
    pub(crate) fn describe(&self) -> Option<String> {
        let at = self
            .at
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        match (at, &self.by_host) {
            (None, None) => None,
            (Some(at), None) => Some(format!("used at {at}")),
            (None, Some(host)) => Some(format!("used by {host}")),
            (Some(at), Some(host)) => Some(format!("used at {at} by {host}")),
        }
    }
}

/// One field error for people: `query.page: Input should be …`.
fn describe_field_error(e: &ValidationError) -> String {
    if e.loc.is_empty() {
        return e.msg.clone();
    }
    let loc: Vec<String> = e.loc.iter().map(ToString::to_string).collect();
    format!("{}: {}", loc.join("."), e.msg)
}

/// An item of a `detail` list that is not a documented `ValidationError` (a server that leaves
/// out `type`, say): `loc: msg` when it has those, else the item as it came.
fn describe_undocumented_item(item: &Value) -> String {
    let msg = item.get("msg").and_then(Value::as_str);
    let loc = item.get("loc").and_then(Value::as_array).map(|parts| {
        parts
            .iter()
            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(".")
    });
    match (loc, msg) {
        (Some(loc), Some(msg)) if !loc.is_empty() => format!("{loc}: {msg}"),
        (_, Some(msg)) => msg.to_owned(),
        _ => item.to_string(),
    }
}
