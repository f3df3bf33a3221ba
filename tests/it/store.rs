//! File, memory and environment stores: the conformance suite, Python SDK compatibility,
//! permissions, atomic writes and the cross-process rotation lock.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ralio::keys::PrivateKey;
use ralio::store::{
    CredentialStore, EnvStore, FileStore, Identity, MemoryStore, RefreshTokenRecord, StoreError,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::store_conformance::{self, Harness};

const FIXTURE_JKT: &str = "FSEoyh1gJEg9X1vAwRk8kp3oDHM3hZ9-BYv0KzGwGCc";
const FIXTURE_PREFIX: &str = "/tmp/RALIO_FIXTURE_DIR";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Copies the directory the Python SDK wrote into `dest`, as the Python SDK left it: the
/// absolute key path pointing into `dest`, modes 0700/0600 (git keeps neither).
fn python_fixture(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-store");
    for sub in ["", "keys", "refresh-tokens"] {
        std::fs::create_dir_all(dest.join(sub)).unwrap();
        std::fs::set_permissions(dest.join(sub), std::fs::Permissions::from_mode(0o700)).unwrap();
        for entry in std::fs::read_dir(src.join(sub)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                let text = std::fs::read_to_string(entry.path())
                    .unwrap()
                    .replace(FIXTURE_PREFIX, dest.to_str().unwrap());
                let target = dest.join(sub).join(entry.file_name());
                std::fs::write(&target, text).unwrap();
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }
}

struct FileHarness {
    dir: PathBuf,
    slot: Option<&'static str>,
}

#[async_trait]
impl Harness for FileHarness {
    fn open(&self) -> Arc<dyn CredentialStore> {
        let store = FileStore::new(&self.dir);
        Arc::new(match self.slot {
            Some(slot) => store.with_refresh_token_slot(slot).unwrap(),
            None => store,
        })
    }

    async fn corrupt_identity(&self) {
        let creds: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("credentials.json")).unwrap())
                .unwrap();
        let key_path = creds["key_path"].as_str().unwrap();
        std::fs::write(
            key_path,
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    store_conformance::run(Arc::new(FileHarness {
        dir: dir.path().join("ralio"),
        slot: Some("worker-1"),
    }))
    .await;
}

/// Without a slot the refresh token lives in the handle's memory, so the suite shares one
/// handle.
struct SharedHandle<H> {
    inner: H,
    handle: Mutex<Option<Arc<dyn CredentialStore>>>,
}

#[async_trait]
impl<H: Harness> Harness for SharedHandle<H> {
    fn open(&self) -> Arc<dyn CredentialStore> {
        let mut handle = self.handle.lock().unwrap();
        Arc::clone(handle.get_or_insert_with(|| self.inner.open()))
    }

    async fn corrupt_identity(&self) {
        self.inner.corrupt_identity().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_without_slot_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    store_conformance::run(Arc::new(SharedHandle {
        inner: FileHarness {
            dir: dir.path().to_path_buf(),
            slot: None,
        },
        handle: Mutex::new(None),
    }))
    .await;
    // Nothing about refresh tokens reached the disk.
    assert!(!dir.path().join("refresh-tokens").exists());
}

struct MemoryHarness(MemoryStore);

#[async_trait]
impl Harness for MemoryHarness {
    fn open(&self) -> Arc<dyn CredentialStore> {
        Arc::new(self.0.clone())
    }

    async fn corrupt_identity(&self) {
        unreachable!("a memory store holds parsed values: nothing in it can be corrupt")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    let harness = Arc::new(MemoryHarness(MemoryStore::new()));
    // A memory store cannot hold a corrupt entry (it stores parsed values), so it runs every
    // check but that one.
    store_conformance::run_without_corruption(harness).await;
}

struct EnvHarness {
    store: Mutex<EnvStore>,
}

#[async_trait]
impl Harness for EnvHarness {
    fn open(&self) -> Arc<dyn CredentialStore> {
        Arc::new(self.store.lock().unwrap().clone())
    }

    async fn put_identity(&self, identity: &Identity) {
        let jwk = identity.private_key().unwrap().to_private_jwk();
        *self.store.lock().unwrap() = EnvStore::from_vars([
            ("RALIO_CLIENT_ID", identity.client_id().to_owned()),
            ("RALIO_PRIVATE_JWK", jwk.expose_secret().to_owned()),
        ]);
    }

    async fn corrupt_identity(&self) {
        *self.store.lock().unwrap() = EnvStore::from_vars([
            ("RALIO_CLIENT_ID", "cb_x"),
            (
                "RALIO_PRIVATE_JWK",
                r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}"#,
            ),
        ]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn env_store_passes_the_conformance_suite() {
    store_conformance::run(Arc::new(EnvHarness {
        store: Mutex::new(EnvStore::from_vars(Vec::<(String, String)>::new())),
    }))
    .await;
}

#[tokio::test]
async fn env_store_reads_pem_and_path_variables_and_explains_what_is_missing() {
    let key = PrivateKey::generate().unwrap();
    let pem = key.to_pkcs8_pem();
    let from_pem = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_env"),
        ("RALIO_PRIVATE_KEY_PEM", pem.expose_secret()),
    ]);
    let id = from_pem.load_identity().await.unwrap().unwrap();
    assert_eq!(
        (id.client_id(), id.thumbprint()),
        ("cb_env", key.thumbprint())
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(&path, pem.expose_secret()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let from_path = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_env"),
        ("RALIO_PRIVATE_KEY_PATH", path.to_str().unwrap()),
    ]);
    assert_eq!(
        from_path
            .load_identity()
            .await
            .unwrap()
            .unwrap()
            .thumbprint(),
        key.thumbprint()
    );

    let no_key = EnvStore::from_vars([("RALIO_CLIENT_ID", "cb_env"), ("RALIO_PRIVATE_JWK", "")]);
    let err = no_key.load_identity().await.unwrap_err().to_string();
    assert!(err.contains("RALIO_PRIVATE_JWK"), "{err}");

    let no_id = EnvStore::from_vars([("RALIO_PRIVATE_KEY_PEM", pem.expose_secret())]);
    let err = no_id.load_identity().await.unwrap_err().to_string();
    assert!(err.contains("RALIO_CLIENT_ID"), "{err}");

    let both = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_env"),
        ("RALIO_PRIVATE_KEY_PEM", pem.expose_secret()),
        ("RALIO_PRIVATE_KEY_PATH", path.to_str().unwrap()),
    ]);
    let err = both.load_identity().await.unwrap_err().to_string();
    assert!(err.contains("set exactly one"), "{err}");

    let debug = format!("{from_pem:?}");
    assert!(!debug.contains("BEGIN"), "Debug hides the key: {debug}");

    let save = from_pem.save_identity(&id).await.unwrap_err();
    assert!(matches!(save, StoreError::Config { .. }), "{save:?}");
}

#[tokio::test]
async fn file_store_reads_what_the_python_sdk_wrote() {
    let dir = tempfile::tempdir().unwrap();
    python_fixture(dir.path());
    let store = FileStore::new(dir.path())
        .with_refresh_token_slot("worker 1/a")
        .unwrap();
    let id = store.load_identity().await.unwrap().unwrap();
    assert_eq!(id.client_id(), "cb_fixture_python");
    assert_eq!(id.thumbprint().as_str(), FIXTURE_JKT);
    let rt = store
        .load_refresh_token()
        .await
        .unwrap()
        .unwrap()
        .refresh_token;
    assert_eq!(rt.expose_secret(), "rt-python-fixture-1");

    // Without key_path, a reader falls back to keys/<key_jkt>.pem (as the Python SDK does).
    let creds_path = dir.path().join("credentials.json");
    let mut creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&creds_path).unwrap()).unwrap();
    creds.as_object_mut().unwrap().remove("key_path");
    std::fs::write(&creds_path, creds.to_string()).unwrap();
    let id = FileStore::new(dir.path())
        .load_identity()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id.thumbprint().as_str(), FIXTURE_JKT);
}

