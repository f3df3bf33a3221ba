//! Fuzz target: see `../oracles/token_answer.rs` for what it feeds and checks.
#![no_main]

#[path = "../oracles/token_answer.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
