//! The conformance suite every credential store passes: one generic body, run per store.

use std::sync::Arc;

use async_trait::async_trait;
use ralio::keys::PrivateKey;
use ralio::store::{
    CredentialStore, Identity, PendingRegistration, Presence, RefreshTokenRecord, StoreError,
};
use secrecy::{ExposeSecret as _, SecretString};

/// How the suite reaches one store.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A handle on the store under test. Handles opened one after the other see the same data
    /// (the same directory, keyring entries, Vault path).
    fn open(&self) -> Arc<dyn CredentialStore>;

    /// Puts an identity where [`Harness::open`] finds it. Writable stores save it.
    async fn put_identity(&self, identity: &Identity) {
        self.open().save_identity(identity).await.unwrap();
    }

    /// Damages the stored identity (garbage in the key or client-id entry).
    async fn corrupt_identity(&self);
}

fn token(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

/// A refresh token without an issuer, as the Python SDK writes one.
fn legacy(text: &str) -> RefreshTokenRecord {
    RefreshTokenRecord::new(token(text), None)
}

const ISSUER: &str = "https://api.example/oauth/token";

/// A refresh token issued by [`ISSUER`].
fn issued(text: &str) -> RefreshTokenRecord {
    RefreshTokenRecord::new(token(text), Some(ISSUER.to_owned()))
}

fn exposed(t: Option<RefreshTokenRecord>) -> Option<String> {
    t.map(|t| t.refresh_token.expose_secret().to_owned())
}

/// Runs every conformance check against `harness`; the store must start empty.
pub async fn run(harness: Arc<dyn Harness>) {
    missing_entries(harness.as_ref()).await;
    identity_round_trip(harness.as_ref()).await;
    report_of_a_stored_identity(harness.as_ref()).await;
    refresh_rotation(harness.as_ref()).await;
    refresh_token_issuer(harness.as_ref()).await;
    pending_registration(harness.as_ref()).await;
    concurrent_writers(Arc::clone(&harness)).await;
    corrupt_entry(harness.as_ref()).await;
}

/// Every check but the corrupt entry, for stores that hold parsed values only (memory).
pub async fn run_without_corruption(harness: Arc<dyn Harness>) {
    missing_entries(harness.as_ref()).await;
    identity_round_trip(harness.as_ref()).await;
    report_of_a_stored_identity(harness.as_ref()).await;
    refresh_rotation(harness.as_ref()).await;
    refresh_token_issuer(harness.as_ref()).await;
    pending_registration(harness.as_ref()).await;
    concurrent_writers(harness).await;
}

async fn missing_entries(h: &dyn Harness) {
    let store = h.open();
    assert!(
        store.load_identity().await.unwrap().is_none(),
        "{}: an empty store has no identity",
        store.describe()
    );
    assert!(store.load_refresh_token().await.unwrap().is_none());
    // Clearing what is not there is not an error.
    store.clear_refresh_token().await.unwrap();
    // The report of an empty store says so, without a problem.
    let report = store.report().await;
    assert_eq!(report.identity, Presence::Absent, "{report:?}");
    assert_eq!(report.client_id, None, "{report:?}");
    assert_eq!(report.key, None, "{report:?}");
    assert_eq!(report.refresh_token, Presence::Absent, "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(!report.is_healthy());
    assert_eq!(report.description, store.describe());
}

/// The report of a store holding an identity and a refresh token names the client id, the
/// key's algorithm and thumbprint and the token's presence, and holds no secret.
async fn report_of_a_stored_identity(h: &dyn Harness) {
    let key = PrivateKey::generate().unwrap();
    h.put_identity(&Identity::new("cb_conformance_report", key.clone()))
        .await;
    let store = h.open();
    let secret_token = "rt-report-secret-0123456789";
    store
        .save_refresh_token(None, &legacy(secret_token))
        .await
        .unwrap();
    let report = store.report().await;
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(report.identity, Presence::Present, "{report:?}");
    assert_eq!(report.client_id.as_deref(), Some("cb_conformance_report"));
    let found = report.key.as_ref().expect("the key is reported");
    assert_eq!(found.thumbprint, key.thumbprint().as_str());
    assert_eq!(found.algorithm, "ES256 (P-256)");
    assert!(!found.mismatched(), "{report:?}");
    assert_eq!(report.refresh_token, Presence::Present, "{report:?}");
    assert!(report.is_healthy(), "{report:?}");
    let debug = format!("{report:?}");
    let jwk: serde_json::Value =
        serde_json::from_str(key.to_private_jwk().expose_secret()).unwrap();
    let d = jwk["d"].as_str().unwrap();
    for secret in [secret_token, "BEGIN", d] {
        assert!(!debug.contains(secret), "{secret} in the report: {debug}");
    }
    store.clear_refresh_token().await.unwrap();
    assert_eq!(store.report().await.refresh_token, Presence::Absent);
}

async fn identity_round_trip(h: &dyn Harness) {
    let key = PrivateKey::generate().unwrap();
    h.put_identity(&Identity::new("cb_conformance_1", key.clone()))
        .await;
    let loaded = h
        .open()
        .load_identity()
        .await
        .unwrap()
        .expect("the saved identity loads from a new handle");
    assert_eq!(loaded.client_id(), "cb_conformance_1");
    assert_eq!(loaded.thumbprint(), key.thumbprint());
    let signature = loaded.signer().sign_es256(b"conformance").await.unwrap();
    assert!(
        key.public_jwk().verify_es256(b"conformance", &signature),
        "the loaded key signs as the saved one"
    );
    let debug = format!("{loaded:?}");
    assert!(
        debug.contains("cb_conformance_1") && !debug.contains("BEGIN"),
        "{debug}"
    );
}

/// A refresh token saved with its issuer (the token URL) comes back with it, from a new
/// handle; rotations keep the compare-and-set; a token saved without one is a legacy token
/// (no issuer), used as before.
async fn refresh_token_issuer(h: &dyn Harness) {
    let store = h.open();
    store
        .save_refresh_token(None, &issued("rt-issued"))
        .await
        .unwrap();
    let record = h
        .open()
        .load_refresh_token()
        .await
        .unwrap()
        .expect("the token saved with its issuer loads from a new handle");
    assert_eq!(record.refresh_token.expose_secret(), "rt-issued");
    assert_eq!(
        record.issuer.as_deref(),
        Some(ISSUER),
        "{}",
        store.describe()
    );
    assert!(!format!("{record:?}").contains("rt-issued"));

    store
        .save_refresh_token(Some(&token("rt-issued")), &issued("rt-rotated"))
        .await
        .unwrap();
    let stale = store
        .save_refresh_token(Some(&token("rt-issued")), &issued("rt-stale"))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }), "{stale:?}");
    let record = h.open().load_refresh_token().await.unwrap().unwrap();
    assert_eq!(record.refresh_token.expose_secret(), "rt-rotated");
    assert_eq!(record.issuer.as_deref(), Some(ISSUER));

    // A plain save knows no issuer: the token is a legacy one.
    store
        .save_refresh_token(Some(&token("rt-rotated")), &legacy("rt-legacy"))
        .await
        .unwrap();
    let record = h.open().load_refresh_token().await.unwrap().unwrap();
    assert_eq!(record.refresh_token.expose_secret(), "rt-legacy");
    assert_eq!(record.issuer, None, "{}", store.describe());
    store.clear_refresh_token().await.unwrap();
    assert!(store.load_refresh_token().await.unwrap().is_none());
}

