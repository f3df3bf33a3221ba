//! The command tree (clap derive).

#[cfg(feature = "sandbox")]
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the API or the network failed (see the message; often worth retrying)
  2  usage error (unknown flag, missing argument)
  3  authentication or configuration problem (no or bad credentials, refused ticket, missing scope)
  4, 5, 6  `intents wait`, `chat --wait`: rejected, still pending, execution failed (see `ralio intents wait --help`)
  5  `register`: the owner did not approve in time; `ralio register --resume` continues

Environment:
  RALIO_API_URL              API origin (default https://api.ralio.co)
  RALIO_CONFIG_DIR           credential directory of the file store (default ~/.ralio)
  RALIO_STORE                credential store: file, keyring or vault (default file)
  RALIO_KEYRING_SERVICE      keyring service name of --store keyring (default ralio)
  VAULT_ADDR, VAULT_TOKEN    Vault or OpenBao of --store vault (or AppRole: VAULT_ROLE_ID,
                             VAULT_SECRET_ID, VAULT_APPROLE_MOUNT); VAULT_NAMESPACE
  RALIO_VAULT_MOUNT          KV v2 mount of --store vault (default secret)
  RALIO_VAULT_PATH           path under the mount of --store vault (default ralio)
  RALIO_REGISTRATION_TICKET  ticket for `ralio register` (else --ticket-stdin, or a prompt)";

/// The Ralio command: register this host, talk to its agent, inspect payments, diagnose.
#[derive(Debug, Parser)]
#[command(name = "ralio", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// API origin [env: RALIO_API_URL] [default: https://api.ralio.co]
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// Credential directory of the file store [env: RALIO_CONFIG_DIR] [default: ~/.ralio]
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Where the credentials live [env: RALIO_STORE] [default: file]
    #[arg(long, global = true, value_enum)]
    pub store: Option<StoreKind>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Log to stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// A credential store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// Files in the credential directory (shared with the Python SDK)
    File,
    /// The OS keyring (Secret Service, kernel keyutils, macOS Keychain, Windows Credential Manager)
    Keyring,
    /// HashiCorp Vault or OpenBao KV v2 (VAULT_ADDR with VAULT_TOKEN or AppRole)
    Vault,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register this host with a one-time ticket from the owner
    Register(RegisterArgs),
    /// Show who this host is: client id, key thumbprint, store, scopes, token expiry
    Whoami,
    /// Check everything a failing integration needs checked, with the fix for each problem
    Doctor,
    /// Talk to the agent; without a message, start an interactive session
    Chat(ChatArgs),
    /// List executed transactions, newest first
    #[command(visible_alias = "tx")]
    Transactions(ListArgs),
    /// List payment intents (what the agent proposed to pay), newest first; show one, or wait
    /// for the owner's decision on one
    Intents(IntentsArgs),
    /// Run a local Ralio API sandbox in the foreground
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    /// Built without the `sandbox` feature: hidden, and answered with how to get it
    #[cfg(not(feature = "sandbox"))]
    #[command(hide = true, disable_help_flag = true)]
    Sandbox {
        /// Whatever followed `sandbox`; not used.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// Serve the agent as Model Context Protocol tools over stdio
    Mcp(McpArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// `ralio register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The one-time ralio-reg-… ticket. Avoid: other local users can read a command line and
    /// it stays in shell history. Without this flag the ticket comes from --ticket-stdin,
    /// RALIO_REGISTRATION_TICKET, or a prompt that does not echo (at a terminal)
    #[arg(long, value_name = "TICKET")]
    pub ticket: Option<String>,
    /// Read the ticket from standard input (`ralio register --ticket-stdin < ticket.txt`)
    #[arg(long, conflicts_with = "ticket")]
    pub ticket_stdin: bool,
    /// Ask for these scopes only (repeatable; default: everything the ticket allows)
    // FromStr, which checks the syntax (clap would otherwise pick the unchecked `From<String>`).
    #[arg(long = "scope", value_name = "SCOPE", value_parser = <ralio::Scope as std::str::FromStr>::from_str)]
    pub scopes: Vec<ralio::Scope>,
    /// Replace credentials already registered on this host (and abandon a registration that
    /// still waits for approval)
    #[arg(long)]
    pub force: bool,
    /// Continue a registration that is waiting for the owner's approval (after a timeout or a
    /// failed poll); no ticket needed
    #[arg(long, conflicts_with_all = ["ticket", "ticket_stdin", "scopes", "force"])]
    pub resume: bool,
    /// How long to wait for the owner's approval on servers that ask for it (30s, 10m, 1h);
    /// when it runs out, the registration is kept and `ralio register --resume` continues it
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub approval_timeout: std::time::Duration,
    /// Register a key that stays in its hardware instead of generating one in a file: a
    /// PKCS#11 URI (`pkcs11:token=…;object=…?module-path=…&pin-source=…`; generated in the
    /// token, sensitive and not extractable, when it does not exist; the PIN from pin-source
    /// or RALIO_PKCS11_PIN), an AWS KMS key ARN or `alias/…` (created when the alias names
    /// none), or `vault-transit:<mount>/<key>`. The store keeps this reference, never the key
    /// or the PIN
    #[arg(long, value_name = "REFERENCE", value_parser = <ralio::keys::KeyReference as std::str::FromStr>::from_str)]
    pub key: Option<ralio::keys::KeyReference>,
}

/// `ralio chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The message; leave it out for an interactive session
    pub message: Option<String>,
    /// Wait for the whole reply instead of streaming it
    #[arg(long)]
    pub no_stream: bool,
    /// Continue this conversation
    #[arg(long, value_name = "ID")]
    pub conversation: Option<String>,
    /// Talk to this agent (default: the one agent this credential reaches)
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// After the reply, wait for the owner's decision on every payment intent the message
    /// created, and print the outcome (exit codes as `ralio intents wait`)
    #[arg(long)]
    pub wait: bool,
    /// How long to wait for the decisions (with --wait, or after "wait for the decision?" in a
    /// session): 30s, 10m, 1h
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub wait_timeout: std::time::Duration,
    /// Give up on a turn that has not finished after this long, keep-alives or not (e.g. 90s,
    /// 5m, 1h; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_turn_timeout)]
    pub timeout: std::time::Duration,
    /// Give up on a streamed turn that sends more events than this before its reply (a
    /// runaway agent, or a server that streams tool events forever)
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_events: usize,
}

/// `ralio intents`: the list, or one of its subcommands.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = INTENT_EXIT_CODES)]
pub struct IntentsArgs {
    /// Show or wait for one intent (without one: list them)
    #[command(subcommand)]
    pub command: Option<IntentsCommand>,
    /// The list's options.
    #[command(flatten)]
    pub list: ListArgs,
}

/// `ralio intents show|wait`.
#[derive(Debug, Subcommand)]
pub enum IntentsCommand {
    /// Show one payment intent in full: amount, payee, legs, approval and execution status,
    /// decision reason, timestamps
    Show(IntentIdArgs),
    /// Wait for the owner's decision on a payment intent and print the outcome
    #[command(after_help = INTENT_EXIT_CODES)]
    Wait(IntentWaitArgs),
}

/// `ralio intents show`.
#[derive(Debug, Args)]
pub struct IntentIdArgs {
    /// The payment intent id (pi_…)
    pub id: String,
}

/// `ralio intents wait`.
#[derive(Debug, Args)]
pub struct IntentWaitArgs {
    /// The payment intent id (pi_…)
    pub id: String,
    /// How long to wait: 30s, 10m, 1h (0 reads the intent once)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

const INTENT_EXIT_CODES: &str = "\
Exit codes of `ralio intents wait` and `ralio chat --wait`:
  0  approved and executed
  4  rejected (by the owner, or by the agent's rules); nothing was paid
  5  still pending (no decision, or not yet executed) when the time ran out or on Ctrl-C
  6  approved, but the payment failed
  1, 2, 3 as for every command (API or network failure, usage, authentication)
With several intents (chat --wait) the first of 6, 4, 5 that applies.

The API has no endpoint for one intent: show and wait page through the list (newest first)
until they meet the id, so an old intent takes more requests than a recent one; they look at
the newest 5000 intents at most. `wait --timeout` covers these lookups too: the command
returns within it (plus a second), whatever the server does.";

/// `30s`, `10m`, `1h 30m`, `0` (humantime syntax).
/// A chat turn's deadline: `90` (seconds), `90s`, `5m`, `1h`, more than zero.
fn parse_turn_timeout(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let duration = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|e| format!("{text:?}: {e}"))?
    } else {
        parse_duration(text)?
    };
    if duration.is_zero() {
        return Err(format!(
            "{text:?} is not a duration above zero, such as 90s or 5m"
        ));
    }
    Ok(duration)
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 10m, 1h 30m)"))
}

