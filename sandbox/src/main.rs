//! `ralio-sandbox`: runs the local Ralio API until interrupted.
//!
//! Prints exactly one JSON line to stdout, `{"base_url": "…", "ticket": "ralio-reg-…",
//! "console_url": "…/sandbox/console"}` (`console_url` is `null` without the admin API), then
//! logs requests (route, status, time; never a secret) to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use ralio_sandbox::{Answers, Faults, NonceMode, Sandbox, TicketSpec};
use rust_decimal::Decimal;

#[derive(Clone, Copy, ValueEnum)]
enum Nonce {
    Off,
    Offer,
    Require,
}

/// A faithful, strict local Ralio API for tests, examples and demos.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The URL clients use to reach the sandbox, when it differs from http://<addr> (behind a
    /// proxy or in a container; required with 0.0.0.0). DPoP htu and assertion aud must name it.
    #[arg(long)]
    public_url: Option<String>,
    /// Seed of the deterministic ids and fault dice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// DPoP server nonces.
    #[arg(long, value_enum, default_value = "off")]
    nonce: Nonce,
    /// Registration answers 202 and waits for approval through the admin API.
    #[arg(long)]
    legacy_registration: bool,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 1800)]
    access_token_lifetime: u64,
    /// Requests per second per binding on resource endpoints (unlimited when absent).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Seconds the server's clock runs ahead (negative: behind).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    clock_offset: i64,
    /// Starting balance, GBP.
    #[arg(long, default_value = "10000.00")]
    balance: Decimal,
    /// Largest single payment, GBP.
    #[arg(long, default_value = "1000.00")]
    spend_limit: Decimal,
    /// Payments above this wait for approval, GBP.
    #[arg(long, default_value = "100.00")]
    approval_threshold: Decimal,
    /// Serve the admin API under /sandbox/ even on a non-loopback address.
    #[arg(long, conflicts_with = "no_admin")]
    admin: bool,
    /// Do not serve the admin API (it is on by default on loopback addresses).
    #[arg(long)]
    no_admin: bool,
    /// Answer in the legal variety a real server may use (integer agent_number, naive
    /// timestamps, left-out fields, unknown fields and statuses, plain 401s, varied SSE),
    /// deterministically from --seed. Also on with RALIO_SANDBOX_VARIANTS=1.
    #[arg(long)]
    variants: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ralio_sandbox=info")),
        )
        .init();
    let admin = !args.no_admin && (args.admin || args.addr.ip().is_loopback());
    let nonce = match args.nonce {
        Nonce::Off => NonceMode::Off,
        Nonce::Offer => NonceMode::Offer,
        Nonce::Require => NonceMode::Require,
    };
    let mut builder = Sandbox::builder();
    if args.variants {
        builder = builder.answers(Answers::Varied);
    }
    let started = builder
        .addr(args.addr)
        .public_url(args.public_url.as_deref())
        .seed(args.seed)
        .nonce_mode(nonce)
        .legacy_registration(args.legacy_registration)
        .access_token_lifetime(std::time::Duration::from_secs(args.access_token_lifetime))
        .rate_limit(args.rate_limit)
        .balance(args.balance)
        .spend_limit(args.spend_limit)
        .approval_threshold(args.approval_threshold)
        .faults(Faults {
            clock_offset_secs: args.clock_offset,
            ..Faults::default()
        })
        .admin_api(admin)
        .start()
        .await;
    let sandbox = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ralio-sandbox: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            return ExitCode::FAILURE;
        }
    };
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let line = serde_json::json!({
        "base_url": sandbox.base_url(),
        "ticket": ticket,
        "console_url": sandbox.console_url(),
    });
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    tracing::info!(target: "ralio_sandbox", base_url = sandbox.base_url(), admin_api = admin, console = sandbox.console_url().unwrap_or_default(), "serving");
    if tokio::signal::ctrl_c().await.is_err() {
        eprintln!("ralio-sandbox: cannot listen for Ctrl-C; stopping");
    }
    drop(sandbox);
    ExitCode::SUCCESS
}
