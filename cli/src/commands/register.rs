//! `ralio register`.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use ralio::register::{RegisterOptions, RegistrationProgress, register, resume};

use super::{human_duration, note, out, out_json};
use crate::cli::RegisterArgs;
use crate::context::Context;
use crate::error::CliError;

/// Where the ticket comes from, safest first: `--ticket-stdin`, `RALIO_REGISTRATION_TICKET`
/// (left to the SDK), a prompt without echo when stdin is a terminal; `--ticket` still works
/// but warns. `None`: the SDK reads the variable, or says that no ticket was given.
fn ticket(args: &RegisterArgs) -> Result<Option<String>, CliError> {
    if let Some(ticket) = &args.ticket {
        note(
            "warning: a ticket on the command line can be read by other users of this host (in the process list) and stays in your shell history; run `ralio register` at a terminal to be asked for it, or use --ticket-stdin or RALIO_REGISTRATION_TICKET",
        );
        return Ok(Some(ticket.clone()));
    }
    if args.ticket_stdin {
        let mut ticket = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut ticket).map_err(|source| {
            CliError::Io {
                action: "read the ticket from stdin",
                source,
            }
        })?;
        return Ok(Some(ticket));
    }
    let from_env = crate::env::var(crate::env::TICKET_VAR).is_some();
    if from_env || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    rpassword::prompt_password("Registration ticket from the owner (input hidden): ")
        .map(Some)
        .map_err(|source| CliError::Io {
            action: "read the ticket from the terminal",
            source,
        })
}

/// `waiting for the owner to approve key … in the console`, with a status the SDK does not
/// know (shown so that a server in an unexpected state is visible), then what is left.
fn waiting_line(fingerprint: &str, status: Option<&str>, remaining: Option<Duration>) -> String {
    let mut line = format!("waiting for the owner to approve key {fingerprint} in the console");
    let mut details = Vec::new();
    if let Some(status) = status.filter(|s| !matches!(*s, "pending_approval" | "pending")) {
        details.push(format!(
            "server status: {}",
            crate::terminal::safe_line(status)
        ));
    }
    if let Some(remaining) = remaining {
        details.push(format!("{} left", human_duration(remaining)));
    }
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join(", ")));
    }
    line
}

/// Registers this host (or, with `--resume`, continues a registration waiting for approval)
/// and prints the client id and where the key went.
pub async fn run(ctx: &Context, args: RegisterArgs) -> Result<(), CliError> {
    let store = ctx.store()?;
    let ticket = if args.resume { None } else { ticket(&args)? };
    let interactive = std::io::stderr().is_terminal() && !ctx.json;
    let spinner = if interactive {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        Some(bar)
    } else {
        None
    };
    // Said once without a terminal, and again when the server's status changes.
    let waiting_noted = Arc::new(std::sync::Mutex::new(None::<Option<String>>));
    // Against a sandbox, the person trying this plays the owner: where to approve, said once
    // when the registration waits.
    let console = std::sync::Mutex::new(super::console::owner_hint(ctx).await);
    let console_once = move || {
        console
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    };
    let progress_bar = spinner.clone();
    let json = ctx.json;
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "client".to_owned(),
        concat!("ralio-cli/", env!("CARGO_PKG_VERSION")).into(),
    );
    let mut options = RegisterOptions::new()
        .base_url(&ctx.api_url)
        .overwrite(args.force)
        .client_metadata(metadata)
        .on_progress(move |event| match (event, &progress_bar) {
            (RegistrationProgress::Submitting { fingerprint, .. }, Some(bar)) => {
                bar.set_message(format!("registering key {fingerprint}…"));
            }
            (
                RegistrationProgress::AwaitingApproval {
                    fingerprint,
                    remaining,
                    status,
                    ..
                },
                Some(bar),
            ) => {
                if let Some(hint) = console_once() {
                    bar.println(hint);
                }
                bar.set_message(waiting_line(
                    fingerprint,
                    status.as_deref(),
                    Some(*remaining),
                ));
            }
            // Without a terminal, say it once instead of animating (and again when the
            // server's status changes).
            (
                RegistrationProgress::AwaitingApproval {
                    fingerprint,
                    status,
                    ..
                },
                None,
            ) if !json => {
                let mut noted = waiting_noted
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let shown = status
                    .as_deref()
                    .filter(|s| !matches!(*s, "pending_approval" | "pending"));
                if noted.as_ref().is_none_or(|last| last.as_deref() != shown) {
                    *noted = Some(shown.map(str::to_owned));
                    note(format!("{}…", waiting_line(fingerprint, shown, None)));
                }
                if let Some(hint) = console_once() {
                    note(hint);
                }
            }
            _ => {}
        })
        .approval_timeout(args.approval_timeout);
    // The SDK trims it and refuses an empty one before any request.
    if let Some(ticket) = ticket {
        options = options.ticket(ticket);
    }
    if !args.scopes.is_empty() {
        options = options.requested_scopes(args.scopes);
    }
    if let Some(reference) = &args.key {
        let signer = ralio::store::open_key(reference, ralio::keys::KeyCreation::IfMissing).await?;
        options = options.signer(signer);
    }
    let result = if args.resume {
        resume(store.as_ref(), options).await
    } else {
        register(store.as_ref(), options).await
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let binding = result?;
    if ctx.json {
        return out_json(&serde_json::json!({
            "client_id": binding.client_id,
            "fingerprint": binding.fingerprint,
            "scopes": binding.scopes,
            "key_location": binding.key_location,
            "store": store.describe(),
        }));
    }
    out(format!("registered {}", binding.client_id))?;
    out(format!("  key       {}", binding.fingerprint))?;
    out(format!("  stored in {}", binding.key_location))?;
    out(format!(
        "  scopes    {}",
        crate::terminal::safe_line(&scopes_text(&binding.scopes))
    ))?;
    Ok(())
}

/// Space-separated scopes, or `(none)`.
pub fn scopes_text(scopes: &[ralio::Scope]) -> String {
    if scopes.is_empty() {
        "(none)".to_owned()
    } else {
        let words: Vec<&str> = scopes.iter().map(ralio::Scope::as_str).collect();
        words.join(" ")
    }
}
