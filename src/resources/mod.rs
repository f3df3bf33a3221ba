//! The resource namespaces a [`RalioClient`](crate::RalioClient) hands out, one module per
//! resource, and the list machinery they share ([`lists`]: [`ListQuery`], [`Page`], the lazy
//! stream over every page).

use std::future::Future;
use std::pin::Pin;

pub mod agents;
pub mod chat;
pub mod lists;
pub mod payment_intents;
pub mod transactions;

pub use agents::Agents;
pub use chat::{Chat, SendMessage, StreamMessage};
pub use lists::{ListItem, ListQuery, Page};
pub use payment_intents::PaymentIntents;
pub use transactions::Transactions;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
