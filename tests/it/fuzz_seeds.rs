//! The fuzz seeds, replayed through the fuzz targets' own checks in the normal test suite.
//!
//! `fuzz/seeds/<target>/` holds each target's starting inputs and every input that once tripped
//! it; the checks live in `fuzz/oracles/<target>.rs`, shared with the cargo-fuzz targets, so a
//! regression on any kept input fails `cargo test` without a fuzzing toolchain. The
//! `token_answer` and `registration_answer` targets reach crate-private code: their seeds are
//! replayed by a unit test in `src/transport/fuzzing.rs`.

#[path = "../../fuzz/oracles/error_body.rs"]
mod error_body;
#[path = "../../fuzz/oracles/key_jwk.rs"]
mod key_jwk;
#[path = "../../fuzz/oracles/key_pem.rs"]
mod key_pem;
#[path = "../../fuzz/oracles/openapi_normalize.rs"]
mod openapi_normalize;
#[path = "../../fuzz/oracles/sse_chat_stream.rs"]
mod sse_chat_stream;

use std::path::Path;

/// Runs `check` on every file in `fuzz/seeds/<target>/`; returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: the seed {} fails the target's checks",
            file.display()
        );
    }
    files.len()
}

#[test]
fn every_fuzz_seed_passes_its_targets_checks() {
    type Check = fn(&[u8]);
    let targets: [(&str, Check); 5] = [
        ("sse_chat_stream", sse_chat_stream::check),
        ("error_body", error_body::check),
        ("key_pem", key_pem::check),
        ("key_jwk", key_jwk::check),
        ("openapi_normalize", openapi_normalize::check),
    ];
    for (target, check) in targets {
        assert!(replay(target, check) > 0, "no seeds for {target}");
    }
}
