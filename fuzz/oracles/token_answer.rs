//! A token endpoint's answer as the token manager reads it: arbitrary status, `Retry-After`
//! and body (`token_answer` of `src/transport/fuzzing.rs`, which the including module brings into scope).
//!
//! Checks: no panic (in particular no `Instant` overflow from `expires_in` or `Retry-After`);
//! a usable token's lifetime lies within 1 s..=24 h; a reported `Retry-After` is at most 24 h.
//!
//! Shared by the fuzz target `fuzz_targets/token_answer.rs` and by the crate's unit test in
//! `src/transport/fuzzing.rs`, which replays `fuzz/seeds/token_answer/` in the normal suite.

use std::time::Duration;

/// Runs the target on `data`; panics when a check fails.
pub fn check(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    let Ok(status) = http::StatusCode::from_u16(status) else {
        return;
    };
    // A length-prefixed Retry-After value, then the body.
    let len = usize::from(data[2]).min(data.len() - 3);
    let (retry_after, body) = data[3..].split_at(len);
    let retry_after = String::from_utf8_lossy(retry_after);
    let facts = super::token_answer(status, &retry_after, body);
    let day = Duration::from_secs(24 * 60 * 60);
    if let Some(lifetime) = facts.lifetime {
        assert!(
            (Duration::from_secs(1)..=day).contains(&lifetime),
            "lifetime {lifetime:?}"
        );
    }
    if let Some(wait) = facts.retry_after {
        assert!(wait <= day, "Retry-After {wait:?}");
    }
    // A success is never read as a refusal, nor a refusal as a usable token.
    if status.is_success() {
        assert!(facts.error.is_none(), "{status}: {:?}", facts.error);
    } else {
        assert!(facts.lifetime.is_none(), "{status}: {:?}", facts.lifetime);
    }
}
