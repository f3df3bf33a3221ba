//! Helpers for the tests of keys that stay in their hardware (PKCS#11, AWS KMS): a signer
//! wrapper that checks every signature with an independent verifier (RustCrypto's `p256`,
//! not the aws-lc-rs the SDK signs and the sandbox verifies with), and the backend rule
//! (skip locally with how to start it; fail under `CI=true`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use ralio::RalioClient;
use ralio::keys::{KeyLocation, PublicJwk, SignError, Signer};
use ralio::store::{CredentialStore as _, FileStore, Identity};
use ralio_sandbox::Sandbox;
use secrecy::ExposeSecret as _;

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

/// A client built from the file store in `dir` (refresh-token slot `worker`, as `store`): it
/// calls, refreshes once (the refresh token rotates), and calls again.
pub(crate) async fn call_refresh_and_rotate(sb: &Sandbox, dir: &Path, store: &FileStore) {
    let client = RalioClient::builder()
        .base_url(sb.base_url())
        .store(Arc::new(
            FileStore::new(dir)
                .with_refresh_token_slot("worker")
                .unwrap(),
        ))
        .build()
        .await
        .unwrap();
    client.transactions().list().await.unwrap();
    let tm = client.token_manager().unwrap();
    let first = store.load_refresh_token().await.unwrap().unwrap();
    tm.force_refresh(&tm.access_token().await.unwrap())
        .await
        .unwrap();
    let second = store.load_refresh_token().await.unwrap().unwrap();
    assert_ne!(
        first.refresh_token.expose_secret(),
        second.refresh_token.expose_secret(),
        "the refresh token rotated"
    );
    client.transactions().list().await.unwrap();
}

/// Signs `n` messages with `signer` one after the other, prints the time per signature
/// (`{backend} sign: …`; the README quotes it), and checks each signature independently.
pub(crate) async fn sign_in_sequence(signer: &dyn Signer, n: u32, backend: &str) {
    let mut signed = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let message = format!("message {i}");
        let signature = signer.sign_es256(message.as_bytes()).await.unwrap();
        signed.push((message, signature));
    }
    eprintln!(
        "{backend} sign: {:?} per signature, sequential",
        started.elapsed() / n
    );
    for (message, signature) in &signed {
        verify_independently(signer.public_jwk(), message.as_bytes(), signature);
    }
}

/// 100 concurrent calls of one client of `client_id` whose key signs through `verified`;
/// prints how long they took, and returns how many signatures they made.
pub(crate) async fn hundred_concurrent_calls(
    sb: &Sandbox,
    client_id: String,
    verified: &Arc<Verified>,
    backend: &str,
) -> usize {
    let signer: Arc<dyn Signer> = verified.clone();
    let client = RalioClient::builder()
        .base_url(sb.base_url())
        .identity(Identity::with_signer(client_id, signer))
        .build()
        .await
        .unwrap();
    let before = verified.signatures();
    let started = Instant::now();
    let calls = (0..100).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.transactions().list().await })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    let signatures = verified.signatures() - before;
    eprintln!(
        "{backend}: 100 concurrent calls, {signatures} signatures, in {:?}",
        started.elapsed()
    );
    signatures
}