#[tokio::test]
async fn file_store_writes_the_python_layout_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cfg");
    let store = FileStore::new(&root)
        .with_refresh_token_slot("worker 1/a")
        .unwrap();
    let key = PrivateKey::generate().unwrap();
    let location = store
        .save_identity(&Identity::new("cb_rust", key.clone()))
        .await
        .unwrap();
    store
        .save_refresh_token(
            None,
            &RefreshTokenRecord::new(SecretString::from("rt-rust-1".to_owned()), None),
        )
        .await
        .unwrap();

    let key_path = root.join("keys").join(format!("{}.pem", key.thumbprint()));
    assert_eq!(location, key_path.display().to_string());
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("credentials.json")).unwrap()).unwrap();
    assert_eq!(creds["client_id"], "cb_rust");
    assert_eq!(creds["key_jkt"], key.thumbprint().as_str());
    assert_eq!(creds["key_path"], key_path.to_str().unwrap());
    assert_eq!(creds["auth_method"], "private_key_jwt");
    assert!(
        std::fs::read_to_string(&key_path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let rt_path = root.join("refresh-tokens/worker_1_a.json");
    let rt: serde_json::Value = serde_json::from_slice(&std::fs::read(&rt_path).unwrap()).unwrap();
    assert_eq!(rt, serde_json::json!({"refresh_token": "rt-rust-1"}));

    for d in [root.clone(), root.join("keys"), root.join("refresh-tokens")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in [root.join("credentials.json"), key_path, rt_path] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    // Atomic writes leave no temporary files behind.
    for d in [root.clone(), root.join("keys"), root.join("refresh-tokens")] {
        for entry in std::fs::read_dir(&d).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".tmp-"),
                "{name:?} left in {}",
                d.display()
            );
        }
    }

    // The official Python SDK reads it back, when it is available (see
    // tests/fixtures/python-store-README.md).
    if let Ok(sdk) = std::env::var("RALIO_PYTHON_SDK") {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-store-check.py");
        let python = std::env::var("RALIO_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let out = std::process::Command::new(python)
            .env("PYTHONPATH", sdk)
            .arg(script)
            .args([root.to_str().unwrap(), "worker 1/a", "cb_rust", "rt-rust-1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            key.thumbprint().as_str()
        );
    } else {
        eprintln!(
            "skipping the Python read-back: set RALIO_PYTHON_SDK to an unpacked ralio 0.1.4 wheel"
        );
    }
}

#[tokio::test]
async fn a_key_readable_by_others_is_refused_with_the_chmod_to_run() {
    let dir = tempfile::tempdir().unwrap();
    python_fixture(dir.path());
    let key_path = dir.path().join("keys").join(format!("{FIXTURE_JKT}.pem"));
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = FileStore::new(dir.path())
        .load_identity()
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InsecurePermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("chmod 600 {}", key_path.display())),
        "{message}"
    );
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        FileStore::new(dir.path())
            .load_identity()
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn missing_or_broken_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    python_fixture(dir.path());
    let store = FileStore::new(dir.path());
    std::fs::remove_file(dir.path().join("keys").join(format!("{FIXTURE_JKT}.pem"))).unwrap();
    let err = store.load_identity().await.unwrap_err().to_string();
    assert!(err.contains("register again"), "{err}");

    std::fs::write(dir.path().join("credentials.json"), "{not json").unwrap();
    let err = store.load_identity().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    let slot = FileStore::new(dir.path())
        .with_refresh_token_slot("worker 1/a")
        .unwrap();
    std::fs::write(dir.path().join("refresh-tokens/worker_1_a.json"), "[1,2").unwrap();
    let err = slot.load_refresh_token().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    let err = FileStore::new(dir.path())
        .with_refresh_token_slot("")
        .unwrap_err();
    assert!(err.to_string().contains("slot name is empty"), "{err}");
}

