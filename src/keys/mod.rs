//! Keys: the P-256 key, its public JWK and RFC 7638 thumbprint, the [`Signer`] trait, and where
//! keys live.
//!
//! - [`PrivateKey`]: a key held in this process (generated, or loaded from PEM or a JWK).
//! - [`TransitSigner`] (feature `vault`): a key that lives in Vault / OpenBao Transit and never
//!   leaves it; obtained from [`VaultStore`](crate::store::VaultStore).
//! - [`Pkcs11Signer`] (feature `pkcs11`): a key inside a PKCS#11 token (an HSM, a smart card,
//!   a TPM through tpm2-pkcs11, SoftHSM), generated there as sensitive and not extractable.
//! - [`AwsKmsSigner`] (feature `aws-kms`): an AWS KMS `ECC_NIST_P256` key.
//! - [`KeyReference`]: the name a store writes down for such a key (a PKCS#11 URI, a KMS key
//!   ARN or alias, a Transit key), from which it is opened again.
//! - Anything else: implement [`Signer`]. Signing needs only the public JWK and an ES256
//!   signature of a message; the private bytes never have to be in this process.
//!
//! The rest of the SDK (DPoP proofs, client assertions, registration, credential stores) signs
//! through `Arc<dyn Signer>` and never asks for key material.

#[cfg(feature = "aws-kms")]
mod aws_kms;
mod key;
#[cfg(feature = "pkcs11")]
mod pkcs11;
mod reference;
mod signer;
#[cfg(feature = "vault")]
mod transit;

#[cfg(feature = "aws-kms")]
pub use aws_kms::AwsKmsSigner;
pub use key::{KeyError, PrivateKey, PublicJwk, Thumbprint};
#[cfg(feature = "pkcs11")]
pub use pkcs11::Pkcs11Signer;
pub use reference::{
    KeyCreation, KeyLocation, KeyReference, KeyReferenceError, KmsKeyId, OpenKeyError,
    PKCS11_MODULE_VAR, PKCS11_PIN_VAR, Pkcs11Uri, TransitKey,
};
pub use signer::{BoxError, SignError, Signer};
#[cfg(feature = "vault")]
pub use transit::TransitSigner;
