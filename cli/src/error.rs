//! The command's errors, their exit codes, and how they are printed.

use std::error::Error as StdError;
use std::io::Write as _;

use owo_colors::OwoColorize as _;
use ralio::ConfigError;
use ralio::auth::AuthError;
use ralio::register::RegistrationError;
use ralio::store::StoreError;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the API or the network failed.
pub const EXIT_API: u8 = 1;
/// Exit code: usage error (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: authentication or configuration problem.
pub const EXIT_AUTH_CONFIG: u8 = 3;
/// Exit code of `intents wait` / `chat --wait`: the payment intent was rejected.
pub const EXIT_REJECTED: u8 = 4;
/// Exit code of `intents wait` / `chat --wait`: still pending (no decision, or not executed
/// yet) when the time ran out or on Ctrl-C. Also `register` when the owner did not approve in
/// time and the registration was kept for `ralio register --resume`.
pub const EXIT_STILL_PENDING: u8 = 5;
/// Exit code of `intents wait` / `chat --wait`: approved, but the payment failed.
pub const EXIT_EXECUTION_FAILED: u8 = 6;

/// Everything a command can fail with. Messages say what to do; none carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// An SDK call failed.
    #[error(transparent)]
    Sdk(#[from] ralio::Error),
    /// Getting a token failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The credential store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Registration failed.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    /// The key given with `register --key` could not be opened or created.
    #[error(transparent)]
    Key(#[from] ralio::keys::OpenKeyError),
    /// No credentials in the store.
    #[error(
        "no credentials in the {store}; run `ralio register` and paste the ticket from the owner when asked"
    )]
    NoCredentials {
        /// The store, described.
        store: String,
    },
    /// `--store vault` without the settings to reach Vault.
    #[error(
        "--store vault needs {missing}: set VAULT_ADDR and either VAULT_TOKEN or VAULT_ROLE_ID with VAULT_SECRET_ID (AppRole)"
    )]
    VaultSettings {
        /// The variable that is unset.
        missing: String,
    },
    /// The sandbox could not start.
    #[cfg(feature = "sandbox")]
    #[error(transparent)]
    Sandbox(#[from] ralio_sandbox::SandboxError),
    /// Writing the output or reading the terminal failed.
    #[error("could not {action}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The MCP server failed.
    #[error("the MCP server stopped: {reason}")]
    Mcp {
        /// What happened.
        reason: String,
    },
    /// `ralio doctor` found problems.
    #[error("{failed} check(s) failed; apply the fixes above and run `ralio doctor` again")]
    DoctorFailed {
        /// How many checks failed.
        failed: usize,
    },
    /// A lookup walked as many payment intents as it may without meeting the id.
    #[error(
        "no payment intent {id} among the newest {searched} payment intents of this credential"
    )]
    IntentNotFound {
        /// The id looked for.
        id: String,
        /// How many intents were walked (the lookup's cap, or the whole list).
        searched: usize,
    },
    /// A lookup, a listing or a wait's lookups ran out of the time they were given: a slow or
    /// lying server (one that claims a huge list, for example).
    #[error("{what} did not finish within {}", humantime::format_duration(*.waited))]
    TimedOut {
        /// What did not finish.
        what: String,
        /// The time it had.
        waited: std::time::Duration,
    },
    /// A bad command-line value clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// A wait for payment decisions ended without every payment executed; the outcome is
    /// already printed, so [`report`] prints nothing more.
    #[error("{summary}")]
    Outcome {
        /// [`EXIT_REJECTED`], [`EXIT_STILL_PENDING`] or [`EXIT_EXECUTION_FAILED`]; 130 after
        /// Ctrl-C stopped the command.
        code: u8,
        /// What happened, in a few words.
        summary: String,
    },
}

