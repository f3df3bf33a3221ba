//! Registration against the sandbox: the synchronous flow, every refusal, the legacy approval
//! flow, and what each store holds afterwards.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ralio::register::{
    Binding, RegisterOptions, RegistrationError, RegistrationErrorCode, RegistrationProgress,
    register,
};
use ralio::store::{CredentialStore, FileStore, MemoryStore};
use ralio_sandbox::{Sandbox, TicketSpec};
use secrecy::ExposeSecret as _;

async fn sandbox() -> Sandbox {
    Sandbox::builder().start().await.unwrap()
}

fn options(sandbox: &Sandbox, ticket: &str) -> RegisterOptions {
    RegisterOptions::new()
        .base_url(sandbox.base_url())
        .ticket(ticket)
}

fn pem_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn registration_saves_the_identity_and_the_first_refresh_token() {
    let sandbox = sandbox().await;
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path())
        .with_refresh_token_slot("main")
        .unwrap();

    let binding: Binding = register(&store, options(&sandbox, &ticket)).await.unwrap();

    assert!(binding.client_id.starts_with("cb_"), "{binding:?}");
    let mut scopes = binding.scopes.clone();
    scopes.sort();
    assert_eq!(scopes, ["agents:execute", "transactions:read"]);
    let key_path = dir
        .path()
        .join("keys")
        .join(format!("{}.pem", binding.fingerprint));
    assert_eq!(binding.key_location, key_path.display().to_string());

    let identity = store.load_identity().await.unwrap().unwrap();
    assert_eq!(identity.client_id(), binding.client_id);
    assert_eq!(identity.thumbprint().as_str(), binding.fingerprint);
    assert!(store.load_refresh_token().await.unwrap().is_some());
    let counters = sandbox.counters();
    assert_eq!((counters.registrations, counters.token_mints), (1, 1));
}

#[tokio::test]
async fn a_second_registration_is_refused_unless_overwrite_is_asked() {
    let sandbox = sandbox().await;
    let store = MemoryStore::new();
    let first = register(
        &store,
        options(&sandbox, &sandbox.mint_ticket(TicketSpec::default())),
    )
    .await
    .unwrap();

    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let err = register(&store, options(&sandbox, &ticket))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistrationError::AlreadyRegistered { client_id, .. } if *client_id == first.client_id),
        "{err:?}"
    );
    assert!(err.to_string().contains("overwrite"), "{err}");
    assert_eq!(sandbox.counters().registrations, 1, "nothing was sent");

    let second = register(&store, options(&sandbox, &ticket).overwrite(true))
        .await
        .unwrap();
    assert_ne!(second.client_id, first.client_id);
    let stored = store.load_identity().await.unwrap().unwrap();
    assert_eq!(stored.client_id(), second.client_id);
}

#[tokio::test]
async fn a_consumed_ticket_says_when_and_asks_for_revocation_and_leaves_no_key() {
    let sandbox = sandbox().await;
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    register(&MemoryStore::new(), options(&sandbox, &ticket))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let err = register(&store, options(&sandbox, &ticket))
        .await
        .unwrap_err();
    let RegistrationError::Refused {
        status,
        code,
        used_at,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*status, code),
        (
            reqwest::StatusCode::CONFLICT,
            &RegistrationErrorCode::TicketAlreadyConsumed
        )
    );
    assert!(used_at.is_some(), "the sandbox reports when it was used");
    let message = err.to_string();
    assert!(message.contains("used at"), "{message}");
    assert!(
        message.contains("revoke the credential it created"),
        "{message}"
    );
    assert!(
        !message.contains(&ticket),
        "the ticket never shows: {message}"
    );
    // The key written before the request is gone again, and no identity was saved.
    assert!(pem_files(&dir.path().join("keys")).is_empty());
    assert!(store.load_identity().await.unwrap().is_none());
}

