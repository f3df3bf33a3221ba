//! The `ralio` integration tests: one binary, one module per area.

mod seam;
mod spec;
