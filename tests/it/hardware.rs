//! Helpers for the tests of keys that stay in their hardware (PKCS#11, AWS KMS): a signer
//! wrapper that checks every signature with an independent verifier (RustCrypto's `p256`,
//! not the aws-lc-rs the SDK signs and the sandbox verifies with), and the backend rule
//! (skip locally with how to start it; fail under `CI=true`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use ralio::keys::{KeyLocation, PublicJwk, SignError, Signer};

/// `None` (skip) with `how` printed, or a panic under `CI=true`.
pub(crate) fn unavailable<T>(what: &str, how: &str) -> Option<T> {
    let message = format!("{what} unavailable; {how}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// Checks `signature` over `message` with `p256` against `jwk`.
pub(crate) fn verify_independently(jwk: &PublicJwk, message: &[u8], signature: &[u8; 64]) {
    let key = VerifyingKey::from_sec1_bytes(jwk.sec1_uncompressed()).expect("a P-256 public key");
    let signature = Signature::from_slice(signature).expect("a 64-byte r‖s signature");
    key.verify(message, &signature)
        .expect("the signature verifies with an independent P-256 verifier");
}

/// A signer that verifies each signature it passes on, and counts them.
#[derive(Debug)]
pub(crate) struct Verified {
    inner: Arc<dyn Signer>,
    pub(crate) count: AtomicUsize,
}

impl Verified {
    pub(crate) fn new(inner: Arc<dyn Signer>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            count: AtomicUsize::new(0),
        })
    }

    pub(crate) fn signatures(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Signer for Verified {
    fn public_jwk(&self) -> &PublicJwk {
        self.inner.public_jwk()
    }

    fn key_location(&self) -> Option<KeyLocation> {
        self.inner.key_location()
    }

    async fn sign_es256(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let signature = self.inner.sign_es256(message).await?;
        verify_independently(self.inner.public_jwk(), message, &signature);
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(signature)
    }
}

/// The whole `Display` chain of an error, as a user sees it.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n    caused by: {cause}"));
        source = cause.source();
    }
    text
}
