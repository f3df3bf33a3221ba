//! A failed generated call, unpacked once: the server's error answer (status, headers and at
//! most [`ERROR_BODY_CAP`](super::body::ERROR_BODY_CAP) bytes of body), or the failure that kept an answer from arriving.
//! The error mapper (`crate::error`) and the token manager both start from it; the
//! middleware carrier of [`hooks`](super::hooks) stays inside the transport.

use http::{HeaderMap, StatusCode};
use zeroize::Zeroizing;

use super::body::read_error_body;
use super::retry::Attempts;

/// An error answer of the server.
pub(crate) struct ErrorAnswer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// At most [`ERROR_BODY_CAP`](super::body::ERROR_BODY_CAP) bytes; wiped on drop (a token endpoint's body may echo a
    /// secret).
    pub(crate) body: Zeroizing<Vec<u8>>,
    /// How many attempts the retry layer made (1 when it did not retry).
    pub(crate) attempts: u32,
}

/// Why a generated call failed.
pub(crate) enum CallFailure {
    /// The server answered with an error status.
    Answer(ErrorAnswer),
    /// The request could not be sent or its answer not received.
    Transport(reqwest::Error),
    /// A layer of the stack failed (the auth layer, a per-attempt time limit, the caller's).
    Middleware(anyhow::Error),
    /// A success answer's body could not be read in full (cut short, or over the size cap).
    Body(reqwest::Error),
    /// A success answer's body is not the documented JSON.
    Payload(serde_json::Error),
    /// The generated code refused to build the request (a value it cannot send).
    Request(String),
}

/// Unpacks a generated call's error, reading the body of an error answer.
pub(crate) async fn unpack(mut e: progenitor_client::Error<crate::api::ByteStream>) -> CallFailure {
    use progenitor_client::Error as P;
    if let Some(mw) = super::hooks::take_middleware_error(&mut e) {
        return match mw {
            reqwest_middleware::Error::Reqwest(source) => CallFailure::Transport(source),
            reqwest_middleware::Error::Middleware(source) => CallFailure::Middleware(source),
        };
    }
    match e {
        P::ErrorResponse(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = read_error_body(answer.into_inner().into_inner()).await;
            CallFailure::Answer(ErrorAnswer {
                status,
                headers,
                body: Zeroizing::new(body),
                attempts: 1,
            })
        }
        P::UnexpectedResponse(answer) => {
            let status = answer.status();
            let attempts = answer
                .extensions()
                .get::<Attempts>()
                .map_or(1, |a| a.0.max(1));
            let headers = answer.headers().clone();
            let body = read_error_body(answer.bytes_stream()).await;
            CallFailure::Answer(ErrorAnswer {
                status,
                headers,
                body: Zeroizing::new(body),
                attempts,
            })
        }
        P::CommunicationError(source) | P::InvalidUpgrade(source) => CallFailure::Transport(source),
        P::ResponseBodyError(source) => CallFailure::Body(source),
        P::InvalidResponsePayload(_, source) => CallFailure::Payload(source),
        P::InvalidRequest(problem) | P::Custom(problem) => CallFailure::Request(problem),
    }
}
