//! A program whose `main` returns `Result<(), ralio::Error>`, as the README's examples do, and
//! the check of what a user sees when it fails.
//!
//! A test target without the test harness (`harness = false` in Cargo.toml): `cargo test` runs
//! this `main`. With no case to play it runs itself again as a child process once per case,
//! with `RALIO_MAIN_ERROR_CASE` set; the child's `main` returns the error, std reports it
//! (`Error: {err:?}` on stderr, exit code 1), and the parent checks that stderr shows the
//! error's sentence and its causes, never the variant's structure (`Config(NoCredentials {`).

use std::process::Command;
use std::sync::Arc;

use ralio::RalioClient;
use ralio::register::{RegisterOptions, register};
use ralio::store::MemoryStore;
use ralio_sandbox::{Sandbox, TicketSpec};
use secrecy::ExposeSecret;

/// Set in the child: which mistake its `main` makes.
const CASE: &str = "RALIO_MAIN_ERROR_CASE";

#[tokio::main]
async fn main() -> Result<(), ralio::Error> {
    if let Ok(case) = std::env::var(CASE) {
        return newcomer(&case).await;
    }
    // `cargo test -- --list` asks for names: this target has no named tests to list.
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    // The parent: blocking on the children is fine, nothing else runs on this runtime.
    no_credentials();
    api_unreachable();
    ticket_used_twice();
    println!("main_returns_error: 3 cases ok");
    Ok(())
}

/// The child: a newcomer's program, making one mistake.
async fn newcomer(case: &str) -> Result<(), ralio::Error> {
    match case {
        // The README's main job on a machine where nothing was registered.
        "no_credentials" => {
            RalioClient::from_env().await?;
        }
        // A credential in the environment, and RALIO_API_URL where nothing listens.
        "api_unreachable" => {
            let client = RalioClient::from_env().await?;
            client.transactions().list().await?;
        }
        // Registering twice with one ticket.
        "ticket_used_twice" => {
            let sandbox = Sandbox::builder()
                .start()
                .await
                .expect("the sandbox starts");
            let ticket = sandbox.mint_ticket(TicketSpec::default());
            for _ in 0..2 {
                let options = RegisterOptions::new()
                    .ticket(ticket.as_str())
                    .base_url(sandbox.base_url());
                register(&*Arc::new(MemoryStore::new()), options).await?;
            }
        }
        other => panic!("unknown case {other}"),
    }
    Ok(())
}

/// Runs the child for `case` with only `env` set among the SDK's variables; returns its stderr.
fn what_main_prints(case: &str, env: &[(&str, &str)]) -> String {
    let config_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    for (name, _) in std::env::vars() {
        if name.starts_with("RALIO_") {
            child.env_remove(name);
        }
    }
    child
        .env(CASE, case)
        .env("RALIO_CONFIG_DIR", config_dir.path())
        .envs(env.iter().copied());
    let out = child.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{case}: {out:?}\n{stderr}");
    assert!(
        !stderr.contains(" {\n") && !stderr.contains("(Refused") && !stderr.contains("Config("),
        "{case}: the variant's structure is shown:\n{stderr}"
    );
    stderr
}

/// The first line, which std starts with `Error: `.
fn first_line(stderr: &str) -> &str {
    let line = stderr.lines().next().unwrap_or_default();
    assert!(line.starts_with("Error: "), "{stderr}");
    line
}

fn no_credentials() {
    let stderr = what_main_prints("no_credentials", &[]);
    let line = first_line(&stderr);
    assert!(line.starts_with("Error: no credentials in "), "{stderr}");
    assert!(line.contains("run `ralio register`"), "{stderr}");
    assert!(!stderr.contains("NoCredentials"), "{stderr}");
}

fn api_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let key = ralio::keys::PrivateKey::generate().unwrap();
    let jwk = key.to_private_jwk();
    let stderr = what_main_prints(
        "api_unreachable",
        &[
            ("RALIO_API_URL", &origin),
            ("RALIO_CLIENT_ID", "cb_newcomer"),
            ("RALIO_PRIVATE_JWK", jwk.expose_secret()),
        ],
    );
    let line = first_line(&stderr);
    // The call made, the request that failed (the token request it needed), how it failed,
    // and the setting to check.
    assert!(
        line.starts_with(&format!(
            "Error: transactions.list: {origin}/oauth/token refused the connection"
        )),
        "{stderr}"
    );
    assert!(line.contains("RALIO_API_URL"), "{stderr}");
    // Then the causes, one a line.
    let causes = stderr
        .split_once("\n\nCaused by:\n")
        .unwrap_or_else(|| panic!("no causes in {stderr}"))
        .1;
    assert!(causes.trim_start().starts_with("0: "), "{stderr}");
    assert!(!stderr.contains("Transport {"), "{stderr}");
    assert!(!stderr.contains(r#""d""#), "the key never shows: {stderr}");
}

fn ticket_used_twice() {
    let stderr = what_main_prints("ticket_used_twice", &[]);
    let line = first_line(&stderr);
    assert!(line.contains("the ticket was already used"), "{stderr}");
    assert!(line.contains("if it was you"), "{stderr}");
    assert!(line.contains("`ralio whoami`"), "{stderr}");
    assert!(
        !stderr.contains("ralio-reg-"),
        "the ticket never shows: {stderr}"
    );
}
