//! One token request: the grant's body, the token endpoint's stack with the request's own DPoP
//! proof, and what a refusal means (a nonce to retry with, a clock to correct, a refused grant).

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::super::error::AuthError;
use super::manager::{Inner, TokenManager};
use super::{TokenManagerConfig, origin_of};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(super) enum Grant<'a> {
    ClientCredentials,
    Refresh(&'a SecretString),
}

pub(super) enum Failure {
    InvalidGrant,
    Other(AuthError),
}

/// The HTTP client of a manager used on its own (never following redirects).
pub(super) fn token_http_client(
    config: &TokenManagerConfig,
    http: &crate::transport::HttpConfig,
) -> Result<reqwest::Client, AuthError> {
    http.client().map_err(|source| AuthError::TokenTransport {
        url: config.token_url.to_string(),
        source,
    })
}

/// A 4xx from the token endpoint that refuses the grant itself; 408 and 429 say "not now",
/// not "no".
pub(super) fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

impl TokenManager {
    pub(super) async fn token_request(
        &self,
        grant: Grant<'_>,
    ) -> Result<(crate::api::types::TokenResponse, Instant), Failure> {
        use crate::api::types::builder::BodyCreateTokenOauthTokenPost as Body;
        use crate::redacted::RedactedString;
        let inner = &self.inner;
        let config = &inner.config;
        let url = config.token_url.as_str();
        let mut nonce_retried = false;
        let mut skew_retried = false;
        loop {
            let body = match grant {
                Grant::ClientCredentials => {
                    let lifetime = i64::try_from(config.assertion_lifetime.as_secs()).unwrap_or(60);
                    let assertion = inner
                        .jws
                        .client_assertion(
                            &config.client_id,
                            &config.audience,
                            self.server_now(),
                            lifetime,
                        )
                        .await
                        .map_err(|e| Failure::Other(AuthError::Sign(e)))?;
                    Body::default()
                        .grant_type("client_credentials".to_owned())
                        .client_assertion_type(Some(JWT_BEARER.to_owned()))
                        .client_assertion(Some(RedactedString::new(assertion.expose_secret())))
                        .scope(config.scope.clone())
                }
                Grant::Refresh(rt) => Body::default()
                    .grant_type("refresh_token".to_owned())
                    .refresh_token(Some(RedactedString::new(rt.expose_secret())))
                    .client_id(Some(config.client_id.clone())),
            };
            // The proof layer of the token stack signs with the skew current at sending time.
            let skew_used = inner.skew.offset();
            let sent = inner.api.create_token().body(body).send().await;
            let received = Instant::now();
            let (status, headers, body) = match sent {
                Ok(answer) => return Ok((answer.into_inner(), received)),
                Err(e) => token_failure(e, url).await.map_err(Failure::Other)?,
            };
            let has_nonce = headers.contains_key("dpop-nonce");
            let err: Option<crate::api::types::OAuthErrorResponse> =
                serde_json::from_slice(&body).ok();
            let (code, description) = match err {
                Some(e) => (e.error, e.error_description),
                None => (format!("http_{}", status.as_u16()), None),
            };
            tracing::debug!(status = status.as_u16(), error = %code, "token endpoint refused the request");
            match code.as_str() {
                "use_dpop_nonce" if has_nonce => {
                    if nonce_retried {
                        return Err(Failure::Other(AuthError::NonceChallengeRepeated {
                            origin: origin_of(&config.token_url),
                        }));
                    }
                    nonce_retried = true;
                    continue;
                }
                "invalid_client" | "invalid_dpop_proof" | "invalid_request"
                    if !skew_retried && inner.skew.moved_since(skew_used) =>
                {
                    tracing::info!(
                        offset_secs = inner.skew.offset(),
                        "token request refused while the clock was off; retrying with server time"
                    );
                    skew_retried = true;
                    continue;
                }
                "invalid_grant" if matches!(grant, Grant::Refresh(_)) => {
                    return Err(Failure::InvalidGrant);
                }
                _ => {
                    return Err(Failure::Other(AuthError::TokenRefused {
                        status,
                        error: code,
                        description,
                    }));
                }
            }
        }
    }
}

