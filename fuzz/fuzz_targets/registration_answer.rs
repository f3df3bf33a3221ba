//! Fuzz target: see `../oracles/registration_answer.rs` for what it feeds and checks.
#![no_main]

#[path = "../oracles/registration_answer.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
