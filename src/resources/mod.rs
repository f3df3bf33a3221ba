//! The resource namespaces a [`RalioClient`](crate::RalioClient) hands out, one module per
//! resource, and the list machinery they share ([`lists`]: [`ListQuery`], [`Page`], the lazy
//! stream over every page).

use std::future::Future;
use std::pin::Pin;

use crate::error::{Error, Result};

pub mod agents;
pub mod chat;
pub mod lists;
pub mod payment_intents;
pub mod transactions;

pub use agents::Agents;
pub use chat::{Chat, SendMessage, StreamMessage};
pub use lists::{ListQuery, Page};
pub use payment_intents::PaymentIntents;
pub use transactions::Transactions;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub(crate) fn decimal(
    operation: &'static str,
    what: &'static str,
    s: &str,
) -> Result<crate::Decimal> {
    s.parse().map_err(|_| Error::Decode {
        operation,
        expected: what,
        source: <serde_json::Error as serde::de::Error>::custom(format!(
            "{s:?} is not a decimal amount"
        )),
    })
}

pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
