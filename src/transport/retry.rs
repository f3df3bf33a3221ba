//! The retry policy, as a `reqwest-middleware` layer, and the one retry classifier.
//!
//! Why not `reqwest-retry`: it retries every 5xx whatever the method, POST included. A chat
//! POST that reached the server may have moved money, so it must not be sent again after a 5xx
//! or a timeout.
//!
//! # The rule
//!
//! One function, `classify`, decides how far a failure may be retried; the retry layer and
//! [`Error::is_retryable`](crate::Error::is_retryable) both ask it, so they cannot disagree:
//!
//! | outcome | `Retry` | retried by the layer |
//! | --- | --- | --- |
//! | 429, a connection that could not be established, a 401 `use_dpop_nonce` challenge that escaped the auth layer | `Always`: the server provably did not process the request | any method |
//! | 408, 502, 503, 504; a timeout, a reset or a body error after the request may have been sent | `IfIdempotent`: transient, but the request may have been processed | GET, HEAD, OPTIONS |
//! | every other status (500 included), a middleware failure, a local error | `Never` | no |
//!
//! 500 is not retryable: the Ralio API answers 500 for a bug, not for a passing condition (a
//! gateway says 502/503/504 for those), and the official Python and TypeScript SDKs retry no
//! 5xx at all (their only retry is one after a 401, with a renewed token; 429 is documented as
//! "back off and retry"). 408 is a timeout reported by the server or a proxy: transient, but
//! nothing says the request was not processed, so only idempotent requests are sent again.
//! `Error::is_retryable` is true for `Always` and `IfIdempotent` (the caller knows whether its
//! call was a read; a chat message may have been processed).
//!
//! Waits grow exponentially from [`RetryPolicy::initial_backoff`] up to
//! [`RetryPolicy::max_backoff`], with jitter, and honour `Retry-After` (a `Retry-After` longer
//! than [`RetryPolicy::max_retry_after`] is not waited for: the 429 goes back to the caller
//! with the value). The layer sits outside the auth layer, so every attempt carries a fresh
//! DPoP proof. The number of attempts a call took travels in the extensions: [`Attempts`] in
//! the middleware extensions and in the final response's extensions.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::{Extensions, Method, StatusCode};
use rand::Rng;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

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

/// What one attempt ended in, as far as the classifier cares.
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
    /// A failure inside the middleware stack (auth) or a local error (building the request,
    /// decoding): sending it again would fail the same way.
    Local,
}

impl Outcome {
    /// The outcome of a `reqwest` failure.
    pub(crate) fn of_reqwest(e: &reqwest::Error) -> Outcome {
        if super::tls::untrusted_certificate(e).is_some() {
            // The same certificate would be refused again: only a change of settings helps.
            Outcome::Local
        } else if e.is_connect() {
            Outcome::ConnectFailed
        } else if e.is_timeout() || e.is_request() || e.is_body() {
            Outcome::SentMaybe
        } else {
            Outcome::Local
        }
    }

    /// The outcome of an HTTP status without a nonce challenge.
    pub(crate) fn of_status(status: StatusCode) -> Outcome {
        Outcome::Status {
            status,
            nonce_challenge: false,
        }
    }
}

/// How far a failure may be retried (see the module docs for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The server provably did not process the request: any method may be sent again.
    Always,
    /// Transient, but the request may have been processed: only idempotent methods.
    IfIdempotent,
    /// Sending it again would not help.
    Never,
}

/// The one retry classifier.
pub(crate) fn classify(outcome: Outcome) -> Retry {
    match outcome {
        Outcome::Status {
            status,
            nonce_challenge,
        } => match status.as_u16() {
            429 => Retry::Always,
            401 if nonce_challenge => Retry::Always,
            408 | 502..=504 => Retry::IfIdempotent,
            _ => Retry::Never,
        },
        Outcome::ConnectFailed => Retry::Always,
        Outcome::SentMaybe => Retry::IfIdempotent,
        Outcome::Local => Retry::Never,
    }
}

/// Whether this outcome of this method may be retried by the layer.
pub(crate) fn retryable(method: &Method, outcome: Outcome) -> bool {
    match classify(outcome) {
        Retry::Always => true,
        Retry::IfIdempotent => matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
        Retry::Never => false,
    }
}

/// The number of attempts a request took (1 when it was not retried). The retry layer puts it
/// in the middleware extensions (for failures) and in the extensions of the response it
/// returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempts(pub(crate) u32);

/// The retry layer's copy of the request it is sending, taken before the layers inside it ran,
/// offered to the layer inside it through the middleware extensions: the auth layer resends
/// from it after a `401` instead of keeping a second copy of every request (one `try_clone`
/// per call instead of two). Only the crate's own resource stack publishes it
/// ([`RetryMiddleware::sharing_its_copy`]), where the auth layer sits directly inside the
/// retry layer: a layer in between would be skipped on the resend.
#[derive(Clone)]
pub(crate) struct SpareRequest(Arc<Mutex<Option<Request>>>);

impl SpareRequest {
    /// Another copy of the request, for a resend; `None` when its body cannot be copied.
    pub(crate) fn try_clone(&self) -> Option<Request> {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().and_then(Request::try_clone)
    }

