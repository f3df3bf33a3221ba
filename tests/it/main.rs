//! The `ralio` integration tests: one binary, one module per area.

mod auth_generic;
mod auth_keys;
mod auth_proofs;
mod auth_sandbox;
mod auth_tracing;
mod seam;
mod spec;
