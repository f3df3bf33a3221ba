//! The seam between the generated client ([`crate::api::Client`]) and the middleware stack.
//!
//! progenitor generates a client around a plain `reqwest::Client`; its [`ClientHooks`] let the
//! crate replace how a request is executed. Here `exec` sends every request through the
//! [`ClientWithMiddleware`] the client was built with (tracing, retry policy, DPoP auth, …), so
//! every generated call gets the whole stack.
//!
//! # How a middleware failure gets out
//!
//! The hook must return `reqwest::Result<reqwest::Response>`, and `reqwest::Error` has no public
//! constructor, so a [`reqwest_middleware::Error::Middleware`] (an `anyhow::Error` holding, say,
//! the auth layer's own typed error) cannot travel as an `Err`. Turning it into a string would
//! lose its type. Instead:
//!
//! 1. `exec` answers with a *carrier* response: no body, status
//!    [`MIDDLEWARE_FAILURE_STATUS`], and the middleware error parked in its extensions;
//! 2. the `post` hook sees the carrier before the generated code looks at the status and
//!    returns `Err(progenitor_client::Error::UnexpectedResponse(carrier))`;
//! 3. whoever maps errors calls [`take_middleware_error`] on that error first: it hands back
//!    the original [`reqwest_middleware::Error`], whose `anyhow::Error` can be downcast to the
//!    middleware's own error type.
//!
//! A [`reqwest_middleware::Error::Reqwest`] (connect, timeout, body errors) needs no carrier:
//! it is returned as is and arrives as `progenitor_client::Error::CommunicationError`.
//!
//! The carrier never leaves the process and no server ever sent it; code that maps
//! `UnexpectedResponse` must call [`take_middleware_error`] before treating it as an HTTP
//! answer.

use std::sync::{Arc, Mutex};

use progenitor_client::{ClientHooks, OperationInfo};
use reqwest_middleware::ClientWithMiddleware;

/// The status of the in-process carrier response that holds a middleware failure (an
/// unassigned code no Ralio server sends). Seeing it without a parked error means the carrier
/// was already emptied by [`take_middleware_error`].
pub const MIDDLEWARE_FAILURE_STATUS: u16 = 599;

/// A middleware error parked in a carrier response's extensions. Extensions must be `Clone`;
/// the error is not, so it sits behind a shared, take-once slot.
#[derive(Clone)]
struct ParkedMiddlewareError(Arc<Mutex<Option<reqwest_middleware::Error>>>);

impl ParkedMiddlewareError {
    fn take(&self) -> Option<reqwest_middleware::Error> {
        // A poisoned lock only means another holder panicked; the slot is still valid.
        match self.0.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

pub(crate) fn carrier(error: Option<reqwest_middleware::Error>) -> reqwest::Response {
    let mut response = http::Response::new(Vec::<u8>::new());
    if let Ok(status) = http::StatusCode::from_u16(MIDDLEWARE_FAILURE_STATUS) {
        *response.status_mut() = status;
    }
    response
        .extensions_mut()
        .insert(ParkedMiddlewareError(Arc::new(Mutex::new(error))));
    reqwest::Response::from(response)
}

impl ClientHooks<ClientWithMiddleware> for crate::api::Client {
    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        match self.inner.execute(request).await {
            Ok(response) => Ok(super::body::cap_body(response, info.operation_id)),
            Err(reqwest_middleware::Error::Reqwest(error)) => Err(error),
            Err(error @ reqwest_middleware::Error::Middleware(_)) => Ok(carrier(Some(error))),
        }
    }

    /// Headers as the official clients send them: no `api-version` (progenitor adds the
    /// document's version to every request; the Ralio server does not ask for it), and
    /// `Accept: text/event-stream` on the chat stream.
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        let headers = request.headers_mut();
        headers.remove("api-version");
        if super::body::is_streaming_operation(info.operation_id) {
            headers.insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("text/event-stream"),
            );
        }
        Ok(())
    }

    async fn post<E>(
        &self,
        result: &reqwest::Result<reqwest::Response>,
        _info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        if let Ok(response) = result
            && let Some(parked) = response.extensions().get::<ParkedMiddlewareError>()
        {
            // Move the error onto a carrier the caller owns, before the generated code can
            // read the status as if a server had answered.
            return Err(progenitor_client::Error::UnexpectedResponse(carrier(
                parked.take(),
            )));
        }
        Ok(())
    }
}

/// Takes the middleware error out of an error returned by a generated call, if the call
/// failed inside the middleware stack rather than at the server.
///
/// Returns the original [`reqwest_middleware::Error`] (its `Middleware` variant: downcast the
/// `anyhow::Error` to the middleware's own error type). Returns `None` for every other error,
/// and on a second call for the same error. Call it before interpreting
/// `Error::UnexpectedResponse` as an HTTP answer.
pub fn take_middleware_error<E>(
    error: &mut progenitor_client::Error<E>,
) -> Option<reqwest_middleware::Error> {
    match error {
        progenitor_client::Error::UnexpectedResponse(response) => response
            .extensions_mut()
            .remove::<ParkedMiddlewareError>()?
            .take(),
        _ => None,
    }
}
