//! The main job, end to end: `cargo run --example quickstart`.
//!
//! With no `RALIO_API_URL` it starts the embedded sandbox, registers a credential with a
//! sandbox ticket into a temporary config directory, and then:
//!
//! 1. asks "What is my current balance?";
//! 2. streams "Pay £25 to Bob for the April invoice", printing text and tool events;
//! 3. asks for a larger payment that needs the owner's approval and shows it waiting;
//! 4. approves it through the sandbox and shows the decision;
//! 5. lists transactions and payment intents.
//!
//! With `RALIO_API_URL` (and credentials from `ralio register`, `RALIO_CONFIG_DIR` or
//! `RALIO_CLIENT_ID` + `RALIO_PRIVATE_JWK`) it makes the same calls against that server; the
//! approval then has to come from the owner in the console (it waits up to two minutes).

mod common;

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use ralio::{ChatEvent, RalioClient};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (client, target) = common::connect().await?;

    // 1. A question.
    println!("\n> What is my current balance?");
    let reply = client.chat().send("What is my current balance?").await?;
    println!("{}", reply.reply);

    // 2. A payment, streamed.
    println!("\n> Pay £25 to Bob for the April invoice");
    stream_and_print(&client, "Pay £25 to Bob for the April invoice").await?;

    // 3. A payment above the approval threshold waits for the owner.
    println!("\n> Pay £500 to Alice for the May rent");
    let reply = client
        .chat()
        .send("Pay £500 to Alice for the May rent")
        .await?;
    println!("{}", reply.reply);
    let page = client.payment_intents().list().per_page(5).await?;
    let Some(pending) = page.iter().find(|i| i.approval_status.is_pending()) else {
        println!("(no payment is waiting for approval)");
        return list(&client).await;
    };
    println!(
        "Payment intent {} for {} {} is {}.",
        pending.id, pending.total_amount, pending.currency, pending.approval_status
    );

    // 4. The client waits for the owner's decision; here the sandbox plays the owner and
    //    approves after a second.
    let decided = match &target {
        common::Target::Sandbox { sandbox, .. } => {
            println!("Waiting for the owner's decision…");
            let owner = async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                println!(
                    "(the quickstart plays the owner and approves {}; to play it yourself, run \
                     `ralio sandbox` and open its console)",
                    pending.id
                );
                sandbox.approve_intent(&pending.id)
            };
            let wait = client
                .payment_intents()
                .wait_for_outcome(&pending.id)
                .timeout(Duration::from_secs(30));
            let (decided, approved) = tokio::join!(wait, owner);
            approved?;
            decided?.intent
        }
        common::Target::Server => {
            println!(
                "Approve it in the Ralio console (against `ralio sandbox`: its console, \
                 /sandbox/console); waiting up to 2 minutes…"
            );
            client
                .payment_intents()
                .wait_for_outcome(&pending.id)
                .timeout(Duration::from_secs(120))
                .await?
                .intent
        }
    };
    println!(
        "Decision: {} ({}); execution: {}.",
        decided.approval_status,
        decided
            .decision_reason
            .as_deref()
            .unwrap_or("no reason given"),
        decided.execution_status
    );

    // 5. What happened.
    list(&client).await
}

/// Streams a message, printing text as it arrives and tool events on their own lines.
async fn stream_and_print(client: &RalioClient, message: &str) -> Result<(), ralio::Error> {
    let mut stream = client.chat().stream(message).await?;
    let mut stdout = std::io::stdout();
    while let Some(event) = stream.next().await {
        match event? {
            ChatEvent::ToolStarted(tool) => println!("[tool] {} started", tool.tool_name),
            ChatEvent::ToolCompleted(tool) => println!("[tool] {} completed", tool.tool_name),
            ChatEvent::ToolFailed(tool) => {
                println!(
                    "[tool] {} failed: {}",
                    tool.tool_name,
                    tool.error.as_deref().unwrap_or("?")
                )
            }
            ChatEvent::TextDelta { text, .. } => {
                print!("{text}");
                let _ = stdout.flush();
            }
            ChatEvent::Reply(_) => println!(),
            _ => {}
        }
    }
    Ok(())
}

async fn list(client: &RalioClient) -> Result<(), Box<dyn std::error::Error>> {
    let transactions = client.transactions().list().per_page(20).await?;
    println!(
        "\nTransactions: showing {} of {} (page {})",
        transactions.len(),
        transactions.total,
        transactions.page
    );
    for tx in &transactions {
        println!(
            "  {:<28} {:>10} {} {:<10} {}",
            tx.id,
            tx.amount,
            tx.currency,
            tx.status,
            tx.creditor.as_deref().unwrap_or("-")
        );
    }
    let intents = client.payment_intents().list().per_page(20).await?;
    println!(
        "Payment intents: showing {} of {}",
        intents.len(),
        intents.total
    );
    for intent in &intents {
        println!(
            "  {:<28} {:>10} {} {:<18} {}",
            intent.id,
            intent.total_amount,
            intent.currency,
            intent.approval_status,
            intent.execution_status
        );
    }
    Ok(())
}
