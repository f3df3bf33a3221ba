//! The retry policy, as a `reqwest-middleware` layer.
//!
//! Why not `reqwest-retry`: it retries every 5xx whatever the method, POST included. A chat
//! POST that reached the server may have moved money, so it must not be sent again after a 5xx
//! or a timeout. This policy retries:
//!
//! - idempotent requests (GET, HEAD, OPTIONS) on connection failures, timeouts, 429, 502, 503
//!   and 504;
//! - any request, POST included, only when the server provably did not process it: a 429, a
//!   connection that could not be established, or a DPoP `use_dpop_nonce` challenge that
//!   escaped the auth layer.
//!
//! Waits grow exponentially from [`RetryPolicy::initial_backoff`] up to
//! [`RetryPolicy::max_backoff`], with jitter, and honour `Retry-After` (a `Retry-After` longer
//! than [`RetryPolicy::max_retry_after`] is not waited for: the 429 goes back to the caller
//! with the value). The layer sits outside the auth layer, so every attempt carries a fresh
//! DPoP proof.

use std::time::{Duration, SystemTime};

use http::{Extensions, Method, StatusCode};
use rand::Rng;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::error::parse_retry_after;

/// How failed requests are retried. `Default`: up to 3 retries, 200 ms doubling to 5 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The default policy (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// No retries at all: every request is sent once.
    pub fn disabled() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// At most this many retries after the first attempt.
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first wait, and the cap the doubling waits never exceed.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The longest `Retry-After` the SDK waits for by itself; longer ones go back to the caller
    /// as [`Error::RateLimit`](crate::Error::RateLimit) with the value.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Retries after the first attempt.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The first wait.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest wait between attempts (a `Retry-After` may be longer, up to
    /// [`RetryPolicy::max_retry_after`]).
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// The longest `Retry-After` honoured.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The jittered wait before retry number `retry` (1-based): a random value between half and
    /// all of `min(initial · 2^(retry-1), max)`.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .checked_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        let half = exp / 2;
        let jitter_ns = u64::try_from((exp - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=jitter_ns))
    }
}

/// What one attempt ended in, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response with this status; `nonce_challenge` for a 401 `use_dpop_nonce`.
    Status {
        status: StatusCode,
        nonce_challenge: bool,
    },
    /// The connection could not be established: nothing was sent.
    ConnectFailed,
    /// The request may have been sent (timeout, reset, body error).
    SentMaybe,
    /// A failure inside the middleware stack (auth): never retried here.
    Middleware,
}

/// Whether this outcome of this method may be retried.
pub(crate) fn retryable(method: &Method, outcome: Outcome) -> bool {
    let idempotent = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    match outcome {
        Outcome::Status {
            status,
            nonce_challenge,
        } => match status.as_u16() {
            429 => true,
            401 => nonce_challenge,
            502..=504 => idempotent,
            _ => false,
        },
        Outcome::ConnectFailed => true,
        Outcome::SentMaybe => idempotent,
        Outcome::Middleware => false,
    }
}

tokio::task_local! {
    /// The number of attempts the current call took, for the call's span and error message.
    /// Set by the retry layer when the calling task provides a scope.
    pub(crate) static ATTEMPTS: std::cell::Cell<u32>;
}

/// A per-attempt time limit passed while waiting for the response.
#[derive(Debug, thiserror::Error)]
#[error("no response within {after:?}")]
pub(crate) struct AttemptTimedOut {
    pub(crate) after: Duration,
}

/// The retry layer for a `reqwest_middleware` stack.
#[derive(Debug, Clone, Default)]
pub struct RetryMiddleware {
    policy: RetryPolicy,
    attempt_timeout: Option<Duration>,
}

impl RetryMiddleware {
    /// A layer applying `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryMiddleware {
            policy,
            attempt_timeout: None,
        }
    }

    /// Give up on an attempt when its response headers have not arrived within `timeout`.
    /// Such an attempt may have reached the server: only idempotent requests are retried.
    pub fn with_attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }
}

fn classify(result: &reqwest_middleware::Result<Response>) -> Outcome {
    match result {
        Ok(resp) => {
            let nonce_challenge = resp.status() == StatusCode::UNAUTHORIZED
                && super::challenge::mentions_nonce_challenge(resp.headers());
            Outcome::Status {
                status: resp.status(),
                nonce_challenge,
            }
        }
        Err(reqwest_middleware::Error::Reqwest(e)) if e.is_connect() => Outcome::ConnectFailed,
        Err(reqwest_middleware::Error::Reqwest(_)) => Outcome::SentMaybe,
        Err(reqwest_middleware::Error::Middleware(e)) if e.is::<AttemptTimedOut>() => {
            Outcome::SentMaybe
        }
        Err(reqwest_middleware::Error::Middleware(_)) => Outcome::Middleware,
    }
}

