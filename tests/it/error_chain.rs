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

/// The variable that turns this test binary, re-run as a child, into a program whose `main`
/// returns a `ralio::Error`; its value names the failure to produce.
const FAKE_MAIN: &str = "RALIO_IT_FAKE_MAIN";

/// The child's `main`: fails as a newcomer's program would.
async fn fake_main(case: &str) -> Result<(), ralio::Error> {
    match case {
        // The README's first example with no credential anywhere.
        "no_credentials" => {
            RalioClient::from_env().await?;
        }
        // A registration to an origin where nothing listens: an error with causes.
        _ => {
            let options = RegisterOptions::new()
                .ticket("ralio-reg-child")
                .base_url(closed_origin().await);
            register(&MemoryStore::new(), options).await?;
        }
    }
    Ok(())
}

/// Runs this test binary again with only this test selected and [`FAKE_MAIN`] set: the child
/// reports `fake_main`'s result through std's own `Termination` for `Result` (exactly what
/// `fn main() -> Result<(), ralio::Error>` does) and exits. Returns its stderr.
fn what_main_prints(case: &str, config_dir: &std::path::Path) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "error_chain::main_returning_an_error_prints_the_sentence_and_its_causes",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FAKE_MAIN, case)
        .env("RALIO_CONFIG_DIR", config_dir)
        .env_remove("RALIO_CLIENT_ID")
        .env_remove("RALIO_PRIVATE_JWK")
        .env_remove("RALIO_API_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn main_returning_an_error_prints_the_sentence_and_its_causes() {
    if let Some(case) = std::env::var_os(FAKE_MAIN) {
        let case = case.to_string_lossy().into_owned();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let result = runtime.block_on(fake_main(&case));
        let _: std::process::ExitCode = std::process::Termination::report(result);
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().unwrap();

    let printed = what_main_prints("no_credentials", dir.path());
    let line = printed
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no `Error:` line in {printed}"));
    assert!(
        line.starts_with("Error: no credentials in") && line.contains("run `ralio register`"),
        "{printed}"
    );
    assert!(!printed.contains("NoCredentials"), "{printed}");

    let printed = what_main_prints("unreachable", dir.path());
    assert!(
        printed.contains("Error: could not reach the registration server at http://127.0.0.1:"),
        "{printed}"
    );
    let causes = printed
        .split_once("Caused by:")
        .unwrap_or_else(|| panic!("no causes in {printed}"))
        .1;
    assert!(causes.trim_start().starts_with("0: "), "{printed}");
    assert!(!printed.contains("Registration(Http"), "{printed}");
    assert!(
        !printed.contains("ralio-reg-child"),
        "the ticket never shows: {printed}"
    );
}
