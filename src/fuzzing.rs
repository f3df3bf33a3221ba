//! Entry points for the fuzz targets `token_answer` and `registration_answer`: the
//! crate-private code a server's answer reaches, with the answer as bytes. Compiled only for
//! the fuzz targets (cargo-fuzz sets `cfg(fuzzing)`, and the crate root re-exports this module
//! then) and for the crate's own tests, which replay the targets' seeds (below): never part of
//! the public API.

use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;

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
pub fn token_answer(status: StatusCode, retry_after: &str, body: &[u8]) -> TokenAnswerFacts {
    let now = SystemTime::now();
    let retry_after = crate::transport::retry::parse_retry_after(retry_after, now);
    if let Some(wait) = retry_after {
        // What the retry layer and callers do with it.
        let _ = Instant::now() + wait;
        let _ = now + wait;
    }
    if status.is_success() {
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
pub fn registration_answer(status: StatusCode, body: &[u8]) -> Option<String> {
    if status.is_success() {
        let _ =
            serde_json::from_slice::<crate::api::types::RegisterCredentialBindingResponse>(body);
        let _ = serde_json::from_slice::<crate::api::types::RegistrationStatus>(body);
        return None;
    }
    Some(crate::register::refusal_message(status, body))
}

/// The seeds of the two targets, replayed through the targets' own checks (the oracles in
/// `fuzz/oracles/`, shared with the fuzz targets) in the normal test suite. Here rather than in
/// `tests/it/fuzz_seeds.rs` with the other targets: these entry points are not public.
#[cfg(test)]
#[path = "../fuzz/oracles/registration_answer.rs"]
mod registration_oracle;
#[cfg(test)]
#[path = "../fuzz/oracles/token_answer.rs"]
mod token_oracle;

#[cfg(test)]
mod seeds {
    use super::{registration_oracle, token_oracle};

    fn replay(target: &str, check: fn(&[u8])) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for {target}");
        for file in &files {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: the seed {} fails the target's checks",
                file.display()
            );
        }
    }

    #[test]
    fn every_seed_of_the_answer_targets_passes_their_checks() {
        replay("token_answer", token_oracle::check);
        replay("registration_answer", registration_oracle::check);
    }
}
