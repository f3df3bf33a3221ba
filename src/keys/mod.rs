//! Keys: the P-256 key, its public JWK and RFC 7638 thumbprint, the [`Signer`] trait, and where
//! keys live.
//!
//! - [`PrivateKey`]: a key held in this process (generated, or loaded from PEM or a JWK).
//! - [`TransitSigner`] (feature `vault`): a key that lives in Vault / OpenBao Transit and never
//!   leaves it; obtained from [`VaultStore`](crate::store::VaultStore).
//! - Anything else (an HSM through PKCS#11, a cloud KMS): implement [`Signer`]. Signing needs
//!   only the public JWK and an ES256 signature of a message; the private bytes never have to
//!   be in this process.
//!
//! The rest of the SDK (DPoP proofs, client assertions, registration, credential stores) signs
//! through `Arc<dyn Signer>` and never asks for key material.

mod key;
mod signer;
#[cfg(feature = "vault")]
mod transit;

pub use key::{KeyError, PrivateKey, PublicJwk, Thumbprint};
pub use signer::{BoxError, SignError, Signer};
#[cfg(feature = "vault")]
pub use transit::{TransitKey, TransitSigner};
