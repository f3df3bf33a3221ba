//! A registration answer as registration reads it: arbitrary status and body
//! (`registration_answer` of `src/transport/fuzzing.rs`, which the including module brings into scope).
//!
//! Checks: no panic; a refusal's message stays bounded (the body read is capped at 64 KiB and
//! the message is built from a few fields of it).
//!
//! Shared by the fuzz target `fuzz_targets/registration_answer.rs` and by the crate's unit test
//! in `src/transport/fuzzing.rs`, which replays `fuzz/seeds/registration_answer/`.

/// Runs the target on `data`; panics when a check fails.
pub fn check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 500;
    let Ok(status) = http::StatusCode::from_u16(status) else {
        return;
    };
    let body = &data[2..];
    if let Some(message) = super::registration_answer(status, body) {
        // JSON strings can expand on re-escaping; the advice adds a few hundred bytes.
        assert!(
            message.len() <= 6 * body.len() + 1024,
            "message of {} bytes for a body of {}",
            message.len(),
            body.len()
        );
    }
}
