//! Runs the `ralio` binary against an in-process sandbox, with its own credential directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use ralio_sandbox::{Sandbox, TicketSpec};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

pub const BIN: &str = env!("CARGO_BIN_EXE_ralio");

/// What one run printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit code and both streams, for a snapshot.
    pub fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A sandbox, a credential directory, and the environment pointing the CLI at both.
pub struct Env {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn new() -> Env {
        Self::with(Sandbox::builder().seed(1).admin_api(true)).await
    }

    pub async fn with(builder: ralio_sandbox::SandboxBuilder) -> Env {
        let sandbox = builder.start().await.unwrap();
        Env {
            sandbox,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("ralio")
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "").await
    }

    pub async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_cmd(args, stdin, self.sandbox.base_url(), &self.config_dir()).await
    }

    /// Runs the command with extra environment variables (`None` removes one).
    pub async fn run_env(&self, args: &[&str], vars: &[(&str, Option<&str>)]) -> Run {
        run_cmd_env(args, "", self.sandbox.base_url(), &self.config_dir(), vars).await
    }

    /// Registers with a fresh ticket; panics when that fails.
    pub async fn register(&self) -> Run {
        let ticket = self.sandbox.mint_ticket(TicketSpec::default());
        let run = self
            .run_with_stdin(&["register", "--ticket-stdin"], &ticket)
            .await;
        assert_eq!(run.code, 0, "{}", run.transcript());
        run
    }

    /// The key file registration wrote.
    pub fn key_file(&self) -> PathBuf {
        let keys = self.config_dir().join("keys");
        let entry = std::fs::read_dir(keys).unwrap().next().unwrap().unwrap();
        entry.path()
    }
}

pub async fn run_cmd(args: &[&str], stdin: &str, api_url: &str, config_dir: &Path) -> Run {
    run_cmd_env(args, stdin, api_url, config_dir, &[]).await
}

/// Runs the command with `vars` set (`Some`) or removed (`None`) on top of the test's own
/// settings.
pub async fn run_cmd_env(
    args: &[&str],
    stdin: &str,
    api_url: &str,
    config_dir: &Path,
    vars: &[(&str, Option<&str>)],
) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("RALIO_API_URL", api_url)
        .env("RALIO_CONFIG_DIR", config_dir)
        .env_remove("RALIO_REGISTRATION_TICKET")
        .env_remove("RALIO_STORE")
        .env_remove("RALIO_KEYRING_SERVICE")
        .env_remove("RALIO_VAULT_MOUNT")
        .env_remove("RALIO_VAULT_PATH")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (name, value) in vars {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A 43-character base64url thumbprint, with the characters on either side kept as groups 1 and 2.
pub const JKT_PATTERN: &str = r"(?m)(^|[^A-Za-z0-9_-])[A-Za-z0-9_-]{43}([^A-Za-z0-9_-]|$)";

/// Snapshot settings that hide what changes from run to run: ids, keys, times, ports, paths.
pub fn redactions(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&dir.display().to_string()), "[TMP]");
    s.add_filter(r"http://127\.0\.0\.1:\d+", "http://[SANDBOX]");
    // Same-width placeholders keep table columns aligned in the snapshots.
    s.add_filter(
        r"\b(cb|tx|pi|conv|agt|msg|call)_[0-9a-f]{16}\b",
        "${1}_################",
    );
    s.add_filter(
        r"\b(cb|tx|pi|conv|agt|msg|call)_[0-9a-f]{12}\b",
        "${1}_############",
    );
    s.add_filter(
        r"\b(cb|tx|pi|conv|agt|msg|call)_[0-9a-f]{6,}\b",
        "${1}_[ID]",
    );
    s.add_filter(r"ralio-reg-[A-Za-z0-9_-]+", "ralio-reg-[TICKET]");
    // A thumbprint is base64url and may begin or end with `-` or `_`, where `\b` does not
    // match; bound it by "not a base64url character" instead.
    s.add_filter(JKT_PATTERN, "${1}[JKT]${2}");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "YYYY-MM-DDThh:mm:ssZ");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", "[TIME]");
    s.add_filter(r"\b\d+m \d\ds\b", "[DURATION]");
    s.add_filter(r"\b\d+h \d\dm\b", "[DURATION]");
    s.add_filter(
        r#""token_expires_in_secs":\d+"#,
        r#""token_expires_in_secs":[SECS]"#,
    );
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `script` (util-linux), which gives a command a pseudo-terminal, is missing. Then a
/// terminal test skips, saying so; under `CI=true` it fails instead.
pub fn script_missing() -> bool {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok()
    {
        return false;
    }
    let message = "`script` (util-linux) is not installed: apt-get install util-linux";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipping: {message}");
    true
}

/// `ralio args` against `env`'s sandbox with the credentials in `config_dir`: no stdin, stdout
/// and stderr piped, killed when dropped.
pub fn command(env: &Env, config_dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("RALIO_API_URL", env.sandbox.base_url())
        .env("RALIO_CONFIG_DIR", config_dir)
        .env_remove("RALIO_STORE")
        .env_remove("RALIO_REGISTRATION_TICKET")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A running `ralio` command whose stderr is read line by line.
pub struct Running {
    pub child: tokio::process::Child,
    stderr: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    seen: String,
}

impl Running {
    /// Starts [`command`] with `stdin` as its whole input.
    pub fn spawn(env: &Env, config_dir: &Path, args: &[&str], stdin: &str) -> Running {
        let mut child = command(env, config_dir, args)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_owned();
        tokio::spawn(async move {
            let _ = input.write_all(stdin.as_bytes()).await;
        });
        let stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        Running {
            child,
            stderr,
            seen: String::new(),
        }
    }

    /// Reads stderr until a line contains `needle`; returns that line.
    pub async fn until(&mut self, needle: &str) -> String {
        loop {
            let Some(line) = self.stderr.next_line().await.unwrap() else {
                panic!("stderr ended before {needle:?}:\n{}", self.seen);
            };
            self.seen.push_str(&line);
            self.seen.push('\n');
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Waits for the exit: the exit code, stdout, and all of stderr.
    pub async fn finish(mut self) -> (i32, String, String) {
        while let Some(line) = self.stderr.next_line().await.unwrap() {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        let status = self.child.wait().await.unwrap();
        (status.code().unwrap_or(-1), stdout, self.seen)
    }
}

/// `ralio chat MESSAGE` for a payment above the approval threshold (the credentials must be
/// registered); the new pending intent's id.
pub async fn pending_payment(env: &Env, message: &str) -> String {
    let before = env.sandbox.pending_intent_ids();
    let run = env.run(&["chat", message]).await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("pending approval"),
        "{}",
        run.transcript()
    );
    let ids = env.sandbox.pending_intent_ids();
    ids.into_iter().find(|id| !before.contains(id)).unwrap()
}