#[tokio::test]
async fn staging_a_key_never_touches_the_key_path_and_refuses_a_taken_one_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.pem");
    let store = FileStore::new(dir.path().join("cfg")).with_key_path(&path);
    let first = PrivateKey::generate().unwrap();
    store.stage_key(&first, false).await.unwrap();
    assert!(!path.exists(), "staged apart until the server accepted it");
    store
        .save_identity(&Identity::new("cb_first", first.clone()))
        .await
        .unwrap();
    assert_eq!(
        PrivateKey::from_pem_file(&path).unwrap().thumbprint(),
        first.thumbprint()
    );
    assert!(
        !dir.path().join("cfg/keys").exists(),
        "the staged copy went"
    );

    let second = PrivateKey::generate().unwrap();
    let err = store.stage_key(&second, false).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains("overwrite"), "{err}");
    let staged = store.stage_key(&second, true).await.unwrap().unwrap();
    assert_ne!(staged, path.display().to_string());
    assert_eq!(
        PrivateKey::from_pem_file(&path).unwrap().thumbprint(),
        first.thumbprint(),
        "the live key is untouched while the new one is staged"
    );
    // Discarding removes the staged copy only, never the live key.
    store.discard_staged_key(&second).await.unwrap();
    store.discard_staged_key(&first).await.unwrap();
    assert!(path.exists());
    assert!(!std::path::Path::new(&staged).exists());
    assert_eq!(
        store.load_identity().await.unwrap().unwrap().client_id(),
        "cb_first"
    );
}

