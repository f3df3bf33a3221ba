//! Integration tests of the `ralio` crate: one binary, one module per area.

mod auth_keys;
mod auth_sandbox;
