//! The keyring store on the platform's own backend: the login Keychain on macOS, the Credential
//! Manager on Windows. Run by the `native-keyrings` job of `.github/workflows/ci.yml`
//! (`cargo test -p ralio --features keyring --test it -- keyring_platform`); Linux's Secret
//! Service and keyutils backends are tested in `store_keyring.rs` under `.ci/run`.

use ralio::keys::PrivateKey;
use ralio::store::{CredentialStore, Identity, KeyringBackend, KeyringStore};

#[tokio::test]
async fn keyring_platform_keeps_an_identity_for_another_handle() {
    let key = PrivateKey::generate().expect("a fresh P-256 key");
    let service = format!("ralio-test-{}", &key.thumbprint().as_str()[..12]);
    let store = KeyringStore::with_backend(&service, KeyringBackend::Platform);
    assert!(
        store
            .load_identity()
            .await
            .expect("the platform store opens")
            .is_none(),
        "a new service name holds no identity"
    );
    store
        .save_identity(&Identity::new("cb_platform_test", key.clone()))
        .await
        .expect("the platform store keeps an identity");
    let found = KeyringStore::with_backend(&service, KeyringBackend::Platform)
        .load_identity()
        .await
        .expect("the platform store reads it back")
        .expect("the identity written is found by another handle");
    assert_eq!(found.thumbprint(), key.thumbprint());
}
