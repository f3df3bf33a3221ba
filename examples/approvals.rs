//! Payment approvals end to end: `cargo run --example approvals`.
//!
//! With no `RALIO_API_URL` it starts the embedded sandbox and registers a credential, then:
//!
//! 1. notes the newest payment intents, streams "Pay £250 to Erin for the June rent", and
//!    asks which intents that turn created (the stream's tool events name it; the list
//!    confirms it);
//! 2. shows the intent by id;
//! 3. waits for its outcome, printing each status change, while the sandbox plays the owner
//!    and approves it;
//! 4. does the same for a payment the owner rejects.
//!
//! With `RALIO_API_URL` (and your credentials) it makes the same calls against that server;
//! the decisions then come from the owner in the console, and each wait gives up after two
//! minutes with the intent still pending.

mod common;

use std::time::Duration;

use futures::StreamExt;
use ralio::IntentStage;
use ralio::{ChatEvent, PaymentIntent, RalioClient};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (client, target) = common::connect().await?;
    let owner = match &target {
        common::Target::Sandbox { sandbox, .. } => Some(sandbox),
        common::Target::Server => None,
    };

    // 1. A payment above the approval threshold, and the intents this turn created.
    let message = "Pay £250 to Erin for the June rent";
    let created = pay(&client, message).await?;
    let Some(erin) = created.first() else {
        println!("The agent created no payment intent.");
        return Ok(());
    };

    // 2. One intent by id (the API has no single-intent endpoint: the SDK pages the list).
    let intent = client.payment_intents().get(&erin.id).await?;
    println!(
        "{}: {} {} to {}, approval {}, execution {}",
        intent.id,
        intent.currency,
        intent.total_amount,
        payees(&intent),
        intent.approval_status,
        intent.execution_status
    );

    // 3. Wait for the outcome; here the sandbox approves once the wait has started.
    wait(&client, &intent.id, owner.map(|sb| (sb, None))).await?;

    // 4. A payment the owner rejects.
    let created = pay(&client, "Pay £300 to Mallory for consulting").await?;
    if let Some(mallory) = created.first() {
        let reason = Some("I don't know Mallory");
        wait(&client, &mallory.id, owner.map(|sb| (sb, reason))).await?;
    }
    Ok(())
}

/// Streams `message` and returns the payment intents the turn created.
async fn pay(client: &RalioClient, message: &str) -> Result<Vec<PaymentIntent>, ralio::Error> {
    println!("\n> {message}");
    let mut turn = client.payment_intents().before_turn().await?;
    let mut stream = client.chat().stream(message).await?;
    let mut conversation = None;
    while let Some(event) = stream.next().await {
        let event = event?;
        turn.observe(&event);
        match event {
            ChatEvent::Conversation {
                conversation_id, ..
            } => conversation = Some(conversation_id),
            ChatEvent::Reply(reply) => println!("{}", reply.text),
            _ => {}
        }
    }
    println!("(the stream's tool events named {:?})", turn.named_ids());
    let Some(conversation) = conversation else {
        return Ok(Vec::new());
    };
    let created = client
        .payment_intents()
        .created_in_turn(&turn, &conversation)
        .await?;
    for intent in &created {
        println!("created {} ({})", intent.id, IntentStage::of(intent));
    }
    Ok(created)
}

/// Waits up to two minutes for `id`'s outcome. With the sandbox, `owner` decides once the
/// wait has seen the intent pending: approve (no reason) or reject (with the reason).
async fn wait(
    client: &RalioClient,
    id: &str,
    owner: Option<(&ralio_sandbox::Sandbox, Option<&str>)>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let mut seen_tx = Some(seen_tx);
    let waiting = client
        .payment_intents()
        .wait_for_outcome(id)
        .timeout(Duration::from_secs(120))
        .on_change(move |intent| {
            println!("  {}: {}", intent.id, IntentStage::of(intent));
            if let Some(tx) = seen_tx.take() {
                let _ = tx.send(());
            }
        });
    let decide = async {
        if let Some((sandbox, reason)) = owner {
            let _ = seen_rx.await;
            match reason {
                None => {
                    println!(
                        "  (the example plays the owner and approves {id}; `ralio sandbox` has a console to do it by hand)"
                    );
                    sandbox.approve_intent(id)?;
                }
                Some(reason) => {
                    println!("  (the owner rejects {id}: {reason})");
                    sandbox.reject_intent(id, reason)?;
                }
            }
        } else {
            println!("  Approve or reject {id} in the Ralio console; waiting up to 2 minutes…");
        }
        Ok::<(), ralio_sandbox::SandboxError>(())
    };
    let (outcome, decided) = tokio::join!(waiting, decide);
    decided?;
    let outcome = outcome?;
    let reason = outcome
        .intent
        .decision_reason
        .as_deref()
        .unwrap_or("no reason given");
    match outcome.stage {
        IntentStage::Executed => println!("Outcome: paid ({reason})."),
        IntentStage::Rejected => println!("Outcome: rejected ({reason}); nothing was paid."),
        IntentStage::ExecutionFailed => println!("Outcome: approved, but the payment failed."),
        stage => println!(
            "Outcome: still {stage} after {}s; wait again later.",
            outcome.waited.as_secs()
        ),
    }
    Ok(())
}

fn payees(intent: &PaymentIntent) -> String {
    let names: Vec<&str> = intent
        .instructions
        .iter()
        .filter_map(|i| i.creditor_name.as_deref())
        .collect();
    names.join(", ")
}
