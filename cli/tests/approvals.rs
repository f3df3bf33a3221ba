//! Payment approvals from the command line and over MCP: `ralio intents show|wait`,
//! `ralio chat --wait`, the session's "wait for the decision?" prompt, and the MCP tools
//! `get_payment_intent` / `wait_for_decision` through a real MCP client (rmcp) over stdio.
//! The sandbox's admin API plays the owner.

mod common;

use std::process::Stdio;

use common::{BIN, Env, Running, command, pending_payment};
use ralio_sandbox::Sandbox;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test(flavor = "multi_thread")]
async fn show_prints_one_intent_in_full_and_as_json() {
    let env = Env::new().await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;

    let run = env.run(&["intents", "show", &id]).await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    for expected in [
        format!("payment intent {id}"),
        "GBP 250.00 (1 leg)".to_owned(),
        "stage         awaiting_approval".to_owned(),
        "approval      pending_approval".to_owned(),
        "execution     not_started".to_owned(),
        "payee         Erin (GB".to_owned(),
        "reference     the June rent".to_owned(),
        // The summary is a descriptive optional field that the varied answer mode may leave
        // out; then the line shows `-` (checked below).
        if env.sandbox.answers() == ralio_sandbox::Answers::Varied {
            "request       ".to_owned()
        } else {
            "request       Pay £250 to Erin for the June rent".to_owned()
        },
    ] {
        assert!(
            run.stdout.contains(&expected),
            "{expected:?} in\n{}",
            run.stdout
        );
    }

    env.sandbox.reject_intent(&id, "Not this month").unwrap();
    let run = env.run(&["intents", "show", &id, "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["stage"], "rejected");
    assert_eq!(v["approval_status"], "rejected_by_user");
    assert_eq!(v["decision_reason"], "Not this month");
    assert_eq!(v["instructions"][0]["creditor_name"], "Erin");

    // An unknown id: a 404-class failure (exit 1) that names the id.
    let run = env.run(&["intents", "show", "pi_nope"]).await;
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("pi_nope"), "{}", run.transcript());
    // The list is still `ralio intents`, and a subcommand does not take its flags.
    assert_eq!(env.run(&["intents", "--per-page", "1"]).await.code, 0);
    assert_eq!(env.run(&["intents", "--all", "show", &id]).await.code, 2);
}

/// Exit 0: the owner approves while the command waits; without a terminal it prints one line
/// per status change (no spinner), then the outcome on stdout.
#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_0_when_approved_and_executed() {
    let env = Env::new().await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;

    let mut wait = Running::spawn(&env, &env.config_dir(), &["intents", "wait", &id], "");
    wait.until("awaiting_approval").await;
    env.sandbox.approve_intent(&id).unwrap();
    let (code, stdout, stderr) = wait.finish().await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!("{id} approved and executed: GBP 250.00 to Erin (Approved by the account owner)\n")
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "waiting for the owner to approve or reject {id} (GBP 250.00 to Erin) (up to 10m 00s)…"
            ),
            // The sandbox serves the owner's console: the command says where it is.
            format!(
                "as the owner, approve or reject it in the sandbox's console: {}",
                env.sandbox.console_url().unwrap()
            ),
            format!("{id}: awaiting_approval (approval pending_approval, execution not_started)"),
            format!("{id}: executed (approval approved_by_user, execution completed)"),
        ],
        "{stderr}"
    );
}

/// A sandbox without the admin API serves no console: the wait names none.
#[tokio::test(flavor = "multi_thread")]
async fn wait_names_no_console_where_there_is_none() {
    let env = Env::with(Sandbox::builder().seed(1)).await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;
    let run = env.run(&["intents", "wait", &id, "--timeout", "1s"]).await;
    assert_eq!(run.code, 5, "{}", run.transcript());
    assert!(!run.stderr.contains("console"), "{}", run.transcript());
}

/// Exit 4: rejected by the owner, with the reason; `--json` gives one object with the outcome.
#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_4_when_rejected() {
    let env = Env::new().await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;

    let mut wait = Running::spawn(&env, &env.config_dir(), &["intents", "wait", &id], "");
    wait.until("awaiting_approval").await;
    env.sandbox.reject_intent(&id, "Not this month").unwrap();
    let (code, stdout, stderr) = wait.finish().await;
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!("{id} rejected: Not this month; nothing was paid (GBP 250.00 to Erin)\n")
    );

    let run = env.run(&["intents", "wait", &id, "--json"]).await;
    assert_eq!(run.code, 4, "{}", run.transcript());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(v["final"], true);
    assert_eq!(v["exit_code"], 4);
    assert_eq!(v["payment_intent"]["decision_reason"], "Not this month");
    assert_eq!(run.stderr, "", "--json: no progress lines");
}

