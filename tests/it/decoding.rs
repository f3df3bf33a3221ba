//! Decoding recorded answers through `RalioClient`: every legal variant the official SDKs accept
//! (integer `agent_number`, naive or date-only timestamps, missing or `null` defaulted fields,
//! unknown fields and statuses, amounts as JSON numbers) reads, and a missing id or amount is a
//! clear `Error::Decode` naming the operation.

use std::str::FromStr;

use axum::Router;
use axum::routing::{get, post};
use ralio::keys::PrivateKey;
use ralio::{ApprovalStatus, Decimal, Error, MessageRole, PaymentStatus, RalioClient, RetryPolicy};
use serde_json::{Value, json};

/// A server that answers every resource route with `body` (and the token endpoint with a
/// token), and a client on it.
async fn answering(body: Value) -> RalioClient {
    let body = body.to_string();
    let answer = move || {
        let body = body.clone();
        async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
    };
    let app = Router::new()
        .route(
            "/oauth/token",
            post(|| async {
                axum::Json(json!({"access_token": "at", "token_type": "DPoP", "expires_in": 1800}))
            }),
        )
        .route("/api/agents", get(answer.clone()))
        .route("/api/chat", post(answer.clone()))
        .route("/api/transactions", get(answer.clone()))
        .route("/api/payment-intents", get(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    RalioClient::builder()
        .base_url(format!("http://{addr}"))
        .credentials("cb_decoding", PrivateKey::generate().unwrap())
        .retry_policy(RetryPolicy::disabled())
        .build()
        .await
        .unwrap()
}

fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().into()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test]
async fn agents_read_integer_numbers_naive_timestamps_and_missing_names() {
    let client = answering(json!([
        {"id": "ag_1", "name": "Payments", "agent_number": 1001,
         "created_at": "2026-01-05T10:00:00.123456", "new_field": {"x": [1]}},
        {"id": "ag_2", "agent_number": "A-7", "created_at": "2026-01-05T10:00:00"},
        {"id": "ag_3", "name": null, "agent_number": null, "created_at": "2026-01-05"},
        {"id": "ag_4", "created_at": "soon", "banking_provider": null},
        {"id": "ag_5", "created_at": 17, "agent_number": -3}
    ]))
    .await;
    let agents = client.agents().list().await.unwrap();
    // These are the generated types: a field added to the document reaches them.
    let first: &ralio::api::types::Agent = &agents[0];
    assert_eq!(first.name, "Payments");
    assert_eq!(first.agent_number.as_deref(), Some("1001"));
    assert_eq!(
        first.created_at,
        Some(utc("2026-01-05T10:00:00.123456Z")),
        "a FastAPI naive datetime is UTC"
    );
    assert_eq!(agents[1].agent_number.as_deref(), Some("A-7"));
    assert_eq!(agents[1].name, "", "a missing name reads as empty");
    assert_eq!(agents[1].created_at, Some(utc("2026-01-05T10:00:00Z")));
    assert_eq!(agents[2].name, "", "a null name reads as empty");
    assert_eq!(agents[2].agent_number, None);
    assert_eq!(agents[2].created_at, Some(utc("2026-01-05T00:00:00Z")));
    assert_eq!(
        agents[3].created_at, None,
        "an unreadable timestamp is None"
    );
    assert_eq!(agents[3].banking_provider, None);
    assert_eq!(agents[4].created_at, None, "a number is no timestamp: None");
    assert_eq!(agents[4].agent_number.as_deref(), Some("-3"));
}

#[tokio::test]
async fn a_chat_reply_without_new_messages_reads() {
    for body in [
        json!({"reply": "Done", "conversation_id": "c1"}),
        json!({"reply": "Done", "conversation_id": "c1", "new_messages": null}),
    ] {
        let client = answering(body).await;
        let reply = client.chat().send("hi").agent_id("ag_1").await.unwrap();
        let reply: ralio::api::types::ChatResponse = reply;
        assert_eq!(reply.reply, "Done");
        assert_eq!(reply.conversation_id, "c1");
        assert!(reply.new_messages.is_empty());
    }
}

#[tokio::test]
async fn chat_messages_default_their_text_and_keep_unknown_roles() {
    let client = answering(json!({
        "reply": null,
        "new_messages": [
            {"id": "m1", "role": "user", "content": "hi", "created_at": "2026-01-05T10:00:00+01:00"},
            {"role": "critic", "content": null, "created_at": null, "tokens": 17},
            {}
        ]
    }))
    .await;
    let reply = client.chat().send("hi").agent_id("ag_1").await.unwrap();
    assert_eq!(reply.reply, "", "a null reply reads as empty");
    assert_eq!(
        reply.conversation_id, "",
        "a missing conversation id reads as empty"
    );
    let m = &reply.new_messages;
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].role, Some(MessageRole::User));
    assert_eq!(m[0].created_at, Some(utc("2026-01-05T09:00:00Z")));
    assert_eq!(m[1].role, Some(MessageRole::Other("critic".into())));
    assert_eq!(m[1].role.as_ref().map(MessageRole::as_str), Some("critic"));
    assert_eq!((m[1].id.as_str(), m[1].content.as_str()), ("", ""));
    assert_eq!(m[2].role, None);
}

