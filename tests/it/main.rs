//! The `ralio` integration tests: one binary, one module per area.

mod approvals;
mod auth_generic;
mod auth_keys;
mod auth_proofs;
mod auth_sandbox;
mod auth_tracing;
#[cfg(feature = "aws-kms")]
mod aws_kms;
mod capture;
mod client_e2e;
mod decoding;
mod entropy;
mod error_chain;
mod fuzz_seeds;
mod generated_docs;
#[cfg(any(feature = "pkcs11", feature = "aws-kms"))]
mod hardware;
mod hostile;
mod layout;
#[cfg(feature = "pkcs11")]
mod pkcs11;
mod public_api;
mod readme;
mod readme_testing;
mod register;
mod rotation;
mod seam;
mod security;
mod soak;
mod spans;
mod spec;
mod store;
mod store_conformance;
#[cfg(all(feature = "keyring", target_os = "linux"))]
mod store_keyring;
#[cfg(all(feature = "keyring", any(target_os = "macos", target_os = "windows")))]
mod store_keyring_platform;
#[cfg(feature = "vault")]
mod store_vault;
mod support;
mod tls;
mod transport_hostile;
