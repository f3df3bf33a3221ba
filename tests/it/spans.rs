//! One `ralio.request` span per request, from the stack itself: registration, the token
//! endpoint and resource calls alike, each with its operation, method, URL path (never the
//! query), status and attempt count.

use std::sync::Arc;

use ralio::RalioClient;
use ralio::register::{RegisterOptions, register};
use ralio::store::{CredentialStore, MemoryStore};
use ralio_sandbox::{Sandbox, TicketSpec};

use crate::capture::{Capture, in_child, run_child};

#[tokio::test]
async fn every_request_gets_its_own_span() {
    run_child("spans::every_request_child", "SPANS OK").await;
}

/// The closing line of the span of `operation`, which must exist.
fn closed<'a>(log: &'a str, operation: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("ralio.request{")
                && l.contains(&format!("operation=\"{operation}\""))
                && l.contains(": close")
        })
        .collect();
    assert!(!lines.is_empty(), "no closed span for {operation}: {log}");
    lines
}

#[tokio::test]
#[ignore = "run by every_request_gets_its_own_span in a child process"]
async fn every_request_child() {
    if !in_child() {
        return;
    }
    let capture = Capture::install_global();
    let sb = Sandbox::builder().start().await.unwrap();
    let store = Arc::new(MemoryStore::new());
    register(
        &*store,
        RegisterOptions::new()
            .ticket(sb.mint_ticket(TicketSpec::default()))
            .base_url(sb.base_url()),
    )
    .await
    .unwrap();
    let client = RalioClient::builder()
        .base_url(sb.base_url())
        .store(Arc::clone(&store) as Arc<dyn CredentialStore>)
        .build()
        .await
        .unwrap();
    client.agents().list().await.unwrap();
    client.transactions().list().per_page(7).await.unwrap();

    let log = capture.text();
    for (operation, method, path, count) in [
        (
            "register_credential_binding",
            "POST",
            "/api/credential-bindings/registrations",
            1,
        ),
        // Registration's first token, then the client's own.
        ("create_token", "POST", "/oauth/token", 2),
        ("list_agents", "GET", "/api/agents", 1),
        ("list_transactions", "GET", "/api/transactions", 1),
    ] {
        let lines = closed(&log, operation);
        assert_eq!(lines.len(), count, "{operation}: {lines:#?}");
        for line in lines {
            assert!(line.contains(&format!("method=\"{method}\"")), "{line}");
            assert!(line.contains(&format!("path=\"{path}\"")), "{line}");
            assert!(line.contains("status=20"), "{line}");
            assert!(line.contains("attempt=1"), "{line}");
            assert!(line.contains("latency_ms="), "{line}");
        }
    }
    // The query (`per_page=7`) stays out of every span.
    for line in log.lines().filter(|l| l.contains("ralio.request{")) {
        assert!(!line.contains("per_page"), "{line}");
    }
    println!("SPANS OK");
}