const CHILD_DIR_VAR: &str = "RALIO_TEST_LOCK_CHILD_DIR";
const CHILD_ROTATIONS: usize = 20;

/// One side of the cross-process test: rotates the shared slot `CHILD_ROTATIONS` times under
/// the lock. Does nothing unless started by `rotations_are_serialised_across_processes`.
#[tokio::test]
#[ignore = "run by rotations_are_serialised_across_processes in a child process"]
async fn file_lock_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    assert_eq!(rotate_counter(Path::new(&dir), CHILD_ROTATIONS).await, 0);
}

async fn rotate_counter(dir: &Path, times: usize) -> usize {
    let store = FileStore::new(dir)
        .with_refresh_token_slot("shared")
        .unwrap();
    let mut conflicts = 0;
    for _ in 0..times {
        let _lock = store.lock_refresh_token().await.unwrap();
        let current = store
            .load_refresh_token()
            .await
            .unwrap()
            .unwrap()
            .refresh_token;
        let n: usize = current.expose_secret().parse().unwrap();
        // Widen the window between read and write: without the lock, writers would overlap.
        tokio::task::yield_now().await;
        match store
            .save_refresh_token(
                Some(&current),
                &RefreshTokenRecord::new(SecretString::from((n + 1).to_string()), None),
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    conflicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_are_serialised_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    FileStore::new(dir.path())
        .with_refresh_token_slot("shared")
        .unwrap()
        .save_refresh_token(
            None,
            &RefreshTokenRecord::new(SecretString::from("0".to_owned()), None),
        )
        .await
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::file_lock_child_process",
                    "--ignored",
                    "--quiet",
                ])
                .env(CHILD_DIR_VAR, dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process rotates too, through two independent store instances on two tasks.
    let here = tokio::join!(
        rotate_counter(dir.path(), CHILD_ROTATIONS),
        rotate_counter(dir.path(), CHILD_ROTATIONS)
    );
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child process failed");
    }
    assert_eq!(
        (here.0, here.1),
        (0, 0),
        "under the lock no writer is ever stale"
    );
    let last = FileStore::new(dir.path())
        .with_refresh_token_slot("shared")
        .unwrap()
        .load_refresh_token()
        .await
        .unwrap()
        .unwrap()
        .refresh_token;
    assert_eq!(
        last.expose_secret(),
        &(4 * CHILD_ROTATIONS).to_string(),
        "no rotation was lost"
    );
}

const CONFIG_CHILD_VAR: &str = "RALIO_TEST_CONFIG_DIR_CHILD";

/// Reports what `FileStore::from_env` resolves to; runs only when started by
/// `ralio_config_dir_chooses_the_directory` (the environment is per process).
#[test]
#[ignore = "run by ralio_config_dir_chooses_the_directory in a child process"]
fn file_store_from_env_child_process() {
    if std::env::var_os(CONFIG_CHILD_VAR).is_none() {
        return;
    }
    let store = FileStore::from_env().unwrap();
    println!("RESOLVED={}", store.dir().display());
}

