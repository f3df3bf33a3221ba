//! The [`Signer`] trait: ES256 signing by a key that may live outside process memory.

use std::borrow::Cow;

use async_trait::async_trait;

use super::key::{PublicJwk, Thumbprint};

/// A boxed error from a signing backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a signature could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The in-process crypto library refused to sign.
    #[error("the in-process ES256 signer failed; this is a bug or an unsupported platform")]
    Crypto,
    /// A remote or hardware backend (HSM, KMS, Vault Transit) failed.
    #[error(
        "the signing backend {signer} failed; check that it is reachable and that the key exists and may sign"
    )]
    #[non_exhaustive]
    Backend {
        /// Names the backend (for example `vault transit key "agent"`); never secret.
        signer: Cow<'static, str>,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The backend answered with something that is not a 64-byte raw `r‖s` P-256 signature.
    #[error(
        "the signing backend {signer} returned a signature that is not a raw 64-byte P-256 r‖s value"
    )]
    #[non_exhaustive]
    BadSignature {
        /// Names the backend.
        signer: Cow<'static, str>,
    },
}

impl SignError {
    /// Wraps a backend error.
    pub fn backend(signer: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            signer: signer.into(),
            source: source.into(),
        }
    }

    /// The backend `signer` answered with something that is not a raw 64-byte `r‖s`
    /// signature.
    pub fn bad_signature(signer: impl Into<Cow<'static, str>>) -> Self {
        Self::BadSignature {
            signer: signer.into(),
        }
    }
}

/// Signs ES256 (ECDSA P-256 with SHA-256) for client assertions and DPoP proofs.
///
/// [`PrivateKey`](super::PrivateKey) is the in-memory implementation; implement this trait to
/// keep the key in an HSM, a cloud KMS or Vault Transit. Implementations hash `message` with
/// SHA-256 themselves (the message is the JWS signing input) and return the raw `r‖s` form
/// (convert from DER if the backend answers in DER).
#[async_trait]
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The canonical public JWK of the key.
    fn public_jwk(&self) -> &PublicJwk;

    /// The RFC 7638 thumbprint of [`Signer::public_jwk`].
    fn thumbprint(&self) -> &Thumbprint;

    /// Signs `message`, returning the raw 64-byte `r‖s` signature.
    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError>;

    /// Signs without awaiting when the key is local; `None` (the default) means "use
    /// [`Signer::sign_es256`]". Lets the in-memory key skip the future on the hot path.
    fn try_sign_es256_now(&self, message: &[u8]) -> Option<Result<[u8; 64], SignError>> {
        let _ = message;
        None
    }
}
