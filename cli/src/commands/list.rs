//! `ralio transactions` and `ralio intents`.

use futures::{StreamExt as _, TryStreamExt as _};
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

/// What was shown: one page, or every page of `--all` (cut at `--max-items` when `truncated`).
enum Shown<'a> {
    Page(&'a Shape),
    All { truncated: bool },
}

fn print<T: Serialize>(
    ctx: &Context,
    key: &str,
    noun: &str,
    items: &[T],
    shown: Shown<'_>,
    table: impl Fn(&[T]) -> String,
) -> Result<(), CliError> {
    if ctx.json {
        let mut value = serde_json::json!({ key: items });
        match shown {
            Shown::Page(p) => {
                value["total"] = p.total.into();
                value["page"] = p.page.into();
                value["per_page"] = p.per_page.into();
            }
            Shown::All { truncated } => {
                value["total"] = items.len().into();
                if truncated {
                    value["truncated"] = true.into();
                }
            }
        }
        return out_json(&value);
    }
    if !items.is_empty() {
        out(table(items))?;
    }
    let footer = match shown {
        Shown::Page(p) => output::footer(items.len(), p.first(), p.total, p.has_next, noun),
        Shown::All { truncated: true } => format!(
            "the first {} {noun}: stopped at --max-items; there may be more",
            items.len()
        ),
        Shown::All { .. } if items.is_empty() => format!("no {noun}"),
        Shown::All { .. } => format!("{} {noun}", items.len()),
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

impl Shape {
    /// The position of the page's first item, from 1; `None` when the server's page numbers
    /// put it past `u64::MAX` (they are the server's numbers: checked, never trusted).
    fn first(&self) -> Option<u64> {
        (self.page - 1).checked_mul(self.per_page)?.checked_add(1)
    }
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
    // Bounded whatever the server claims: by count (--max-items, one more item tells whether
    // there were more) and by time (--timeout).
    let cutoff = crate::commands::intents::deadline_in(args.timeout);
    let what = || format!("listing {noun}");
    if args.all {
        let walk = async {
            let limit = args.max_items.saturating_add(1);
            let items: Vec<T> = q.all().take(limit).try_collect().await?;
            Ok(items)
        };
        let mut items = crate::commands::intents::within(cutoff, what, walk).await?;
        let truncated = items.len() > args.max_items;
        items.truncate(args.max_items);
        print(ctx, key, noun, &items, Shown::All { truncated }, table)
    } else {
        let page = crate::commands::intents::within(cutoff, what, async { Ok(q.await?) }).await?;
        print(
            ctx,
            key,
            noun,
            &page.items,
            Shown::Page(&shape(&page)),
            table,
        )
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