/// `ralio transactions` and `ralio intents`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Walk every page instead of showing one (at most --max-items items, within --timeout)
    #[arg(long, conflicts_with = "page")]
    pub all: bool,
    /// Only items of this agent
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Page to show, from 1
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub page: u64,
    /// Items per page (1 to 200)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub per_page: u64,
    /// With --all: stop after this many items (say so on stderr, and `"truncated": true` in
    /// --json), whatever total the server claims
    #[arg(long, value_name = "N", default_value_t = 10_000, requires = "all", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_items: usize,
    /// Give up when the listing has not finished after this long (30s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

/// `ralio sandbox`.
#[cfg(feature = "sandbox")]
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Seed of the sandbox's deterministic ids
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seconds the sandbox's clock runs ahead (negative: behind), to rehearse clock skew
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset: i64,
    /// Registration waits for approval (older servers); approve with the admin API
    #[arg(long)]
    pub legacy_registration: bool,
    /// The origin clients use when it differs from the listening address (behind a proxy, or
    /// when listening on 0.0.0.0); proofs and assertions are checked against it
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Answer in the legal variety a real server may use (integer agent numbers, naive
    /// timestamps, missing optional fields, plain 401s, split SSE records)
    #[arg(long)]
    pub variants: bool,
}

/// `ralio mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Serve only the tools that read (lists, one intent, waiting for a decision): no `chat`
    /// tool, so nothing the model is told (by the user or by text in a payee name or a
    /// reference) can make this server propose or make a payment
    #[arg(long)]
    pub read_only: bool,
}

/// `ralio completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::parse_turn_timeout;
    use std::time::Duration;

    #[test]
    fn turn_timeouts_take_seconds_minutes_or_hours_above_zero() {
        assert_eq!(parse_turn_timeout("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_turn_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_turn_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_turn_timeout("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_turn_timeout("1.5m"), Ok(Duration::from_secs(90)));
        for bad in ["", "0", "0s", "5x", "m", "-1", "99999999999999999999h"] {
            assert!(parse_turn_timeout(bad).is_err(), "{bad}");
        }
    }
}
