//! Fuzz target: see `../oracles/key_pem.rs` for what it feeds and checks.
#![no_main]

#[path = "../oracles/key_pem.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
