//! Fuzz target: see `../oracles/error_body.rs` for what it feeds and checks.
#![no_main]

#[path = "../oracles/error_body.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