fn resolved_dir(config_dir: Option<&str>, home: &Path) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "store::file_store_from_env_child_process",
        "--ignored",
        "--nocapture",
        "--quiet",
    ])
    .env(CONFIG_CHILD_VAR, "1")
    .env("HOME", home);
    match config_dir {
        Some(dir) => cmd.env("RALIO_CONFIG_DIR", dir),
        None => cmd.env_remove("RALIO_CONFIG_DIR"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RESOLVED=").map(str::to_owned))
        .unwrap()
}

#[test]
fn ralio_config_dir_chooses_the_directory() {
    let home = tempfile::tempdir().unwrap();
    let default = home.path().join(".ralio").display().to_string();
    assert_eq!(
        resolved_dir(Some("/srv/agent/creds"), home.path()),
        "/srv/agent/creds"
    );
    assert_eq!(resolved_dir(None, home.path()), default);
    // An empty variable counts as unset.
    assert_eq!(resolved_dir(Some(""), home.path()), default);
}

/// A client id names files, keyring entries and is shown to the user: the stores refuse one
/// that is not `cb_` and `[A-Za-z0-9_-]`, when loading and when saving.
#[tokio::test]
async fn stores_refuse_client_ids_that_are_not_cb_and_a_safe_charset() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let key = PrivateKey::generate().unwrap();
    let err = store
        .save_identity(&Identity::new("../../etc/x", key.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(!dir.path().join("credentials.json").exists());

    // A credentials.json written by hand (or by an older version) with such an id.
    store
        .save_identity(&Identity::new("cb_good", key.clone()))
        .await
        .unwrap();
    let path = dir.path().join("credentials.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["client_id"] = "../../etc/x".into();
    std::fs::write(&path, json.to_string()).unwrap();
    let err = store.load_identity().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("not a valid client id"), "{err}");

    let env = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_x\u{1b}[2J".to_owned()),
        (
            "RALIO_PRIVATE_JWK",
            key.to_private_jwk().expose_secret().to_owned(),
        ),
    ]);
    let err = env.load_identity().await.unwrap_err();
    assert!(err.to_string().contains("not a valid client id"), "{err}");
}

/// `refresh-tokens/<slot>.json` carries the token's issuer; a file without it (as the Python
/// SDK writes it) holds a legacy token, and fields neither SDK knows are ignored.
#[tokio::test]
async fn file_slot_keeps_the_issuer_and_reads_python_files_with_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path())
        .with_refresh_token_slot("worker")
        .unwrap();
    let path = store.refresh_token_path().unwrap();
    store
        .save_refresh_token(
            None,
            &RefreshTokenRecord::new(
                SecretString::from("rt-rust".to_owned()),
                Some("https://api.ralio.co/oauth/token".to_owned()),
            ),
        )
        .await
        .unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        written,
        serde_json::json!({"refresh_token": "rt-rust", "issuer": "https://api.ralio.co/oauth/token"})
    );

    let write = |body: serde_json::Value| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&path, body.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    // The Python SDK's file: no issuer, and a field this SDK does not know.
    write(serde_json::json!({"refresh_token": "rt-python", "obtained_at": 1700000000}));
    let record = store.load_refresh_token().await.unwrap().unwrap();
    assert_eq!(record.refresh_token.expose_secret(), "rt-python");
    assert_eq!(record.issuer, None);
    // A newer file with fields neither SDK knows yet.
    write(serde_json::json!({
        "refresh_token": "rt-next", "issuer": "https://api.ralio.co/oauth/token",
        "family": {"id": 7}, "scope": null
    }));
    let record = store.load_refresh_token().await.unwrap().unwrap();
    assert_eq!(record.refresh_token.expose_secret(), "rt-next");
    assert_eq!(
        record.issuer.as_deref(),
        Some("https://api.ralio.co/oauth/token")
    );
    // An issuer that is not a string is a corrupt file, not a legacy token.
    write(serde_json::json!({"refresh_token": "rt-x", "issuer": 5}));
    let err = store.load_refresh_token().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(!err.to_string().contains("rt-x"), "{err}");
}

/// A registered file store in `dir`: its key file and the key.
async fn registered_file_store(dir: &Path) -> (FileStore, PrivateKey) {
    let key = PrivateKey::generate().unwrap();
    let store = FileStore::new(dir);
    store
        .save_identity(&Identity::new("cb_report", key.clone()))
        .await
        .unwrap();
    (store, key)
}