/// A legacy registration waiting for approval: kept next to the staged key, found again from
/// a new handle (poll token, API URL, scopes and key), and forgotten when cleared. A store
/// that cannot keep one says so (`None`) and has nothing to load.
async fn pending_registration(h: &dyn Harness) {
    let store = h.open();
    assert!(store.load_pending_registration().await.unwrap().is_none());
    store.clear_pending_registration().await.unwrap();
    let key = PrivateKey::generate().unwrap();
    // A read-only store refuses to stage; it then keeps no pending registration either.
    let staged = store.stage_key(&key, false).await.is_ok();
    let pending = PendingRegistration::new(
        token("rpt_conformance"),
        "https://api.example",
        key.thumbprint().as_str(),
        vec![ralio::Scope::from("agents:execute")],
        Some(key.clone()),
    );
    let Some(kept) = store.save_pending_registration(&pending).await.unwrap() else {
        assert!(
            h.open()
                .load_pending_registration()
                .await
                .unwrap()
                .is_none()
        );
        return;
    };
    assert!(
        staged,
        "{}: kept a pending registration without staging its key",
        store.describe()
    );
    assert!(!kept.contains("rpt_conformance"), "{kept}");
    let loaded = h
        .open()
        .load_pending_registration()
        .await
        .unwrap()
        .expect("the pending registration loads from a new handle");
    assert_eq!(loaded.poll_token().expose_secret(), "rpt_conformance");
    assert_eq!(loaded.base_url(), "https://api.example");
    assert_eq!(loaded.fingerprint(), key.thumbprint().as_str());
    assert_eq!(loaded.requested_scopes(), ["agents:execute"]);
    assert_eq!(
        loaded.key().map(|k| k.thumbprint().as_str().to_owned()),
        Some(key.thumbprint().as_str().to_owned()),
        "the staged key comes back with it"
    );
    let debug = format!("{loaded:?}");
    assert!(
        !debug.contains("rpt_conformance") && !debug.contains("BEGIN"),
        "{debug}"
    );
    store.clear_pending_registration().await.unwrap();
    store.discard_staged_key(&key).await.unwrap();
    assert!(
        h.open()
            .load_pending_registration()
            .await
            .unwrap()
            .is_none()
    );
}

