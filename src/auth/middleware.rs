//! [`DpopAuth`]: the reqwest-middleware layer that authenticates every attempt.

use async_trait::async_trait;
use http::Extensions;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use super::error::AuthError;
use super::token::{AccessToken, TokenManager, origin_of};

/// Adds `Authorization: DPoP <token>` and a freshly signed `DPoP` proof to every request.
///
/// Put it innermost (last in the chain) so that each retry of an outer retry layer is signed
/// again. On a DPoP challenge it retries exactly once:
///
/// - `use_dpop_nonce`: with the nonce the server sent, the same token;
/// - `invalid_token`: with a refreshed token ([`TokenManager::force_refresh`]);
/// - `invalid_dpop_proof` after the clock-skew estimate moved: with corrected time.
///
/// A second `use_dpop_nonce` in a row is [`AuthError::NonceChallengeRepeated`]; a challenge on
/// a request whose body cannot be cloned is [`AuthError::ChallengeNotRetryable`]. Errors are
/// `reqwest_middleware::Error::Middleware` holding an [`AuthError`].
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

    async fn authorize(&self, req: &mut Request, token: &AccessToken) -> Result<i64, AuthError> {
        let (proof, skew) = self
            .tokens
            .dpop_proof(req.method().as_str(), req.url(), Some(token))
            .await?;
        let mut authz =
            HeaderValue::from_str(&format!("DPoP {}", token.expose_secret())).map_err(|_| {
                AuthError::TokenResponse {
                    status: 200,
                    reason: "the access token has characters that cannot go in an HTTP header",
                }
            })?;
        authz.set_sensitive(true);
        let mut dpop =
            HeaderValue::from_str(proof.expose_secret()).map_err(|_| AuthError::TokenResponse {
                status: 0,
                reason: "the DPoP proof is not a valid header value",
            })?;
        dpop.set_sensitive(true);
        let headers = req.headers_mut();
        headers.insert(AUTHORIZATION, authz);
        headers.insert("DPoP", dpop);
        Ok(skew)
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
        let mut token = self.tokens.access_token().await.map_err(mw)?;
        let mut spare = req.try_clone();
        let mut req = req;
        let url = req.url().clone();
        let mut skew = self.authorize(&mut req, &token).await.map_err(mw)?;
        let mut nonce_challenges = 0u8;
        let mut retried = false;
        loop {
            let resp = next.clone().run(req, extensions).await?;
            self.tokens.observe_response(&url, resp.headers());
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let Some(challenge) = crate::transport::challenge::dpop_challenge(&resp) else {
                return Ok(resp);
            };
            if challenge == "use_dpop_nonce" {
                nonce_challenges += 1;
                if nonce_challenges > 1 {
                    return Err(mw(AuthError::NonceChallengeRepeated {
                        origin: origin_of(&url),
                    }));
                }
            } else if retried
                || (challenge == "invalid_dpop_proof" && !self.tokens.skew_moved_since(skew))
            {
                return Ok(resp);
            }
            let Some(mut again) = spare.take() else {
                return Err(mw(AuthError::ChallengeNotRetryable {
                    origin: origin_of(&url),
                    challenge,
                }));
            };
            spare = again.try_clone();
            if challenge == "invalid_token" {
                tracing::debug!(origin = %origin_of(&url), "access token refused (invalid_token); refreshing once");
                token = self.tokens.force_refresh(&token).await.map_err(mw)?;
            } else {
                tracing::debug!(origin = %origin_of(&url), challenge, "DPoP challenge; retrying once");
            }
            if challenge != "use_dpop_nonce" {
                retried = true;
            }
            drop(resp);
            skew = self.authorize(&mut again, &token).await.map_err(mw)?;
            req = again;
        }
    }
}