#[tokio::test]
async fn refusals_map_to_codes_and_other_stores_never_see_the_key() {
    let sandbox = sandbox().await;
    let store = MemoryStore::new();

    let err = register(&store, options(&sandbox, "ralio-reg-not-a-real-ticket"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RegistrationError::Refused {
                code: RegistrationErrorCode::InvalidTicket,
                ..
            }
        ),
        "{err:?}"
    );

    let narrow = sandbox.mint_ticket(TicketSpec {
        scopes: vec!["agents:execute".to_owned()],
        ..TicketSpec::default()
    });
    let err = register(
        &store,
        options(&sandbox, &narrow).requested_scopes(["transactions:read"]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            RegistrationError::Refused {
                code: RegistrationErrorCode::ScopeExceedsTicketCeiling,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("higher scope ceiling"), "{err}");

    let expired = sandbox.mint_ticket(TicketSpec {
        expires_in: Duration::ZERO,
        ..TicketSpec::default()
    });
    let err = register(&store, options(&sandbox, &expired))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            RegistrationError::Refused {
                code: RegistrationErrorCode::TicketExpired | RegistrationErrorCode::InvalidTicket,
                ..
            }
        ),
        "{err:?}"
    );

    assert!(store.load_identity().await.unwrap().is_none());
    assert!(store.load_refresh_token().await.unwrap().is_none());
}

#[tokio::test]
async fn no_ticket_is_a_clear_error_before_any_request() {
    // RALIO_REGISTRATION_TICKET is not set in the test environment.
    if std::env::var_os("RALIO_REGISTRATION_TICKET").is_some() {
        eprintln!("skipping: RALIO_REGISTRATION_TICKET is set in this environment");
        return;
    }
    let err = register(
        &MemoryStore::new(),
        RegisterOptions::new().base_url("http://127.0.0.1:9"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistrationError::MissingTicket), "{err:?}");
    assert!(err.to_string().contains("RALIO_REGISTRATION_TICKET"));
}

fn legacy_options(sandbox: &Sandbox, ticket: &str) -> RegisterOptions {
    options(sandbox, ticket).poll_interval(Duration::from_millis(20))
}

