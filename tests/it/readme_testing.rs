//! The README's "Testing your integration" example, exactly as the README shows it (below
//! this header); `readme.rs` checks that the two stay identical and that this test runs.

use std::sync::Arc;

use ralio::register::{RegisterOptions, register};
use ralio::store::MemoryStore;
use ralio::{IntentStage, RalioClient};
use ralio_sandbox::{Sandbox, TicketSpec};

#[tokio::test]
async fn an_approved_payment_is_executed() -> Result<(), Box<dyn std::error::Error>> {
    // A local Ralio API on a free loopback port, and a credential registered with its ticket.
    let sandbox = Sandbox::builder().start().await?;
    let store = Arc::new(MemoryStore::new());
    let ticket = sandbox.mint_ticket(TicketSpec::default());
    register(
        &*store,
        RegisterOptions::new()
            .ticket(ticket)
            .base_url(sandbox.base_url()),
    )
    .await?;
    let client = RalioClient::builder()
        .base_url(sandbox.base_url())
        .store(store)
        .build()
        .await?;
    assert_eq!(client.agents().list().await?.len(), 1);

    // Above the sandbox's approval threshold (£100), a payment waits for the owner.
    client
        .chat()
        .send("Pay £250 to Erin for the June rent")
        .await?;
    let pending = sandbox.pending_intent_ids();
    assert_eq!(pending.len(), 1);

    // The sandbox plays the owner: approve it, then wait for the payment to run.
    sandbox.approve_intent(&pending[0])?;
    let outcome = client
        .payment_intents()
        .wait_for_outcome(&pending[0])
        .await?;
    assert_eq!(outcome.stage, IntentStage::Executed);
    Ok(())
}
