//! The scripted payment agent, chat and the chat stream.

use futures::StreamExt;
use ralio_sandbox::{Sandbox, SandboxError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn balance_and_small_payment_execute_at_once() {
    let sb = Sandbox::builder().seed(3).start().await.unwrap();
    let s = Session::start(&sb).await;
    let agent = sb.default_agent_id();
    let agents = s.get_json("/api/agents").await;
    assert_eq!(
        agents.as_array().unwrap().len(),
        1,
        "a binding sees exactly its agent"
    );
    assert_eq!(agents[0]["id"], agent);

    let r = s.chat(&agent, "What is my current balance?").await;
    assert_eq!(r["reply"], "Your current balance is GBP 10,000.00.");
    assert_eq!(r["new_messages"][0]["role"], "user");
    assert_eq!(r["new_messages"][1]["role"], "assistant");
    assert_eq!(r["new_messages"][1]["content"], r["reply"]);

    let r = s.chat(&agent, "pay 20 GBP to Alice").await;
    assert!(
        r["reply"].as_str().unwrap().contains("9,980.00"),
        "{}",
        r["reply"]
    );
    let txs = s.get_json("/api/transactions").await;
    assert_eq!(txs["total"], 1);
    let tx = &txs["transactions"][0];
    assert_eq!(
        (
            tx["amount"].as_str(),
            tx["currency"].as_str(),
            tx["status"].as_str(),
            tx["creditor"].as_str()
        ),
        (Some("20.00"), Some("GBP"), Some("completed"), Some("Alice"))
    );
    let intents = s.get_json("/api/payment-intents").await;
    let pi = &intents["payment_intents"][0];
    assert_eq!(pi["approval_status"], "auto_approved");
    assert_eq!(pi["execution_status"], "completed");
    assert_eq!(pi["instruction_count"], 1);
    assert_eq!(pi["instructions"][0]["transaction_id"], tx["id"]);
    assert_eq!(tx["payment_intent_id"], pi["id"]);
    assert_eq!(sb.balance(&agent), Some("9980.00".parse().unwrap()));
    let r = s.chat(&agent, "What is my current balance?").await;
    assert_eq!(r["reply"], "Your current balance is GBP 9,980.00.");
}

#[tokio::test]
async fn payment_above_threshold_waits_for_approval() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let agent = sb.default_agent_id();
    let r = s
        .chat(&agent, "Pay £500 to Bob for the April invoice")
        .await;
    assert!(
        r["reply"].as_str().unwrap().contains("pending approval"),
        "{}",
        r["reply"]
    );
    let pi = s.get_json("/api/payment-intents").await["payment_intents"][0].clone();
    assert_eq!(pi["approval_status"], "pending_approval");
    assert_eq!(pi["total_amount"], "500.00");
    assert_eq!(pi["instructions"][0]["creditor_name"], "Bob");
    assert_eq!(pi["instructions"][0]["reference"], "the April invoice");
    assert_eq!(pi["conversation_id"], r["conversation_id"]);
    assert_eq!(
        s.get_json("/api/transactions").await["total"],
        0,
        "nothing moved yet"
    );
    let id = pi["id"].as_str().unwrap();
    assert_eq!(sb.pending_intent_ids(), vec![id.to_owned()]);

    sb.approve_intent(id).unwrap();
    let pi = s.get_json("/api/payment-intents").await["payment_intents"][0].clone();
    assert_eq!(pi["approval_status"], "approved_by_user");
    assert_eq!(pi["execution_status"], "completed");
    let txs = s.get_json("/api/transactions").await;
    assert_eq!(txs["transactions"][0]["amount"], "500.00");
    assert_eq!(txs["transactions"][0]["reference"], "the April invoice");
    assert_eq!(sb.balance(&agent), Some("9500.00".parse().unwrap()));
    assert!(matches!(
        sb.approve_intent(id),
        Err(SandboxError::IntentNotPending { .. })
    ));
    assert!(matches!(
        sb.approve_intent("pi_nope"),
        Err(SandboxError::UnknownIntent { .. })
    ));

    // Rejected by the owner: nothing moves, the reason is kept.
    s.chat(&agent, "pay 250.50 pounds to Carol").await;
    let id = sb.pending_intent_ids()[0].clone();
    sb.reject_intent(&id, "not this month").unwrap();
    let pi = s.get_json("/api/payment-intents").await["payment_intents"][0].clone();
    assert_eq!(
        (
            pi["approval_status"].as_str(),
            pi["decision_reason"].as_str()
        ),
        (Some("rejected_by_user"), Some("not this month"))
    );
    assert_eq!(s.get_json("/api/transactions").await["total"], 1);
    assert_eq!(sb.balance(&agent), Some("9500.00".parse().unwrap()));
}

