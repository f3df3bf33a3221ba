//! Keep the credential in the OS keyring: register into it, then talk to the agent.
//!
//! ```text
//! cargo run --example keyring
//! ```
//!
//! Runs against an embedded sandbox, so it needs no account. On Linux it uses the Secret
//! Service (GNOME Keyring, KWallet); set `RALIO_KEYRING=keyutils` to use the kernel keyring
//! instead (memory only: entries vanish at reboot). On macOS and Windows it uses the login
//! Keychain / Credential Manager. Each run registers under a fresh service name and prints it,
//! so it never touches an existing credential.

mod common;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use ralio::RalioClient;
use ralio::register::{RegisterOptions, register};
use ralio::store::{CredentialStore, KeyringBackend, KeyringStore};
use ralio_sandbox::{Sandbox, TicketSpec};

async fn run() -> Result<(), Box<dyn Error>> {
    let sandbox = Sandbox::builder().start().await?;
    let ticket = sandbox.mint_ticket(TicketSpec::default());

    let backend = match std::env::var("RALIO_KEYRING").as_deref() {
        Ok("keyutils") => KeyringBackend::KeyUtils,
        _ => KeyringBackend::platform_default(),
    };
    let service = format!(
        "ralio-example-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    );
    let store = Arc::new(KeyringStore::with_backend(&service, backend));

    let binding = register(
        store.as_ref(),
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .ticket(ticket),
    )
    .await?;
    println!(
        "registered {} ({})",
        binding.client_id,
        binding.scopes.join(" ")
    );
    println!("key kept in: {}", binding.key_location);

    // A later process needs only the service name: the identity and the refresh token are
    // read back from the keyring.
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
