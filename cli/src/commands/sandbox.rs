//! `ralio sandbox`: the embedded local API, in the foreground.

use owo_colors::OwoColorize as _;
use ralio_sandbox::{Answers, Faults, Sandbox, TicketSpec};

use super::{note, out, out_json};
use crate::cli::SandboxArgs;
use crate::context::Context;
use crate::error::CliError;

/// Starts the sandbox, prints how to use it, serves until Ctrl-C.
pub async fn run(ctx: &Context, args: SandboxArgs) -> Result<(), CliError> {
    let mut builder = Sandbox::builder();
    if args.variants {
        builder = builder.answers(Answers::Varied);
    }
    let sandbox = builder
        .addr(args.addr)
        .seed(args.seed)
        .legacy_registration(args.legacy_registration)
        .public_url(args.public_url.as_deref())
        .faults(Faults {
            clock_offset_secs: args.clock_offset,
            ..Faults::default()
        })
        // The admin API (tickets, approvals) is served on loopback addresses only.
        .admin_api(args.addr.ip().is_loopback())
        .start()
        .await?;
    let url = sandbox.base_url().to_owned();
    let console = sandbox.console_url();
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    if ctx.json {
        out_json(
            &serde_json::json!({ "base_url": url, "console_url": console, "ticket": ticket }),
        )?;
    } else {
        let mut text = format!(
            "{} listening on {url} (Ctrl-C stops it; nothing it holds is kept)\n\n",
            "Ralio sandbox".bold()
        );
        if let Some(console) = &console {
            text.push_str(&format!(
                "{}\n  {console}\n\n",
                "Play the account owner in a browser (approve payments, mint tickets):".bold()
            ));
        }
        text.push_str(&format!(
            "{}\n  export RALIO_API_URL={url}\n  export RALIO_CONFIG_DIR=\"$(mktemp -d)\"   # keep sandbox credentials apart\n  ralio register   # paste the ticket when asked: {ticket}\n  ralio chat \"What is my current balance?\"\n  ralio chat \"Pay £20 to Alice for lunch\"\n  ralio intents\n\n",
            "Point the CLI at it:".bold()
        ));
        text.push_str(&format!(
            "{}\n  RALIO_API_URL={url} RALIO_REGISTRATION_TICKET={ticket} your-program\n  // or in code: RalioClient::builder().base_url(\"{url}\")\n\n",
            "Point the SDK at it:".bold()
        ));
        text.push_str(&format!(
            "{}\n  curl -s -X POST {url}/sandbox/tickets -H 'content-type: application/json' -d '{{}}'",
            "A new ticket (each is single-use):".bold()
        ));
        out(text)?;
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|source| CliError::Io {
            action: "listen for Ctrl-C",
            source,
        })?;
    if !ctx.json {
        note("sandbox stopped");
    }
    drop(sandbox);
    Ok(())
}
