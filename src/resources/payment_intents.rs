//! `client.payment_intents()`: what the agent proposed to pay, and waiting for a decision.

use std::time::Duration;

use futures::Stream;

use super::BoxFuture;
use super::lists::{ListItem, ListQuery, Page, sealed::Fetch};
use crate::RalioClient;
use crate::error::{Error, Result};
use crate::types::PaymentIntent;

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

    /// Wait until the intent `id` leaves approval-pending (the owner approved or rejected it),
    /// and return it as decided. Fails with [`Error::Timeout`] when `deadline` passes first, and
    /// [`Error::UnknownId`] when no intent has this id.
    ///
    /// Cost: the API has no single-intent endpoint, so each poll lists payment intents (newest
    /// first, 50 a page) until it meets the id: one request per poll for a recent intent, more
    /// for an old one. Polls start 500 ms apart and back off to every 5 s. A retryable failure
    /// of one poll (a 503, a rate limit) does not end the wait while time is left; any other
    /// error does.
    pub async fn wait_for_decision(self, id: &str, deadline: Duration) -> Result<PaymentIntent> {
        use futures::TryStreamExt;
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(500);
        loop {
            let polled: Result<Option<PaymentIntent>> = async {
                let all = self.all();
                let mut all = std::pin::pin!(all);
                while let Some(intent) = all.try_next().await? {
                    if intent.id == id {
                        return Ok(Some(intent));
                    }
                }
                Ok(None)
            }
            .await;
            let found = match polled {
                Ok(found) => found,
                // A transient failure (after the retry policy's own retries) does not end the
                // wait while time is left: poll again after the backoff.
                Err(e) if e.is_retryable() && started.elapsed() + wait < deadline => {
                    tracing::debug!(error = %e, "polling payment intents failed; polling again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 3 / 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(intent) = found else {
                return Err(Error::UnknownId {
                    operation: "payment_intents.wait_for_decision",
                    resource: crate::error::ResourceKind::PaymentIntent,
                    id: id.to_owned(),
                });
            };
            if !intent.approval_status.is_pending() {
                return Ok(intent);
            }
            let elapsed = started.elapsed();
            if elapsed >= deadline {
                return Err(Error::Timeout {
                    what: crate::error::Awaited::Decision {
                        intent_id: id.to_owned(),
                    },
                    waited: elapsed,
                });
            }
            tokio::time::sleep(wait.min(deadline - elapsed)).await;
            wait = (wait * 3 / 2).min(Duration::from_secs(5));
        }
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
