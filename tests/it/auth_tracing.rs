//! Nothing secret reaches `tracing`, even at TRACE level, over a full mint/refresh/request cycle.

use ralio_sandbox::{NonceMode, Sandbox};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::auth_sandbox::{env_with, http};
use crate::capture::{Capture, in_child, run_child};
use crate::support::held;

/// Runs the cycle below in a child process with a global subscriber (see `capture`).
#[tokio::test]
async fn trace_output_of_a_full_cycle_holds_no_secret() {
    run_child("auth_tracing::full_cycle_child", "AUTH-TRACING OK").await;
}

#[tokio::test]
#[ignore = "run by trace_output_of_a_full_cycle_holds_no_secret in a child process"]
async fn full_cycle_child() {
    if !in_child() {
        return;
    }
    let capture = Capture::install_global();

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
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    refresh_tokens.push(held(&env.store).await.unwrap().refresh_token);
    let chat = client
        .post(env.url("/api/chat"))
        .json(&json!({"agent_id": env.sandbox.default_agent_id(), "message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // Server clock jumps: invalid_token → refresh (rotation) → retry.
    env.set_clock_offset(3600);
    assert_eq!(env.get_status(&client, "/api/agents").await, 200);
    refresh_tokens.push(held(&env.store).await.unwrap().refresh_token);
    assert_eq!(env.sandbox.counters().refreshes, 1);
    // Debug output of everything a user might log.
    tracing::debug!(?tm, info = ?tm.token_info(), key = ?env.key, token = ?tm.access_token().await.unwrap(), "user logs");

    let log = capture.text();
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
