//! Fuzz target: see `../oracles/sse_chat_stream.rs` for what it feeds and checks.
#![no_main]

#[path = "../oracles/sse_chat_stream.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check(data));
