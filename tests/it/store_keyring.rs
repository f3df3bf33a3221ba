//! The keyring store against real backends: gnome-keyring's Secret Service on a D-Bus session
//! bus, and the kernel session keyring (keyutils). `.ci/run` starts both; locally, run
//!
//! ```text
//! dbus-run-session -- keyctl session - bash -c \
//!   'export XDG_DATA_HOME=$(mktemp -d); printf pw | gnome-keyring-daemon --unlock --components=secrets --daemonize; cargo test -p ralio --test it keyring'
//! ```
//!
//! Without a backend a test skips with that hint, except under `CI=true`, where it fails.

use std::sync::Arc;

use async_trait::async_trait;
use keyring_core::CredentialStore as PlatformStore;
use ralio::keys::PrivateKey;
use ralio::store::{
    CredentialStore, Identity, KeyringBackend, KeyringStore, RefreshTokenRecord, StoreError,
};

use crate::store_conformance::{self, Harness};

const HOW_TO_START: &str = "run the tests under `dbus-run-session -- keyctl session - bash -c 'export XDG_DATA_HOME=$(mktemp -d); printf pw | gnome-keyring-daemon --unlock --components=secrets --daemonize; cargo test …'` (apt packages gnome-keyring dbus-daemon dbus-bin keyutils)";

fn unique_service() -> String {
    let key = PrivateKey::generate().unwrap();
    format!("ralio-test-{}", &key.thumbprint().as_str()[..12])
}

fn platform(backend: KeyringBackend) -> Arc<PlatformStore> {
    match backend {
        KeyringBackend::SecretService => zbus_secret_service_keyring_store::Store::new().unwrap(),
        KeyringBackend::KeyUtils => linux_keyutils_keyring_store::Store::new().unwrap(),
        other => panic!("no direct access to {other:?} in these tests"),
    }
}

/// Whether `backend` keeps what is written to it (a write, then a read from a new handle on
/// another thread); under CI a missing backend fails the test.
pub(crate) async fn available(backend: KeyringBackend) -> bool {
    let service = unique_service();
    let key = PrivateKey::generate().unwrap();
    let probe = async {
        KeyringStore::with_backend(&service, backend)
            .save_identity(&Identity::new("cb_probe", key.clone()))
            .await?;
        KeyringStore::with_backend(&service, backend)
            .load_identity()
            .await
    };
    let why = match probe.await {
        Ok(Some(found)) if found.thumbprint() == key.thumbprint() => return true,
        Ok(_) => "an entry written was not found again (no session keyring?)".to_owned(),
        Err(e) => e.to_string(),
    };
    let message = format!("{backend:?} keyring backend unavailable ({why}); {HOW_TO_START}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    false
}

struct KeyringHarness {
    service: String,
    backend: KeyringBackend,
}

#[async_trait]
impl Harness for KeyringHarness {
    fn open(&self) -> Arc<dyn CredentialStore> {
        Arc::new(KeyringStore::with_backend(&self.service, self.backend))
    }

    async fn corrupt_identity(&self) {
        let (service, backend) = (self.service.clone(), self.backend);
        // A plain thread: the Secret Service client cannot block inside a tokio context.
        std::thread::spawn(move || {
            let store = platform(backend);
            let client_id = store
                .build(&service, "client-id", None)
                .unwrap()
                .get_password()
                .unwrap();
            store
                .build(&service, &client_id, None)
                .unwrap()
                .set_password("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
                .unwrap();
        })
        .join()
        .unwrap();
    }
}

async fn conformance(backend: KeyringBackend) {
    if !available(backend).await {
        return;
    }
    store_conformance::run(Arc::new(KeyringHarness {
        service: unique_service(),
        backend,
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyring_secret_service_passes_the_conformance_suite() {
    conformance(KeyringBackend::SecretService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyring_keyutils_passes_the_conformance_suite() {
    conformance(KeyringBackend::KeyUtils).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_secret_service_keeps_slots_apart_and_refuses_remote_signers() {
    if !available(KeyringBackend::SecretService).await {
        return;
    }
    let service = unique_service();
    let a = KeyringStore::new(&service).with_refresh_token_slot("a");
    let b = KeyringStore::new(&service).with_refresh_token_slot("b");
    assert_eq!(a.backend(), KeyringBackend::SecretService);
    let key = PrivateKey::generate().unwrap();
    a.save_identity(&Identity::new("cb_slots", key.clone()))
        .await
        .unwrap();
    assert_eq!(
        b.load_identity().await.unwrap().unwrap().thumbprint(),
        key.thumbprint(),
        "slots share the identity"
    );
    a.save_refresh_token(
        None,
        &RefreshTokenRecord::new("rt-a".to_owned().into(), None),
    )
    .await
    .unwrap();
    assert!(
        b.load_refresh_token().await.unwrap().is_none(),
        "but not refresh tokens"
    );

    let remote = Identity::with_signer("cb_remote", Arc::new(PrivateKey::generate().unwrap()));
    let err = a.save_identity(&remote).await.unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
}

/// Reads entry `account` of `service` directly; `None` when there is none.
fn raw_entry(backend: KeyringBackend, service: &str, account: &str) -> Option<String> {
    let (service, account) = (service.to_owned(), account.to_owned());
    // A plain thread: the Secret Service client cannot block inside a tokio context.
    std::thread::spawn(move || {
        match platform(backend)
            .build(&service, &account, None)
            .unwrap()
            .get_password()
        {
            Ok(value) => Some(value),
            Err(keyring_core::Error::NoEntry) => None,
            Err(e) => panic!("{e}"),
        }
    })
    .join()
    .unwrap()
}

/// Registration stages the key in `staged-key/<jkt>` before the request, so a failure after
/// the server accepted it cannot lose it; saving the identity removes the staged copy.
async fn staging(backend: KeyringBackend) {
    if !available(backend).await {
        return;
    }
    let service = unique_service();
    let store = KeyringStore::with_backend(&service, backend);
    let key = PrivateKey::generate().unwrap();
    let account = format!("staged-key/{}", key.thumbprint().as_str());
    let at = store.stage_key(&key, false).await.unwrap().unwrap();
    assert!(at.contains(&account), "{at}");
    let pem = raw_entry(backend, &service, &account).expect("the key was staged");
    assert_eq!(
        PrivateKey::from_pem(&pem).unwrap().thumbprint(),
        key.thumbprint()
    );
    store
        .save_identity(&Identity::new("cb_staged", key.clone()))
        .await
        .unwrap();
    assert!(raw_entry(backend, &service, &account).is_none());
    assert_eq!(
        store.load_identity().await.unwrap().unwrap().thumbprint(),
        key.thumbprint()
    );

    let failed = PrivateKey::generate().unwrap();
    store.stage_key(&failed, false).await.unwrap();
    store.discard_staged_key(&failed).await.unwrap();
    let account = format!("staged-key/{}", failed.thumbprint().as_str());
    assert!(raw_entry(backend, &service, &account).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_secret_service_stages_the_key_until_the_identity_is_saved() {
    staging(KeyringBackend::SecretService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_keyutils_stages_the_key_until_the_identity_is_saved() {
    staging(KeyringBackend::KeyUtils).await;
}
