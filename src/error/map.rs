//! The one error mapper: a failed generated call (the server's error answer — status, headers,
//! body — or the failure that kept one from arriving) becomes the [`Error`] a caller acts on,
//! or, for the registration endpoint, the [`RegistrationError`]. Resource calls, the token
//! manager's refusals (through [`from_auth_error`]) and registration all come through here.

use super::{
    ApiError, Awaited, ConfigError, Error, RegistrationError, RequestKind, TransportFailure,
};
use crate::auth::AuthError;
use crate::transport::failure::{CallFailure, ErrorAnswer, unpack};
use crate::transport::retry::AttemptTimedOut;

impl ErrorAnswer {
    /// The answer read through the document's error schemas.
    fn read(&self) -> ApiError {
        ApiError::from_parts(self.status, &self.headers, &self.body).with_attempts(self.attempts)
    }
}

/// Maps a generated call's error for `operation` (for example `transactions.list`) to the API
/// at `origin`.
pub(crate) async fn from_call(
    operation: &'static str,
    origin: &str,
    e: progenitor_client::Error<crate::api::ByteStream>,
) -> Error {
    match unpack(e).await {
        CallFailure::Answer(answer) => {
            Error::from_api_error(answer.read().with_operation(operation))
        }
        CallFailure::Transport(source) | CallFailure::Body(source) => {
            transport(operation, RequestKind::Resource, source)
        }
        CallFailure::Middleware(source) => from_middleware_error(
            operation,
            origin,
            reqwest_middleware::Error::Middleware(source),
        ),
        CallFailure::Payload(source) => Error::Decode {
            operation,
            expected: "the documented JSON",
            source,
        },
        CallFailure::Request(detail) => {
            Error::Config(ConfigError::InvalidRequest { operation, detail })
        }
    }
}

/// Maps a failure inside the middleware stack.
fn from_middleware_error(
    operation: &'static str,
    origin: &str,
    e: reqwest_middleware::Error,
) -> Error {
    match e {
        reqwest_middleware::Error::Reqwest(source) => {
            transport(operation, RequestKind::Resource, source)
        }
        reqwest_middleware::Error::Middleware(e) => {
            if let Some(t) = e.downcast_ref::<AttemptTimedOut>() {
                return Error::Timeout {
                    what: Awaited::Response {
                        operation,
                        origin: Some(origin.to_owned()),
                    },
                    waited: t.after,
                };
            }
            match e.downcast::<AuthError>() {
                Ok(auth) => from_auth_error(operation, auth),
                Err(e) => Error::Middleware {
                    operation,
                    // The middleware's own error, as itself (`downcast_ref` finds it).
                    source: e.reallocate_into_boxed_dyn_error_without_backtrace(),
                },
            }
        }
    }
}

/// The token endpoint's refusals become the HTTP classes callers already handle (an invalid
/// client is an [`Error::Auth`], an invalid scope an [`Error::Permission`], a 429 a
/// [`Error::RateLimit`]); transport failures a [`Error::Transport`]; the rest
/// [`Error::Credential`] with the auth error as the cause.
pub(crate) fn from_auth_error(operation: &'static str, e: AuthError) -> Error {
    match e {
        AuthError::TokenRefused {
            status,
            error,
            description,
        } => {
            let api =
                ApiError::new(status, Some(error.clone()), description).with_operation(operation);
            let api = Box::new(api);
            match (status.as_u16(), error.as_str()) {
                (_, "invalid_scope") | (403, _) => Error::Permission(api),
                (429, _) => Error::RateLimit(api),
                (s, _) if s >= 500 => Error::Api(api),
                _ => Error::Auth(api),
            }
        }
        // The token URL goes back into the cause, for `transport` to name it once.
        AuthError::TokenTransport { url, source } => {
            let source = match url::Url::parse(&url) {
                Ok(parsed) => source.with_url(parsed),
                Err(_) => source,
            };
            let mut e = transport(operation, RequestKind::Token, source);
            if let Error::Transport { target, .. } = &mut e {
                target.get_or_insert_with(|| shown_target(&url));
            }
            e
        }
        other => Error::Credential {
            operation,
            step: None,
            source: Box::new(other),
        },
    }
}

/// A request that got no answer: a server certificate this client does not trust
/// ([`Error::UntrustedCertificate`]), else how it failed and where it went. The URL moves out
/// of reqwest's message into `target`, so the chain names it once.
fn transport(operation: &'static str, request: RequestKind, source: reqwest::Error) -> Error {
    if crate::transport::tls::untrusted_certificate(&source).is_some() {
        return Error::UntrustedCertificate {
            operation,
            request,
            source,
        };
    }
    Error::Transport {
        operation,
        step: None,
        failure: TransportFailure::of(&source),
        target: source.url().map(|url| shown_target(url.as_str())),
        source: source.without_url(),
    }
}

/// Origin and path of a URL, without query or fragment (and without user info).
fn shown_target(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => format!("{}{}", url.origin().ascii_serialization(), url.path()),
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// Maps a failed registration call: the server's error answer (read by the one reader, for
/// the caller to tell a refusal from a pending registration's end), or the
/// [`RegistrationError`] that kept an answer from arriving. `shown_url` names the endpoint
/// without secrets (the poll token is left out).
pub(crate) async fn registration_call(
    e: progenitor_client::Error<crate::api::ByteStream>,
    shown_url: &str,
) -> Result<ApiError, RegistrationError> {
    let unexpected = |reason: &str| RegistrationError::UnexpectedResponse {
        status: http::StatusCode::OK,
        reason: reason.to_owned(),
    };
    match unpack(e).await {
        CallFailure::Answer(answer) => Ok(answer.read()),
        CallFailure::Transport(source) => Err(RegistrationError::Http {
            url: shown_url.to_owned(),
            source: source.without_url(),
        }),
        CallFailure::Middleware(source) => Err(RegistrationError::Middleware {
            url: shown_url.to_owned(),
            source: source.reallocate_into_boxed_dyn_error_without_backtrace(),
        }),
        CallFailure::Body(_) => Err(unexpected(
            "the body could not be read in full (cut short, or over the size cap)",
        )),
        CallFailure::Payload(_) => Err(unexpected("the body is not the documented JSON object")),
        CallFailure::Request(problem) => Err(RegistrationError::Middleware {
            url: shown_url.to_owned(),
            source: problem.into(),
        }),
    }
}