async fn refresh_rotation(h: &dyn Harness) {
    let store = h.open();
    store
        .save_refresh_token(None, &legacy("rt-1"))
        .await
        .unwrap();
    assert_eq!(
        exposed(store.load_refresh_token().await.unwrap()).as_deref(),
        Some("rt-1")
    );
    store
        .save_refresh_token(Some(&token("rt-1")), &legacy("rt-2"))
        .await
        .unwrap();
    assert_eq!(
        exposed(store.load_refresh_token().await.unwrap()).as_deref(),
        Some("rt-2")
    );

    // A writer that still holds rt-1 is stale: refused, and the newer token survives.
    let stale = store
        .save_refresh_token(Some(&token("rt-1")), &legacy("rt-stale"))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }), "{stale:?}");
    let message = stale.to_string();
    assert!(message.contains(&store.describe()), "{message}");
    assert!(
        !message.contains("rt-"),
        "no token in the message: {message}"
    );
    assert_eq!(
        exposed(store.load_refresh_token().await.unwrap()).as_deref(),
        Some("rt-2")
    );

    // A fresh mint (previous = None) starts a new family and replaces whatever is stored.
    store
        .save_refresh_token(None, &legacy("rt-new-family"))
        .await
        .unwrap();
    assert_eq!(
        exposed(store.load_refresh_token().await.unwrap()).as_deref(),
        Some("rt-new-family")
    );
    store.clear_refresh_token().await.unwrap();
    assert!(store.load_refresh_token().await.unwrap().is_none());
}

/// Several writers, each with its own handle, rotate the same token: each rotation reads the
/// current value `n` and writes `n + 1` under the rotation lock, retrying on a conflict. No
/// update may be lost: the final value counts every rotation.
async fn concurrent_writers(h: Arc<dyn Harness>) {
    const WRITERS: usize = 4;
    const ROTATIONS: usize = 5;
    h.open()
        .save_refresh_token(None, &legacy("0"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            let store = h.open();
            for _ in 0..ROTATIONS {
                loop {
                    let _lock = store.lock_refresh_token().await.unwrap();
                    let current = store.load_refresh_token().await.unwrap().unwrap();
                    let n: usize = current.refresh_token.expose_secret().parse().unwrap();
                    match store
                        .save_refresh_token(
                            Some(&current.refresh_token),
                            &legacy(&(n + 1).to_string()),
                        )
                        .await
                    {
                        Ok(()) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let last = h.open().load_refresh_token().await.unwrap().unwrap();
    assert_eq!(
        last.refresh_token.expose_secret(),
        &(WRITERS * ROTATIONS).to_string()
    );
    h.open().clear_refresh_token().await.unwrap();
}

async fn corrupt_entry(h: &dyn Harness) {
    h.corrupt_identity().await;
    let store = h.open();
    let err = store.load_identity().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::InvalidKey { .. }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&store.describe()),
        "names the store: {message}"
    );
    assert!(!message.contains("BEGIN"), "no key material: {message}");
    // The report names the damage instead of failing, and shows no key.
    let report = store.report().await;
    assert!(!report.problems.is_empty(), "{report:?}");
    assert!(report.key.is_none(), "{report:?}");
    assert!(!report.is_healthy());
    assert!(!format!("{report:?}").contains("BEGIN"), "{report:?}");
}
