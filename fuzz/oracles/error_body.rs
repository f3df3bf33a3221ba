//! The error-body parser (`ApiError::from_parts`): arbitrary status, `WWW-Authenticate`,
//! `Retry-After`, request id and body.
//!
//! Checks: no panic; the detail is never longer than the 64 KiB the parser reads; the
//! `Display` text stays bounded (the detail is shortened to 500 characters there).
//!
//! Shared by the fuzz target `fuzz_targets/error_body.rs` and by the regression test
//! `tests/it/fuzz_seeds.rs`, which replays `fuzz/seeds/error_body/` in the normal test suite.

use http::{HeaderMap, HeaderValue, StatusCode};
use ralio::ApiError;

/// Runs the target on `data`; panics when a check fails.
pub fn check(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let status = 100 + u16::from_be_bytes([data[0], data[1]]) % 900;
    let Ok(status) = StatusCode::from_u16(status) else {
        return;
    };
    // Three header values, each prefixed by its length, then the body.
    let mut rest = &data[2..];
    let mut headers = HeaderMap::new();
    for name in ["www-authenticate", "retry-after", "x-request-id"] {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let len = usize::from(len).min(tail.len());
        let (value, tail) = tail.split_at(len);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
        rest = tail;
    }
    let e = ApiError::from_parts(status, &headers, rest);
    if let Some(detail) = e.detail() {
        // JSON re-serialisation can escape bytes, so allow for that; raw text is capped exactly.
        assert!(
            detail.len() <= 6 * 64 * 1024 + 64,
            "detail of {} bytes",
            detail.len()
        );
    }
    let shown = e.to_string();
    let header_bytes: usize = headers.values().map(|v| v.len()).sum();
    assert!(
        shown.len() <= 4 * 500 + 3 * header_bytes + 512,
        "Display of {} bytes",
        shown.len()
    );
    let _ = (
        e.code(),
        e.retry_after(),
        e.www_authenticate(),
        e.request_id(),
        e.body(),
    );
}