#[tokio::test]
async fn legacy_flow_polls_until_the_owner_approves() {
    let sandbox = Arc::new(
        Sandbox::builder()
            .legacy_registration(true)
            .start()
            .await
            .unwrap(),
    );
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let approver = {
        let sandbox = Arc::clone(&sandbox);
        tokio::spawn(async move {
            loop {
                if let Some(fp) = sandbox.pending_binding_fingerprints().first() {
                    return sandbox.approve_binding(fp).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let binding = register(
        &store,
        legacy_options(&sandbox, &ticket)
            .on_progress(move |p| seen.lock().unwrap().push(p.clone())),
    )
    .await
    .unwrap();
    let approved = approver.await.unwrap();
    assert_eq!(binding.client_id, approved);

    let events = events.lock().unwrap().clone();
    assert!(matches!(
        events.first(),
        Some(RegistrationProgress::Submitting { .. })
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RegistrationProgress::AwaitingApproval { fingerprint, .. } if *fingerprint == binding.fingerprint)),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(RegistrationProgress::Active { client_id, .. }) if *client_id == approved)
    );
    assert_eq!(
        store.load_identity().await.unwrap().unwrap().client_id(),
        approved
    );
}

#[tokio::test]
async fn legacy_flow_rejection_and_timeout_are_registration_errors() {
    let sandbox = Arc::new(
        Sandbox::builder()
            .legacy_registration(true)
            .start()
            .await
            .unwrap(),
    );
    let rejecter = {
        let sandbox = Arc::clone(&sandbox);
        tokio::spawn(async move {
            loop {
                if let Some(fp) = sandbox.pending_binding_fingerprints().first() {
                    sandbox.reject_binding(fp).unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let err = register(
        &store,
        legacy_options(&sandbox, &sandbox.mint_ticket(TicketSpec::default())),
    )
    .await
    .unwrap_err();
    rejecter.await.unwrap();
    assert!(
        matches!(err, RegistrationError::ApprovalRejected { .. }),
        "{err:?}"
    );
    assert!(
        pem_files(&dir.path().join("keys")).is_empty(),
        "the rejected key is removed"
    );

    let err = register(
        &store,
        legacy_options(&sandbox, &sandbox.mint_ticket(TicketSpec::default()))
            .approval_timeout(Duration::from_millis(60)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RegistrationError::ApprovalTimedOut { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("approve"), "{err}");
    assert!(store.load_identity().await.unwrap().is_none());
}

/// A server that echoes a fingerprint other than the key's: the binding is live under a key
/// this host does not hold.
#[tokio::test]
async fn a_fingerprint_mismatch_deletes_the_key_and_says_to_revoke() {
    use axum::{Json, Router, routing::post};
    let app = Router::new().route(
        "/api/credential-bindings/registrations",
        post(|| async {
            (
                axum::http::StatusCode::CREATED,
                Json(serde_json::json!({"client_id": "cb_wrong", "fingerprint": "not-our-key"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let err = register(
        &store,
        RegisterOptions::new()
            .base_url(format!("http://{addr}/"))
            .ticket("ralio-reg-x"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistrationError::FingerprintMismatch { client_id, server, .. } if client_id == "cb_wrong" && server == "not-our-key"),
        "{err:?}"
    );
    assert!(err.to_string().contains("revoke"), "{err}");
    assert!(pem_files(&dir.path().join("keys")).is_empty());
    assert!(store.load_identity().await.unwrap().is_none());
}

#[tokio::test]
async fn the_registered_key_and_refresh_token_work_against_the_server() {
    // The saved refresh token is a live one: the sandbox accepts it for a refresh grant.
    let sandbox = sandbox().await;
    let store = MemoryStore::new();
    let binding = register(
        &store,
        options(&sandbox, &sandbox.mint_ticket(TicketSpec::default())),
    )
    .await
    .unwrap();
    let rt = store.load_refresh_token().await.unwrap().unwrap();
    let response = reqwest::Client::new()
        .post(sandbox.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.expose_secret()),
            ("client_id", binding.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// A server that answers 201 with a client id that could name a path or collide with another
/// keyring entry: refused before anything is written.
#[tokio::test]
async fn a_client_id_that_is_not_cb_and_safe_is_refused_before_anything_is_written() {
    use axum::{Json, Router, routing::post};
    let app = Router::new().route(
        "/api/credential-bindings/registrations",
        post(|| async {
            (
                axum::http::StatusCode::CREATED,
                Json(serde_json::json!({"client_id": "../../etc/x", "fingerprint": "not-checked-first"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("cfg"));
    let err = register(
        &store,
        RegisterOptions::new()
            .base_url(format!("http://{addr}/"))
            .ticket("ralio-reg-x"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistrationError::UnexpectedResponse { reason, .. } if reason.contains("not a valid client id")),
        "{err:?}"
    );
    assert!(store.load_identity().await.unwrap().is_none());
    assert!(pem_files(&dir.path().join("cfg/keys")).is_empty());
    assert!(!dir.path().join("etc").exists());
}

/// A pasted ticket often carries a newline or spaces: they are trimmed (as the Python SDK
/// does); a ticket of whitespace only is a clear error before any request.
#[tokio::test]
async fn a_ticket_with_surrounding_whitespace_is_trimmed_and_a_blank_one_refused() {
    let sandbox = sandbox().await;
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let store = MemoryStore::new();
    let binding = register(&store, options(&sandbox, &format!(" \t{ticket}\r\n")))
        .await
        .unwrap();
    assert!(binding.client_id.starts_with("cb_"));

    // Port 9 (discard): a request would fail with a transport error, not this one.
    let err = register(
        &MemoryStore::new(),
        RegisterOptions::new()
            .base_url("http://127.0.0.1:9")
            .ticket(" \n\t "),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistrationError::EmptyTicket), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
}
