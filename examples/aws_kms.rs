//! Keep the private key in AWS KMS (an `ECC_NIST_P256` `SIGN_VERIFY` key): it is created there
//! at registration, and every client assertion and DPoP proof is one KMS `Sign` call. The file
//! store keeps only the key's ARN. Needs Rust 1.94.1 (aws-sdk-kms).
//!
//! Against moto's local KMS emulator (no AWS account):
//!
//! ```text
//! pip install 'moto[server]==5.2.6'
//! moto_server -H 127.0.0.1 -p 5123 &
//! export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5123 AWS_REGION=us-east-1 \
//!        AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
//! cargo run --features aws-kms --example aws_kms
//! ```
//!
//! Against AWS, leave out the endpoint and the fake keys: the standard credential chain
//! (environment, profile, web identity, ECS or EC2 role) is used. The role needs
//! `kms:CreateKey` and `kms:CreateAlias` (or an existing key: set `RALIO_KMS_KEY` to its ARN
//! or alias), `kms:GetPublicKey`, `kms:DescribeKey` and `kms:Sign`. Runs against an embedded
//! sandbox.

mod common;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use ralio::RalioClient;
use ralio::keys::{KeyCreation, KeyReference};
use ralio::register::{RegisterOptions, register};
use ralio::store::{CredentialStore, FileStore, open_key};
use ralio_sandbox::{Sandbox, TicketSpec};

async fn run() -> Result<(), Box<dyn Error>> {
    let sandbox = Sandbox::builder().start().await?;
    let ticket = sandbox.mint_ticket(TicketSpec::default());

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let key =
        std::env::var("RALIO_KMS_KEY").unwrap_or_else(|_| format!("alias/ralio-example-{run_id}"));
    // An alias that names no key yet: a key is created and the alias pointed at it.
    let signer = open_key(&KeyReference::parse(&key)?, KeyCreation::IfMissing).await?;
    if let Some(location) = signer.key_location() {
        println!("key: {}", location.description);
    }

    let dir = tempfile::tempdir()?;
    let store = Arc::new(FileStore::new(dir.path()));
    let binding = register(
        store.as_ref(),
        RegisterOptions::new()
            .base_url(sandbox.base_url())
            .ticket(ticket)
            .signer(signer),
    )
    .await?;
    println!(
        "registered {}; the store keeps {}",
        binding.client_id, binding.key_location
    );

    let client = RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store.clone() as Arc<dyn CredentialStore>)
        .build()
        .await?;
    let started = std::time::Instant::now();
    let reply = client.chat().send("What is my current balance?").await?;
    println!(
        "agent: {} ({:?}, two KMS signatures included)",
        reply.reply,
        started.elapsed()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::exit_code(run().await)
}
