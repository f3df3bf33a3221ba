//! The PKCS#11 signer against a real token: SoftHSM 2 (`.ci/run` installs it and initialises a
//! token in a temporary directory). Locally:
//!
//! ```text
//! apt-get install softhsm2
//! mkdir -p /tmp/hsm/tokens && printf 'directories.tokendir = /tmp/hsm/tokens\n' > /tmp/hsm/softhsm2.conf
//! export SOFTHSM2_CONF=/tmp/hsm/softhsm2.conf
//! softhsm2-util --init-token --free --label ralio-test --pin 'pin-ralio-1' --so-pin 'so-ralio-1'
//! RALIO_TEST_PKCS11_TOKEN=ralio-test RALIO_TEST_PKCS11_PIN=pin-ralio-1 RALIO_TEST_PKCS11_SO_PIN=so-ralio-1 \
//!   cargo test -p ralio --all-features --test it -- pkcs11::
//! ```
//!
//! `RALIO_TEST_PKCS11_MODULE` names another module (default SoftHSM's). Without a token a test
//! skips with that hint, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use ralio::RalioClient;
use ralio::keys::{KeyCreation, KeyReference, Pkcs11Signer, Pkcs11Uri, Signer};
use ralio::store::{CredentialStore, FileStore, Identity, IdentityKey, StoreError, open_key};
use ralio_sandbox::Sandbox;
use secrecy::SecretString;

use crate::hardware::{
    Verified, call_refresh_and_rotate, chain, hundred_concurrent_calls, sign_in_sequence,
    unavailable, verify_independently,
};
use crate::support::register_signer;

const HOW_TO_START: &str = "install softhsm2, initialise a token and set SOFTHSM2_CONF, RALIO_TEST_PKCS11_TOKEN, RALIO_TEST_PKCS11_PIN and RALIO_TEST_PKCS11_SO_PIN (see tests/it/pkcs11.rs)";

/// The test token.
pub(crate) struct Token {
    pub(crate) module: PathBuf,
    pub(crate) label: String,
    pub(crate) pin: String,
    so_pin: String,
    /// Holds the PIN file (mode 0600).
    dir: tempfile::TempDir,
}

pub(crate) fn token() -> Option<Token> {
    let module = std::env::var("RALIO_TEST_PKCS11_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".to_owned());
    let (Ok(label), Ok(pin)) = (
        std::env::var("RALIO_TEST_PKCS11_TOKEN"),
        std::env::var("RALIO_TEST_PKCS11_PIN"),
    ) else {
        return unavailable("PKCS#11 token", HOW_TO_START);
    };
    if !Path::new(&module).exists() {
        return unavailable(&format!("PKCS#11 module {module}"), HOW_TO_START);
    }
    let dir = tempfile::tempdir().unwrap();
    let token = Token {
        module: module.into(),
        label,
        pin,
        so_pin: std::env::var("RALIO_TEST_PKCS11_SO_PIN").unwrap_or_default(),
        dir,
    };
    token.write_pin(&token.pin);
    Some(token)
}