/// A refused token request as status, headers and (at most [`ERROR_BODY_CAP`] bytes of) body;
/// every other failure as the [`AuthError`] it is.
///
/// [`ERROR_BODY_CAP`]: crate::transport::body::ERROR_BODY_CAP
async fn token_failure(
    e: progenitor_client::Error<crate::api::ByteStream>,
    url: &str,
) -> Result<(http::StatusCode, HeaderMap, Zeroizing<Vec<u8>>), AuthError> {
    use crate::transport::failure::{CallFailure, unpack};
    match unpack(e).await {
        CallFailure::Answer(answer) => Ok((answer.status, answer.headers, answer.body)),
        // The URL is printed once, by the outer error: reqwest's own message would repeat it.
        CallFailure::Transport(source) => Err(AuthError::TokenTransport {
            url: url.to_owned(),
            source: source.without_url(),
        }),
        CallFailure::Middleware(source) => Err(match source.downcast::<AuthError>() {
            Ok(auth) => auth,
            Err(source) => AuthError::TokenRequestFailed {
                url: url.to_owned(),
                source: source.reallocate_into_boxed_dyn_error_without_backtrace(),
            },
        }),
        CallFailure::Body(_) => Err(AuthError::TokenResponse {
            status: http::StatusCode::OK,
            reason: "the body could not be read in full (cut short, or over the size cap)",
        }),
        CallFailure::Payload(_) => Err(AuthError::TokenResponse {
            status: http::StatusCode::OK,
            reason: "the body is not a JSON token response with access_token and token_type",
        }),
        CallFailure::Request(problem) => Err(AuthError::TokenRequestFailed {
            url: url.to_owned(),
            source: problem.into(),
        }),
    }
}

/// The token endpoint's stack: the generated `create_token` operation over the one HTTP client
/// (no redirects) and the common layers (user agent, span, the caller's middleware,
/// traceparent, retry policy), with the request's own DPoP proof innermost instead of the auth
/// layer.
pub(super) fn token_api(
    config: &TokenManagerConfig,
    http: reqwest::Client,
    settings: &crate::transport::StackSettings,
    manager: std::sync::Weak<Inner>,
) -> crate::api::Client {
    let url = config.token_url.as_str();
    let (base, target) = match url.strip_suffix(TOKEN_PATH) {
        Some(base) => (base.to_owned(), None),
        // Another server's token URL: the operation is the same, only the target differs.
        None => (origin_of(&config.token_url), Some(config.token_url.clone())),
    };
    let proof: Arc<dyn reqwest_middleware::Middleware> = Arc::new(TokenProof(manager));
    let stack = crate::transport::stack(
        http.clone(),
        settings,
        crate::transport::Inner::SmallAnswers {
            innermost: Some(proof),
            target,
        },
    );
    crate::api::Client::new_with_client(&base, http, stack)
}

/// The path of the generated token operation.
const TOKEN_PATH: &str = "/oauth/token";

/// Signs each attempt of a token request with a fresh DPoP proof (no `ath`: there is no
/// access token yet) and learns the `DPoP-Nonce` and `Date` of each answer.
struct TokenProof(std::sync::Weak<Inner>);

#[async_trait]
impl reqwest_middleware::Middleware for TokenProof {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let Some(inner) = self.0.upgrade() else {
            return Err(reqwest_middleware::Error::middleware(
                AuthError::TokenRequestFailed {
                    url: req.url().to_string(),
                    source: "the token manager was dropped while its request was in flight".into(),
                },
            ));
        };
        let manager = TokenManager { inner };
        let url = req.url().clone();
        let proof = manager
            .dpop_proof(&http::Method::POST, &url, None)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let mut header =
            reqwest::header::HeaderValue::from_str(proof.expose_secret()).map_err(|_| {
                reqwest_middleware::Error::middleware(AuthError::Internal {
                    action: "send the DPoP proof: it is not a valid header value",
                })
            })?;
        header.set_sensitive(true);
        req.headers_mut().insert(super::super::jws::DPOP, header);
        let response = next.run(req, extensions).await?;
        manager.observe_response(&url, response.headers());
        Ok(response)
    }
}
