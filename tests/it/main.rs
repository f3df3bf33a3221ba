//! The `ralio` integration tests: one binary, one module per area.

mod auth_keys;
mod client_e2e;
mod seam;
mod spec;
