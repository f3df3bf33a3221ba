//! Shared by the examples: a client against `RALIO_API_URL` with your credentials, or, when

// Each example uses part of this module.
#![allow(dead_code)]
//! that is not set up, against the embedded sandbox with a freshly registered credential.

use std::sync::Arc;

use ralio::RalioClient;
use ralio::register::{RegisterOptions, register};
use ralio::store::{CredentialStore, FileStore};
use ralio_sandbox::{Sandbox, TicketSpec};

/// What the example runs against.
pub enum Target {
    /// A real server, from `RALIO_API_URL` and the credentials `RalioClient::from_env` finds.
    Server,
    /// The embedded sandbox; kept alive as long as this value, with the temporary config
    /// directory the credential was registered into.
    Sandbox {
        /// The running sandbox (approve intents through it).
        sandbox: Sandbox,
        /// The temporary config directory (deleted on drop).
        _config_dir: tempfile::TempDir,
    },
}

/// A client for `RALIO_API_URL` when it is set (credentials resolved as the Python SDK does),
/// else for a fresh embedded sandbox: mint a ticket, register into a temporary config
/// directory, and build the client from that store.
pub async fn connect() -> Result<(RalioClient, Target), Box<dyn std::error::Error>> {
    if std::env::var("RALIO_API_URL").is_ok_and(|v| !v.trim().is_empty()) {
        let client = RalioClient::from_env().await?;
        println!("Using {} with your stored credentials.", client.base_url());
        return Ok((client, Target::Server));
    }
    let sandbox = Sandbox::builder().start().await?;
    println!(
        "No RALIO_API_URL: started the embedded sandbox at {}.",
        sandbox.base_url()
    );
    let config_dir = tempfile::tempdir()?;
    let store = Arc::new(FileStore::new(config_dir.path()));
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let binding = register(
        &*store,
        RegisterOptions::new()
            .ticket(ticket)
            .base_url(sandbox.base_url()),
    )
    .await?;
    println!(
        "Registered binding {} (scopes: {}) into {}.",
        binding.client_id,
        binding.scopes.join(" "),
        config_dir.path().display()
    );
    let store: Arc<dyn CredentialStore> = store;
    let client = RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store)
        .build()
        .await?;
    Ok((
        client,
        Target::Sandbox {
            sandbox,
            _config_dir: config_dir,
        },
    ))
}

/// Prints an error and its causes, one per line.
/// The process exit code for an example's result: success, or failure after printing the error
/// with its cause chain.
pub fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            report(&*e);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints `error` and its cause chain to stderr.
pub fn report(error: &dyn std::error::Error) {
    eprintln!("error: {error}");
    let mut cause = error.source();
    while let Some(c) = cause {
        eprintln!("  caused by: {c}");
        cause = c.source();
    }
}
