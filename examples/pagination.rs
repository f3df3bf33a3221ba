//! Pages and the lazy stream over every page: `cargo run --example pagination`.
//!
//! On the embedded sandbox (unless `RALIO_API_URL` is set) it first makes a few small
//! payments so there is something to page through.

mod common;

use futures::TryStreamExt;
use ralio::{Decimal, Transaction};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (client, target) = common::connect().await?;
    if let common::Target::Sandbox { .. } = target {
        for (amount, name) in [
            (12, "Alice"),
            (7, "Bob"),
            (30, "Carol"),
            (5, "Dan"),
            (18, "Erin"),
        ] {
            client
                .chat()
                .send(format!("pay {amount} GBP to {name}"))
                .await?;
        }
    }

    // One page at a time.
    let mut page = client.transactions().list().per_page(2).await?;
    loop {
        println!(
            "page {} ({} of {} transactions)",
            page.page,
            page.len(),
            page.total
        );
        for tx in &page {
            println!(
                "  {} {} {} to {}",
                tx.id,
                tx.amount,
                tx.currency,
                tx.creditor.as_deref().unwrap_or("-")
            );
        }
        match page.next_page() {
            Some(next) => page = client.transactions().list().per_page(2).page(next).await?,
            None => break,
        }
    }

    // Or every item of every page, fetched lazily as the stream is read; it stops at `total`.
    let all: Vec<Transaction> = client
        .transactions()
        .list()
        .per_page(2)
        .all()
        .try_collect()
        .await?;
    let sum: Decimal = all.iter().map(|tx| tx.amount).sum();
    println!(
        "{} transactions, {} in total (exact decimal arithmetic)",
        all.len(),
        sum
    );

    // Streams compose: the first intent above GBP 10, reading only as many pages as needed.
    let stream = client.payment_intents().list().per_page(2).all();
    let mut stream = std::pin::pin!(stream);
    while let Some(intent) = stream.try_next().await? {
        if intent.total_amount > Decimal::TEN {
            println!(
                "first intent above 10: {} ({} {}, {})",
                intent.id, intent.total_amount, intent.currency, intent.approval_status
            );
            break;
        }
    }
    Ok(())
}
