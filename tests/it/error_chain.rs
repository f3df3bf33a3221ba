//! Error cause chains name a URL once: an outer error never repeats the URL its cause prints.

use std::error::Error as StdError;
use std::sync::Arc;

use ralio::auth::{TokenManager, TokenManagerConfig};
use ralio::keys::PrivateKey;
use ralio::register::{RegisterOptions, register};
use ralio::store::MemoryStore;
use ralio::{RalioClient, RetryPolicy};

/// Every message of the chain, outermost first, as a user's `{e}: {cause}: …` report prints it.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An origin where nothing listens.
async fn closed_origin() -> String {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    origin
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_named_once() {
    let origin = closed_origin().await;
    let config = TokenManagerConfig::ralio(&origin, "cb_chain").unwrap();
    let token_url = config.token_url().to_string();
    let tokens = TokenManager::builder(config, Arc::new(PrivateKey::generate().unwrap()))
        .build()
        .unwrap();
    let err = tokens.access_token().await.unwrap_err();
    let text = chain(&err);
    assert_eq!(text.matches(&token_url).count(), 1, "{text}");
    assert_eq!(text.matches(&origin).count(), 1, "{text}");
}

#[tokio::test]
async fn a_client_that_cannot_reach_the_token_endpoint_names_it_once() {
    let origin = closed_origin().await;
    let client = RalioClient::builder()
        .base_url(&origin)
        .credentials("cb_chain", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let err = client.agents().list().await.unwrap_err();
    assert!(matches!(err, ralio::Error::Transport { .. }), "{err:?}");
    let text = chain(&err);
    // Kept (a user needs to know which endpoint failed), and only once.
    assert_eq!(text.matches(&origin).count(), 1, "{text}");
    // The request that failed is the token request, and the address refused it: a wrong URL
    // more likely than a passing outage.
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "agents.list: {origin}/oauth/token refused the connection"
        )),
        "{message}"
    );
    assert!(message.contains("RALIO_API_URL"), "{message}");
    assert!(matches!(
        err,
        ralio::Error::Transport {
            failure: ralio::error::TransportFailure::ConnectionRefused,
            ..
        }
    ));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_named_and_said_to_have_timed_out() {
    // Connections complete (the kernel's backlog) but nothing is ever answered.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", silent.local_addr().unwrap());
    let client = RalioClient::builder()
        .base_url(&origin)
        .credentials("cb_chain", PrivateKey::generate().unwrap())
        .read_timeout(std::time::Duration::from_millis(300))
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let err = client.transactions().list().await.unwrap_err();
    // The call, where it waited, and that it timed out (not refused).
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "a response to transactions.list from {origin} did not happen within 300ms"
        )),
        "{message}"
    );
    assert!(matches!(err, ralio::Error::Timeout { .. }), "{err:?}");
    // A passing outage, unlike a refused connection: worth trying again.
    assert!(err.is_retryable());
    drop(silent);
}

#[tokio::test]
async fn a_chat_names_the_call_made_and_the_lookup_inside_it() {
    let origin = closed_origin().await;
    let client = RalioClient::builder()
        .base_url(&origin)
        .credentials("cb_chain", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap();
    let err = client.chat().send("hello").await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("chat.send (during agents.list): "),
        "{message}"
    );
    assert!(message.contains("refused the connection"), "{message}");
}

#[tokio::test]
async fn an_unreachable_registration_server_is_named_once() {
    let origin = closed_origin().await;
    let err = register(
        &MemoryStore::new(),
        RegisterOptions::new()
            .ticket("ralio-reg-chain")
            .base_url(&origin),
    )
    .await
    .unwrap_err();
    let text = chain(&err);
    assert_eq!(text.matches(&origin).count(), 1, "{text}");
    assert!(!text.contains("ralio-reg-chain"), "{text}");
}

// What `main` prints when it returns a `ralio::Error`: tests/main_returns_error.rs, a program
// whose `main` does, run as a child process.
