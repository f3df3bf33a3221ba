//! One module per subcommand.

pub mod chat;
pub mod console;
pub mod doctor;
pub mod intents;
pub mod list;
pub mod mcp;
pub mod register;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod whoami;

use std::io::Write;

use crate::error::CliError;

/// Writes `text` and a newline to stdout (colour stripped when stdout is not a terminal).
pub fn out(text: impl std::fmt::Display) -> Result<(), CliError> {
    let mut stdout = anstream::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|source| CliError::Io {
            action: "write to stdout",
            source,
        })
}

/// Writes a JSON value on one line to stdout, byte for byte: not through the colour-stripping
/// writer of [`out`], whose strip mode drops DEL and other bytes it takes for terminal
/// controls (serde_json leaves DEL and C1 controls unescaped, as JSON allows).
pub fn out_json(value: &serde_json::Value) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush())
        .map_err(|source| CliError::Io {
            action: "write to stdout",
            source,
        })
}

/// Writes a line to stderr; a closed stderr is not worth failing a command for.
pub fn note(text: impl std::fmt::Display) {
    let mut stderr = anstream::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

/// `1h 02m`, `29m 59s`, `42s`.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}
