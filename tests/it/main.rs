//! The `ralio` integration tests: one binary, one module per area.

mod auth_keys;
mod register;
mod store;
mod store_conformance;
#[cfg(all(feature = "keyring", target_os = "linux"))]
mod store_keyring;
#[cfg(feature = "vault")]
mod store_vault;
mod client_e2e;
mod seam;
mod spec;
