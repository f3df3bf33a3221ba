//! Keep the private key inside a PKCS#11 token (an HSM, a smart card, a TPM through
//! tpm2-pkcs11, or SoftHSM for trying it out): it is generated there, sensitive and not
//! extractable, and every client assertion and DPoP proof is signed by the token. The file
//! store keeps only the key's PKCS#11 URI.
//!
//! ```text
//! apt-get install softhsm2
//! mkdir -p /tmp/hsm/tokens && printf 'directories.tokendir = /tmp/hsm/tokens\n' > /tmp/hsm/softhsm2.conf
//! export SOFTHSM2_CONF=/tmp/hsm/softhsm2.conf
//! softhsm2-util --init-token --free --label ralio --pin 'choose-a-pin' --so-pin 'choose-another'
//! export RALIO_PKCS11_PIN='choose-a-pin'
//! cargo run --features pkcs11 --example pkcs11
//! ```
//!
//! Runs against an embedded sandbox (no Ralio account needed). `RALIO_PKCS11_URI` names another
//! key (default `pkcs11:token=ralio;object=ralio-example?module-path=/usr/lib/softhsm/libsofthsm2.so`).

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

    let uri = std::env::var("RALIO_PKCS11_URI").unwrap_or_else(|_| {
        "pkcs11:token=ralio;object=ralio-example?module-path=/usr/lib/softhsm/libsofthsm2.so"
            .to_owned()
    });
    // The PIN comes from RALIO_PKCS11_PIN (or the URI's pin-source file); it is never stored.
    let signer = open_key(&KeyReference::parse(&uri)?, KeyCreation::IfMissing).await?;
    if let Some(location) = signer.key_location() {
        println!(
            "key: {} (extractable: {:?})",
            location.description, location.extractable
        );
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

    // The client opens the key again from the stored URI and signs every proof in the token.
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
