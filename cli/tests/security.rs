//! The security pass for the `ralio` command (SECURITY.md): nothing secret in its output at
//! any verbosity, private file modes under any umask, `http://` refused off loopback.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{BIN, Env};
use ralio_sandbox::{Sandbox, TicketSpec};

/// Runs the command with extra environment, returning (exit code, stdout + stderr).
async fn run_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("RALIO_API_URL", env.sandbox.base_url())
        .env("RALIO_CONFIG_DIR", env.config_dir())
        .env_remove("RALIO_REGISTRATION_TICKET")
        .env_remove("RALIO_STORE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Every run's output must be free of the ticket, the key, tokens, assertions and proofs.
fn assert_no_secret(text: &str, ticket: &str, key_file: &Path, what: &str) {
    assert!(!text.contains(ticket), "{what}: the ticket leaked:\n{text}");
    let pem = std::fs::read_to_string(key_file).unwrap();
    for line in pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(!text.contains(line), "{what}: key material leaked:\n{text}");
    }
    // Sandbox access tokens start `rat_`, refresh tokens `rrt_`; assertions and proofs are
    // JWTs, whose base64url JSON header starts `eyJ`.
    for marker in ["rat_", "rrt_", "eyJ", "PRIVATE KEY"] {
        assert!(
            !text.contains(marker),
            "{what}: something secret-shaped ({marker}) was printed:\n{text}"
        );
    }
}

#[tokio::test]
async fn verbose_and_trace_output_hold_no_secret() {
    let env = Env::new().await;
    let ticket = env.sandbox.mint_ticket(TicketSpec::default());
    let (code, out) = run_env(&env, &["-vvv", "register", "--ticket", &ticket], &[]).await;
    assert_eq!(code, 0, "{out}");
    let key_file = env.key_file();
    let mut transcript = out;
    let runs: [&[&str]; 8] = [
        &["-vvv", "whoami"],
        &["-vvv", "--json", "whoami"],
        &["-vvv", "doctor"],
        &["-vvv", "chat", "--no-stream", "What is my balance?"],
        &["-vvv", "chat", "Pay £5 to Bob for security"],
        &["-vvv", "transactions", "--all"],
        &["-vvv", "--json", "intents"],
        &["-vvv", "register", "--ticket", &ticket],
    ];
    for args in runs {
        let (_, out) = run_env(&env, args, &[]).await;
        assert!(!out.trim().is_empty(), "{args:?} printed nothing");
        transcript.push_str(&out);
    }
    // RUST_LOG=trace without -v: the same filter through the environment.
    let (code, out) = run_env(&env, &["whoami"], &[("RUST_LOG", "trace")]).await;
    assert_eq!(code, 0, "{out}");
    transcript.push_str(&out);
    // The trace level really was on (else this test proves nothing).
    assert!(transcript.contains("TRACE"), "no TRACE line:\n{transcript}");
    assert_no_secret(&transcript, &ticket, &key_file, "ralio -vvv");
}

#[tokio::test]
async fn register_writes_private_files_under_umask_000() {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nested/ralio");
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(["register", "--ticket", &ticket])
        .env("RALIO_API_URL", sandbox.base_url())
        .env("RALIO_CONFIG_DIR", &config)
        .env_remove("RALIO_STORE")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&config), 0o700);
    assert_eq!(mode(&config.join("keys")), 0o700);
    assert_eq!(mode(&config.join("credentials.json")), 0o600);
    let keys: Vec<_> = std::fs::read_dir(config.join("keys")).unwrap().collect();
    assert_eq!(keys.len(), 1);
    for key in keys {
        assert_eq!(mode(&key.unwrap().path()), 0o600);
    }
}

#[tokio::test]
async fn http_off_loopback_is_refused_before_anything_is_sent() {
    let env = Env::new().await;
    for url in ["http://api.ralio.co", "http://10.1.2.3:8080"] {
        for args in [
            &["--api-url", url, "whoami"][..],
            &["--api-url", url, "register", "--ticket", "ralio-reg-x"][..],
        ] {
            let (code, out) = run_env(&env, args, &[]).await;
            assert_eq!(code, 3, "{args:?}: {out}");
            assert!(out.contains("https://"), "{args:?}: {out}");
        }
    }
    // Nothing was written for the refused registration.
    assert!(!env.config_dir().join("credentials.json").exists());
}
