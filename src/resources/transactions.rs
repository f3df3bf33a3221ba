//! `client.transactions()`: executed payments.

use futures::Stream;

use super::lists::{ListQuery, Listable, Page};
use super::{BoxFuture, count, decimal};
use crate::RalioClient;
use crate::api;
use crate::error::Result;
use crate::models::{PaymentStatus, Transaction};

/// `client.transactions()`.
#[derive(Debug, Clone, Copy)]
pub struct Transactions<'a> {
    client: &'a RalioClient,
}

impl<'a> Transactions<'a> {
    /// One page of executed transactions, newest first. Await it, or set
    /// `page`/`per_page`/`agent_id` first.
    pub fn list(&self) -> ListQuery<'a, Transaction> {
        ListQuery::new(self.client)
    }

    /// Every transaction, lazily, page by page (50 a page).
    pub fn all(&self) -> impl Stream<Item = Result<Transaction>> + Send + 'a {
        self.list().all()
    }
}

impl<'a> Transactions<'a> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        Transactions { client }
    }
}

impl Listable for Transaction {
    fn fetch<'c>(
        client: &'c RalioClient,
        page: u64,
        per_page: u64,
        agent: Option<String>,
    ) -> BoxFuture<'c, Result<Page<Self>>> {
        Box::pin(async move {
            const OP: &str = "transactions.list";
            let mut req = client
                .inner
                .api
                .list_transactions()
                .page(page)
                .per_page(per_page);
            if let Some(agent) = agent {
                req = req.agent_id(agent);
            }
            let list = client.call(OP, req.send()).await?;
            let items = list
                .transactions
                .into_iter()
                .map(|t| transaction_from(OP, t))
                .collect::<Result<_>>()?;
            Ok(Page::new(
                items,
                count(list.total),
                count(list.page),
                count(list.per_page),
            ))
        })
    }
}

fn transaction_from(op: &'static str, t: api::types::Transaction) -> Result<Transaction> {
    Ok(Transaction {
        amount: decimal(op, "a decimal transaction amount", &t.amount)?,
        id: t.id,
        currency: t.currency,
        status: PaymentStatus::from(t.status.as_str()),
        date: t.date.as_deref().and_then(crate::models::parse_time),
        creditor: t.creditor,
        debtor: t.debtor,
        reference: t.reference,
        payment_intent_id: t.payment_intent_id,
    })
}
