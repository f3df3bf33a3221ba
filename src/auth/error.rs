//! [`AuthError`]: what can go wrong while authenticating, and what to do about it.

use http::StatusCode;

use super::jws::HtuError;
use crate::keys::SignError;
use crate::store::StoreError;

/// An authentication failure.
///
/// From the [`DpopAuth`](super::DpopAuth) middleware it arrives wrapped in
/// `reqwest_middleware::Error::Middleware`; recover it with
/// `anyhow_error.downcast_ref::<AuthError>()`. Messages carry the server's OAuth error code
/// and description, never a token, proof, assertion or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Signing a proof or assertion failed.
    #[error("could not sign the DPoP proof or client assertion")]
    Sign(#[source] SignError),
    /// A URL cannot be used as a DPoP target or token URL.
    #[error("the URL {url} cannot be used for DPoP")]
    #[non_exhaustive]
    InvalidUrl {
        /// The URL, without query or fragment.
        url: String,
        /// Why.
        #[source]
        source: HtuError,
    },
    /// The token endpoint could not be reached or did not answer.
    #[error(
        "{}",
        crate::transport::tls::Unreached::new("token request", .url, .source, (
            "could not reach the token endpoint ",
            ": check the network and the token URL; the refresh token, if any, is kept",
        ))
    )]
    #[non_exhaustive]
    TokenTransport {
        /// The token URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The token request failed in the middleware stack before an answer arrived (a layer of
    /// the caller's, or a per-attempt time limit).
    #[error("the token request to {url} failed before an answer arrived")]
    #[non_exhaustive]
    TokenRequestFailed {
        /// The token URL.
        url: String,
        /// What failed.
        #[source]
        source: crate::keys::BoxError,
    },
    /// The token endpoint refused the request with an OAuth error.
    #[error("{}", token_refused_message(*status, error, description.as_deref()))]
    #[non_exhaustive]
    TokenRefused {
        /// HTTP status.
        status: StatusCode,
        /// OAuth `error` code (`invalid_client`, `invalid_scope`, ...), or `http_<status>`
        /// when the body was not an OAuth error.
        error: String,
        /// The server's `error_description`.
        description: Option<String>,
    },
    /// The token endpoint answered success with a body that is not a usable token response.
    #[error(
        "the token endpoint answered {} with an unusable token response: {reason}",
        status.as_u16()
    )]
    #[non_exhaustive]
    TokenResponse {
        /// HTTP status.
        status: StatusCode,
        /// What is wrong.
        reason: &'static str,
    },
    /// The auth layer could not finish a step for a reason of its own (no server answer is
    /// involved): the renewal task was cancelled, a signed proof is not a header value.
    #[error("the auth layer could not {action}; retry, and report it if it persists")]
    #[non_exhaustive]
    Internal {
        /// What could not be done, in words.
        action: &'static str,
    },
    /// The server issued a token that is not DPoP-bound.
    #[error(
        "the token endpoint issued a {token_type:?} token, not a DPoP-bound one: enable DPoP for this client on the authorization server"
    )]
    #[non_exhaustive]
    NotDpopBound {
        /// The `token_type` it answered.
        token_type: String,
    },
    /// The server asked for a new DPoP nonce twice in a row.
    #[error(
        "the server {origin} demanded a fresh DPoP nonce (use_dpop_nonce) twice in a row; stopping instead of looping: its nonces may rotate faster than a request completes"
    )]
    #[non_exhaustive]
    NonceChallengeRepeated {
        /// Scheme, host and port.
        origin: String,
    },
    /// A DPoP challenge arrived for a request whose body cannot be sent again.
    #[error(
        "the server {origin} answered {challenge} but the request body is a stream that cannot be re-sent; send a buffered body, or make any request to {origin} first so the nonce is known"
    )]
    #[non_exhaustive]
    ChallengeNotRetryable {
        /// Scheme, host and port.
        origin: String,
        /// The challenge (`use_dpop_nonce`, `invalid_token`, ...).
        challenge: &'static str,
    },
    /// The refresh-token store failed.
    #[error("the refresh token store failed; fix the store (permissions, connectivity) and retry")]
    Store(#[source] StoreError),
}

fn token_refused_message(status: StatusCode, error: &str, description: Option<&str>) -> String {
    let status = status.as_u16();
    let advice = match error {
        "invalid_client" => {
            "the client id, key or assertion was refused: check the client id and that this key is the registered one, or register again"
        }
        "invalid_scope" => "ask for fewer scopes (the binding does not hold them all)",
        "invalid_grant" => "the grant was refused: mint a new token with a client assertion",
        "invalid_dpop_proof" => "the DPoP proof was refused: check the key and the token URL",
        "unauthorized_client" => "this client may not use this grant; check its registration",
        _ => "see the server's description",
    };
    match description {
        Some(d) => {
            format!("the token endpoint refused the request ({status} {error}: {d}); {advice}")
        }
        None => format!("the token endpoint refused the request ({status} {error}); {advice}"),
    }
}

impl AuthError {
    /// The OAuth error code when the token endpoint refused the request.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::TokenRefused { error, .. } => Some(error),
            _ => None,
        }
    }
}
