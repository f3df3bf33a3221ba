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

/// The WARN line of a failed early renewal carries the server's description Debug-escaped: a
/// CR, LF or bidi control in it cannot forge a log line or reorder one (issue 23, item 8).
#[tokio::test]
async fn a_warn_line_escapes_the_servers_line_breaks_and_bidi_controls() {
    run_child("auth_tracing::warn_line_child", "WARN-ESCAPED OK").await;
}

#[tokio::test]
#[ignore = "run by a_warn_line_escapes_the_servers_line_breaks_and_bidi_controls in a child process"]
async fn warn_line_child() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    if !in_child() {
        return;
    }
    let capture = Capture::install_global();
    const FORGED: &str = "FORGED  INFO ralio: renewal succeeded";
    // The first token lives 4 s (renewed early after 2 s); every later request is refused
    // with a description that tries to start a log line of its own and reverse the rest.
    let calls = Arc::new(AtomicU32::new(0));
    let token = move || {
        let calls = Arc::clone(&calls);
        async move {
            use axum::response::IntoResponse as _;
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return axum::Json(json!({
                    "access_token": "at-0", "token_type": "DPoP", "expires_in": 4,
                    "refresh_token": "rt-0",
                }))
                .into_response();
            }
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "error": "invalid_client",
                    "error_description": format!("refused\r\n{FORGED} \u{202e}exe.txt\u{2066}"),
                })),
            )
                .into_response()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/token", axum::routing::post(token));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let tm = ralio::auth::TokenManager::builder(
        ralio::auth::TokenManagerConfig::new(&format!("http://{addr}/token"), "demo").unwrap(),
        std::sync::Arc::new(ralio::keys::PrivateKey::generate().unwrap()),
    )
    .build()
    .unwrap();
    let first = tm.access_token().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let again = tm.access_token().await.unwrap();
    assert_eq!(again.expose_secret(), first.expose_secret(), "still valid");

    let log = capture.text();
    let warn = log
        .lines()
        .find(|l| l.contains("early renewal of the access token failed"))
        .unwrap_or_else(|| panic!("no WARN line: {log}"));
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains(r"refused\r\nFORGED"), "escaped: {warn}");
    assert!(
        warn.contains(r"\u{202e}") && warn.contains(r"\u{2066}"),
        "{warn}"
    );
    assert!(!log.contains('\r'), "no raw CR anywhere: {log:?}");
    assert!(
        !log.contains('\u{202e}') && !log.contains('\u{2066}'),
        "no raw bidi control anywhere: {log:?}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "no forged line: {log}"
    );
    println!("WARN-ESCAPED OK");
}
