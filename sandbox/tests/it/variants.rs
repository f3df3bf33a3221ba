//! `Answers::Varied`: every legal variation shows up in the raw answers, deterministically, and
//! `Answers::Uniform` (the default) answers exactly as before.

use std::io::{BufRead, BufReader};

use futures::StreamExt;
use ralio_sandbox::{Answers, Sandbox};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Key, Session, http, token_request, www_error};

async fn sandbox(answers: Answers, seed: u64) -> Sandbox {
    Sandbox::builder()
        .seed(seed)
        .answers(answers)
        .start()
        .await
        .unwrap()
}

/// Refreshes the session's token (the token endpoint never answers a plain 401).
async fn renew(sb: &Sandbox, s: &mut Session) {
    let res = token_request(
        sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s.refresh),
            ("client_id", &s.client_id),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    s.access = body["access_token"].as_str().unwrap().to_owned();
    s.refresh = body["refresh_token"].as_str().unwrap().to_owned();
}

/// What the official SDKs do: on a 401, renew once and retry once with a fresh proof.
async fn call_renewing(
    sb: &Sandbox,
    s: &mut Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let res = s.call(method.clone(), path, body.clone()).await;
    if res.status() != StatusCode::UNAUTHORIZED {
        return res;
    }
    assert!(res.headers().get("www-authenticate").is_none());
    renew(sb, s).await;
    let res = s.call(method, path, body).await;
    assert_ne!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "a renewed token is not refused again"
    );
    res
}

async fn get_renewing(sb: &Sandbox, s: &mut Session, path: &str) -> Value {
    let res = call_renewing(sb, s, Method::GET, path, None).await;
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    res.json().await.unwrap()
}

async fn chat_renewing(sb: &Sandbox, s: &mut Session, message: &str) -> Value {
    let body = json!({ "agent_id": sb.default_agent_id(), "message": message });
    let res = call_renewing(sb, s, Method::POST, "/api/chat", Some(body)).await;
    assert_eq!(res.status(), StatusCode::OK, "chat {message:?}");
    res.json().await.unwrap()
}

fn is_naive(s: &str) -> bool {
    let Some((_, time)) = s.split_once('T') else {
        return false;
    };
    !time.ends_with('Z') && !time.contains('+') && !time.contains('-')
}

/// (object, field) pairs of every timestamp field of the answers.
fn stamps<'a>(objects: &[(&'a Value, &'a str)]) -> Vec<Option<&'a Value>> {
    objects.iter().map(|(o, f)| o.get(*f)).collect()
}

