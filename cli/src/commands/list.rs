//! `ralio transactions` and `ralio intents`.

use futures::TryStreamExt as _;
use ralio::{Page, PaymentIntent, Transaction};
use serde::Serialize;

use super::{out, out_json};
use crate::cli::ListArgs;
use crate::context::Context;
use crate::error::CliError;
use crate::output;

/// Which list.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `ralio transactions`.
    Transactions,
    /// `ralio intents`.
    Intents,
}

fn print<T: Serialize>(
    ctx: &Context,
    key: &str,
    noun: &str,
    items: &[T],
    page: Option<&Shape>,
    table: impl Fn(&[T]) -> String,
) -> Result<(), CliError> {
    if ctx.json {
        let mut value = serde_json::json!({ key: items });
        if let Some(p) = page {
            value["total"] = p.total.into();
            value["page"] = p.page.into();
            value["per_page"] = p.per_page.into();
        } else {
            value["total"] = items.len().into();
        }
        return out_json(&value);
    }
    if !items.is_empty() {
        out(table(items))?;
    }
    let footer = match page {
        Some(p) => output::footer(
            items.len(),
            (p.page - 1) * p.per_page + 1,
            p.total,
            p.has_next,
            noun,
        ),
        None if items.is_empty() => format!("no {noun}"),
        None => format!("{} {noun}", items.len()),
    };
    crate::commands::note(footer);
    Ok(())
}

/// Where a page sits in the whole list.
struct Shape {
    total: u64,
    page: u64,
    per_page: u64,
    has_next: bool,
}

fn shape<T>(page: &Page<T>) -> Shape {
    Shape {
        total: page.total,
        page: page.page.max(1),
        per_page: page.per_page.max(1),
        has_next: page.has_next(),
    }
}

/// Lists one page, or every page with `--all`.
pub async fn run(ctx: &Context, kind: Kind, args: ListArgs) -> Result<(), CliError> {
    let session = ctx.client().await?;
    let client = &session.client;
    match kind {
        Kind::Transactions => {
            let mut q = client
                .transactions()
                .list()
                .per_page(args.per_page)
                .page(args.page);
            if let Some(agent) = &args.agent {
                q = q.agent_id(agent);
            }
            if args.all {
                let items: Vec<Transaction> = q.all().try_collect().await?;
                print(
                    ctx,
                    "transactions",
                    "transactions",
                    &items,
                    None,
                    output::transactions_table,
                )
            } else {
                let page = q.await?;
                let shape = shape(&page);
                print(
                    ctx,
                    "transactions",
                    "transactions",
                    &page.items,
                    Some(&shape),
                    output::transactions_table,
                )
            }
        }
        Kind::Intents => {
            let mut q = client
                .payment_intents()
                .list()
                .per_page(args.per_page)
                .page(args.page);
            if let Some(agent) = &args.agent {
                q = q.agent_id(agent);
            }
            if args.all {
                let items: Vec<PaymentIntent> = q.all().try_collect().await?;
                print(
                    ctx,
                    "payment_intents",
                    "payment intents",
                    &items,
                    None,
                    output::intents_table,
                )
            } else {
                let page = q.await?;
                let shape = shape(&page);
                print(
                    ctx,
                    "payment_intents",
                    "payment intents",
                    &page.items,
                    Some(&shape),
                    output::intents_table,
                )
            }
        }
    }
}