#[tokio::test]
async fn transactions_read_exact_amounts_from_strings_and_numbers() {
    let client = answering(json!({
        "transactions": [
            {"id": "t1", "amount": "500.10", "currency": "GBP", "status": "completed",
             "date": "2026-04-01T10:00:00Z", "category": "rent"},
            {"id": "t2", "amount": 500.1, "currency": "GBP", "status": "settling",
             "date": "2026-04-01T10:00:00.5"},
            {"id": "t3", "amount": 1e2, "currency": "GBP", "status": "submitted",
             "date": "2026-04-01"},
            {"id": "t4", "amount": 7, "currency": "GBP", "status": "delivered", "date": "04/01/26"},
            {"id": "t5", "amount": "1e2", "currency": "GBP", "status": "completed", "date": null},
            {"id": "t6", "amount": 0.1, "currency": "GBP", "status": "completed"}
        ],
        "total": 6, "page": 1, "per_page": 50
    }))
    .await;
    let page = client.transactions().list().await.unwrap();
    let t: Vec<ralio::api::types::Transaction> = page.items.clone();
    assert_eq!(
        t[0].amount.to_string(),
        "500.10",
        "the string's scale is kept"
    );
    assert_eq!(
        t[1].amount,
        dec("500.1"),
        "a JSON number is exact, not 500.0999…"
    );
    assert_eq!(t[1].amount.to_string(), "500.1");
    assert_eq!(t[2].amount, dec("100"));
    assert_eq!(t[3].amount, dec("7"));
    assert_eq!(t[4].amount, dec("100"), "scientific notation in a string");
    assert_eq!(t[5].amount.to_string(), "0.1");
    assert_eq!(t[0].status, PaymentStatus::Completed);
    assert_eq!(t[1].status, PaymentStatus::Other("settling".into()));
    assert_eq!(t[1].status.to_string(), "settling");
    assert_eq!(t[0].date, Some(utc("2026-04-01T10:00:00Z")));
    assert_eq!(t[1].date, Some(utc("2026-04-01T10:00:00.5Z")));
    assert_eq!(t[2].date, Some(utc("2026-04-01T00:00:00Z")));
    assert_eq!(
        t[3].date, None,
        "an unreadable date is None, not a failed call"
    );
    assert_eq!(t[4].date, None);
    assert_eq!((page.total, page.page, page.per_page), (6, 1, 50));
}

#[tokio::test]
async fn list_envelopes_default_what_the_server_leaves_out() {
    let client = answering(json!({
        "transactions": [
            {"id": "t1", "amount": "1.00", "currency": "GBP", "status": "completed"},
            {"id": "t2", "amount": "2.00", "currency": "GBP", "status": "completed"}
        ]
    }))
    .await;
    let page = client.transactions().list().await.unwrap();
    assert_eq!(
        (page.len(), page.total, page.page, page.per_page),
        (2, 2, 1, 2)
    );
    assert!(!page.has_next());

    for body in [json!({}), json!({"payment_intents": null, "total": null})] {
        let client = answering(body).await;
        let page = client.payment_intents().list().await.unwrap();
        assert!(page.is_empty());
        assert_eq!((page.total, page.page, page.per_page), (0, 1, 0));
    }
}

