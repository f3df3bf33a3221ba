//! `client.payment_intents()`: what the agent proposed to pay, one intent by id, waiting for
//! its outcome, and the intents a chat turn created.

use futures::Stream;

use super::BoxFuture;
use super::lists::{ListItem, ListQuery, Page, sealed::Fetch};
use crate::RalioClient;
use crate::error::Result;
use crate::types::PaymentIntent;

mod approvals;

pub use approvals::{DEFAULT_WAIT, IntentOutcome, IntentStage, TurnIntents, WaitForOutcome};

/// `client.payment_intents()`.
#[derive(Debug, Clone, Copy)]
pub struct PaymentIntents<'a> {
    client: &'a RalioClient,
}

impl<'a> PaymentIntents<'a> {
    /// One page of payment intents, newest first. Await it, or set `page`/`per_page`/`agent_id`
    /// first.
    pub fn list(&self) -> ListQuery<'a, PaymentIntent> {
        ListQuery::new(self.client)
    }

    /// Every payment intent, lazily, page by page (50 a page).
    pub fn all(&self) -> impl Stream<Item = Result<PaymentIntent>> + Send + 'a {
        self.list().all()
    }
}

impl<'a> PaymentIntents<'a> {
    pub(crate) fn new(client: &'a RalioClient) -> Self {
        PaymentIntents { client }
    }
}

impl ListItem for PaymentIntent {}

impl Fetch for PaymentIntent {
    fn fetch<'c>(
        client: &'c RalioClient,
        page: u64,
        per_page: u64,
        agent: Option<String>,
    ) -> BoxFuture<'c, Result<Page<Self>>> {
        Box::pin(async move {
            const OP: &str = "payment_intents.list";
            let mut req = client
                .inner
                .api
                .list_payment_intents()
                .page(page)
                .per_page(per_page);
            if let Some(agent) = agent {
                req = req.agent_id(agent);
            }
            let list = client.call(OP, req.send()).await?;
            Ok(Page::from_envelope(
                list.payment_intents,
                list.total,
                list.page,
                list.per_page,
            ))
        })
    }
}
