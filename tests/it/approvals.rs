//! Payment approvals (`client.payment_intents()`) against the in-process sandbox: one intent by id, waiting for the outcome,
//! and the intents a chat turn created.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ralio::{Decimal, Error};
use ralio::{IntentStage, TurnIntents};
use ralio_sandbox::Sandbox;

#[tokio::test]
async fn get_finds_an_intent_past_the_first_page_and_says_not_found_otherwise() {
    let sb = Sandbox::builder().start().await.unwrap();
    let client = crate::support::registered_client(&sb).await;
    client.chat().send("Pay £150 to Oldest").await.unwrap();
    let oldest = sb.pending_intent_ids()[0].clone();
    // 50 newer intents push it to page 2 of the 50-a-page lookup.
    for n in 0..50 {
        client.chat().send(format!("Pay £1 to P{n}")).await.unwrap();
    }
    let lists = || {
        sb.counters()
            .requests
            .get("GET /api/payment-intents")
            .copied()
            .unwrap_or(0)
    };
    let before = lists();
    let found = client.payment_intents().get(&oldest).await.unwrap();
    assert_eq!(found.id, oldest);
    assert_eq!(IntentStage::of(&found), IntentStage::AwaitingApproval);
    assert_eq!(
        found.instructions[0].creditor_name.as_deref(),
        Some("Oldest")
    );
    assert_eq!(lists() - before, 2, "two pages, then it stops");

    let err = client.payment_intents().get("pi_nope").await.unwrap_err();
    assert!(matches!(err, Error::UnknownId { .. }), "{err:?}");
    assert!(err.to_string().contains("pi_nope"), "{err}");
}

#[tokio::test]
async fn wait_for_outcome_reports_each_change_and_each_final_stage() {
    let sb = Sandbox::builder()
        .balance(Decimal::new(600, 0))
        .start()
        .await
        .unwrap();
    let client = crate::support::registered_client(&sb).await;

    // Approved while waiting: executed, with one callback per status change.
    client.chat().send("Pay £250 to Erin").await.unwrap();
    let id = sb.pending_intent_ids()[0].clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (first_seen_tx, first_seen_rx) = tokio::sync::oneshot::channel::<()>();
    let mut first_seen_tx = Some(first_seen_tx);
    let log = Arc::clone(&seen);
    let wait = client
        .payment_intents()
        .wait_for_outcome(&id)
        .timeout(Duration::from_secs(60))
        .on_change(move |i| {
            log.lock().unwrap().push(IntentStage::of(i));
            if let Some(tx) = first_seen_tx.take() {
                let _ = tx.send(());
            }
        });
    let approve = async {
        first_seen_rx.await.unwrap();
        sb.approve_intent(&id).unwrap();
    };
    let (outcome, ()) = tokio::join!(wait, approve);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.stage, IntentStage::Executed);
    assert!(outcome.is_final());
    assert_eq!(
        *seen.lock().unwrap(),
        [IntentStage::AwaitingApproval, IntentStage::Executed]
    );

    // Still pending when the time is up: an outcome that is not final, not an error.
    client.chat().send("Pay £120 to Frank").await.unwrap();
    let pending = sb.pending_intent_ids()[0].clone();
    let outcome = client
        .payment_intents()
        .wait_for_outcome(&pending)
        .timeout(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(outcome.stage, IntentStage::AwaitingApproval);
    assert!(!outcome.is_final());

    // Rejected by the owner.
    sb.reject_intent(&pending, "Not this month").unwrap();
    let outcome = client
        .payment_intents()
        .wait_for_outcome(&pending)
        .await
        .unwrap();
    assert_eq!(outcome.stage, IntentStage::Rejected);
    assert_eq!(
        outcome.intent.decision_reason.as_deref(),
        Some("Not this month")
    );

    // Approved after the balance fell below the amount: the execution fails.
    client.chat().send("Pay £300 to Hal").await.unwrap(); // balance 350: pending
    let broke = sb.pending_intent_ids()[0].clone();
    client.chat().send("Pay £90 to Gail").await.unwrap();
    client.chat().send("Pay £90 to Gail").await.unwrap(); // balance 170
    sb.approve_intent(&broke).unwrap();
    let outcome = client
        .payment_intents()
        .wait_for_outcome(&broke)
        .await
        .unwrap();
    assert_eq!(outcome.stage, IntentStage::ExecutionFailed);

    let err = client
        .payment_intents()
        .wait_for_outcome("pi_nope")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownId { .. }), "{err:?}");
}

#[tokio::test]
async fn created_in_turn_finds_the_turns_intents_and_not_another_conversations() {
    let sb = Sandbox::builder().start().await.unwrap();
    let client = crate::support::registered_client(&sb).await;
    client.chat().send("Pay £5 to Before").await.unwrap();

    // A turn that streams: the tool events name the intent.
    let mut turn = client.payment_intents().before_turn().await.unwrap();
    let mut stream = client
        .chat()
        .stream("Pay £250 to Erin for the June rent")
        .await
        .unwrap();
    let mut conversation = None;
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        turn.observe(&event);
        if let ralio::ChatEvent::Reply(r) = &event {
            conversation = r.conversation_id.clone();
        }
    }
    let conversation = conversation.unwrap();
    let erin = sb.pending_intent_ids()[0].clone();
    assert_eq!(turn.named_ids(), std::slice::from_ref(&erin));

    // Meanwhile another conversation creates an intent too.
    client.chat().send("Pay £7 to Elsewhere").await.unwrap();

    let created = client
        .payment_intents()
        .created_in_turn(&turn, &conversation)
        .await
        .unwrap();
    let ids: Vec<&str> = created.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [erin.as_str()]);
    assert_eq!(IntentStage::of(&created[0]), IntentStage::AwaitingApproval);

    // A turn without a stream (no tool events): the list alone finds both of its intents,
    // oldest first.
    let turn = client.payment_intents().before_turn().await.unwrap();
    let first = client
        .chat()
        .send("Pay £300 to Ivy")
        .conversation_id(&conversation)
        .await
        .unwrap();
    let second = client
        .chat()
        .send("Pay £3 to Jo")
        .conversation_id(&conversation)
        .await
        .unwrap();
    assert_eq!(first.conversation_id, second.conversation_id);
    let created = client
        .payment_intents()
        .created_in_turn(&turn, &conversation)
        .await
        .unwrap();
    let payees: Vec<&str> = created
        .iter()
        .map(|i| i.instructions[0].creditor_name.as_deref().unwrap())
        .collect();
    assert_eq!(payees, ["Ivy", "Jo"]);
    assert_eq!(
        created.iter().map(IntentStage::of).collect::<Vec<_>>(),
        [IntentStage::AwaitingApproval, IntentStage::Executed]
    );

    // A turn that created nothing.
    let turn = client.payment_intents().before_turn().await.unwrap();
    let reply = client.chat().send("What is my balance?").await.unwrap();
    let created = client
        .payment_intents()
        .created_in_turn(&turn, &reply.conversation_id)
        .await
        .unwrap();
    assert!(created.is_empty());
    assert!(TurnIntents::default().named_ids().is_empty());
}
