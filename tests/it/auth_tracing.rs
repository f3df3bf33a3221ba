//! Nothing secret reaches `tracing`, even at TRACE level, over a full mint/refresh/request cycle.

use std::io::Write;
use std::sync::{Arc, Mutex};

use ralio_sandbox::{NonceMode, Sandbox};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::auth_sandbox::{env_with, http};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the cycle below in a child process with a global subscriber: a thread-local subscriber
/// (`set_default`) in a test binary that runs other tests in parallel can miss events, because
/// tracing caches each callsite's interest process-wide; the test would then fail (or, worse,
/// pass) for the wrong reason.
#[tokio::test]
async fn trace_output_of_a_full_cycle_holds_no_secret() {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "auth_tracing::full_cycle_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RALIO_AUTH_TRACING_CHILD", "1")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("AUTH-TRACING OK"), "{stdout}");
}

#[tokio::test]
#[ignore = "run by trace_output_of_a_full_cycle_holds_no_secret in a child process"]
async fn full_cycle_child() {
    if std::env::var("RALIO_AUTH_TRACING_CHILD").is_err() {
        return;
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let env = env_with(
        Sandbox::builder()
            .nonce_mode(NonceMode::Require)
            .start()
            .await
            .unwrap(),
    )
    .await;
    let tm = env.manager();
    let (client, rec) = http(&tm);
    let mut refresh_tokens = Vec::new();
    assert_eq!(
        client
            .get(env.url("/api/agents"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    refresh_tokens.push(env.store.current().unwrap());
    let chat = client
        .post(env.url("/api/chat"))
        .json(&json!({"agent_id": env.sandbox.default_agent_id(), "message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // Server clock jumps: invalid_token → refresh (rotation) → retry.
    let mut faults = env.sandbox.faults();
    faults.clock_offset_secs = 3600;
    env.sandbox.set_faults(faults);
    assert_eq!(
        client
            .get(env.url("/api/agents"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    refresh_tokens.push(env.store.current().unwrap());
    assert_eq!(env.sandbox.counters().refreshes, 1);
    // Debug output of everything a user might log.
    tracing::debug!(?tm, info = ?tm.token_info(), key = ?env.key, token = ?tm.access_token().await.unwrap(), "user logs");

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("minting an access token"), "{log}");
    assert!(log.contains("refreshing"), "{log}");

    let mut secrets: Vec<String> = Vec::new();
    for (proof, authz) in rec.0.lock().unwrap().iter() {
        secrets.push(proof.clone());
        secrets.push(proof.split('.').nth(2).unwrap().to_owned()); // signature
        secrets.push(authz.trim_start_matches("DPoP ").to_owned());
    }
    for rt in &refresh_tokens {
        secrets.push(rt.expose_secret().to_owned());
    }
    let jwk: serde_json::Value =
        serde_json::from_str(env.key.to_private_jwk().expose_secret()).unwrap();
    secrets.push(jwk["d"].as_str().unwrap().to_owned());
    for line in env.key.to_pkcs8_pem().expose_secret().lines() {
        if !line.starts_with("-----") {
            secrets.push(line.to_owned());
        }
    }
    assert!(secrets.len() > 10);
    for s in &secrets {
        assert!(!s.is_empty());
        assert!(
            !log.contains(s.as_str()),
            "secret {s:.8}… leaked into the log"
        );
    }
    // Any JWS (proof or client assertion) starts with base64url of `{"`.
    assert!(!log.contains("eyJ"), "a JWT leaked into the log");
    for prefix in ["rat_", "rrt_"] {
        assert!(!log.contains(prefix), "a sandbox token leaked into the log");
    }
    println!("AUTH-TRACING OK");
}
