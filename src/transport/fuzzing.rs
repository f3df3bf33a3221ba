//! Entry points for the fuzz targets `token_answer` and `registration_answer` (and their seed
//! replay in the normal test suite). Not part of the public API: they run the crate-private
//! code a server's answer reaches, with the answer as bytes.

use std::time::{Duration, Instant, SystemTime};

/// What the SDK made of a token endpoint's answer.
#[derive(Debug)]
pub struct TokenAnswerFacts {
    /// The lifetime the token is cached for, when the answer was a usable token response.
    pub lifetime: Option<Duration>,
    /// The OAuth error code, when the answer was a refusal.
    pub error: Option<String>,
    /// The `Retry-After` wait the SDK would report.
    pub retry_after: Option<Duration>,
}

/// Reads a token endpoint answer (`status`, `Retry-After` value, body) the way the token
/// manager does, including the clock arithmetic the lifetime meets.
pub fn token_answer(status: u16, retry_after: &str, body: &[u8]) -> TokenAnswerFacts {
    let now = SystemTime::now();
    let retry_after = crate::transport::retry::parse_retry_after(retry_after, now);
    if let Some(wait) = retry_after {
        // What the retry layer and callers do with it.
        let _ = Instant::now() + wait;
        let _ = now + wait;
    }
    if (200..300).contains(&status) {
        let lifetime = serde_json::from_slice::<crate::api::types::TokenResponse>(body)
            .ok()
            .map(|answer| crate::auth::token_lifetime(answer.expires_in));
        if let Some(lifetime) = lifetime {
            // What `accept` does with it.
            let received = Instant::now();
            let leeway = Duration::from_secs(60).min(lifetime / 2);
            let _ = (
                received + lifetime - leeway,
                received + lifetime - leeway / 2,
            );
            let _ = now + lifetime;
        }
        return TokenAnswerFacts {
            lifetime,
            error: None,
            retry_after,
        };
    }
    let error = serde_json::from_slice::<crate::api::types::OAuthErrorResponse>(body)
        .ok()
        .map(|e| e.error);
    TokenAnswerFacts {
        lifetime: None,
        error,
        retry_after,
    }
}

/// Reads a registration answer (`status`, body) the way [`crate::register`] does and returns
/// the message a user would see for a refusal, or `None` for a readable success.
pub fn registration_answer(status: u16, body: &[u8]) -> Option<String> {
    if (200..300).contains(&status) {
        let _ =
            serde_json::from_slice::<crate::api::types::RegisterCredentialBindingResponse>(body);
        let _ = serde_json::from_slice::<crate::api::types::RegistrationStatus>(body);
        return None;
    }
    Some(crate::register::refusal_message(status, body))
}