impl CliError {
    /// The exit code documented in `ralio --help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Sdk(e) => sdk_exit_code(e),
            CliError::Auth(e) => auth_exit_code(e),
            CliError::Registration(e) => registration_exit_code(e),
            CliError::Store(_)
            | CliError::Key(_)
            | CliError::NoCredentials { .. }
            | CliError::VaultSettings { .. }
            | CliError::DoctorFailed { .. } => EXIT_AUTH_CONFIG,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Outcome { code, .. } => *code,
            #[cfg(feature = "sandbox")]
            CliError::Sandbox(_) => EXIT_API,
            CliError::Io { .. }
            | CliError::Mcp { .. }
            | CliError::IntentNotFound { .. }
            | CliError::TimedOut { .. } => EXIT_API,
        }
    }

    /// A one-line hint on top of the message, when there is something more to say.
    fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::Sdk(ralio::Error::Auth(_) | ralio::Error::Credential { .. })
            | CliError::Auth(_) => {
                Some("run `ralio doctor` to see which part of the credential is wrong")
            }
            CliError::Sdk(ralio::Error::Permission(_)) => {
                Some("`ralio whoami` shows the scopes this credential holds")
            }
            CliError::Sdk(ralio::Error::Transport { .. }) => {
                Some("check --api-url / RALIO_API_URL; `ralio doctor` tests the connection")
            }
            CliError::Sdk(ralio::Error::Stream(_)) => {
                Some("`ralio intents` shows whether the agent created a payment before the failure")
            }
            CliError::Registration(
                RegistrationError::ApprovalTimedOut {
                    pending: Some(_), ..
                }
                | RegistrationError::PollFailed {
                    pending: Some(_), ..
                },
            ) => Some(
                "once the owner approved the key in the console, run `ralio register --resume` to finish",
            ),
            CliError::Registration(RegistrationError::AlreadyPending { .. }) => Some(
                "`ralio register --resume` continues it; `ralio register --force` abandons it and starts again",
            ),
            CliError::Registration(RegistrationError::NothingToResume { .. }) => Some(
                "run `ralio register` (without --resume) to start a registration with a new ticket",
            ),
            CliError::Registration(RegistrationError::PendingElsewhere { .. }) => {
                Some("pass the same --api-url (or RALIO_API_URL) as when the registration started")
            }
            CliError::Registration(RegistrationError::MissingTicket) => Some(
                "run `ralio register` at a terminal to be asked for the ticket, or pass it with --ticket-stdin or RALIO_REGISTRATION_TICKET",
            ),
            CliError::Store(_) | CliError::Sdk(ralio::Error::Config(ConfigError::Store(_))) => {
                Some("`ralio doctor` checks the credential store step by step")
            }
            _ => None,
        }
    }
}

fn registration_exit_code(e: &RegistrationError) -> u8 {
    match e {
        RegistrationError::Http { .. } | RegistrationError::UnexpectedResponse { .. } => EXIT_API,
        RegistrationError::FirstToken { source, .. } => auth_exit_code(source),
        // Kept for `ralio register --resume`: still pending, as `intents wait` says it.
        RegistrationError::ApprovalTimedOut {
            pending: Some(_), ..
        } => EXIT_STILL_PENDING,
        RegistrationError::PollFailed { source, .. } => registration_exit_code(source),
        _ => EXIT_AUTH_CONFIG,
    }
}

fn sdk_exit_code(e: &ralio::Error) -> u8 {
    match e {
        ralio::Error::Auth(_)
        | ralio::Error::Permission(_)
        | ralio::Error::Registration(_)
        | ralio::Error::Config(_) => EXIT_AUTH_CONFIG,
        ralio::Error::Credential { source, .. } => auth_exit_code(source),
        ralio::Error::Middleware { source, .. } => match source.downcast_ref::<AuthError>() {
            Some(auth) => auth_exit_code(auth),
            None => EXIT_API,
        },
        _ => EXIT_API,
    }
}

fn auth_exit_code(e: &AuthError) -> u8 {
    match e {
        AuthError::TokenTransport { .. }
        | AuthError::TokenResponse { .. }
        | AuthError::Internal { .. }
        | AuthError::NonceChallengeRepeated { .. } => EXIT_API,
        AuthError::TokenRefused { status, .. } if status.is_server_error() => EXIT_API,
        _ => EXIT_AUTH_CONFIG,
    }
}

/// The messages of `e` and of every cause, outermost first, each once.
pub fn chain(e: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // A transparent wrapper repeats its cause's message: print it once.
        if out.last() != Some(&text) {
            out.push(text);
        }
        source = cause.source();
    }
    out
}

/// Prints `e` to stderr: the message, the cause chain, the request id and a hint; as one JSON
/// object with `--json`.
pub fn report(e: &CliError, json: bool) {
    if let CliError::Outcome { .. } = e {
        return;
    }
    let messages = chain(e);
    let request_id = match e {
        CliError::Sdk(sdk) => sdk.request_id().map(str::to_owned),
        _ => None,
    };
    if json {
        let value = serde_json::json!({
            "error": messages.first(),
            "causes": messages.get(1..).unwrap_or_default(),
            "hint": e.hint(),
            "request_id": request_id,
            "exit_code": e.exit_code(),
        });
        // Exact JSON: not through the stripping writer (it drops DEL from piped output).
        let _ = writeln!(std::io::stderr().lock(), "{value}");
        return;
    }
    let mut err = anstream::stderr().lock();
    // Messages carry server text (details, descriptions): no control reaches the terminal.
    let messages: Vec<String> = messages
        .iter()
        .map(|m| crate::terminal::safe_line(m).into_owned())
        .collect();
    let request_id = request_id.map(|id| crate::terminal::safe_line(&id).into_owned());
    let mut lines = messages.iter();
    if let Some(first) = lines.next() {
        let _ = writeln!(err, "{} {first}", "error:".red().bold());
    }
    for cause in lines {
        let _ = writeln!(err, "  {} {cause}", "caused by:".dimmed());
    }
    if let Some(id) = request_id {
        let _ = writeln!(err, "  {} {id}", "request id:".dimmed());
    }
    if let Some(hint) = e.hint() {
        let _ = writeln!(err, "{} {hint}", "hint:".yellow().bold());
    }
}
