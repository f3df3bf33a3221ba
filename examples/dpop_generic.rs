//! The auth layer on its own, against any RFC 7523 + RFC 9449 authorization server.
//!
//! ```text
//! TOKEN_URL=https://auth.example/oauth/token \
//! RESOURCE_URL=https://api.example/things \
//! CLIENT_ID=my-client \
//! PRIVATE_KEY_PATH=key.pem \
//! SCOPE="read write" \
//! cargo run --example dpop_generic
//! ```
//!
//! It mints a DPoP-bound token with a `private_key_jwt` client assertion, GETs the resource
//! and prints the HTTP status code and the body. On failure it prints the error chain and
//! exits non-zero. Without `TOKEN_URL` it runs against an embedded Ralio sandbox instead,
//! with a freshly registered key, so it works with no set-up.

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use ralio::auth::{DpopAuth, TokenManager, TokenManagerConfig};
use ralio::keys::PrivateKey;

type BoxError = Box<dyn Error + Send + Sync>;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str) -> Result<String, BoxError> {
    var(name).ok_or_else(|| format!("set {name} in the environment").into())
}

async fn run() -> Result<(), BoxError> {
    // Keeps the embedded sandbox alive for the whole run when there is one.
    let mut _sandbox = None;
    let (token_url, resource_url, client_id, key) = match var("TOKEN_URL") {
        Some(token_url) => {
            let key = PrivateKey::from_pem_file(required("PRIVATE_KEY_PATH")?.as_ref())?;
            (
                token_url,
                required("RESOURCE_URL")?,
                required("CLIENT_ID")?,
                key,
            )
        }
        None => {
            eprintln!("TOKEN_URL is not set: running against an embedded Ralio sandbox");
            let sandbox = ralio_sandbox::Sandbox::builder().start().await?;
            let key = PrivateKey::generate()?;
            let ticket = sandbox.mint_ticket(ralio_sandbox::TicketSpec::default());
            let registered: serde_json::Value = reqwest::Client::new()
                .post(format!(
                    "{}/api/credential-bindings/registrations",
                    sandbox.base_url()
                ))
                .json(&serde_json::json!({"ticket": ticket, "public_key_jwk": key.public_jwk()}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let client_id = registered["client_id"]
                .as_str()
                .ok_or("the sandbox did not return a client_id")?
                .to_owned();
            let urls = (
                sandbox.token_url(),
                format!("{}/api/agents", sandbox.base_url()),
            );
            _sandbox = Some(sandbox);
            (urls.0, urls.1, client_id, key)
        }
    };

    let mut config = TokenManagerConfig::new(&token_url, client_id)?;
    if let Some(scope) = var("SCOPE") {
        config = config.scopes(scope.split_whitespace());
    }
    let tokens = TokenManager::builder(config, Arc::new(key)).build()?;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(DpopAuth::new(tokens))
        .build();

    let response = http.get(&resource_url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    println!("{}", status.as_u16());
    println!("{body}");
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the resource answered HTTP {status}").into())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
