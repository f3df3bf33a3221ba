//! The OpenAPI normaliser (`openapi_normalize::normalize`) on arbitrary JSON.
//!
//! Checks: no panic, no endless recursion (a `$ref` cycle, deep nesting); the output is a
//! fixed point (normalising it again changes nothing), so a rebuild is stable.
//!
//! Shared by the fuzz target `fuzz_targets/openapi_normalize.rs` and by the regression test
//! `tests/it/fuzz_seeds.rs`, which replays `fuzz/seeds/openapi_normalize/` in the normal test suite.

/// Runs the target on `data`; panics when a check fails.
pub fn check(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(out) = openapi_normalize::normalize(doc) {
        let again =
            openapi_normalize::normalize(out.clone()).expect("normalised output normalises");
        assert_eq!(again, out, "normalising twice changed the document");
    }
}
