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
//! # The attempt count
//!
//! The SDK's retry layer ([`super::retry::RetryMiddleware`]) counts the attempts of a request
//! in the middleware extensions ([`Attempts`]; the request's span, [`super::RequestSpan`],
//! records it from there). `exec` puts the operation id there for the span, and keeps the
//! count with the answer: on the carrier of a middleware failure, and, for an error status answered
//! through a stack with that retry layer, on the response itself. progenitor would turn a
//! documented error status into `Error::ErrorResponse(ResponseValue)`, which drops the
//! response's extensions; such a response is parked like a middleware error and handed back by
//! `post` as `Error::UnexpectedResponse` with its extensions (and the count) intact. A stack
//! without the SDK's retry layer sees progenitor's usual variants.
//!
//! The carrier never leaves the SDK: every caller of a generated operation inside the crate
//! (resource calls, [`crate::RalioClient::api`], the token manager, registration) calls
//! [`take_middleware_error`] first and maps every error to the crate's own types.

use std::sync::{Arc, Mutex};

use progenitor_client::{ClientHooks, OperationInfo};
use reqwest_middleware::ClientWithMiddleware;

use super::retry::Attempts;

/// The status of the in-process carrier response that holds a middleware failure (an
/// unassigned code no Ralio server sends). Seeing it without a parked error means the carrier
/// was already emptied by [`take_middleware_error`].
const MIDDLEWARE_FAILURE_STATUS: http::StatusCode = match http::StatusCode::from_u16(599) {
    Ok(status) => status,
    Err(_) => panic!("599 is a valid status code"),
};

/// What a carrier response holds: a middleware error, or a real answer whose extensions must
/// survive progenitor. Extensions must be `Clone`; neither is, so it sits behind a shared,
/// take-once slot.
enum Parked {
    Error(reqwest_middleware::Error),
    Response(reqwest::Response),
}

#[derive(Clone)]
struct ParkedSlot(Arc<Mutex<Option<Parked>>>);

impl ParkedSlot {
    fn take(&self) -> Option<Parked> {
        // A poisoned lock only means another holder panicked; the slot is still valid.
        match self.0.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

fn carrier_of(parked: Option<Parked>, attempts: Option<Attempts>) -> reqwest::Response {
    let mut response = http::Response::new(Vec::<u8>::new());
    *response.status_mut() = MIDDLEWARE_FAILURE_STATUS;
    let extensions = response.extensions_mut();
    extensions.insert(ParkedSlot(Arc::new(Mutex::new(parked))));
    if let Some(attempts) = attempts {
        extensions.insert(attempts);
    }
    reqwest::Response::from(response)
}

pub(crate) fn carrier(error: Option<reqwest_middleware::Error>) -> reqwest::Response {
    carrier_of(error.map(Parked::Error), None)
}

impl ClientHooks<ClientWithMiddleware> for crate::api::Client {
    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let mut extensions = http::Extensions::new();
        extensions.insert(super::OperationId(info.operation_id));
        let result = self
            .inner
            .execute_with_extensions(request, &mut extensions)
            .await;
        let attempts = extensions.get::<Attempts>().copied();
        match result {
            Ok(response) if attempts.is_some() && !response.status().is_success() => {
                Ok(carrier_of(Some(Parked::Response(response)), attempts))
            }
            Ok(response) => Ok(super::body::cap_body(response, info.operation_id)),
            Err(reqwest_middleware::Error::Reqwest(error)) => Err(error),
            Err(error @ reqwest_middleware::Error::Middleware(_)) => {
                Ok(carrier_of(Some(Parked::Error(error)), attempts))
            }
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
            && let Some(slot) = response.extensions().get::<ParkedSlot>()
        {
            // Before the generated code can read the carrier's status as if a server had
            // answered: a parked answer goes back as itself, a middleware error on a carrier
            // the caller owns.
            let attempts = response.extensions().get::<Attempts>().copied();
            return Err(progenitor_client::Error::UnexpectedResponse(
                match slot.take() {
                    Some(Parked::Response(answer)) => answer,
                    Some(Parked::Error(error)) => carrier_of(Some(Parked::Error(error)), attempts),
                    None => carrier_of(None, attempts),
                },
            ));
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
pub(crate) fn take_middleware_error<E>(
    error: &mut progenitor_client::Error<E>,
) -> Option<reqwest_middleware::Error> {
    match error {
        progenitor_client::Error::UnexpectedResponse(response) => response
            .extensions_mut()
            .remove::<ParkedSlot>()?
            .take()
            .and_then(|parked| match parked {
                Parked::Error(error) => Some(error),
                Parked::Response(_) => None,
            }),
        _ => None,
    }
}
