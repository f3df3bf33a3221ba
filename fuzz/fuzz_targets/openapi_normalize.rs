//! The OpenAPI normaliser (`openapi_normalize::normalize`) on arbitrary JSON.
//!
//! Checks: no panic, no endless recursion (a `$ref` cycle, deep nesting); the output is a
//! fixed point (normalising it again changes nothing), so a rebuild is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(out) = openapi_normalize::normalize(doc) {
        let again =
            openapi_normalize::normalize(out.clone()).expect("normalised output normalises");
        assert_eq!(again, out, "normalising twice changed the document");
    }
});
