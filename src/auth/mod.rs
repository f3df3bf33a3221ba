//! Authentication: P-256 keys, RFC 7523 client assertions, RFC 9449 DPoP proofs, the token
//! manager and the reqwest-middleware layer that signs every request.
//!
//! The layer works with any OAuth 2 server that accepts `private_key_jwt` client assertions and
//! DPoP-bound tokens; Ralio is one preset.

mod key;
mod signer;

pub use key::{KeyError, PrivateKey, PublicJwk, Thumbprint};
pub use signer::{BoxError, SignError, Signer};
