//! Fuzz target: see `../oracles/registration_answer.rs` for what it feeds and checks.
#![no_main]

// The oracle calls `super::registration_answer`: the entry point only `cfg(fuzzing)` builds of ralio have.
use ralio::fuzzing::registration_answer;

#[path = "../oracles/registration_answer.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