    fn take(&self) -> Option<Request> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
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
    /// Publish each attempt's copy as a [`SpareRequest`] (kept on the last attempt too).
    shares_copy: bool,
    /// The attempt's time limit covers reading the whole answer, not only its headers.
    whole_answer: bool,
}

impl RetryMiddleware {
    /// A layer applying `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        RetryMiddleware {
            policy,
            attempt_timeout: None,
            shares_copy: false,
            whole_answer: false,
        }
    }

    /// For small answers (the token endpoint, registration): each attempt reads the whole
    /// answer (at most [`SUCCESS_BODY_CAP`](super::body::SUCCESS_BODY_CAP) bytes) within its
    /// time limit, so a server trickling a body cannot hold a request open.
    pub(crate) fn reading_whole_answers(mut self) -> Self {
        self.whole_answer = true;
        self
    }

    /// For a stack whose next layer is the crate's auth layer: every attempt's copy of the
    /// request goes to it as a [`SpareRequest`].
    pub(crate) fn sharing_its_copy(mut self) -> Self {
        self.shares_copy = true;
        self
    }

    /// Give up on an attempt when its response headers have not arrived within `timeout`.
    /// Such an attempt may have reached the server: only idempotent requests are retried.
    pub fn with_attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }
}

fn outcome_of(result: &reqwest_middleware::Result<Response>) -> Outcome {
    match result {
        Ok(resp) => {
            let nonce_challenge = resp.status() == StatusCode::UNAUTHORIZED
                && super::challenge::asks_for_nonce(resp.headers());
            Outcome::Status {
                status: resp.status(),
                nonce_challenge,
            }
        }
        Err(reqwest_middleware::Error::Reqwest(e)) => Outcome::of_reqwest(e),
        Err(reqwest_middleware::Error::Middleware(e)) if e.is::<AttemptTimedOut>() => {
            Outcome::SentMaybe
        }
        Err(reqwest_middleware::Error::Middleware(_)) => Outcome::Local,
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
            // A shared copy is taken on the last attempt too: the auth layer resends from it
            // after a 401.
            let mut spare = if attempt <= self.policy.max_retries || self.shares_copy {
                req.try_clone()
            } else {
                None
            };
            let shared = self.shares_copy.then(|| {
                let shared = SpareRequest(Arc::new(Mutex::new(spare.take())));
                extensions.insert(shared.clone());
                shared
            });
            extensions.insert(Attempts(attempt));
            let whole_answer = self.whole_answer;
            let run = async {
                let result = next.clone().run(req, extensions).await;
                match result {
                    Ok(response) if whole_answer => read_whole(response).await,
                    other => other,
                }
            };
            let result = match self.attempt_timeout {
                None => run.await,
                Some(after) => match tokio::time::timeout(after, run).await {
                    Ok(result) => result,
                    Err(_) => Err(reqwest_middleware::Error::middleware(AttemptTimedOut {
                        after,
                    })),
                },
            };
            if let Some(shared) = shared {
                extensions.remove::<SpareRequest>();
                spare = shared.take();
            }
            let outcome = outcome_of(&result);
            let may_retry = attempt <= self.policy.max_retries
                && spare.is_some()
                && retryable(&method, outcome);
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
                None => {
                    return result.map(|mut resp| {
                        resp.extensions_mut().insert(Attempts(attempt));
                        resp
                    });
                }
            }
        }
    }
}

/// The response with its body read (at most [`SUCCESS_BODY_CAP`](super::body::SUCCESS_BODY_CAP)
/// bytes: past it the answer is cut, and reads as an unreadable answer). A body that fails
/// midway is the transport error it is.
async fn read_whole(response: Response) -> reqwest_middleware::Result<Response> {
    let url = response.url().clone();
    let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let body = http_body_util::BodyExt::into_data_stream(body);
    let bytes = super::body::read_capped(body, super::body::SUCCESS_BODY_CAP)
        .await
        .map_err(|(_, e)| e)?;
    super::body::reassemble(url, parts, bytes).map_err(reqwest_middleware::Error::middleware)
}

/// Internal invariant failure of the retry loop.
#[derive(Debug, thiserror::Error)]
#[error("internal error in the retry layer: no request left to send; report this")]
struct NoRequestToRetry;

/// `Retry-After` is either delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        Duration::try_from_secs_f64(secs).ok()?
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    // A server number that a caller will add to a clock: bounded, so `now + wait` cannot
    // overflow anywhere.
    Some(wait.min(RETRY_AFTER_MAX))
}

/// The longest `Retry-After` the SDK reports (longer values are cut to this).
pub(crate) const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 60 * 60);

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
        for code in [408, 429, 502, 503, 504] {
            assert!(retryable(&Method::GET, status(code)), "GET {code}");
        }
        for code in [200, 400, 401, 403, 404, 422, 500, 501] {
            assert!(!retryable(&Method::GET, status(code)), "GET {code}");
        }
        assert!(retryable(&Method::GET, Outcome::ConnectFailed));
        assert!(retryable(&Method::GET, Outcome::SentMaybe));
        assert!(!retryable(&Method::GET, Outcome::Local));
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