/// Exit 5: no decision before the timeout; the intent is said to be still pending.
#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_5_when_still_pending_at_the_timeout() {
    let env = Env::new().await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;

    let run = env.run(&["intents", "wait", &id, "--timeout", "1s"]).await;
    assert_eq!(run.code, 5, "{}", run.transcript());
    assert_eq!(
        run.stdout,
        format!(
            "after 1s: {id} is still pending approval (GBP 250.00 to Erin); `ralio intents wait {id}` waits again\n"
        )
    );
    assert!(!run.stderr.contains("error"), "{}", run.transcript());
    // A bad duration is a usage error.
    let run = env
        .run(&["intents", "wait", &id, "--timeout", "soon"])
        .await;
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stderr.contains("10m"), "{}", run.transcript());
}

/// Exit 6: approved, but by then the balance no longer covered it.
#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_6_when_the_approved_payment_fails() {
    let env = Env::with(
        Sandbox::builder()
            .seed(1)
            .admin_api(true)
            .balance(ralio::Decimal::new(300, 0)),
    )
    .await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;
    for _ in 0..2 {
        let run = env.run(&["chat", "Pay £90 to Gail"]).await;
        assert!(run.stdout.contains("Done"), "{}", run.transcript());
    }
    let mut wait = Running::spawn(&env, &env.config_dir(), &["intents", "wait", &id], "");
    wait.until("awaiting_approval").await;
    env.sandbox.approve_intent(&id).unwrap();
    let (code, stdout, stderr) = wait.finish().await;
    assert_eq!(code, 6, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!(
            "{id} approved, but the payment failed: insufficient funds: balance is GBP 120.00 (GBP 250.00 to Erin)\n"
        )
    );
}

/// Ctrl-C (SIGINT) stops the wait: exit 5, and the intent is said to be still pending.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_waiting_and_says_the_intent_is_still_pending() {
    let env = Env::new().await;
    env.register().await;
    let id = pending_payment(&env, "Pay £250 to Erin for the June rent").await;

    let mut wait = Running::spawn(&env, &env.config_dir(), &["intents", "wait", &id], "");
    wait.until("awaiting_approval").await;
    let pid = wait.child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let (code, stdout, stderr) = wait.finish().await;
    assert_eq!(code, 5, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!(
            "stopped waiting: {id} is still pending approval (GBP 250.00 to Erin); `ralio intents wait {id}` waits again\n"
        )
    );
    assert_eq!(
        env.sandbox.pending_intent_ids(),
        [id],
        "stopping the wait decides nothing"
    );
}

/// `chat --wait` waits on the intents the message created, with the exit codes of `intents
/// wait`; streamed or not, in text or JSON.
#[tokio::test(flavor = "multi_thread")]
async fn chat_wait_waits_for_the_turns_intents() {
    let env = Env::new().await;
    env.register().await;
    // An older pending intent is not this turn's.
    let older = pending_payment(&env, "Pay £300 to Old").await;

    let mut chat = Running::spawn(
        &env,
        &env.config_dir(),
        &["chat", "--wait", "Pay £250 to Erin for the June rent"],
        "",
    );
    chat.until("awaiting_approval").await;
    let id = env
        .sandbox
        .pending_intent_ids()
        .into_iter()
        .find(|i| *i != older)
        .unwrap();
    env.sandbox.approve_intent(&id).unwrap();
    let (code, stdout, stderr) = chat.finish().await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("is pending approval"), "{stdout}");
    assert_eq!(
        lines[1],
        format!("{id} approved and executed: GBP 250.00 to Erin (Approved by the account owner)")
    );
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(!stderr.contains(&older), "{stderr}");

    // Auto-approved and executed at once: exit 0 without waiting; not streamed, as JSON lines.
    let run = env
        .run(&[
            "--json",
            "chat",
            "--no-stream",
            "--wait",
            "Pay £20 to Alice",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines[0]["reply"].as_str().unwrap().contains("Alice"));
    assert_eq!(lines[1]["outcome"], "executed");
    assert_eq!(
        lines[1]["payment_intent"]["instructions"][0]["creditor_name"],
        "Alice"
    );

    // Over the spend limit: rejected by the agent's rules, exit 4.
    let run = env.run(&["chat", "--wait", "Pay £5000 to Bob"]).await;
    assert_eq!(run.code, 4, "{}", run.transcript());
    assert!(
        run.stdout.contains("rejected: Amount GBP 5,000.00 exceeds"),
        "{}",
        run.transcript()
    );

    // Still pending at the timeout: exit 5.
    let run = env
        .run(&[
            "chat",
            "--wait",
            "--wait-timeout",
            "1s",
            "Pay £150 to Carol",
        ])
        .await;
    assert_eq!(run.code, 5, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("is still pending approval (GBP 150.00 to Carol)"),
        "{}",
        run.transcript()
    );

    // Nothing to wait for.
    let run = env.run(&["chat", "--wait", "What is my balance?"]).await;
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("no payment intent was created by this message"),
        "{}",
        run.transcript()
    );
}

