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

async fn refused_re_registration(backend: KeyringBackend) {
    if !available(backend).await {
        return;
    }
    let sandbox = ralio_sandbox::Sandbox::builder().start().await.unwrap();
    let store = Arc::new(KeyringStore::with_backend(unique_service(), backend));
    crate::register::a_refused_re_registration_leaves_the_binding_working(&sandbox, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_secret_service_a_refused_re_registration_leaves_the_previous_binding_working() {
    refused_re_registration(KeyringBackend::SecretService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_keyutils_a_refused_re_registration_leaves_the_previous_binding_working() {
    refused_re_registration(KeyringBackend::KeyUtils).await;
}

const LOCK_CHILD_VAR: &str = "RALIO_TEST_KEYRING_LOCK_SERVICE";

/// One side of `keyring_lock_is_one_per_slot_whatever_the_environment`: tries the slot's lock
/// for two seconds and says what happened.
#[tokio::test]
#[ignore = "run by keyring_lock_is_one_per_slot_whatever_the_environment in a child process"]
async fn keyring_lock_child_process() {
    let Ok(service) = std::env::var(LOCK_CHILD_VAR) else {
        return;
    };
    let store = KeyringStore::with_backend(&service, KeyringBackend::KeyUtils);
    let tried = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        store.lock_refresh_token(),
    )
    .await;
    match tried {
        Err(_) => println!("LOCK-BLOCKED"),
        Ok(Ok(_held)) => println!("LOCK-TAKEN"),
        Ok(Err(e)) => println!("LOCK-ERROR {e}"),
    }
}

/// A cron job (no `XDG_RUNTIME_DIR`, another `HOME`) and a desktop session (its own
/// `XDG_RUNTIME_DIR` and `RALIO_CONFIG_DIR`) of one user meet at one lock per slot.
#[tokio::test]
async fn keyring_lock_is_one_per_slot_whatever_the_environment() {
    let service = unique_service();
    let elsewhere = tempfile::tempdir().unwrap();
    let child = |env: &[(&str, Option<std::path::PathBuf>)]| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "store_keyring::keyring_lock_child_process",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .env(LOCK_CHILD_VAR, &service);
        for (name, value) in env {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cron = [
        ("XDG_RUNTIME_DIR", None),
        ("RALIO_CONFIG_DIR", None),
        ("HOME", Some(elsewhere.path().join("home"))),
    ];
    let desktop = [
        ("XDG_RUNTIME_DIR", Some(elsewhere.path().join("run"))),
        ("RALIO_CONFIG_DIR", Some(elsewhere.path().join("cfg"))),
    ];
    let held = KeyringStore::with_backend(&service, KeyringBackend::KeyUtils)
        .lock_refresh_token()
        .await
        .unwrap();
    for (what, env) in [("cron", &cron[..]), ("desktop", &desktop[..])] {
        let said = child(env);
        assert!(said.contains("LOCK-BLOCKED"), "{what}: {said}");
    }
    drop(held);
    let said = child(&cron);
    assert!(said.contains("LOCK-TAKEN"), "released: {said}");
}
