//! `ralio transactions` and `ralio intents`.

use futures::TryStreamExt as _;
use ralio::resources::{ListItem, ListQuery};
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

/// How one list is printed: its JSON key, its noun in footers, its table.
struct Listing<T> {
    key: &'static str,
    noun: &'static str,
    table: fn(&[T]) -> String,
}

/// Runs a list query (`--agent`, `--page`, `--per-page`, or every page with `--all`) and prints
/// it.
async fn list_and_print<T: ListItem + Serialize>(
    ctx: &Context,
    args: &ListArgs,
    query: ListQuery<'_, T>,
    listing: Listing<T>,
) -> Result<(), CliError> {
    let mut q = query.per_page(args.per_page).page(args.page);
    if let Some(agent) = &args.agent {
        q = q.agent_id(agent);
    }
    let Listing { key, noun, table } = listing;
    if args.all {
        let items: Vec<T> = q.all().try_collect().await?;
        print(ctx, key, noun, &items, None, table)
    } else {
        let page = q.await?;
        print(ctx, key, noun, &page.items, Some(&shape(&page)), table)
    }
}

/// Lists one page, or every page with `--all`.
pub async fn run(ctx: &Context, kind: Kind, args: ListArgs) -> Result<(), CliError> {
    let session = ctx.client().await?;
    let client = &session.client;
    match kind {
        Kind::Transactions => {
            let listing = Listing::<Transaction> {
                key: "transactions",
                noun: "transactions",
                table: output::transactions_table,
            };
            list_and_print(ctx, &args, client.transactions().list(), listing).await
        }
        Kind::Intents => {
            let listing = Listing::<PaymentIntent> {
                key: "payment_intents",
                noun: "payment intents",
                table: output::intents_table,
            };
            list_and_print(ctx, &args, client.payment_intents().list(), listing).await
        }
    }
}
