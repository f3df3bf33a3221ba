//! The `ralio` integration tests: one binary, one module per area.

mod auth_keys;
mod seam;
mod spec;