impl Token {
    pub(crate) fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    fn write_pin(&self, pin: &str) {
        let path = self.pin_file();
        std::fs::write(&path, format!("{pin}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    /// A reference to a new key label in this token (PIN from the PIN file).
    pub(crate) fn fresh_key(&self, what: &str) -> Pkcs11Uri {
        self.key_in(&self.label, &unique(what))
    }

    fn key_in(&self, token: &str, object: &str) -> Pkcs11Uri {
        Pkcs11Uri::new(token, object)
            .with_module_path(&self.module)
            .with_pin_source(self.pin_file().to_string_lossy().into_owned())
    }

    /// Initialises another SoftHSM token (a test that removes or locks one works on its own).
    fn init_token(&self, label: &str) {
        let out = std::process::Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                &self.pin,
            ])
            .args(["--so-pin", &self.so_pin])
            .output()
            .expect("softhsm2-util runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn delete_token(&self, label: &str) {
        let out = std::process::Command::new("softhsm2-util")
            .args(["--delete-token", "--token", label])
            .output()
            .expect("softhsm2-util runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

fn reference(uri: &Pkcs11Uri) -> KeyReference {
    KeyReference::parse(&uri.to_string()).unwrap()
}

/// A ticket-registered binding whose key was generated in the token, saved in a file store.
async fn registered(
    token: &Token,
    sb: &Sandbox,
) -> (tempfile::TempDir, FileStore, Arc<dyn Signer>) {
    let signer = open_key(
        &reference(&token.fresh_key("agent")),
        KeyCreation::IfMissing,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path())
        .with_refresh_token_slot("worker")
        .unwrap();
    let binding = register_signer(sb, &store, Arc::clone(&signer)).await;
    assert_eq!(binding.fingerprint, signer.thumbprint().as_str());
    (dir, store, signer)
}

#[tokio::test]
async fn pkcs11_key_generated_in_the_token_registers_mints_calls_refreshes_and_rotates() {
    let Some(token) = token() else { return };
    let sb = Sandbox::builder().start().await.unwrap();
    let (dir, store, signer) = registered(&token, &sb).await;

    // The file store holds the reference, and no key material.
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("credentials.json")).unwrap())
            .unwrap();
    let key_ref = credentials["key_ref"].as_str().unwrap();
    assert!(key_ref.starts_with("pkcs11:token="), "{key_ref}");
    assert!(
        key_ref.contains(";id=%"),
        "the stored reference pins the key id: {key_ref}"
    );
    assert_eq!(credentials["key_path"], credentials["key_ref"]);
    assert_eq!(credentials["key_jkt"], signer.thumbprint().as_str());
    assert!(!dir.path().join("keys").exists(), "no key file is written");
    let everything = std::fs::read_to_string(dir.path().join("credentials.json")).unwrap();
    assert!(!everything.contains(&token.pin));

    // A client from the store opens the key again from the reference, mints, calls, refreshes
    // and rotates its refresh token.
    call_refresh_and_rotate(&sb, dir.path(), &store).await;
    let counters = sb.counters();
    assert!(
        counters.token_mints >= 1 && counters.refreshes >= 1,
        "{counters:?}"
    );

    // The loaded key is the registered one, and its signatures verify independently.
    let loaded = store.load_identity().await.unwrap().unwrap();
    assert_eq!(loaded.thumbprint(), signer.thumbprint());
    let IdentityKey::Remote(loaded_signer) = loaded.key() else {
        panic!("a PKCS#11 identity is remote")
    };
    for message in [&b"one"[..], b"two", &[0u8; 3000]] {
        let signature = loaded_signer.sign_es256(message).await.unwrap();
        verify_independently(loaded_signer.public_jwk(), message, &signature);
    }
    // The latency of one signature in the token (the README quotes it).
    sign_in_sequence(&**loaded_signer, 200, "PKCS#11 (SoftHSM)").await;

    // The store's report (`ralio doctor`) names the token and says the key is not extractable.
    let report = store.report().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let key = report.key.unwrap();
    assert!(key.remote && !key.mismatched());
    let location = key.location.unwrap();
    assert_eq!(location.extractable, Some(false));
    assert!(
        location.description.contains(&token.label),
        "{}",
        location.description
    );
}

#[tokio::test]
async fn pkcs11_one_client_signs_100_concurrent_calls() {
    let Some(token) = token() else { return };
    let sb = Sandbox::builder().start().await.unwrap();
    let (_dir, store, _) = registered(&token, &sb).await;
    let loaded = store.load_identity().await.unwrap().unwrap();
    let verified = Verified::new(loaded.signer());
    let client_id = loaded.client_id().to_owned();
    let signatures = hundred_concurrent_calls(&sb, client_id, &verified, "PKCS#11 (SoftHSM)").await;
    // One DPoP proof per request, plus the token request's assertion and proof.
    assert!(signatures >= 100, "{signatures}");
}

#[tokio::test]
async fn pkcs11_private_key_cannot_be_read_out_of_the_token() {
    let Some(token) = token() else { return };
    let uri = token.fresh_key("sealed");
    let signer = Pkcs11Signer::open_or_generate(&uri).await.unwrap();
    assert_eq!(signer.extractable(), Some(false));

    // Ask the token directly, as an attacker with the PIN on this host would.
    let ctx = Pkcs11::new(&token.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == token.label)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let pin = SecretString::from(token.pin.clone());
    match session.login(UserType::User, Some(&pin)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("{e}"),
    }
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(uri.object().unwrap().as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let info = session
        .get_attribute_info(keys[0], &[AttributeType::Value])
        .unwrap();
    assert!(
        matches!(info[0], AttributeInfo::Sensitive),
        "CKA_VALUE must be unreadable, got {:?}",
        info[0]
    );
    let values = session
        .get_attributes(
            keys[0],
            &[
                AttributeType::Value,
                AttributeType::Extractable,
                AttributeType::Sensitive,
            ],
        )
        .unwrap();
    assert!(!values.iter().any(|a| matches!(a, Attribute::Value(_))));
    assert!(
        values.contains(&Attribute::Extractable(false)),
        "{values:?}"
    );
    assert!(values.contains(&Attribute::Sensitive(true)), "{values:?}");
}

/// Runs `load_identity` and checks the failure says `expected` and that nothing stored
/// changed.
async fn refused_load(dir: &Path, expected: &[&str], pin: &str) -> String {
    let credentials = dir.join("credentials.json");
    let before = std::fs::read(&credentials).unwrap();
    let store = FileStore::new(dir);
    let err: StoreError = store.load_identity().await.unwrap_err();
    let text = chain(&err);
    for phrase in expected {
        assert!(text.contains(phrase), "{phrase:?} not in:\n{text}");
    }
    assert!(
        !text.contains(pin) && !format!("{err:?}").contains(pin),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&credentials).unwrap(),
        before,
        "the store was changed"
    );
    text
}

/// Where the parent tells its child processes which token and directory to use.
const CHILD_TOKEN_VAR: &str = "RALIO_TEST_PKCS11_CHILD_TOKEN";
const CHILD_DIR_VAR: &str = "RALIO_TEST_PKCS11_CHILD_DIR";

#[tokio::test]
async fn pkcs11_wrong_pin_removed_token_and_missing_key_say_what_to_fix_and_lose_nothing() {
    let Some(token) = token() else { return };
    if token.so_pin.is_empty() {
        let _: Option<()> = unavailable("RALIO_TEST_PKCS11_SO_PIN", HOW_TO_START);
        return;
    }
    // A token of its own, used from child processes: SoftHSM reads its token directory when
    // a process initialises it (a token made later is not seen, one deleted later not
    // missed), and a login belongs to the whole process (a wrong PIN would not even be asked
    // for while another session of this process is logged in).
    let label = unique("ralio-rm");
    token.init_token(&label);
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        (CHILD_TOKEN_VAR, label.as_str()),
        (CHILD_DIR_VAR, dir.path().to_str().unwrap()),
    ];
    crate::capture::run_child_with(
        "pkcs11::child_registers_then_meets_a_wrong_pin_and_a_missing_key",
        "child done: wrong pin, missing key",
        &vars,
    )
    .await;
    // Removed token.
    token.delete_token(&label);
    crate::capture::run_child_with(
        "pkcs11::child_finds_the_token_removed",
        "child done: removed token",
        &vars,
    )
    .await;
}

fn child_setup() -> Option<(Token, String, PathBuf)> {
    if !crate::capture::in_child() {
        return None;
    }
    let token = token()?;
    let label = std::env::var(CHILD_TOKEN_VAR).unwrap();
    let dir = PathBuf::from(std::env::var(CHILD_DIR_VAR).unwrap());
    Some((token, label, dir))
}

#[tokio::test]
#[ignore = "run by pkcs11_wrong_pin_removed_token_and_missing_key_say_what_to_fix_and_lose_nothing"]
async fn child_registers_then_meets_a_wrong_pin_and_a_missing_key() {
    let Some((token, label, dir)) = child_setup() else {
        return;
    };
    let sb = Sandbox::builder().start().await.unwrap();
    let uri = token.key_in(&label, "agent");
    let signer = open_key(&reference(&uri), KeyCreation::IfMissing)
        .await
        .unwrap();
    let store = FileStore::new(&dir);
    register_signer(&sb, &store, Arc::clone(&signer)).await;
    // Closing every session of the token logs the process out of it.
    drop(signer);

    // Wrong PIN.
    token.write_pin("not-the-pin-0000");
    let text = refused_load(
        &dir,
        &["refused the PIN", "pin-source file"],
        "not-the-pin-0000",
    )
    .await;
    assert!(!text.contains(&token.pin));
    token.write_pin(&token.pin);
    let identity = store.load_identity().await.unwrap().unwrap();
    assert!(
        matches!(identity.key(), IdentityKey::Remote(_)),
        "the right PIN opens it again"
    );
    drop(identity);

    // Missing key: the reference names a key the token does not have.
    let credentials = dir.join("credentials.json");
    let original = std::fs::read_to_string(&credentials).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&original).unwrap();
    let missing = stored["key_ref"]
        .as_str()
        .unwrap()
        .replace("object=agent;id=", "object=gone;id=");
    let mut edited = stored.clone();
    edited["key_ref"] = missing.into();
    std::fs::write(&credentials, edited.to_string()).unwrap();
    refused_load(&dir, &["is missing", "object="], &token.pin).await;
    std::fs::write(&credentials, &original).unwrap();
    println!("child done: wrong pin, missing key");
}

#[tokio::test]
#[ignore = "run by pkcs11_wrong_pin_removed_token_and_missing_key_say_what_to_fix_and_lose_nothing"]
async fn child_finds_the_token_removed() {
    let Some((token, _, dir)) = child_setup() else {
        return;
    };
    refused_load(
        &dir,
        &["the token of the key", "is missing", "connected"],
        &token.pin,
    )
    .await;
    println!("child done: removed token");
}

#[tokio::test]
async fn pkcs11_existing_key_is_found_by_label_and_the_pin_never_shows() {
    let Some(token) = token() else { return };
    let uri = token.fresh_key("existing");
    // Missing, and not to be created: a clear error.
    let err = Pkcs11Signer::open(&uri).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let generated = Pkcs11Signer::open_or_generate(&uri).await.unwrap();
    // Found again by its label alone, with the PIN given as a pin-value in the URI.
    let text = format!(
        "pkcs11:token={};object={}?module-path={}&pin-value={}",
        token.label,
        uri.object().unwrap(),
        token.module.display(),
        token.pin
    );
    let reference = KeyReference::parse(&text).unwrap();
    let signer = open_key(&reference, KeyCreation::Existing).await.unwrap();
    assert_eq!(
        signer.public_jwk().thumbprint(),
        generated.public_jwk().thumbprint()
    );
    let signature = signer.sign_es256(b"message").await.unwrap();
    verify_independently(signer.public_jwk(), b"message", &signature);
    // The PIN is in no printed form: the reference, the signer's Debug and location.
    let location = signer.key_location().unwrap();
    for shown in [
        reference.to_string(),
        format!("{reference:?}"),
        format!("{signer:?}"),
        format!("{location:?}"),
        location.reference.to_string(),
    ] {
        assert!(!shown.contains(&token.pin), "{shown}");
    }
}

#[tokio::test]
async fn pkcs11_pin_never_reaches_a_log() {
    let Some(_) = token() else { return };
    crate::capture::run_child(
        "pkcs11::child_registers_and_calls_at_trace",
        "child done: trace without the PIN",
    )
    .await;
}

#[tokio::test]
#[ignore = "run by pkcs11_pin_never_reaches_a_log"]
async fn child_registers_and_calls_at_trace() {
    if !crate::capture::in_child() {
        return;
    }
    let capture = crate::capture::Capture::install_global();
    let Some(token) = token() else { return };
    let sb = Sandbox::builder().start().await.unwrap();
    // The PIN in the URI itself (pin-value), the form most likely to be echoed.
    let text = format!(
        "pkcs11:token={};object={}?module-path={}&pin-value={}",
        token.label,
        unique("trace"),
        token.module.display(),
        token.pin
    );
    let signer = open_key(&KeyReference::parse(&text).unwrap(), KeyCreation::IfMissing)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let binding = register_signer(&sb, &store, Arc::clone(&signer)).await;
    let client = RalioClient::builder()
        .base_url(sb.base_url())
        .identity(Identity::with_signer(binding.client_id, signer))
        .build()
        .await
        .unwrap();
    client.transactions().list().await.unwrap();
    // The stored reference has no pin-value: opening it needs the PIN from elsewhere.
    let stored = std::fs::read_to_string(dir.path().join("credentials.json")).unwrap();
    assert!(
        !stored.contains("pin-value") && !stored.contains(&token.pin),
        "{stored}"
    );
    let err = store.load_identity().await;
    let shown = format!("{err:?}");
    assert!(!shown.contains(&token.pin), "{shown}");
    let logs = capture.text();
    assert!(
        logs.contains("opened the PKCS#11 key"),
        "nothing was logged:\n{logs}"
    );
    assert!(
        !logs.contains(&token.pin),
        "the PIN reached the log:\n{logs}"
    );
    println!("child done: trace without the PIN");
}

/// The official Python SDK, pointed at a directory whose key is a PKCS#11 reference, fails
/// with its own clear error (the key is missing at the reference it names) and never reads
/// anything else as the key. Runs when `RALIO_PYTHON_SDK` points at an unpacked ralio 0.1.4
/// wheel (see tests/fixtures/python-store-README.md).
#[tokio::test]
async fn pkcs11_reference_is_refused_clearly_by_the_python_sdk() {
    let Some(token) = token() else { return };
    let Ok(sdk) = std::env::var("RALIO_PYTHON_SDK") else {
        eprintln!(
            "skipping the Python check: set RALIO_PYTHON_SDK to an unpacked ralio 0.1.4 wheel"
        );
        return;
    };
    let sb = Sandbox::builder().start().await.unwrap();
    let (dir, _, _) = registered(&token, &sb).await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-key-ref-check.py");
    let python = std::env::var("RALIO_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = std::process::Command::new(python)
        .env("PYTHONPATH", sdk)
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("the Python SDK said: {said}");
    // "Private key missing at pkcs11:token=…": its own message, naming the reference.
    assert!(
        said.contains("Private key missing at pkcs11:token="),
        "{said}"
    );
}

/// The PKCS#11 signer driving a software TPM: swtpm, behind tpm2-abrmd, through Debian's
/// `libtpm2-pkcs11-1` (`.ci/run` sets it up; see there for the commands). Set
/// `RALIO_TEST_TPM_TOKEN` and `RALIO_TEST_TPM_PIN` (and `TPM2_PKCS11_STORE`,
/// `TPM2_PKCS11_TCTI` for the module itself).
#[tokio::test]
async fn tpm_key_generated_in_a_software_tpm_registers_and_signs() {
    let module = std::env::var("RALIO_TEST_TPM_MODULE")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so".to_owned());
    let (Ok(label), Ok(pin)) = (
        std::env::var("RALIO_TEST_TPM_TOKEN"),
        std::env::var("RALIO_TEST_TPM_PIN"),
    ) else {
        return unavailable(
            "software TPM token",
            "install swtpm, tpm2-abrmd, libtss2-tcti-tabrmd0 and libtpm2-pkcs11-tools, start them and add a token as .ci/run does, and set RALIO_TEST_TPM_TOKEN and RALIO_TEST_TPM_PIN",
        )
        .unwrap_or(());
    };
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, &pin).unwrap();
    let uri = Pkcs11Uri::new(&label, unique("tpm"))
        .with_module_path(&module)
        .with_pin_source(pin_file.to_string_lossy().into_owned());
    let signer = Pkcs11Signer::open_or_generate(&uri).await.unwrap();
    assert_eq!(signer.extractable(), Some(false));
    let location = signer.key_location().unwrap();
    eprintln!("TPM key: {}", location.description);
    let signer: Arc<dyn Signer> = Arc::new(signer);

    let sb = Sandbox::builder().start().await.unwrap();
    let store = FileStore::new(dir.path().join("store"));
    let binding = register_signer(&sb, &store, Arc::clone(&signer)).await;
    let verified = Verified::new(signer);
    let client = RalioClient::builder()
        .base_url(sb.base_url())
        .identity(Identity::with_signer(binding.client_id, verified.clone()))
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..5 {
        client.transactions().list().await.unwrap();
    }
    eprintln!(
        "TPM: 5 calls, {} signatures, in {:?}",
        verified.signatures(),
        started.elapsed()
    );
    assert!(verified.signatures() >= 5);
    // Opened again from the stored reference.
    let loaded = store.load_identity().await.unwrap().unwrap();
    assert_eq!(loaded.thumbprint(), verified.public_jwk().thumbprint());
}

/// The keyring and Vault stores keep a PKCS#11 key by its reference too (and the file store
/// keeps a Vault Transit key by its reference): one notion for every store.
#[cfg(all(feature = "keyring", feature = "vault", target_os = "linux"))]
#[tokio::test]
async fn pkcs11_reference_is_kept_by_the_keyring_and_vault_stores() {
    use ralio::store::{KeyringBackend, KeyringStore, VaultStore};
    let Some(token) = token() else { return };
    let signer: Arc<dyn Signer> = Arc::new(
        Pkcs11Signer::open_or_generate(&token.fresh_key("stores"))
            .await
            .unwrap(),
    );
    let identity = Identity::with_signer("cb_hardware_1", Arc::clone(&signer));
    let mut stores: Vec<Box<dyn CredentialStore>> = Vec::new();
    if crate::store_keyring::available(KeyringBackend::KeyUtils).await {
        stores.push(Box::new(KeyringStore::with_backend(
            unique("ralio-test"),
            KeyringBackend::KeyUtils,
        )));
    }
    if let Some(config) = crate::store_vault::vault().await {
        stores.push(Box::new(
            VaultStore::new(config.path(unique("ralio-ref"))).unwrap(),
        ));
    }
    for store in stores {
        store.save_identity(&identity).await.unwrap();
        let loaded = store.load_identity().await.unwrap().unwrap();
        assert_eq!(loaded.client_id(), "cb_hardware_1", "{}", store.describe());
        assert_eq!(
            loaded.thumbprint(),
            signer.thumbprint(),
            "{}",
            store.describe()
        );
        let IdentityKey::Remote(loaded) = loaded.key() else {
            panic!("{}: not a remote key", store.describe())
        };
        let signature = loaded.sign_es256(b"stored by reference").await.unwrap();
        verify_independently(signer.public_jwk(), b"stored by reference", &signature);
        let report = store.report().await;
        let location = report.key.unwrap().location.unwrap();
        assert_eq!(location.extractable, Some(false), "{}", store.describe());
    }
}