#[tokio::test]
async fn varied_answers_carry_every_legal_variation() {
    let sb = sandbox(Answers::Varied, 5).await;
    let mut s = Session::start(&sb).await;

    let mut replies = Vec::new();
    for m in [
        "pay 5 to Ann",
        "pay 7 to Ben",
        "pay 9 to Cat",
        "pay 500 to Dan for the rent",
        "pay 11 to Eve",
        "pay 2000 to Zed",
        "pay 13 to Fay",
    ] {
        replies.push(chat_renewing(&sb, &mut s, m).await);
    }
    let pending = sb.pending_intent_ids();
    sb.approve_intent(&pending[0]).unwrap();
    replies.push(chat_renewing(&sb, &mut s, "pay 300 to Gus").await);

    let agents = get_renewing(&sb, &mut s, "/api/agents").await;
    let txs = get_renewing(&sb, &mut s, "/api/transactions").await;
    let intents = get_renewing(&sb, &mut s, "/api/payment-intents").await;
    let page2 = get_renewing(&sb, &mut s, "/api/transactions?per_page=2&page=2").await;

    // agent_number is an integer, as the Python SDK types it.
    let agent = &agents[0];
    assert!(agent["agent_number"].is_u64(), "{agent}");
    assert_eq!(agent["id"], sb.default_agent_id());

    let tx_list = txs["transactions"].as_array().unwrap();
    let pi_list = intents["payment_intents"].as_array().unwrap();
    assert_eq!(tx_list.len(), 6);
    assert_eq!(pi_list.len(), 8);
    let messages: Vec<&Value> = replies
        .iter()
        .flat_map(|r| r["new_messages"].as_array().unwrap())
        .collect();
    let legs: Vec<&Value> = pi_list
        .iter()
        .flat_map(|p| p["instructions"].as_array().unwrap())
        .collect();

    // Timestamps: naive with and without fractional seconds, left out, null.
    let mut fields: Vec<(&Value, &str)> = vec![(agent, "created_at")];
    fields.extend(messages.iter().map(|m| (*m, "created_at")));
    fields.extend(tx_list.iter().map(|t| (t, "date")));
    fields.extend(pi_list.iter().map(|p| (p, "created_at")));
    fields.extend(pi_list.iter().map(|p| (p, "decided_at")));
    let all = stamps(&fields);
    let strings: Vec<&str> = all.iter().flatten().filter_map(|v| v.as_str()).collect();
    assert!(
        strings.iter().any(|s| is_naive(s) && s.contains('.')),
        "{strings:?}"
    );
    assert!(
        strings.iter().any(|s| is_naive(s) && !s.contains('.')),
        "{strings:?}"
    );
    assert!(strings.iter().any(|s| s.ends_with("+00:00")), "{strings:?}");
    assert!(all.iter().any(Option::is_none), "a timestamp left out");
    assert!(
        all.iter().any(|v| v.is_some_and(Value::is_null)),
        "a null timestamp"
    );

    // Optional fields the SDKs default: left out, or null although known.
    let optional = |o: &Value, f: &str| o.get(f).map(Value::is_null);
    let opts: Vec<Option<bool>> = pi_list
        .iter()
        .flat_map(|p| {
            ["agent_name", "user_request_summary", "alignment_outcome"].map(|f| optional(p, f))
        })
        .chain(std::iter::once(optional(agent, "banking_provider")))
        .collect();
    assert!(opts.contains(&None), "an optional field left out");
    assert!(opts.contains(&Some(true)), "an optional field null");
    // A field whose value is null is sometimes left out (exclude_none).
    assert!(
        legs.iter().any(|l| l.get("execution_error").is_none()),
        "{legs:?}"
    );
    assert!(
        legs.iter()
            .any(|l| l.get("execution_error") == Some(&Value::Null))
    );

    // Unknown fields everywhere.
    assert!(agent["spend_limits"].is_object());
    assert!(tx_list.iter().all(|t| t["metadata"].is_object()));
    assert!(pi_list.iter().all(|p| p["risk"].is_object()));
    assert!(legs.iter().all(|l| l["scheme"] == "FPS"));
    assert!(replies.iter().all(|r| r["usage"].is_object()));
    assert!(txs["has_more"] == false && page2["has_more"] == true);

    // Statuses no SDK knows, on the legs of executed intents.
    assert!(
        legs.iter()
            .any(|l| l["status"] == "settled" || l["transaction_status"] == "booked"),
        "{legs:?}"
    );

    // What stays: ids, amounts as decimal strings, currencies, statuses, schema-required lists.
    for t in tx_list {
        assert!(t["id"].is_string() && t["amount"].is_string(), "{t}");
        assert_eq!(t["currency"], "GBP");
        assert!(t["status"].is_string());
    }
    for p in pi_list {
        assert!(p["total_amount"].is_string() && p["instruction_count"].is_u64());
        assert!(p["approval_status"].is_string() && p["execution_status"].is_string());
    }
    assert!(
        legs.iter()
            .all(|l| l["amount"].is_string() && l["currency"] == "GBP")
    );
    for r in &replies {
        assert!(r["reply"].is_string() && r["conversation_id"].is_string());
        assert_eq!(r["new_messages"].as_array().unwrap().len(), 2);
    }

    // Paging: page 1 without `page` or `total` on some answers; a later page keeps both.
    let firsts = [&txs, &intents];
    assert!(
        firsts
            .iter()
            .any(|l| l.get("page").is_none() || l.get("total").is_none()),
        "{txs} {intents}"
    );
    assert_eq!(
        (page2["page"].as_u64(), page2["total"].as_u64()),
        (Some(2), Some(6))
    );

    // Plain 401s happened (14 resource calls, a 401 on every 3rd or later call of a token).
    assert!(sb.counters().plain_401s >= 2, "{:?}", sb.counters());
}

