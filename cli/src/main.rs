//! `ralio`: register this host, talk to its agent, inspect payments, diagnose.
//!
//! Exit codes: 0 success, 1 API or network failure, 2 usage error, 3 authentication or
//! configuration problem; `intents wait` and `chat --wait`: 4 rejected, 5 still pending,
//! 6 execution failed. See `ralio --help`.

mod cli;
mod commands;
mod context;
mod env;
mod error;
mod output;
mod terminal;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

use crate::cli::{Cli, Command};
use crate::commands::list::Kind;
use crate::context::Context;
use crate::error::CliError;

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = match crate::env::var("RUST_LOG") {
        Some(spec) if verbose == 0 => tracing_subscriber::EnvFilter::new(spec),
        _ => tracing_subscriber::EnvFilter::new(default),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions(args) = &cli.command {
        let mut stdout = std::io::stdout();
        clap_complete::generate(args.shell, &mut Cli::command(), "ralio", &mut stdout);
        return Ok(());
    }
    #[cfg(not(feature = "sandbox"))]
    if let Command::Sandbox { .. } = &cli.command {
        return Err(CliError::Usage(
            "this `ralio` was built without the sandbox (the `sandbox` feature); \
             reinstall with `cargo install ralio-cli` (default features) or run the standalone \
             `ralio-sandbox` (`cargo install ralio-sandbox`)"
                .to_owned(),
        ));
    }
    let ctx = Context::resolve(&cli.global)?;
    match cli.command {
        Command::Register(args) => commands::register::run(&ctx, args).await,
        Command::Whoami => commands::whoami::run(&ctx).await,
        Command::Doctor => commands::doctor::run(&ctx).await,
        Command::Chat(args) => commands::chat::run(&ctx, args).await,
        Command::Transactions(args) => commands::list::run(&ctx, Kind::Transactions, args).await,
        Command::Intents(args) => commands::intents::run(&ctx, args).await,
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => commands::sandbox::run(&ctx, args).await,
        #[cfg(not(feature = "sandbox"))]
        Command::Sandbox { .. } => Ok(()),
        Command::Mcp(args) => commands::mcp::run(&ctx, args).await,
        Command::Completions(_) => Ok(()),
    }
}

/// How long the command waits at its end for work the SDK detached from the caller (a token
/// renewal that a Ctrl-C or a timeout stopped waiting for) before the runtime is dropped.
const SETTLE_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Lets detached work finish before the runtime goes, within [`SETTLE_BOUND`] (and never past
/// the end a wait's timeout promised): a token renewal
/// in flight when a wait was interrupted must still save the refresh token the server rotated,
/// or the next command presents a spent one and the server revokes the binding's tokens. The
/// SDK runs a renewal in a task of its own; dropping the runtime would drop that task.
async fn settle_background_work() {
    let metrics = tokio::runtime::Handle::current().metrics();
    // Tasks that live as long as the process (the Ctrl-C listener of waits) never end.
    let permanent = commands::intents::permanent_tasks();
    // A command that promised to end by a time (a wait's timeout) keeps its promise.
    let bound = tokio::time::Instant::now() + SETTLE_BOUND;
    let deadline = commands::intents::promised_end().map_or(bound, |end| end.min(bound));
    while metrics.num_alive_tasks() > permanent && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(error::EXIT_USAGE));
        }
    };
    init_tracing(cli.global.verbose);
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => {
            let e = CliError::Io {
                action: "start the async runtime",
                source,
            };
            error::report(&e, json);
            return ExitCode::from(e.exit_code());
        }
    };
    let result = runtime.block_on(async {
        let result = dispatch(cli).await;
        settle_background_work().await;
        result
    });
    // stdin reads (interactive chat, MCP) may still block a thread: do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(e) => {
            error::report(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}
