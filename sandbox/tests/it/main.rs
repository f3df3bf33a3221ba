//! Drives the sandbox over raw HTTP, with assertions and proofs built here with `p256`.

mod agent;
mod common;
mod console;
mod ops;
mod protocol;
mod strict;
mod variants;
