//! [`DpopAuth`]: the reqwest-middleware layer that authenticates every attempt.

use async_trait::async_trait;
use http::Extensions;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use super::error::AuthError;
use super::token::{AccessToken, TokenManager, origin_of};
use crate::transport::retry::SpareRequest;

/// Adds `Authorization: DPoP <token>` and a freshly signed `DPoP` proof to every request.
///
/// Put it innermost (last in the chain) so that each retry of an outer retry layer is signed
/// again. On a `401` it retries:
///
/// - `use_dpop_nonce` challenge: once, with the nonce the server sent and the same token;
/// - any other `401`, with or without a `WWW-Authenticate` challenge (a plain FastAPI
///   `{"detail": "Token expired"}` included): once, with a renewed token
///   ([`TokenManager::force_refresh`]: a refresh, else a mint) and a fresh proof. A second
///   `401` is returned as it is (the client maps it to `Error::Auth` with the server's detail).
///
/// At most one renewal per request, and one renewal for a burst of `401`s answered to
/// concurrent requests carrying the same token. A `401` means the request was not processed,
/// so a `POST` is retried the same way. A second `use_dpop_nonce` in a row is
/// [`AuthError::NonceChallengeRepeated`]; a challenge on a request whose body cannot be cloned
/// is [`AuthError::ChallengeNotRetryable`]. Plain `http://` resource URLs off loopback are
/// refused ([`AuthError::InvalidUrl`]) unless the configuration opted out
/// ([`TokenManagerConfig::new_allowing_insecure_http`]). Errors are
/// `reqwest_middleware::Error::Middleware` holding an [`AuthError`].
///
/// [`TokenManagerConfig::new_allowing_insecure_http`]: super::TokenManagerConfig::new_allowing_insecure_http
#[derive(Debug, Clone)]
pub struct DpopAuth {
    tokens: TokenManager,
}

impl DpopAuth {
    /// Authenticates with tokens from `tokens`.
    pub fn new(tokens: TokenManager) -> Self {
        Self { tokens }
    }

    /// The token manager.
    pub fn token_manager(&self) -> &TokenManager {
        &self.tokens
    }

    async fn authorize(&self, req: &mut Request, token: &AccessToken) -> Result<(), AuthError> {
        let proof = self
            .tokens
            .dpop_proof(req.method(), req.url(), Some(token))
            .await?;
        // Built once per token (sensitive), not once per request.
        let authz = token
            .authorization()
            .cloned()
            .ok_or(AuthError::TokenResponse {
                status: StatusCode::OK,
                reason: "the access token has characters that cannot go in an HTTP header",
            })?;
        let mut dpop =
            HeaderValue::from_str(proof.expose_secret()).map_err(|_| AuthError::Internal {
                action: "send the DPoP proof: it is not a valid header value",
            })?;
        dpop.set_sensitive(true);
        let headers = req.headers_mut();
        headers.insert(AUTHORIZATION, authz);
        headers.insert(super::jws::DPOP, dpop);
        Ok(())
    }
}

#[async_trait]
impl Middleware for DpopAuth {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let mw = reqwest_middleware::Error::middleware;
        let url = req.url().clone();
        if url.scheme() == "http"
            && !crate::config::is_loopback(&url)
            && !self.tokens.config().allows_insecure_http()
        {
            // The token and its proofs would cross the network in clear text.
            return Err(mw(AuthError::InvalidUrl {
                url: format!("{}{}", origin_of(&url), url.path()),
                source: super::jws::HtuError::Insecure,
            }));
        }
        let mut token = self.tokens.access_token().await.map_err(mw)?;
        let mut spare = Resend::of(&req, extensions);
        let mut req = req;
        self.authorize(&mut req, &token).await.map_err(mw)?;
        let mut nonce_challenges = 0u8;
        let mut renewed = false;
        loop {
            let resp = next.clone().run(req, extensions).await?;
            self.tokens.observe_response(&url, resp.headers());
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = crate::transport::challenge::dpop_error(resp.headers());
            let nonce_only = challenge == Some("use_dpop_nonce");
            if nonce_only {
                nonce_challenges += 1;
                if nonce_challenges > 1 {
                    return Err(mw(AuthError::NonceChallengeRepeated {
                        origin: origin_of(&url),
                    }));
                }
            } else if renewed {
                // The renewed token was refused too: the server's answer is the error.
                return Ok(resp);
            }
            let Some(mut again) = spare.next() else {
                return match challenge {
                    Some(challenge) => Err(mw(AuthError::ChallengeNotRetryable {
                        origin: origin_of(&url),
                        challenge,
                    })),
                    None => Ok(resp),
                };
            };
            if nonce_only {
                tracing::debug!(origin = %origin_of(&url), "DPoP nonce challenge; retrying once");
            } else {
                tracing::debug!(
                    origin = %origin_of(&url),
                    challenge = challenge.unwrap_or("none"),
                    "401 from the resource server; renewing the token and retrying once"
                );
                token = self.tokens.force_refresh(&token).await.map_err(mw)?;
                renewed = true;
            }
            drop(resp);
            self.authorize(&mut again, &token).await.map_err(mw)?;
            req = again;
        }
    }
}

/// Where the copies for resending after a `401` come from.
// One per request, in the middleware's future: boxing the own copy would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Resend {
    /// The retry layer's copy ([`SpareRequest`]), when the crate's resource stack put this
    /// layer directly inside it: no copy of its own.
    Shared(SpareRequest),
    /// A copy of its own, renewed at each resend; `None` when the body cannot be copied.
    Own(Option<Request>),
}

impl Resend {
    fn of(req: &Request, extensions: &Extensions) -> Self {
        match extensions.get::<SpareRequest>() {
            Some(shared) => Self::Shared(shared.clone()),
            None => Self::Own(req.try_clone()),
        }
    }

    /// The request to send again, if its body can be sent twice.
    fn next(&mut self) -> Option<Request> {
        match self {
            Self::Shared(shared) => shared.try_clone(),
            Self::Own(slot) => {
                let again = slot.take()?;
                *slot = again.try_clone();
                Some(again)
            }
        }
    }
}
