//! Fuzz target: see `../oracles/openapi_normalize.rs` for what it feeds and checks.
#![no_main]

#[path = "../oracles/openapi_normalize.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