#[tokio::test]
async fn payment_intents_default_instructions_and_keep_unknown_statuses() {
    let client = answering(json!({"payment_intents": [
        {"id": "pi_1", "agent_id": "ag_1", "approval_status": "escalated_to_cfo",
         "execution_status": "queued", "total_amount": "500.00", "currency": "GBP",
         "created_at": "2026-01-05T10:00:00.123456", "decided_at": "never"},
        {"id": "pi_2", "agent_id": "ag_1", "approval_status": "approved_by_user",
         "execution_status": "completed", "total_amount": 12.5, "currency": "GBP",
         "instruction_count": null, "instructions": null},
        {"id": "pi_3", "agent_id": "ag_1", "approval_status": "pending_approval",
         "execution_status": "not_started", "total_amount": "10", "currency": "GBP",
         "instruction_count": 1,
         "instructions": [{"amount": 10, "currency": "GBP", "status": "submitted",
                           "transaction_status": "settling", "surprise": true}]}
    ], "total": 3, "page": 1, "per_page": 50}))
    .await;
    let page = client.payment_intents().list().await.unwrap();
    let p: Vec<ralio::api::types::PaymentIntent> = page.items;
    assert_eq!(
        p[0].approval_status,
        ApprovalStatus::Other("escalated_to_cfo".into())
    );
    assert!(!p[0].approval_status.is_pending());
    assert_eq!(p[0].execution_status.as_str(), "queued");
    assert_eq!((p[0].instruction_count, p[0].instructions.len()), (0, 0));
    assert_eq!(p[0].created_at, Some(utc("2026-01-05T10:00:00.123456Z")));
    assert_eq!(p[0].decided_at, None);
    assert_eq!((p[1].instruction_count, p[1].instructions.len()), (0, 0));
    assert_eq!(p[1].total_amount, dec("12.5"));
    assert_eq!(p[1].approval_status, ApprovalStatus::ApprovedByUser);
    assert!(p[2].approval_status.is_pending());
    let leg = &p[2].instructions[0];
    assert_eq!(leg.amount, dec("10"));
    assert_eq!(leg.status, PaymentStatus::Submitted);
    assert_eq!(
        leg.transaction_status,
        Some(PaymentStatus::Other("settling".into()))
    );
}

/// What the call is meaningless without (ids, amounts, currency, status) stays required: its
/// absence is a decode error that names the operation and the field.
#[tokio::test]
async fn a_missing_id_or_amount_is_a_decode_error_naming_the_operation() {
    let cases = [
        (
            json!({"transactions": [{"amount": "1.00", "currency": "GBP", "status": "completed"}]}),
            "transactions.list",
            "`id`",
        ),
        (
            json!({"transactions": [{"id": "t1", "currency": "GBP", "status": "completed"}]}),
            "transactions.list",
            "`amount`",
        ),
        (
            json!({"transactions": [{"id": "t1", "amount": null, "currency": "GBP", "status": "completed"}]}),
            "transactions.list",
            "null",
        ),
        (
            json!({"transactions": [{"id": "t1", "amount": "lots", "currency": "GBP", "status": "completed"}]}),
            "transactions.list",
            "lots",
        ),
        (
            json!({"payment_intents": [{"id": "pi_1", "agent_id": "ag_1", "approval_status": "x",
                    "execution_status": "y", "currency": "GBP"}]}),
            "payment_intents.list",
            "`total_amount`",
        ),
    ];
    for (body, operation, mentions) in cases {
        let client = answering(body.clone()).await;
        let err = if operation == "transactions.list" {
            client.transactions().list().await.map(|_| ()).unwrap_err()
        } else {
            client
                .payment_intents()
                .list()
                .await
                .map(|_| ())
                .unwrap_err()
        };
        assert!(
            matches!(&err, Error::Decode { operation: op, .. } if *op == operation),
            "{body}: {err:?}"
        );
        let chain = format!("{err} / {:?}", std::error::Error::source(&err));
        assert!(chain.starts_with(operation), "{chain}");
        assert!(chain.contains(mentions), "{body}: {chain}");
    }

    let client = answering(json!([{"name": "no id"}])).await;
    let err = client.agents().list().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Decode {
                operation: "agents.list",
                ..
            }
        ),
        "{err:?}"
    );
}
