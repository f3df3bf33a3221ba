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
    assert!(message.contains("if it was you"), "{message}");
    assert!(message.contains("ralio whoami"), "{message}");
    assert!(!message.contains("someone else"), "{message}");
    assert_eq!(
        message.matches("revoke").count(),
        1,
        "advice once: {message}"
    );
    assert!(
        !message.contains(&ticket),
        "the ticket never shows: {message}"
    );
    // The key written before the request is gone again, with the directory it created, and no
    // identity was saved.
    assert!(pem_files(&dir.path().join("keys")).is_empty());
    assert!(!dir.path().join("keys").exists(), "no empty keys/ left");
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
    let rt = store
        .load_refresh_token()
        .await
        .unwrap()
        .unwrap()
        .refresh_token;
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

// ---- issue 13.4: a registration that waits for approval survives a timeout ----

async fn legacy_sandbox() -> Arc<Sandbox> {
    Arc::new(
        Sandbox::builder()
            .legacy_registration(true)
            .start()
            .await
            .unwrap(),
    )
}

/// Times out a legacy registration into `store` (the owner has not decided yet) and returns
/// the error.
async fn timed_out(sandbox: &Sandbox, store: &dyn CredentialStore) -> RegistrationError {
    register(
        store,
        legacy_options(sandbox, &sandbox.mint_ticket(TicketSpec::default()))
            .approval_timeout(Duration::from_millis(60)),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn a_timed_out_registration_is_kept_and_resume_ends_in_an_active_binding() {
    let sandbox = legacy_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let err = timed_out(&sandbox, &FileStore::new(dir.path())).await;
    let RegistrationError::ApprovalTimedOut {
        fingerprint,
        pending: Some(kept),
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(err.to_string().contains("ralio register --resume"), "{err}");
    assert!(kept.contains(&dir.path().display().to_string()), "{kept}");
    // The key and the record stay; neither the poll token nor the key is in the message.
    assert_eq!(
        pem_files(&dir.path().join("keys")),
        [format!("{fingerprint}.pem")]
    );
    let record = std::fs::read_to_string(dir.path().join("pending-registration.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let poll_token = record["poll_token"].as_str().unwrap().to_owned();
    assert!(!format!("{err} {err:?}").contains(&poll_token));

    // The owner approves after the timeout; a later process (a new store value) resumes.
    let approved = sandbox.approve_binding(fingerprint).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let store = Arc::new(FileStore::new(dir.path()));
    let binding = ralio::register::resume(
        &*store,
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .on_progress(move |p| seen.lock().unwrap().push(p.clone())),
    )
    .await
    .unwrap();
    assert_eq!(binding.client_id, approved);
    assert_eq!(&binding.fingerprint, fingerprint);
    assert!(
        matches!(events.lock().unwrap().last(), Some(RegistrationProgress::Active { client_id, .. }) if *client_id == approved)
    );
    assert!(!dir.path().join("pending-registration.json").exists());
    assert_eq!(
        store.load_identity().await.unwrap().unwrap().client_id(),
        approved
    );
    // The binding works.
    let client = ralio::RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store)
        .build()
        .await
        .unwrap();
    assert_eq!(client.agents().list().await.unwrap().len(), 1);
    // Nothing is left to resume.
    let again = ralio::register::resume(
        &FileStore::new(dir.path()),
        RegisterOptions::new().base_url(sandbox.base_url()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(again, RegistrationError::NothingToResume { .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn resume_with_nothing_pending_says_so_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    for store in [
        Box::new(FileStore::new(dir.path())) as Box<dyn CredentialStore>,
        Box::new(MemoryStore::new()),
    ] {
        // Port 9 (discard): a request would fail with a transport error, not this one.
        let err = ralio::register::resume(
            &*store,
            RegisterOptions::new().base_url("http://127.0.0.1:9"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, RegistrationError::NothingToResume { .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("nothing to resume"), "{err}");
        assert!(err.to_string().contains(&store.describe()), "{err}");
    }
}

#[tokio::test]
async fn a_registration_rejected_after_resume_deletes_the_key_and_the_record() {
    let sandbox = legacy_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let RegistrationError::ApprovalTimedOut { fingerprint, .. } = timed_out(&sandbox, &store).await
    else {
        panic!("not a timeout");
    };
    sandbox.reject_binding(&fingerprint).unwrap();
    let err = ralio::register::resume(
        &store,
        legacy_options(&sandbox, "unused").approval_timeout(Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RegistrationError::ApprovalRejected { .. }),
        "{err:?}"
    );
    assert!(pem_files(&dir.path().join("keys")).is_empty());
    assert!(!dir.path().join("pending-registration.json").exists());
    assert!(store.load_identity().await.unwrap().is_none());
}

#[tokio::test]
async fn a_new_registration_over_a_pending_one_is_refused_unless_overwrite() {
    let sandbox = legacy_sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let RegistrationError::ApprovalTimedOut { fingerprint, .. } = timed_out(&sandbox, &store).await
    else {
        panic!("not a timeout");
    };
    let registrations = sandbox.counters().registrations;
    let err = register(
        &store,
        legacy_options(&sandbox, &sandbox.mint_ticket(TicketSpec::default())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistrationError::AlreadyPending { fingerprint: f, .. } if *f == fingerprint),
        "{err:?}"
    );
    assert_eq!(
        sandbox.counters().registrations,
        registrations,
        "nothing sent"
    );
    assert_eq!(
        pem_files(&dir.path().join("keys")),
        [format!("{fingerprint}.pem")]
    );

    // Overwrite abandons it (its key goes) and registers anew.
    let approver = {
        let sandbox = Arc::clone(&sandbox);
        let old = fingerprint.clone();
        tokio::spawn(async move {
            loop {
                if let Some(fp) = sandbox
                    .pending_binding_fingerprints()
                    .into_iter()
                    .find(|f| *f != old)
                {
                    return sandbox.approve_binding(&fp).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let binding = register(
        &store,
        legacy_options(&sandbox, &sandbox.mint_ticket(TicketSpec::default())).overwrite(true),
    )
    .await
    .unwrap();
    assert_eq!(binding.client_id, approver.await.unwrap());
    assert_eq!(
        pem_files(&dir.path().join("keys")),
        [format!("{}.pem", binding.fingerprint)]
    );
    assert!(!dir.path().join("pending-registration.json").exists());
}

/// A server that answers the poll with a status this SDK does not know, then an error, then
/// (on resume) the unknown status again before `active`.
#[tokio::test]
async fn resume_polls_through_an_unknown_status_and_a_failed_poll_keeps_the_registration() {
    use axum::Router;
    use axum::extract::Request;
    use axum::response::IntoResponse as _;
    use std::sync::atomic::{AtomicU64, Ordering};

    let key = ralio::keys::PrivateKey::generate().unwrap();
    let fingerprint = key.thumbprint().as_str().to_owned();
    let polls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&polls);
    let app = Router::new().fallback(move |req: Request| {
        let (fingerprint, counter) = (fingerprint.clone(), Arc::clone(&counter));
        async move {
            let path = req.uri().path().to_owned();
            if path == "/oauth/token" {
                return axum::Json(serde_json::json!({
                    "access_token": "rat_stub", "token_type": "DPoP", "expires_in": 300,
                    "scope": "agents:execute",
                }))
                .into_response();
            }
            if req.method() == axum::http::Method::POST {
                let body = serde_json::json!({"fingerprint": fingerprint, "poll_token": "pt_stub"});
                return (axum::http::StatusCode::ACCEPTED, axum::Json(body)).into_response();
            }
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 => axum::Json(serde_json::json!({"status": "awaiting_second_approver"}))
                    .into_response(),
                // A refused poll: not a decision, so the registration is kept.
                1 => (
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"detail": "try again"})),
                )
                    .into_response(),
                2 | 3 => axum::Json(serde_json::json!({"status": "awaiting_second_approver"}))
                    .into_response(),
                _ => axum::Json(serde_json::json!({"status": "active", "client_id": "cb_resumed"}))
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let store = MemoryStore::new();
    let signer: Arc<dyn ralio::keys::Signer> = Arc::new(key);
    let err = register(
        &store,
        RegisterOptions::new()
            .ticket("ralio-reg-stub")
            .base_url(&url)
            .signer(Arc::clone(&signer))
            .poll_interval(Duration::from_millis(1)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistrationError::PollFailed { pending: Some(_), source, .. } if matches!(**source, RegistrationError::Refused { status: reqwest::StatusCode::BAD_REQUEST, .. })),
        "{err:?}"
    );
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert!(store.load_pending_registration().await.unwrap().is_some());

    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let binding = ralio::register::resume(
        &store,
        RegisterOptions::new()
            .base_url(&url)
            .signer(signer)
            .poll_interval(Duration::from_millis(1))
            .on_progress(move |p| seen.lock().unwrap().push(p.clone())),
    )
    .await
    .unwrap();
    assert_eq!(binding.client_id, "cb_resumed");
    assert_eq!(polls.load(Ordering::SeqCst), 5);
    // The unknown status is reported to the progress callback.
    let statuses: Vec<Option<String>> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            RegistrationProgress::AwaitingApproval { status, .. } => Some(status.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            None,
            Some("awaiting_second_approver".to_owned()),
            Some("awaiting_second_approver".to_owned())
        ]
    );
    assert!(store.load_pending_registration().await.unwrap().is_none());
    assert_eq!(
        store.load_identity().await.unwrap().unwrap().client_id(),
        "cb_resumed"
    );
}

#[tokio::test]
async fn resume_refuses_another_api_url_before_any_request() {
    let sandbox = legacy_sandbox().await;
    let store = MemoryStore::new();
    let RegistrationError::ApprovalTimedOut { .. } = timed_out(&sandbox, &store).await else {
        panic!("not a timeout");
    };
    let err = ralio::register::resume(
        &store,
        RegisterOptions::new().base_url("http://127.0.0.1:9"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RegistrationError::PendingElsewhere { .. }),
        "{err:?}"
    );
    assert!(store.load_pending_registration().await.unwrap().is_some());
}
