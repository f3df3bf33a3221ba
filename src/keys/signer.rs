//! The [`Signer`] trait: ES256 signing by a key that may live outside process memory.

use std::borrow::Cow;

use async_trait::async_trait;

use super::key::{PublicJwk, Thumbprint};
use super::reference::KeyLocation;

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
/// [`PrivateKey`](super::PrivateKey) is the in-memory implementation and
/// [`TransitSigner`](super::TransitSigner) (feature `vault`) the Vault Transit one. Implement
/// this trait to keep the key anywhere else: a PKCS#11 token or HSM, a cloud KMS. What an
/// implementation must give:
///
/// - [`public_jwk`](Self::public_jwk), computed once when the signer is built (read the public
///   key from the backend then; build the JWK with [`PublicJwk::from_sec1_bytes`] or
///   [`PublicJwk::from_public_key_pem`]). It is called on every proof, so it must not block or
///   fail. The JWK carries its thumbprint, computed with it, so the two cannot disagree.
/// - [`sign_es256`](Self::sign_es256): async, so a network or hardware round trip is fine.
///   The message is the JWS signing input: hash it with SHA-256 (or ask the backend for
///   "ECDSA with SHA-256" over the message) and return the raw 64-byte `r‖s` form, converting
///   from DER if the backend answers in DER. Report failures as
///   [`SignError::backend`] or [`SignError::bad_signature`], naming the key, never a secret.
///
/// Nothing asks a signer for private key bytes. The `'static` bound (through [`Any`]) lets a
/// store recognise its own signer kinds behind an `Arc<dyn Signer>` (the Vault store records a
/// [`TransitSigner`](super::TransitSigner)'s mount and key name this way).
///
/// [`Any`]: std::any::Any
#[async_trait]
pub trait Signer: std::any::Any + Send + Sync + std::fmt::Debug {
    /// The canonical public JWK of the key; its [thumbprint](PublicJwk::thumbprint) names the
    /// key everywhere (the assertion's `kid`, the token's `cnf.jkt`, the stores).
    fn public_jwk(&self) -> &PublicJwk;

    /// Signs `message`, returning the raw 64-byte `r‖s` signature.
    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError>;

    /// Where the key lives, when it is named by a [`KeyReference`](super::KeyReference) a store
    /// can write down and open again (a PKCS#11 key, an AWS KMS key, a Vault Transit key).
    /// `None` (the default): the key cannot be found again from a name, so only a store that
    /// holds the key itself can save an identity with it.
    fn key_location(&self) -> Option<KeyLocation> {
        None
    }

    /// Signs without awaiting when the key is local; `None` (the default) means "use
    /// [`Signer::sign_es256`]". Lets the in-memory key skip the future on the hot path.
    fn try_sign_es256_now(&self, message: &[u8]) -> Option<Result<[u8; 64], SignError>> {
        let _ = message;
        None
    }
}

impl dyn Signer {
    /// The RFC 7638 thumbprint of the signer's key: [`public_jwk`](Signer::public_jwk)'s
    /// [`thumbprint`](PublicJwk::thumbprint).
    pub fn thumbprint(&self) -> &Thumbprint {
        self.public_jwk().thumbprint()
    }
}