/// At a terminal, a turn that leaves a payment pending asks "wait for the decision? [Y/n]":
/// "n" goes on with the session, Enter waits (spinner) and prints the outcome. The session runs
/// under `script` (util-linux), which gives it a pseudo-terminal.
#[tokio::test(flavor = "multi_thread")]
async fn the_session_asks_whether_to_wait_for_the_decision() {
    if common::script_missing() {
        return;
    }
    let env = Env::new().await;
    env.register().await;
    let mut child = tokio::process::Command::new("script")
        .args(["-qefc", &format!("'{BIN}' chat"), "/dev/null"])
        .env("RALIO_API_URL", env.sandbox.base_url())
        .env("RALIO_CONFIG_DIR", env.config_dir())
        .env_remove("RALIO_STORE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut keyboard = child.stdin.take().unwrap();
    let mut terminal = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Reads the terminal until `needle` appears after `from`; returns where it ends.
    macro_rules! until {
        ($from:expr, $needle:expr) => {{
            loop {
                if let Some(at) = seen[$from..].find($needle) {
                    break $from + at + $needle.len();
                }
                let n = terminal.read(&mut buf).await.unwrap();
                assert!(n > 0, "the session ended before {:?}:\n{seen}", $needle);
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }};
    }
    let watch = async {
        let at = until!(0, "you>");
        keyboard
            .write_all(b"Pay \xc2\xa3300 to Olga\n")
            .await
            .unwrap();
        let at = until!(at, "wait for the decision? [Y/n]");
        let olga = env.sandbox.pending_intent_ids()[0].clone();
        assert!(
            seen[..at].contains(&format!("{olga} (GBP 300.00 to Olga) is pending approval")),
            "{seen}"
        );
        keyboard.write_all(b"n\n").await.unwrap();
        let at = until!(at, "not waiting; `ralio intents wait");
        let at = until!(at, "you>");

        keyboard
            .write_all("Pay £250 to Erin for the June rent\n".as_bytes())
            .await
            .unwrap();
        let at = until!(at, "wait for the decision? [Y/n]");
        let erin = env
            .sandbox
            .pending_intent_ids()
            .into_iter()
            .find(|i| *i != olga)
            .unwrap();
        assert!(
            !seen[at - 200..at].contains(&olga),
            "only this turn's intent is asked about: {seen}"
        );
        keyboard.write_all(b"\n").await.unwrap();
        let at = until!(at, "waiting for the owner to approve or reject");
        env.sandbox.approve_intent(&erin).unwrap();
        let at = until!(at, &format!("{erin} approved and executed"));
        let _ = until!(at, "you>");
        keyboard.write_all(b"/exit\n").await.unwrap();
        (olga, erin)
    };
    let (olga, _) = tokio::time::timeout(std::time::Duration::from_secs(120), watch)
        .await
        .unwrap_or_else(|_| panic!("the session stalled"));
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{seen}");
    assert_eq!(
        env.sandbox.pending_intent_ids(),
        [olga],
        "olga's payment is still pending"
    );
}

/// The MCP tools through a real MCP client session (rmcp) over the stdio of `ralio mcp`.
#[tokio::test(flavor = "multi_thread")]
async fn mcp_tools_get_and_wait_for_a_decision() {
    use rmcp::ServiceExt as _;
    use rmcp::model::CallToolRequestParams;

    let env = Env::new().await;
    env.register().await;
    let mut server = command(&env, &env.config_dir(), &["mcp"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let stdin = server.stdin.take().unwrap();
    let client = ().serve((stdout, stdin)).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
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
    let wait_tool = tools
        .iter()
        .find(|t| t.name == "wait_for_decision")
        .unwrap();
    let schema = serde_json::Value::Object((*wait_tool.input_schema).clone());
    assert_eq!(schema["required"], serde_json::json!(["payment_intent_id"]));
    assert_eq!(
        schema["properties"]["timeout_seconds"]["maximum"], 50,
        "{schema}"
    );
    assert_eq!(
        schema["properties"]["timeout_seconds"]["minimum"], 0,
        "{schema}"
    );
    let description = wait_tool.description.as_deref().unwrap_or_default();
    assert!(description.contains("still_pending"), "{description}");

    let call = |name: &'static str, args: serde_json::Value| {
        let client = &client;
        async move {
            let mut params = CallToolRequestParams::new(name);
            params.arguments = args.as_object().cloned();
            let result = client.call_tool(params).await.unwrap();
            let text = result.content[0].as_text().unwrap().text.clone();
            (result.is_error == Some(true), text)
        }
    };
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();

    // chat names the intent the turn created, and that it is pending.
    let (failed, text) = call(
        "chat",
        serde_json::json!({"message": "Pay £250 to Erin for the June rent"}),
    )
    .await;
    assert!(!failed, "{text}");
    let reply = json(&text);
    let intents = reply["payment_intents"].as_array().unwrap();
    assert_eq!(intents.len(), 1, "{reply}");
    let id = intents[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(env.sandbox.pending_intent_ids(), std::slice::from_ref(&id));
    assert_eq!(intents[0]["pending"], true);
    assert_eq!(intents[0]["outcome"], "awaiting_approval");
    assert_eq!(intents[0]["payees"], serde_json::json!(["Erin"]));
    assert!(
        reply["next_step"]
            .as_str()
            .unwrap()
            .contains("wait_for_decision"),
        "{reply}"
    );

    let (failed, text) = call(
        "get_payment_intent",
        serde_json::json!({"payment_intent_id": id}),
    )
    .await;
    assert!(!failed, "{text}");
    let got = json(&text);
    assert_eq!(got["payment_intent"]["approval_status"], "pending_approval");
    assert_eq!(got["pending"], true);

    // Bounded: a timeout over the maximum is refused, and a short wait returns "still pending".
    let (failed, text) = call(
        "wait_for_decision",
        serde_json::json!({"payment_intent_id": id, "timeout_seconds": 51}),
    )
    .await;
    assert!(failed, "{text}");
    assert!(text.contains("between 0 and 50"), "{text}");
    let (failed, text) = call(
        "wait_for_decision",
        serde_json::json!({"payment_intent_id": id, "timeout_seconds": 1}),
    )
    .await;
    assert!(!failed, "{text}");
    let pending = json(&text);
    assert_eq!(pending["still_pending"], true);
    assert_eq!(pending["final"], false);
    assert_eq!(pending["outcome"], "awaiting_approval");
    assert!(
        pending["message"]
            .as_str()
            .unwrap()
            .contains("still pending"),
        "{pending}"
    );

    // The owner approves: the wait returns executed.
    env.sandbox.approve_intent(&id).unwrap();
    let (failed, text) = call(
        "wait_for_decision",
        serde_json::json!({"payment_intent_id": id}),
    )
    .await;
    assert!(!failed, "{text}");
    let done = json(&text);
    assert_eq!(done["outcome"], "executed");
    assert_eq!(done["still_pending"], false);
    assert_eq!(done["payment_intent"]["execution_status"], "completed");

    // Rejected.
    let (_, text) = call("chat", serde_json::json!({"message": "Pay £300 to Bob"})).await;
    let bob = json(&text)["payment_intents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.sandbox.reject_intent(&bob, "Unknown payee").unwrap();
    let (_, text) = call(
        "wait_for_decision",
        serde_json::json!({"payment_intent_id": bob, "timeout_seconds": 5}),
    )
    .await;
    let rejected = json(&text);
    assert_eq!(rejected["outcome"], "rejected");
    assert!(
        rejected["message"]
            .as_str()
            .unwrap()
            .contains("Unknown payee"),
        "{rejected}"
    );

    // A turn without a payment has none; an auto-approved one is not pending.
    let (_, text) = call(
        "chat",
        serde_json::json!({"message": "What is my balance?"}),
    )
    .await;
    assert_eq!(json(&text)["payment_intents"], serde_json::json!([]));
    let (_, text) = call("chat", serde_json::json!({"message": "Pay £20 to Alice"})).await;
    let small = json(&text);
    assert_eq!(small["payment_intents"][0]["pending"], false, "{small}");
    assert_eq!(small["payment_intents"][0]["outcome"], "executed");
    assert!(small.get("next_step").is_none(), "{small}");

    // An unknown id is a tool error the model can read.
    let (failed, text) = call(
        "get_payment_intent",
        serde_json::json!({"payment_intent_id": "pi_nope"}),
    )
    .await;
    assert!(failed, "{text}");
    assert!(text.contains("pi_nope"), "{text}");

    client.cancel().await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "ralio mcp exits cleanly when the client goes"
    );
}

/// What `ralio intents wait --help` promises scripts: the exit codes.
#[tokio::test(flavor = "multi_thread")]
async fn help_of_show_and_wait() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["show", "wait"] {
        let run = common::run_cmd(
            &["intents", sub, "--help"],
            "",
            "http://127.0.0.1:1",
            dir.path(),
        )
        .await;
        assert_eq!(run.code, 0, "{sub}: {}", run.stderr);
        insta::assert_snapshot!(format!("help_intents_{sub}"), run.stdout);
    }
}
