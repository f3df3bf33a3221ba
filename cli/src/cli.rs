//! The command tree (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the API or the network failed (see the message; often worth retrying)
  2  usage error (unknown flag, missing argument)
  3  authentication or configuration problem (no or bad credentials, refused ticket, missing scope)

Environment:
  RALIO_API_URL              API origin (default https://api.ralio.co)
  RALIO_CONFIG_DIR           credential directory of the file store (default ~/.ralio)
  RALIO_STORE                credential store: file, keyring or vault (default file)
  RALIO_KEYRING_SERVICE      keyring service name of --store keyring (default ralio)
  VAULT_ADDR, VAULT_TOKEN    Vault or OpenBao of --store vault (or AppRole: VAULT_ROLE_ID,
                             VAULT_SECRET_ID, VAULT_APPROLE_MOUNT); VAULT_NAMESPACE
  RALIO_VAULT_MOUNT          KV v2 mount of --store vault (default secret)
  RALIO_VAULT_PATH           path under the mount of --store vault (default ralio)
  RALIO_REGISTRATION_TICKET  ticket for `ralio register`";

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
    /// List payment intents (what the agent proposed to pay), newest first
    Intents(ListArgs),
    /// Run a local Ralio API sandbox in the foreground
    Sandbox(SandboxArgs),
    /// Serve the agent as Model Context Protocol tools over stdio
    Mcp,
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// `ralio register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The one-time ralio-reg-… ticket [env: RALIO_REGISTRATION_TICKET]
    #[arg(long, value_name = "TICKET")]
    pub ticket: Option<String>,
    /// Ask for these scopes only (repeatable; default: everything the ticket allows)
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Replace credentials already registered on this host
    #[arg(long)]
    pub force: bool,
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
    /// Give up on a turn that has not finished after this long, keep-alives or not (e.g. 90s,
    /// 5m, 1h; a bare number is seconds; default: no limit)
    #[arg(long, value_name = "DURATION", value_parser = parse_turn_timeout)]
    pub timeout: Option<std::time::Duration>,
}

/// `90`, `90s`, `5m` or `1h`, more than zero. (Hand-written: four units do not need a crate.)
fn parse_turn_timeout(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use s, m or h, as in 90s or 5m"
            ));
        }
    };
    let secs = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a duration above zero, such as 90s or 5m"))?;
    Ok(std::time::Duration::from_secs(secs))
}

/// `ralio transactions` and `ralio intents`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Walk every page instead of showing one
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
}

/// `ralio sandbox`.
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
        for bad in [
            "",
            "0",
            "0s",
            "5d",
            "m",
            "-1",
            "1.5m",
            "99999999999999999999h",
        ] {
            assert!(parse_turn_timeout(bad).is_err(), "{bad}");
        }
    }
}
