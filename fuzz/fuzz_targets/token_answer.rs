//! Fuzz target: see `../oracles/token_answer.rs` for what it feeds and checks.
#![no_main]

// The oracle calls `super::token_answer`: the entry point only `cfg(fuzzing)` builds of ralio have.
use ralio::fuzzing::token_answer;

#[path = "../oracles/token_answer.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
