//! `client.transactions()`: executed payments.

use futures::Stream;

use super::BoxFuture;
use super::lists::{ListItem, ListQuery, Page, sealed::Fetch};
use crate::RalioClient;
use crate::error::Result;
use crate::types::Transaction;

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

impl ListItem for Transaction {}

impl Fetch for Transaction {
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
            Ok(Page::from_envelope(
                list.transactions,
                list.total,
                list.page,
                list.per_page,
            ))
        })
    }
}