fn rewrite_credentials(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("credentials.json");
    let mut creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut creds);
    std::fs::write(&path, creds.to_string()).unwrap();
}

/// `ralio doctor` reads the file store's report, so the key file the report names must be the
/// one `load_identity` reads, for a relative `key_path` too (relative to the working
/// directory, as for any path: the key here sits relative to the credential directory, where
/// neither looks).
#[tokio::test]
async fn file_store_report_names_the_key_file_load_identity_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = registered_file_store(dir.path()).await;
    let relative = format!("keys/{}.pem", key.thumbprint());
    assert!(dir.path().join(&relative).exists());
    assert!(
        !Path::new(&relative).exists(),
        "the test's cwd holds {relative}"
    );
    rewrite_credentials(dir.path(), |c| c["key_path"] = relative.clone().into());

    let err = store.load_identity().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Missing { what, .. } if what.ends_with(&relative)),
        "{err:?}"
    );
    let report = store.report().await;
    let ralio::store::StoreLocation::File(loc) = &report.location else {
        panic!("{report:?}")
    };
    assert_eq!(loc.key_file.as_deref(), Some(Path::new(&relative)));
    assert_eq!(loc.key_file_mode, None);
    assert!(report.key.is_none(), "{report:?}");
    assert!(
        report.problems.iter().any(|p| matches!(
            p,
            ralio::store::StoreProblem::Missing { what } if what.ends_with(&relative)
        )),
        "{report:?}"
    );

    // A relative path that does resolve from the working directory: both find the key there.
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count() - 1);
    let from_cwd = format!(
        "{up}{}",
        dir.path()
            .join(&relative)
            .strip_prefix("/")
            .unwrap()
            .display()
    );
    rewrite_credentials(dir.path(), |c| c["key_path"] = from_cwd.clone().into());
    let loaded = store.load_identity().await.unwrap().unwrap();
    let report = store.report().await;
    let ralio::store::StoreLocation::File(loc) = &report.location else {
        panic!("{report:?}")
    };
    assert_eq!(loc.key_file.as_deref(), Some(Path::new(&from_cwd)));
    assert_eq!(
        report.key.as_ref().map(|k| k.thumbprint.as_str()),
        Some(loaded.thumbprint().as_str())
    );
    assert!(report.is_healthy(), "{report:?}");
}

#[tokio::test]
async fn file_store_report_names_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = registered_file_store(dir.path()).await;
    let key_file = store.key_path_for(key.thumbprint().as_str());
    let report = store.report().await;
    let ralio::store::StoreLocation::File(loc) = &report.location else {
        panic!("{report:?}")
    };
    assert_eq!(loc.key_file_mode, Some(0o600));
    assert_eq!(loc.credentials_file, dir.path().join("credentials.json"));
    assert_eq!(
        report.key.as_ref().unwrap().recorded_thumbprint.as_deref(),
        Some(key.thumbprint().as_str())
    );
    assert_eq!(report.staged_keys, Some(Vec::new()));
    assert!(report.is_healthy(), "{report:?}");

    // A world-readable key and a recorded thumbprint that is not the key's: both reported,
    // and the key's thumbprint is still known.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let other = "0000000000000000000000000000000000000000000";
    rewrite_credentials(dir.path(), |c| c["key_jkt"] = other.into());
    // A key of an earlier registration, which credentials.json no longer names.
    let earlier = PrivateKey::generate().unwrap();
    let earlier_file = store.key_path_for(earlier.thumbprint().as_str());
    std::fs::write(&earlier_file, earlier.to_pkcs8_pem().expose_secret()).unwrap();
    let report = store.report().await;
    let found = report.key.as_ref().unwrap();
    assert_eq!(found.thumbprint, key.thumbprint().as_str());
    assert!(found.mismatched());
    assert_eq!(
        report.problems,
        vec![
            ralio::store::StoreProblem::InsecurePermissions {
                path: key_file.clone(),
                mode: 0o644
            },
            ralio::store::StoreProblem::ThumbprintMismatch {
                what: key_file.display().to_string(),
                recorded: other.to_owned(),
                found: key.thumbprint().as_str().to_owned(),
            },
        ]
    );
    assert_eq!(
        report.staged_keys,
        Some(vec![earlier.thumbprint().as_str().to_owned()])
    );
    assert!(!report.is_healthy());
    // The client refuses the same store.
    assert!(store.load_identity().await.is_err());

    // credentials.json that is not JSON: a problem, never the parser's text (it may quote a
    // token the Python SDK keeps there).
    std::fs::write(
        dir.path().join("credentials.json"),
        "{\"refresh_token\": rt-secret",
    )
    .unwrap();
    let report = store.report().await;
    assert_eq!(report.identity, ralio::store::Presence::Unknown);
    assert!(!format!("{report:?}").contains("rt-secret"), "{report:?}");
    assert_eq!(
        report.problems[0].to_string(),
        format!(
            "{} is unusable: it is not a JSON object",
            dir.path().join("credentials.json").display()
        )
    );
}

