//! The `ralio` command, end to end: spawned as a process against an in-process sandbox.

mod common;
mod stores;

use common::{BIN, Env, redactions, run_cmd};
use ralio_sandbox::{Faults, Sandbox};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

const SUBCOMMANDS: [&str; 9] = [
    "register",
    "whoami",
    "doctor",
    "chat",
    "transactions",
    "intents",
    "sandbox",
    "mcp",
    "completions",
];

#[tokio::test(flavor = "multi_thread")]
async fn help_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let top = run_cmd(&["--help"], "", "http://127.0.0.1:1", dir.path()).await;
    assert_eq!(top.code, 0);
    insta::assert_snapshot!("help", top.stdout);
    for sub in SUBCOMMANDS {
        let run = run_cmd(&[sub, "--help"], "", "http://127.0.0.1:1", dir.path()).await;
        assert_eq!(run.code, 0, "{sub}: {}", run.stderr);
        insta::assert_snapshot!(format!("help_{sub}"), run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_error_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_cmd(
        &["transactions", "--per-page", "0"],
        "",
        "http://127.0.0.1:1",
        dir.path(),
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stderr.contains("--per-page"), "{}", run.stderr);
    let run = run_cmd(&["frobnicate"], "", "http://127.0.0.1:1", dir.path()).await;
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
    // One scope per --scope: two in one value are refused before anything is sent.
    let run = run_cmd(
        &["register", "--scope", "agents:execute transactions:read"],
        "",
        "http://127.0.0.1:1",
        dir.path(),
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stderr.contains("is not a scope"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_exit_3_with_a_hint() {
    let env = Env::new().await;
    let run = env.run(&["transactions"]).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    redactions(env.dir.path()).bind(|| insta::assert_snapshot!(run.transcript()));
    let json = env.run(&["--json", "whoami"]).await;
    assert_eq!(json.code, 3);
    let v: serde_json::Value = serde_json::from_str(json.stderr.trim()).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert!(v["error"].as_str().unwrap().contains("ralio register"));
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_api_url_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_cmd(&["whoami"], "", "http://example.com", dir.path()).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr.contains("refusing plain http://"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_ticket_exits_3() {
    let env = Env::new().await;
    let run = env
        .run(&["register", "--ticket", "ralio-reg-not-a-real-ticket"])
        .await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    // The refusal and its advice, not just any line that mentions a ticket.
    assert!(
        run.stderr.contains("registration refused (HTTP 400)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("check that the whole ralio-reg-… ticket was copied"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("ralio-reg-not-a-real-ticket"),
        "the ticket leaked: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_error_exits_1_with_the_cause() {
    let env = Env::new().await;
    env.register().await;
    env.sandbox.set_faults(Faults {
        fail_next: [("GET /api/transactions".to_owned(), 1)].into(),
        error_status: 500,
        ..Faults::default()
    });
    let run = env.run(&["transactions"]).await;
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stderr.contains("500"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_binding_exits_3() {
    let env = Env::new().await;
    let reg = env.register().await;
    let client_id = reg.stdout.split_whitespace().nth(1).unwrap().to_owned();
    env.sandbox.revoke_binding(&client_id).unwrap();
    let run = env.run(&["whoami"]).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: run `ralio doctor`"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn register_whoami_chat_and_lists() {
    // Exact output snapshots: uniform answers (the varied mode leaves optional columns blank;
    // the other CLI tests run in both modes).
    let env = Env::with(
        ralio_sandbox::Sandbox::builder()
            .seed(1)
            .admin_api(true)
            .answers(ralio_sandbox::Answers::Uniform),
    )
    .await;
    let settings = redactions(env.dir.path());
    let reg = env.register().await;
    settings.bind(|| insta::assert_snapshot!("register", reg.transcript()));
    assert!(env.key_file().exists());

    let who = env.run(&["whoami"]).await;
    assert_eq!(who.code, 0, "{}", who.transcript());
    settings.bind(|| insta::assert_snapshot!("whoami", who.transcript()));
    let who_json = env.run(&["--json", "whoami"]).await;
    let v: serde_json::Value = serde_json::from_str(&who_json.stdout).unwrap();
    assert_eq!(
        v["scopes"],
        serde_json::json!(["agents:execute", "transactions:read"])
    );
    // Nothing secret in whoami: no token, no private key member.
    assert!(!who_json.stdout.contains("\"d\""));
    assert!(!who_json.stdout.to_lowercase().contains("token\":\"ey"));
    // The client's refresh token is kept in the command's own slot of the store (0600), for
    // the next run; whoami says it holds one but never prints it.
    assert_eq!(v["refresh_token_held"], true, "{}", who_json.stdout);
    let slot = env.config_dir().join("refresh-tokens").join("cli.json");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&slot).unwrap()).unwrap();
    let refresh_token = kept["refresh_token"].as_str().unwrap();
    assert!(!refresh_token.is_empty());
    assert!(!who.stdout.contains(refresh_token) && !who_json.stdout.contains(refresh_token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&slot).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The next run refreshes that token instead of signing a new assertion.
    let before = env.sandbox.counters();
    let empty = env.run(&["transactions"]).await;
    let after = env.sandbox.counters();
    assert_eq!(
        (after.token_mints, after.refreshes),
        (before.token_mints, before.refreshes + 1)
    );
    assert_eq!(empty.code, 0);
    assert_eq!(empty.stdout, "");
    assert_eq!(empty.stderr, "no transactions\n");

    let chat = env.run(&["chat", "Pay £20 to Alice for lunch"]).await;
    assert_eq!(chat.code, 0, "{}", chat.transcript());
    settings.bind(|| insta::assert_snapshot!("chat_stream", chat.transcript()));

    let chat = env
        .run(&["chat", "--no-stream", "Pay £500 to Bob for rent"])
        .await;
    assert_eq!(chat.code, 0, "{}", chat.transcript());
    settings.bind(|| insta::assert_snapshot!("chat_no_stream", chat.transcript()));

    let tx = env.run(&["transactions"]).await;
    settings.bind(|| insta::assert_snapshot!("transactions", tx.transcript()));
    let intents = env.run(&["intents"]).await;
    settings.bind(|| insta::assert_snapshot!("intents", intents.transcript()));

    let json = env.run(&["intents", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["total"], 2);
    assert_eq!(v["payment_intents"][0]["total_amount"], "500.00");
    assert_eq!(
        v["payment_intents"][0]["approval_status"],
        "pending_approval"
    );

    let agent = env.sandbox.default_agent_id();
    let tx_json = env
        .run(&["transactions", "--json", "--agent", &agent])
        .await;
    let v: serde_json::Value = serde_json::from_str(&tx_json.stdout).unwrap();
    assert_eq!(v["transactions"][0]["amount"], "20.00");
    assert_eq!(v["transactions"][0]["creditor"], "Alice");
    let other = env
        .run(&["transactions", "--json", "--agent", "agt_someone_else"])
        .await;
    assert_ne!(
        other.code,
        0,
        "another agent's transactions must not be listed: {}",
        other.transcript()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn all_walks_every_page() {
    let env = Env::new().await;
    env.register().await;
    for i in 1..=5 {
        let run = env
            .run(&[
                "chat",
                "--no-stream",
                &format!("Pay £{i} to Alice for coffee {i}"),
            ])
            .await;
        assert_eq!(run.code, 0, "{}", run.transcript());
    }
    let page = env.run(&["transactions", "--per-page", "2"]).await;
    assert_eq!(page.stdout.lines().count(), 3, "{}", page.transcript());
    assert!(
        page.stderr.starts_with("1–2 of 5 transactions; --page N"),
        "{}",
        page.stderr
    );
    let page3 = env
        .run(&["transactions", "--per-page", "2", "--page", "3"])
        .await;
    assert_eq!(page3.stderr, "5–5 of 5 transactions\n");
    let all = env.run(&["transactions", "--per-page", "2", "--all"]).await;
    assert_eq!(all.code, 0, "{}", all.transcript());
    assert_eq!(all.stdout.lines().count(), 6, "{}", all.transcript());
    assert_eq!(all.stderr, "5 transactions\n");
    let all_json = env
        .run(&["transactions", "--per-page", "2", "--all", "--json"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&all_json.stdout).unwrap();
    let amounts: Vec<&str> = v["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["5.00", "4.00", "3.00", "2.00", "1.00"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn interactive_chat_keeps_the_conversation() {
    let env = Env::new().await;
    env.register().await;
    let run = env
        .run_with_stdin(
            &["chat"],
            "What is my current balance?\n\nShow my recent payments\n/exit\nnot sent\n",
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("balance"), "{}", run.stdout);
    let convs: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("conversation "))
        .collect();
    assert_eq!(convs.len(), 1, "{}", run.stderr);
    assert_eq!(
        env.sandbox.counters().chat_posts,
        2,
        "/exit ends the session; blank lines are not sent"
    );
    // Both messages went to one conversation: the second reply was produced in it.
    let conv = convs[0].split_whitespace().nth(1).unwrap();
    let again = env
        .run(&[
            "chat",
            "--json",
            "--no-stream",
            "--conversation",
            conv,
            "hello",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["conversation_id"], conv);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_all_ok() {
    let env = Env::new().await;
    env.register().await;
    let run = env.run(&["doctor"]).await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    redactions(env.dir.path()).bind(|| insta::assert_snapshot!(run.transcript()));
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_catches_a_world_readable_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new().await;
    env.register().await;
    let key = env.key_file();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = env.run(&["doctor"]).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("key permissions"))
        .unwrap();
    assert!(line.starts_with("fail"), "{line}");
    assert!(
        line.contains(&format!("chmod 600 {}", key.display())),
        "{line}"
    );
    redactions(env.dir.path()).bind(|| insta::assert_snapshot!(run.transcript()));
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_catches_a_thumbprint_mismatch() {
    let env = Env::new().await;
    env.register().await;
    let path = env.config_dir().join("credentials.json");
    let mut creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let real_jkt = creds["key_jkt"].as_str().unwrap().to_owned();
    let key_path = env.key_file();
    creds["key_path"] = key_path.display().to_string().into();
    creds["key_jkt"] = "0000000000000000000000000000000000000000000".into();
    std::fs::write(&path, creds.to_string()).unwrap();
    let run = env.run(&["doctor"]).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("key thumbprint"))
        .unwrap();
    assert!(line.starts_with("fail"), "{line}");
    assert!(
        line.contains(&real_jkt) && line.contains("0000000000000000000000000000000000000000000"),
        "{line}"
    );
}

/// Runs `ralio` from the working directory `cwd`.
async fn run_in(env: &Env, cwd: &std::path::Path, args: &[&str]) -> common::Run {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("RALIO_API_URL", env.sandbox.base_url())
        .env("RALIO_CONFIG_DIR", env.config_dir())
        .env_remove("RALIO_STORE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A relative `key_path` in credentials.json: the doctor inspects the file the client loads
/// (the store's report resolves it the way loading does: from the working directory), so
/// where `whoami` cannot find the key the doctor says it is missing, and where `whoami`
/// works the doctor is content. It used to resolve it against the credential directory.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_and_the_file_store_agree_on_a_relative_key_path() {
    let env = Env::new().await;
    env.register().await;
    let key_file = env.key_file();
    let relative = format!("keys/{}", key_file.file_name().unwrap().to_str().unwrap());
    let path = env.config_dir().join("credentials.json");
    let mut creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    creds["key_path"] = relative.clone().into();
    std::fs::write(&path, creds.to_string()).unwrap();

    // From elsewhere, `keys/<jkt>.pem` is not there: both say so.
    let elsewhere = tempfile::tempdir().unwrap();
    let whoami = run_in(&env, elsewhere.path(), &["whoami"]).await;
    assert_ne!(whoami.code, 0, "{}", whoami.transcript());
    assert!(whoami.stderr.contains(&relative), "{}", whoami.transcript());
    let doctor = run_in(&env, elsewhere.path(), &["doctor"]).await;
    assert_eq!(doctor.code, 3, "{}", doctor.transcript());
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("key permissions"))
        .unwrap();
    assert!(
        line.starts_with("fail") && line.contains(&format!("the key file {relative} is missing")),
        "{}",
        doctor.stdout
    );

    // From the credential directory the same path names the key: both work.
    let whoami = run_in(&env, &env.config_dir(), &["whoami"]).await;
    assert_eq!(whoami.code, 0, "{}", whoami.transcript());
    let doctor = run_in(&env, &env.config_dir(), &["--json", "doctor"]).await;
    assert_eq!(doctor.code, 0, "{}", doctor.transcript());
    let v: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    assert_eq!(v["store"]["kind"], "file");
    assert_eq!(v["store"]["location"]["key_file"], relative.as_str());
    assert_eq!(v["store"]["key"]["algorithm"], "ES256 (P-256)");
    assert_eq!(v["store"]["refresh_token"], true);
    assert_eq!(v["store"]["problems"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_catches_ten_minutes_of_clock_skew() {
    let env = Env::with(Sandbox::builder().seed(1).clock_offset(600)).await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    // Registration may fail on the skew itself; the doctor must say why either way.
    let _ = env.run(&["register", "--ticket", &ticket]).await;
    let run = env.run(&["doctor"]).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    let line = run.stdout.lines().find(|l| l.contains("clock")).unwrap();
    assert!(line.starts_with("fail"), "{line}");
    assert!(
        line.contains("10m 00s behind")
            || line.contains("9m 59s behind")
            || line.contains("10m 01s behind"),
        "{line}"
    );
    assert!(line.contains("NTP"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_without_credentials_says_register() {
    let env = Env::new().await;
    let run = env.run(&["doctor", "--json"]).await;
    assert_eq!(run.code, 3);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"][0]["name"], "credentials");
    assert_eq!(v["checks"][0]["status"], "fail");
    assert!(
        v["checks"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("ralio register")
    );
    let reach = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api reachable")
        .unwrap();
    assert_eq!(reach["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_an_unreachable_api() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_cmd(&["doctor"], "", "http://127.0.0.1:1", dir.path()).await;
    assert_eq!(run.code, 3);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("api reachable"))
        .unwrap();
    assert!(
        line.starts_with("fail") && line.contains("RALIO_API_URL"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = run_cmd(
            &["completions", shell],
            "",
            "http://127.0.0.1:1",
            dir.path(),
        )
        .await;
        assert_eq!(run.code, 0, "{shell}");
        assert!(
            run.stdout.contains("transactions") && run.stdout.contains("doctor"),
            "{shell}"
        );
    }
    let bad = run_cmd(
        &["completions", "tcsh"],
        "",
        "http://127.0.0.1:1",
        dir.path(),
    )
    .await;
    assert_eq!(bad.code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_command_serves_a_registrable_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["sandbox", "--addr", "127.0.0.1:0", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let url = v["base_url"].as_str().unwrap();
    let ticket = v["ticket"].as_str().unwrap();
    // The owner's console is served beside the API, to its own address.
    assert_eq!(v["console_url"], format!("{url}/sandbox/console"));
    let page = reqwest::get(format!("{url}/sandbox/console"))
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Payments waiting for your approval")
    );
    let reg = run_cmd(&["register", "--ticket", ticket], "", url, dir.path()).await;
    assert_eq!(reg.code, 0, "{}", reg.transcript());
    let chat = run_cmd(
        &["chat", "What is my current balance?"],
        "",
        url,
        dir.path(),
    )
    .await;
    assert!(chat.stdout.contains("10,000.00"), "{}", chat.transcript());
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_command_text_explains_how_to_use_it() {
    let mut child = tokio::process::Command::new(BIN)
        .args(["sandbox", "--addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut text = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        text.push_str(&line);
        text.push('\n');
        if line.contains("/sandbox/tickets") {
            break;
        }
    }
    child.kill().await.unwrap();
    redactions(std::path::Path::new("/nonexistent")).bind(|| insta::assert_snapshot!(text));
}

/// Speaks MCP JSON-RPC over the stdio of `ralio mcp`.
struct Mcp {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Mcp {
    async fn send(&mut self, msg: serde_json::Value) {
        self.stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn call(
        &mut self,
        id: u64,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        self.send(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .await;
        loop {
            let line = self
                .lines
                .next_line()
                .await
                .unwrap()
                .expect("ralio mcp closed stdout");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_over_stdio() {
    let env = Env::new().await;
    env.register().await;
    let mut child = tokio::process::Command::new(BIN)
        .arg("mcp")
        .env("RALIO_API_URL", env.sandbox.base_url())
        .env("RALIO_CONFIG_DIR", env.config_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut mcp = Mcp {
        child,
        stdin,
        lines,
    };

    let init = mcp
        .call(
            1,
            "initialize",
            serde_json::json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "cli-test", "version": "0"}
            }),
        )
        .await;
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    assert!(init["result"]["serverInfo"]["name"].is_string(), "{init}");
    mcp.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    let list = mcp.call(2, "tools/list", serde_json::json!({})).await;
    let mut names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "chat",
            "get_payment_intent",
            "list_payment_intents",
            "list_transactions",
            "wait_for_decision"
        ]
    );
    let chat_tool = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "chat")
        .unwrap();
    assert_eq!(
        chat_tool["inputSchema"]["required"],
        serde_json::json!(["message"])
    );

    let chat = mcp.call(3, "tools/call", serde_json::json!({"name": "chat", "arguments": {"message": "Pay £20 to Alice for lunch"}})).await;
    assert_ne!(chat["result"]["isError"], true, "{chat}");
    let text = chat["result"]["content"][0]["text"].as_str().unwrap();
    let reply: serde_json::Value = serde_json::from_str(text).unwrap();
    assert!(
        reply["reply"].as_str().unwrap().contains("Alice"),
        "{reply}"
    );
    assert!(
        reply["conversation_id"]
            .as_str()
            .unwrap()
            .starts_with("conv_")
    );

    let tx = mcp
        .call(
            4,
            "tools/call",
            serde_json::json!({"name": "list_transactions", "arguments": {}}),
        )
        .await;
    let tx: serde_json::Value =
        serde_json::from_str(tx["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(tx["total"], 1);
    assert_eq!(tx["transactions"][0]["amount"], "20.00");

    let pi = mcp
        .call(
            5,
            "tools/call",
            serde_json::json!({"name": "list_payment_intents", "arguments": {"per_page": 5}}),
        )
        .await;
    let pi: serde_json::Value =
        serde_json::from_str(pi["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(pi["total"], 1);
    assert_eq!(pi["per_page"], 5);
    assert_eq!(pi["payment_intents"][0]["approval_status"], "auto_approved");

    // The SDK's retry policy is on: one 503 on a list is retried and the tool succeeds.
    env.sandbox.set_faults(Faults {
        fail_next: [("GET /api/transactions".to_owned(), 1)].into(),
        error_status: 503,
        ..Faults::default()
    });
    let retried = mcp
        .call(
            60,
            "tools/call",
            serde_json::json!({"name": "list_transactions", "arguments": {}}),
        )
        .await;
    assert_eq!(retried["result"]["isError"], false, "{retried}");

    // A tool failure is a tool error the model can read, not a protocol error.
    env.sandbox.set_faults(Faults {
        fail_next: [("GET /api/transactions".to_owned(), 1)].into(),
        error_status: 500,
        ..Faults::default()
    });
    let failed = mcp
        .call(
            6,
            "tools/call",
            serde_json::json!({"name": "list_transactions", "arguments": {}}),
        )
        .await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    assert!(
        failed["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{failed}"
    );

    // Bad arguments are refused.
    let bad = mcp
        .call(
            7,
            "tools/call",
            serde_json::json!({"name": "chat", "arguments": {}}),
        )
        .await;
    assert!(
        bad["error"].is_object() || bad["result"]["isError"] == true,
        "{bad}"
    );

    drop(mcp.stdin);
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), mcp.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "ralio mcp should exit cleanly when stdin closes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_registration_waits_for_approval() {
    let env = Env::with(Sandbox::builder().seed(1).legacy_registration(true)).await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    let run = {
        let args = ["register", "--ticket", &ticket];
        let register = env.run(&args);
        let approve = async {
            loop {
                if let Some(fp) = env.sandbox.pending_binding_fingerprints().first() {
                    return env.sandbox.approve_binding(fp).unwrap();
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        let (run, client_id) = tokio::join!(register, approve);
        assert!(run.stdout.contains(&client_id), "{}", run.transcript());
        run
    };
    assert_eq!(run.code, 0, "{}", run.transcript());
    // Without a terminal there is no spinner: one line says what it waits for.
    assert_eq!(
        run.stderr
            .matches("waiting for the owner to approve key")
            .count(),
        1,
        "{}",
        run.stderr
    );
}

/// The owner approves only after the wait ran out: the command exits 5 (still pending) and
/// keeps the registration; `ralio register --resume` finishes it, and the binding works.
#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_registration_is_finished_by_register_resume() {
    let env = Env::with(Sandbox::builder().seed(1).legacy_registration(true)).await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    let run = env
        .run_with_stdin(
            &["register", "--ticket-stdin", "--approval-timeout", "1s"],
            &ticket,
        )
        .await;
    assert_eq!(run.code, 5, "{}", run.transcript());
    assert!(
        run.stderr.contains("did not approve the registration"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "hint: once the owner approved the key in the console, run `ralio register --resume`"
        ),
        "{}",
        run.stderr
    );
    let record =
        std::fs::read_to_string(env.config_dir().join("pending-registration.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let poll_token = record["poll_token"].as_str().unwrap();
    assert!(!run.stderr.contains(poll_token) && !run.stderr.contains(&ticket));

    let fingerprints = env.sandbox.pending_binding_fingerprints();
    let client_id = env.sandbox.approve_binding(&fingerprints[0]).unwrap();
    let resumed = env.run(&["register", "--resume"]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    assert!(
        resumed.stdout.contains(&format!("registered {client_id}")),
        "{}",
        resumed.transcript()
    );
    assert!(
        resumed
            .stdout
            .contains(&format!("key       {}", fingerprints[0])),
        "{}",
        resumed.transcript()
    );
    let whoami = env.run(&["whoami"]).await;
    assert_eq!(whoami.code, 0, "{}", whoami.transcript());
    assert!(whoami.stdout.contains(&client_id), "{}", whoami.stdout);
    assert!(!env.config_dir().join("pending-registration.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn register_resume_with_nothing_pending_says_so_and_exits_3() {
    let env = Env::new().await;
    let run = env.run(&["register", "--resume"]).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr.starts_with(&format!(
            "error: nothing to resume: there is no pending registration in the file store at {}",
            env.config_dir().display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("run `ralio register` (without --resume)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let json = env.run(&["--json", "register", "--resume"]).await;
    assert_eq!(json.code, 3);
    let v: serde_json::Value = serde_json::from_str(json.stderr.trim()).unwrap();
    assert_eq!(v["exit_code"], 3);
    // --resume takes no ticket.
    let both = env
        .run(&["register", "--resume", "--ticket", "ralio-reg-x"])
        .await;
    assert_eq!(both.code, 2, "{}", both.transcript());
}

/// On a terminal the wait for the owner's approval is an animated spinner on stderr, and the
/// result follows it. The command runs under `script` (util-linux), which gives it a
/// pseudo-terminal; the owner approves only once the spinner has shown three frames.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_registration_on_a_terminal_shows_an_animated_spinner() {
    use tokio::io::AsyncReadExt as _;
    const FRAMES: [char; 8] = ['⠁', '⠂', '⠄', '⡀', '⢀', '⠠', '⠐', '⠈'];
    if common::script_missing() {
        return;
    }
    let env = Env::with(Sandbox::builder().seed(1).legacy_registration(true)).await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    let command_line = format!("'{BIN}' register --ticket '{ticket}'");
    let mut child = tokio::process::Command::new("script")
        .args(["-qefc", &command_line, "/dev/null"])
        .env("RALIO_API_URL", env.sandbox.base_url())
        .env("RALIO_CONFIG_DIR", env.config_dir())
        .env_remove("RALIO_REGISTRATION_TICKET")
        .env_remove("RALIO_STORE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut terminal = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut approved = None;
    let watch = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = terminal.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            let frames = FRAMES.iter().filter(|f| text.contains(**f)).count();
            if approved.is_none()
                && frames >= 3
                && text.contains("waiting for the owner to approve key")
                && let Some(fp) = env.sandbox.pending_binding_fingerprints().first()
            {
                approved = Some(env.sandbox.approve_binding(fp).unwrap());
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), watch)
        .await
        .expect("the spinner never showed three frames, or the command never ended");
    let status = child.wait().await.unwrap();
    let text = String::from_utf8_lossy(&seen).into_owned();
    let client_id = approved.expect("the spinner was never seen animating");
    assert!(status.success(), "{text}");
    let after_spinner = &text[text.rfind("waiting for the owner").unwrap()..];
    assert!(
        after_spinner.contains(&format!("registered {client_id}")),
        "{text}"
    );
}

/// Several runs of the command at once share the store's `cli` refresh-token slot: they take
/// turns through its lock, each refreshing the token the previous one left, so none presents a
/// rotated token (which would revoke the family and force new client assertions).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_share_the_refresh_token_slot_without_a_replay() {
    const RUNS: u64 = 6;
    let env = Env::new().await;
    assert_eq!(env.register().await.code, 0);
    assert_eq!(env.run(&["whoami"]).await.code, 0);
    let before = env.sandbox.counters();
    let runs = futures::future::join_all((0..RUNS).map(|_| env.run(&["transactions"]))).await;
    for run in &runs {
        assert_eq!(run.code, 0, "{}", run.transcript());
    }
    let after = env.sandbox.counters();
    assert_eq!(
        after.token_mints, before.token_mints,
        "a run minted a new token: a refresh token was replayed and its family revoked"
    );
    assert_eq!(after.refreshes, before.refreshes + RUNS);
}

/// Server text (a creditor, a reference, a reply, an error detail) holding a screen clear, an
/// OSC 52 clipboard write, a C1 control and bidi overrides reaches the terminal with each
/// control replaced by a visible stand-in; `--json` keeps the exact strings.
#[tokio::test(flavor = "multi_thread")]
async fn server_text_reaches_the_terminal_with_controls_replaced_and_json_stays_exact() {
    let env = Env::new().await;
    env.register().await;
    let name = "Eve\u{1b}[2J\u{1b}]52;c;aGk=\u{7}\u{202e}evil";
    let reference = "rent\u{9b}31m\u{2066}x";
    let message = format!("Pay £20 to {name} for {reference}");
    let runs = [
        (
            "chat --no-stream",
            env.run(&["chat", "--no-stream", &message]).await,
        ),
        ("chat (streamed)", env.run(&["chat", &message]).await),
        ("transactions", env.run(&["transactions"]).await),
        ("intents", env.run(&["intents"]).await),
    ];
    for (what, run) in &runs {
        assert_eq!(run.code, 0, "{what}: {}", run.transcript());
        for control in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\u{2066}'] {
            assert!(
                !run.stdout.contains(control) && !run.stderr.contains(control),
                "{what}: {control:?} reached the terminal: {:?}",
                run.transcript()
            );
        }
        assert!(
            run.stdout.contains("Eve␛[2J␛]52;c;aGk=␇<U+202E>evil"),
            "{what}: {}",
            run.stdout
        );
    }
    assert!(
        runs[2].1.stdout.contains("rent<U+009B>31m<U+2066>x"),
        "{}",
        runs[2].1.stdout
    );

    // An error detail that echoes what was sent.
    let agent = "ag_\u{1b}[2J\u{202e}x";
    let err = env
        .run(&["chat", "--no-stream", "--agent", agent, "hi"])
        .await;
    assert_ne!(err.code, 0, "{}", err.transcript());
    assert!(err.stderr.contains("ag_␛[2J<U+202E>x"), "{}", err.stderr);
    assert!(
        !err.stderr.contains('\u{1b}') && !err.stderr.contains('\u{202e}'),
        "{:?}",
        err.stderr
    );
    let err = env
        .run(&["--json", "chat", "--no-stream", "--agent", agent, "hi"])
        .await;
    let v: serde_json::Value = serde_json::from_str(err.stderr.trim()).unwrap();
    let all = v.to_string();
    assert!(all.contains(r"ag_\u001b[2J"), "{all}");

    // --json: the exact strings, as the server sent them.
    let json = env.run(&["--json", "transactions"]).await;
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert!(
        v["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["creditor"] == name && t["reference"] == reference),
        "{v}"
    );
    let json = env.run(&["--json", "chat", "--no-stream", &message]).await;
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert!(v["reply"].as_str().unwrap().contains(name), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ticket_comes_from_stdin_or_the_variable_and_the_command_line_warns() {
    let env = Env::new().await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    // Pasted with a newline and spaces: trimmed.
    let run = env
        .run_with_stdin(&["register", "--ticket-stdin"], &format!("  {ticket}\n"))
        .await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    let env = Env::new().await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    let run = env
        .run_env(
            &["register"],
            &[("RALIO_REGISTRATION_TICKET", Some(&ticket))],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    let env = Env::new().await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    let run = env.run(&["register", "--ticket", &ticket]).await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("warning: a ticket on the command line can be read by other users"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--ticket-stdin"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blank_or_missing_ticket_is_a_clear_error_before_any_request() {
    let env = Env::new().await;
    let run = env
        .run_with_stdin(&["register", "--ticket-stdin"], " \n\t\n")
        .await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(run.stderr.contains("ticket is empty"), "{}", run.stderr);
    // No terminal to ask at, no variable: say how to give one.
    let run = env.run(&["register"]).await;
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stderr.contains("no registration ticket"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--ticket-stdin"), "{}", run.stderr);
    assert_eq!(env.sandbox.counters().registrations, 0);
    assert!(!env.config_dir().join("keys").exists());
}

/// At a terminal, `ralio register` asks for the ticket and does not echo it. Runs under
/// `script` (util-linux), which gives the command a pseudo-terminal.
#[tokio::test(flavor = "multi_thread")]
async fn at_a_terminal_the_ticket_is_asked_for_without_echo() {
    use tokio::io::AsyncReadExt as _;
    if common::script_missing() {
        return;
    }
    let env = Env::new().await;
    let ticket = env
        .sandbox
        .mint_ticket(ralio_sandbox::TicketSpec::default());
    let command_line = format!("'{BIN}' register");
    let mut child = tokio::process::Command::new("script")
        .args(["-qefc", &command_line, "/dev/null"])
        .env("RALIO_API_URL", env.sandbox.base_url())
        .env("RALIO_CONFIG_DIR", env.config_dir())
        .env_remove("RALIO_REGISTRATION_TICKET")
        .env_remove("RALIO_STORE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script_pid = child.id().unwrap();
    let mut terminal = child.stdout.take().unwrap();
    let mut keyboard = child.stdin.take().unwrap();
    let mut seen = Vec::new();
    let mut typed = false;
    let watch = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = terminal.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !typed && String::from_utf8_lossy(&seen).contains("(input hidden):") {
                // Type only once the command has turned echo off: the prompt is printed just
                // before, and a ticket typed in between would be echoed by the terminal.
                wait_for_echo_off(script_pid).await;
                keyboard
                    .write_all(format!("{ticket}\n").as_bytes())
                    .await
                    .unwrap();
                typed = true;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), watch)
        .await
        .expect("the prompt never showed, or the command never ended");
    let status = child.wait().await.unwrap();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(typed, "no prompt: {text}");
    assert!(status.success(), "{text}");
    assert!(text.contains("registered cb_"), "{text}");
    assert!(!text.contains(&ticket), "the ticket was echoed: {text}");
}

/// Waits until the pseudo-terminal `script` (pid `script_pid`) gave its child has echo off.
async fn wait_for_echo_off(script_pid: u32) {
    for _ in 0..600 {
        let children =
            std::fs::read_to_string(format!("/proc/{script_pid}/task/{script_pid}/children"))
                .unwrap_or_default();
        for child in children.split_whitespace() {
            let Ok(tty) = std::fs::read_link(format!("/proc/{child}/fd/0")) else {
                continue;
            };
            let settings = std::process::Command::new("stty")
                .arg("-a")
                .arg("-F")
                .arg(&tty)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if settings.split_whitespace().any(|w| w == "-echo") {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the command never turned terminal echo off");
}

/// `ralio whoami` with production credentials and another API URL: the other server never
/// receives the refresh token (one client-assertion mint, no refresh grant), and the token
/// file is left exactly as it was.
#[tokio::test(flavor = "multi_thread")]
async fn another_api_url_never_receives_the_stored_refresh_token() {
    let env = Env::new().await;
    env.register().await;
    assert_eq!(env.run(&["whoami"]).await.code, 0);
    let slot = env.config_dir().join("refresh-tokens/cli.json");
    let before = std::fs::read(&slot).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&before).unwrap();
    assert_eq!(saved["issuer"], env.sandbox.token_url());

    let other = Sandbox::builder().seed(2).start().await.unwrap();
    let run = common::run_cmd(
        &["--api-url", other.base_url(), "whoami"],
        "",
        env.sandbox.base_url(),
        &env.config_dir(),
    )
    .await;
    assert_ne!(run.code, 0, "{}", run.transcript());
    let counters = other.counters();
    assert_eq!(
        counters.requests.get("POST /oauth/token"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(counters.refreshes, 0);
    assert_eq!(
        std::fs::read(&slot).unwrap(),
        before,
        "the token file is intact"
    );
    // And the credentials still work at home.
    assert_eq!(env.run(&["whoami"]).await.code, 0);
}

/// Thumbprints are base64url: one in four starts or ends with `-` or `_`, where a `\b`-bounded
/// pattern does not match. The snapshot redaction must hide every one of them, wherever it sits.
#[test]
fn snapshot_redaction_hides_thumbprints_that_start_or_end_with_dash_or_underscore() {
    let jkts = [
        "-Gg14Qo5Wcjsg9ebmP3BJs9vAv8axQGRhOqrQy0Mc0g",
        "_Gg14Qo5Wcjsg9ebmP3BJs9vAv8axQGRhOqrQy0Mc0-",
        "Gg14Qo5Wcjsg9ebmP3BJs9vAv8axQGRhOqrQy0Mc0g_",
        "AGg14Qo5Wcjsg9ebmP3BJs9vAv8axQGRhOqrQy0Mc0g",
    ];
    insta::allow_duplicates! {
        for j in jkts {
            let text = format!("  key       {j}\n  stored in /x/keys/{j}.pem\n{j}\n");
            redactions(std::path::Path::new("/nonexistent")).bind(|| {
                insta::assert_snapshot!(text, @r"
                  key       [JKT]
                  stored in /x/keys/[JKT].pem
                [JKT]
                ");
            });
        }
    }
    // A longer base64url run (a token, say) is not a thumbprint and is left alone.
    let longer = format!("{}x", jkts[3]);
    redactions(std::path::Path::new("/nonexistent")).bind(
        || insta::assert_snapshot!(longer.clone(), @"AGg14Qo5Wcjsg9ebmP3BJs9vAv8axQGRhOqrQy0Mc0gx"),
    );
}