#[async_trait::async_trait]
impl Middleware for RetryMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let method = req.method().clone();
        let mut pending = Some(req);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let Some(req) = pending.take() else {
                // Unreachable by construction: the loop only continues with a clone in hand.
                return Err(reqwest_middleware::Error::middleware(NoRequestToRetry));
            };
            // A body that cannot be cloned (a stream) cannot be sent twice: one attempt only.
            let spare = if attempt <= self.policy.max_retries {
                req.try_clone()
            } else {
                None
            };
            let _ = ATTEMPTS.try_with(|c| c.set(attempt));
            let result = match self.attempt_timeout {
                None => next.clone().run(req, extensions).await,
                Some(after) => {
                    match tokio::time::timeout(after, next.clone().run(req, extensions)).await {
                        Ok(result) => result,
                        Err(_) => Err(reqwest_middleware::Error::middleware(AttemptTimedOut {
                            after,
                        })),
                    }
                }
            };
            let outcome = classify(&result);
            let may_retry = spare.is_some() && retryable(&method, outcome);
            let wait = match (&result, may_retry) {
                (_, false) => None,
                (Ok(resp), true) => {
                    let retry_after = resp
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    match retry_after {
                        Some(ra) if ra > self.policy.max_retry_after => None,
                        Some(ra) => Some(ra.max(self.policy.backoff(attempt))),
                        None => Some(self.policy.backoff(attempt)),
                    }
                }
                (Err(_), true) => Some(self.policy.backoff(attempt)),
            };
            match wait {
                Some(wait) => {
                    tracing::debug!(
                        attempt,
                        method = %method,
                        outcome = ?outcome,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "retrying request"
                    );
                    tokio::time::sleep(wait).await;
                    pending = spare;
                }
                None => return result,
            }
        }
    }
}

/// Internal invariant failure of the retry loop.
#[derive(Debug, thiserror::Error)]
#[error("internal error in the retry layer: no request left to send; report this")]
struct NoRequestToRetry;

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            status: StatusCode::from_u16(code).unwrap(),
            nonce_challenge: false,
        }
    }

    #[test]
    fn gets_retry_on_transient_failures_only() {
        for code in [429, 502, 503, 504] {
            assert!(retryable(&Method::GET, status(code)), "GET {code}");
        }
        for code in [200, 400, 401, 403, 404, 422, 500, 501] {
            assert!(!retryable(&Method::GET, status(code)), "GET {code}");
        }
        assert!(retryable(&Method::GET, Outcome::ConnectFailed));
        assert!(retryable(&Method::GET, Outcome::SentMaybe));
        assert!(!retryable(&Method::GET, Outcome::Middleware));
    }

    #[test]
    fn posts_retry_only_when_the_server_provably_did_not_process_them() {
        assert!(retryable(&Method::POST, status(429)));
        assert!(retryable(&Method::POST, Outcome::ConnectFailed));
        assert!(retryable(
            &Method::POST,
            Outcome::Status {
                status: StatusCode::UNAUTHORIZED,
                nonce_challenge: true
            }
        ));
        for code in [500, 502, 503, 504, 401, 408] {
            assert!(!retryable(&Method::POST, status(code)), "POST {code}");
        }
        assert!(
            !retryable(&Method::POST, Outcome::SentMaybe),
            "never after a timeout"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy::new().with_backoff(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..200 {
            let b1 = p.backoff(1);
            assert!(
                b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100),
                "{b1:?}"
            );
            let b3 = p.backoff(3);
            assert!(
                b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400),
                "{b3:?}"
            );
            let b40 = p.backoff(40);
            assert!(
                b40 >= Duration::from_millis(500) && b40 <= Duration::from_secs(1),
                "{b40:?}"
            );
        }
        // Jitter: not all equal.
        let samples: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(2)).collect();
        assert!(samples.len() > 1);
    }

    #[test]
    fn disabled_means_zero_retries() {
        assert_eq!(RetryPolicy::disabled().max_retries(), 0);
        assert_eq!(RetryPolicy::default().max_retries(), 3);
    }
}
