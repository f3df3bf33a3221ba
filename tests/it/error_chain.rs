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
    assert!(err.is_retryable());
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