#[tokio::test]
async fn file_store_report_reads_the_refresh_token_slot_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    registered_file_store(dir.path()).await;
    let store = FileStore::new(dir.path())
        .with_refresh_token_slot("worker-1")
        .unwrap();
    let report = store.report().await;
    assert_eq!(report.refresh_token, ralio::store::Presence::Absent);
    let slot = store.refresh_token_path().unwrap();
    std::fs::create_dir_all(slot.parent().unwrap()).unwrap();
    std::fs::write(
        &slot,
        r#"{"refresh_token":"rt-slot-secret","issuer":"https://api.ralio.test/oauth/token"}"#,
    )
    .unwrap();
    std::fs::set_permissions(&slot, std::fs::Permissions::from_mode(0o600)).unwrap();
    let report = store.report().await;
    assert_eq!(report.refresh_token, ralio::store::Presence::Present);
    assert_eq!(
        report.issuer.as_deref(),
        Some("https://api.ralio.test/oauth/token")
    );
    assert!(!format!("{report:?}").contains("rt-slot-secret"));
    // Readable by others: a problem naming the file, as loading it fails.
    std::fs::set_permissions(&slot, std::fs::Permissions::from_mode(0o640)).unwrap();
    let report = store.report().await;
    assert_eq!(report.refresh_token, ralio::store::Presence::Unknown);
    assert_eq!(
        report.problems,
        vec![ralio::store::StoreProblem::InsecurePermissions {
            path: slot,
            mode: 0o640
        }]
    );
}

#[tokio::test]
async fn env_store_report_names_the_variables_never_their_values() {
    let key = PrivateKey::generate().unwrap();
    let jwk = key.to_private_jwk();
    let store = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_env"),
        ("RALIO_PRIVATE_JWK", jwk.expose_secret()),
    ]);
    let report = store.report().await;
    assert_eq!(report.kind, ralio::store::StoreKind::Env);
    let ralio::store::StoreLocation::Env { set, variables, .. } = &report.location else {
        panic!("{report:?}")
    };
    assert_eq!(set, &["RALIO_CLIENT_ID", "RALIO_PRIVATE_JWK"]);
    assert_eq!(variables.len(), 4);
    assert_eq!(
        report.key.as_ref().unwrap().thumbprint,
        key.thumbprint().as_str()
    );
    let d: serde_json::Value = serde_json::from_str(jwk.expose_secret()).unwrap();
    assert!(!format!("{report:?}").contains(d["d"].as_str().unwrap()));
    // Two key variables: the store's configuration error, as a problem.
    let both = EnvStore::from_vars([
        ("RALIO_CLIENT_ID", "cb_env".to_owned()),
        ("RALIO_PRIVATE_JWK", jwk.expose_secret().to_owned()),
        (
            "RALIO_PRIVATE_KEY_PEM",
            key.to_pkcs8_pem().expose_secret().to_owned(),
        ),
    ]);
    let report = both.report().await;
    assert!(
        matches!(&report.problems[..], [ralio::store::StoreProblem::Config { reason }] if reason.contains("more than one")),
        "{report:?}"
    );
}