#[tokio::test]
async fn over_limit_is_rejected_with_reason_and_unknown_messages_get_help() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let agent = sb.default_agent_id();
    let r = s.chat(&agent, "Pay £5,000 to Dave").await;
    assert!(
        r["reply"].as_str().unwrap().contains("spend limit"),
        "{}",
        r["reply"]
    );
    let pi = s.get_json("/api/payment-intents").await["payment_intents"][0].clone();
    assert_eq!(pi["approval_status"], "rejected");
    assert!(
        pi["decision_reason"]
            .as_str()
            .unwrap()
            .contains("spend limit of GBP 1,000.00")
    );
    assert_eq!(s.get_json("/api/transactions").await["total"], 0);
    assert!(sb.pending_intent_ids().is_empty());

    let r = s.chat(&agent, "").await;
    assert!(
        r["reply"].as_str().unwrap().contains("check your balance"),
        "an empty message gets help, not an error"
    );
    let r = s.chat(&agent, "sing me a song").await;
    assert!(
        r["reply"].as_str().unwrap().contains("check your balance"),
        "{}",
        r["reply"]
    );

    s.chat(&agent, "pay 12 to Erin for coffee").await;
    let r = s.chat(&agent, "Show my recent payments").await;
    assert!(
        r["reply"].as_str().unwrap().contains("Erin (coffee)"),
        "{}",
        r["reply"]
    );

    let r = s.chat(&agent, "pay 10 EUR to Frank").await;
    assert!(
        r["reply"].as_str().unwrap().contains("GBP only"),
        "{}",
        r["reply"]
    );
}

#[tokio::test]
async fn conversations_keep_their_id_and_agents_are_private() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let agent = sb.default_agent_id();
    let first = s.chat(&agent, "hello").await;
    let cid = first["conversation_id"].as_str().unwrap();
    let res = s
        .call(
            Method::POST,
            "/api/chat",
            Some(json!({ "agent_id": agent, "message": "balance?", "conversation_id": cid })),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["conversation_id"], cid);

    let res = s
        .call(
            Method::POST,
            "/api/chat",
            Some(json!({ "agent_id": agent, "message": "hi", "conversation_id": "conv_unknown" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Another agent's binding cannot use this agent.
    let other = Session::with_ticket(
        &sb,
        ralio_sandbox::TicketSpec {
            agent_id: Some("agt_other".into()),
            ..Default::default()
        },
    )
    .await;
    let res = other
        .call(
            Method::POST,
            "/api/chat",
            Some(json!({ "agent_id": agent, "message": "hi" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(other.get_json("/api/agents").await[0]["id"], "agt_other");

    // Body validation is FastAPI style.
    let res = s
        .call(
            Method::POST,
            "/api/chat",
            Some(json!({ "agent_id": agent })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "message"]));
}

#[tokio::test]
async fn same_seed_same_ids() {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let sb = Sandbox::builder().seed(42).start().await.unwrap();
        let s = Session::start(&sb).await;
        s.chat(&sb.default_agent_id(), "pay 5 to Gail").await;
        let pi = s.get_json("/api/payment-intents").await["payment_intents"][0]["id"].clone();
        ids.push((sb.default_agent_id(), s.client_id.clone(), pi));
    }
    assert_eq!(ids[0], ids[1]);
    let other = Sandbox::builder().seed(43).start().await.unwrap();
    assert_ne!(other.default_agent_id(), ids[0].0);
}

/// Reads an SSE response chunk by chunk; returns (chunks, events as (name, data)).
pub async fn read_stream(
    res: reqwest::Response,
) -> (Vec<String>, Vec<(String, Value)>, Option<String>) {
    let mut chunks = Vec::new();
    let mut body = res.bytes_stream();
    let mut failure = None;
    while let Some(item) = body.next().await {
        match item {
            Ok(b) => chunks.push(String::from_utf8(b.to_vec()).unwrap()),
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let all = chunks.concat();
    let mut events = Vec::new();
    for record in all.split("\n\n").filter(|r| !r.trim().is_empty()) {
        let mut name = "message".to_owned();
        let mut data = String::new();
        for line in record.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if !data.is_empty() {
            events.push((name, serde_json::from_str(&data).unwrap()));
        }
    }
    (chunks, events, failure)
}

async fn stream(s: &Session, agent: &str, message: &str) -> reqwest::Response {
    let url = s.url("/api/chat/stream");
    let proof = s.key.proof("POST", &url, Some(&s.access), None);
    http()
        .post(url)
        .header("Authorization", format!("DPoP {}", s.access))
        .header("DPoP", proof)
        .header("Accept", "text/event-stream")
        .json(&json!({ "agent_id": agent, "message": message }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn stream_is_incremental_with_tool_events_and_reply() {
    let sb = Sandbox::builder().start().await.unwrap();
    let s = Session::start(&sb).await;
    let res = stream(&s, &sb.default_agent_id(), "pay 20 GBP to Alice for lunch").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let (chunks, events, failure) = read_stream(res).await;
    assert!(failure.is_none());
    assert!(
        chunks.len() > 3,
        "events arrive as separate writes, got {} chunk(s)",
        chunks.len()
    );
    assert!(
        !chunks[0].contains("event: reply"),
        "the first write is not the whole stream"
    );
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..3],
        ["conversation", "tool_started", "tool_completed"]
    );
    assert_eq!(events[1].1["tool_name"], "create_payment_intent");
    assert_eq!(names.last(), Some(&"reply"));
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "text_delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    let reply = &events.last().unwrap().1;
    assert_eq!(deltas, reply["text"].as_str().unwrap());
    assert_eq!(reply["conversation_id"], events[0].1["conversation_id"]);
    assert_eq!(sb.counters().chat_posts, 1);

    // Over the limit: tool_failed.
    let (_, events, _) =
        read_stream(stream(&s, &sb.default_agent_id(), "pay 2000 to Zed").await).await;
    assert!(
        events.iter().any(
            |(n, d)| n == "tool_failed" && d["error"].as_str().unwrap().contains("spend limit")
        )
    );
}