#[tokio::test]
async fn plain_401_comes_on_the_kth_call_of_a_token_and_one_renewal_recovers() {
    // Seed 0: the 3rd call of each token.
    let sb = sandbox(Answers::Varied, 0).await;
    let mut s = Session::start(&sb).await;
    for _ in 0..2 {
        let res = s.call(Method::GET, "/api/agents", None).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = s.call(Method::GET, "/api/agents", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("www-authenticate").is_none());
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({ "detail": "Token expired" })
    );
    assert_eq!(sb.counters().plain_401s, 1);
    // The token really expired: retrying it without renewing is a DPoP challenge.
    let res = s.call(Method::GET, "/api/agents", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_error(&res).as_deref(), Some("invalid_token"));

    // A chat refused with the plain 401 moved no money; the renewed retry does.
    renew(&sb, &mut s).await;
    for _ in 0..2 {
        assert_eq!(
            s.call(Method::GET, "/api/transactions", None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let pay = json!({ "agent_id": sb.default_agent_id(), "message": "pay 5 to Ann" });
    let res = s.call(Method::POST, "/api/chat", Some(pay.clone())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("www-authenticate").is_none());
    renew(&sb, &mut s).await;
    let txs = s.get_json("/api/transactions").await;
    assert_eq!(txs["transactions"].as_array().unwrap().len(), 0);
    assert_eq!(
        s.call(Method::POST, "/api/chat", Some(pay)).await.status(),
        StatusCode::OK
    );
    assert_eq!(sb.counters().plain_401s, 2);

    // The token endpoint never answers a plain 401.
    for _ in 0..8 {
        renew(&sb, &mut s).await;
    }
    assert_eq!(sb.counters().plain_401s, 2);

    // Another seed, another call: seed 1 refuses the 4th.
    let sb = sandbox(Answers::Varied, 1).await;
    let s = Session::start(&sb).await;
    let statuses: Vec<u16> = futures::stream::iter(0..4)
        .then(|_| s.call(Method::GET, "/api/agents", None))
        .map(|r| r.status().as_u16())
        .collect()
        .await;
    assert_eq!(statuses, [200, 200, 200, 401]);
}

/// The raw body frames of a chat stream.
async fn stream_chunks(s: &Session, agent: &str, message: &str) -> Vec<Vec<u8>> {
    let url = s.url("/api/chat/stream");
    let proof = s.key.proof("POST", &url, Some(&s.access), None);
    let res = http()
        .post(url)
        .header("Authorization", format!("DPoP {}", s.access))
        .header("DPoP", proof)
        .header("Accept", "text/event-stream")
        .json(&json!({ "agent_id": agent, "message": message }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    let mut chunks = Vec::new();
    while let Some(b) = body.next().await {
        chunks.push(b.unwrap().to_vec());
    }
    chunks
}

/// A WHATWG event-stream parser: (event name, data) per dispatched event.
fn parse_sse(body: &str) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    let (mut name, mut data): (String, Vec<String>) = (String::new(), Vec::new());
    let normalised = body.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalised.split('\n') {
        if line.is_empty() {
            if !data.is_empty() {
                let n = if name.is_empty() { "message" } else { &name };
                events.push((
                    n.to_owned(),
                    serde_json::from_str(&data.join("\n")).unwrap(),
                ));
            }
            name.clear();
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_owned(),
            "data" => data.push(value.to_owned()),
            _ => {}
        }
    }
    events
}

#[tokio::test]
async fn varied_stream_has_keep_alives_crlf_and_records_split_mid_line() {
    let varied = sandbox(Answers::Varied, 3).await;
    let uniform = sandbox(Answers::Uniform, 3).await;
    for message in ["hello", "pay 20 GBP to Alice for lunch"] {
        let s = Session::start(&varied).await;
        let chunks = stream_chunks(&s, &varied.default_agent_id(), message).await;
        let body: Vec<u8> = chunks.concat();
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("\r\n"));
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "every line ends in CRLF"
        );
        assert!(text.contains(": keep-alive\r\n"));
        // Frames that end mid-line, between "\r" and "\n", and inside a UTF-8 character.
        assert!(
            chunks
                .iter()
                .any(|c| !c.ends_with(b"\n") && !c.ends_with(b"\r"))
        );
        assert!(chunks.iter().any(|c| c.ends_with(b"\r")));
        if text.contains('£') {
            assert!(chunks.iter().any(|c| std::str::from_utf8(c).is_err()));
        }

        // The same events as the uniform stream, plus an unknown one before the reply.
        let u = Session::start(&uniform).await;
        let plain = stream_chunks(&u, &uniform.default_agent_id(), message).await;
        let expected = parse_sse(&String::from_utf8(plain.concat()).unwrap());
        let got = parse_sse(&text);
        let mut names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        names.insert(names.len() - 1, "usage");
        assert_eq!(
            got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            names
        );
        let (e, g) = (&expected.last().unwrap().1, &got.last().unwrap().1);
        assert_eq!(e["text"], g["text"]);
        assert!(g["text"].as_str().unwrap().contains('£') || message != "hello");
    }
}

#[tokio::test]
async fn uniform_answers_are_unchanged() {
    let sb = sandbox(Answers::Uniform, 5).await;
    assert_eq!(sb.answers(), Answers::Uniform);
    let s = Session::start(&sb).await;
    let agent = sb.default_agent_id();
    for m in ["pay 5 to Ann", "pay 500 to Dan", "pay 7 to Ben"] {
        s.chat(&agent, m).await;
    }
    let agents = s.get_json("/api/agents").await;
    assert_eq!(agents[0]["agent_number"], "AG-0001");
    assert!(agents[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&agents[0]),
        [
            "agent_number",
            "banking_provider",
            "created_at",
            "id",
            "name"
        ]
    );
    let txs = s.get_json("/api/transactions").await;
    assert_eq!(keys(&txs), ["page", "per_page", "total", "transactions"]);
    for t in txs["transactions"].as_array().unwrap() {
        assert_eq!(
            keys(t),
            [
                "amount",
                "creditor",
                "currency",
                "date",
                "debtor",
                "id",
                "payment_intent_id",
                "reference",
                "status"
            ]
        );
    }
    let intents = s.get_json("/api/payment-intents").await;
    for p in intents["payment_intents"].as_array().unwrap() {
        assert_eq!(keys(p).len(), 15, "{p}");
        for l in p["instructions"].as_array().unwrap() {
            assert_eq!(keys(l).len(), 12, "{l}");
            assert!(["completed", "pending", "rejected"].contains(&l["status"].as_str().unwrap()));
        }
    }
    // Many calls on one token: never a plain 401.
    for _ in 0..10 {
        assert_eq!(
            s.call(Method::GET, "/api/agents", None).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(sb.counters().plain_401s, 0);
    // The stream: LF only, one record per frame, no unknown event.
    let chunks = stream_chunks(&s, &agent, "hello").await;
    let text = String::from_utf8(chunks.concat()).unwrap();
    assert!(!text.contains('\r'));
    assert!(chunks.iter().all(|c| c.ends_with(b"\n\n")));
    assert!(!text.contains("usage"));
}

/// The shape of the first transaction a seed's sandbox answers: its keys and the kinds of its
/// values (ids left out: they differ by seed whatever the variations; timestamps keep their form
/// but not their digits).
async fn transaction_shape(seed: u64) -> Vec<(String, String)> {
    let sb = sandbox(Answers::Varied, seed).await;
    let s = Session::start(&sb).await;
    s.chat(&sb.default_agent_id(), "pay 5 to Ann").await;
    let txs = s.get_json("/api/transactions").await;
    txs["transactions"][0]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "id" && !k.ends_with("_id"))
        .map(|(k, v)| {
            let form = v
                .as_str()
                .map(|s| s.replace(|c: char| c.is_ascii_digit(), "9"));
            (k.clone(), form.unwrap_or_else(|| v.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn same_seed_same_variations_and_another_seed_others() {
    let eleven = transaction_shape(11).await;
    assert_eq!(eleven, transaction_shape(11).await, "the same seed");
    // The variations follow the seed: some other seed shapes the same transaction otherwise.
    for seed in 0..10 {
        if transaction_shape(seed).await != eleven {
            return;
        }
    }
    panic!("seeds 0-9 all gave the shape of seed 11: {eleven:?}");
}

/// Starts the binary; returns it with its base URL and ticket.
fn spawn_binary(args: &[&str], variants_env: Option<&str>) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ralio-sandbox"));
    cmd.args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env_remove("RALIO_SANDBOX_VARIANTS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(v) = variants_env {
        cmd.env("RALIO_SANDBOX_VARIANTS", v);
    }
    cmd.spawn().unwrap()
}

/// Registers, mints and reads `/api/agents` from a running binary.
async fn binary_agent(child: &mut std::process::Child) -> Value {
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let base = info["base_url"].as_str().unwrap().to_owned();
    let key = Key::new();
    let reg: Value = http()
        .post(format!("{base}/api/credential-bindings/registrations"))
        .json(&json!({ "ticket": info["ticket"], "public_key_jwk": key.jwk() }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap();
    let token_url = format!("{base}/oauth/token");
    let tok: Value = http()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", crate::common::JWT_BEARER),
            (
                "client_assertion",
                key.assertion(client_id, &token_url).as_str(),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tok["access_token"].as_str().unwrap();
    let url = format!("{base}/api/agents");
    let agents: Value = http()
        .get(&url)
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", key.proof("GET", &url, Some(access), None))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    agents[0].clone()
}

#[tokio::test]
async fn binary_flag_and_environment_switch_the_mode() {
    for (args, env, integer) in [
        (&["--variants"][..], None, true),
        (&[][..], Some("1"), true),
        (&[][..], Some("0"), false),
        (&[][..], None, false),
    ] {
        let mut child = spawn_binary(args, env);
        let agent = binary_agent(&mut child).await;
        assert_eq!(agent["agent_number"].is_u64(), integer, "{args:?} {env:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // A value that means neither mode stops the binary with a message saying what to set.
    let out = spawn_binary(&[], Some("maybe")).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RALIO_SANDBOX_VARIANTS must be 1"), "{err}");
}
