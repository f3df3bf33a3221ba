//! Rust SDK for the Ralio agentic payment API.
//!
//! A host holding a credential binding (a P-256 key registered against one agent) talks to
//! that agent and reads what it paid, with DPoP-bound OAuth tokens handled for it:
//!
//! ```no_run
//! use ralio::RalioClient;
//!
//! # async fn run() -> Result<(), ralio::Error> {
//! // RALIO_API_URL and the credential `ralio register` stored (shared with the Python SDK).
//! let client = RalioClient::from_env().await?;
//! let reply = client.chat().send("What is my current balance?").await?;
//! println!("{}", reply.reply);
//! for tx in client.transactions().list().per_page(20).await? {
//!     println!("{} {} {}", tx.amount, tx.currency, tx.status);
//! }
//! # Ok(()) }
//! ```
//!
//! - [`RalioClient`]: construction ([`RalioClient::builder`], [`RalioClient::from_env`]) and
//!   the resources: [`agents`](RalioClient::agents), [`chat`](RalioClient::chat) (send and
//!   stream), [`transactions`](RalioClient::transactions),
//!   [`payment_intents`](RalioClient::payment_intents) (pages, lazy streams over every page,
//!   one intent by id, waiting for its outcome, the intents a chat turn created), and
//!   [`with_scopes`](RalioClient::with_scopes).
//! - [`Error`]: one error type whose variants say what to do next.
//! - [`ChatEvent`] / [`ChatStream`]: the typed chat stream.
//! - [`RetryPolicy`]: what is retried, and what never is (a chat message after a 5xx).
//! - [`register`], [`store`], [`auth`], [`keys`]: registration, credential stores, the DPoP
//!   auth layer, keys and signers, usable on their own; [`api`]: the generated low-level
//!   client.
//!
//! # Layout
//!
//! - [`client`]: [`RalioClient`] and [`RalioClientBuilder`].
//! - [`resources`]: one module per resource ([`resources::agents`], [`resources::chat`],
//!   [`resources::transactions`], [`resources::payment_intents`]) and the list machinery
//!   ([`resources::lists`]: [`ListQuery`](resources::ListQuery), [`Page`], and the sealed
//!   [`ListItem`](resources::ListItem) bound for code generic over the lists).
//! - [`transport`]: the one HTTP client and middleware stack every request goes through, the
//!   seam that runs the generated calls through it, the retry policy ([`RetryPolicy`]), body
//!   caps and `WWW-Authenticate` parsing.
//! - [`config`]: defaults, the environment rules (a blank variable is unset), the loopback
//!   rule for plain `http://`, Vault settings from the environment.
//! - [`types`]: the resource types ([`Agent`], [`Transaction`], [`PaymentIntent`], …). They
//!   are the types generated from the OpenAPI document (see [`api`]), re-exported, plus the
//!   open enums ([`PaymentStatus`], …) the generator maps status fields to: a field added to
//!   the document reaches them by rebuilding.
//! - [`error`], [`stream`], [`redacted`]: the error taxonomy, the chat stream, the secret
//!   string type of the generated layer.
//! - [`scope`]: [`Scope`], the OAuth scopes as an open enum (the API's scopes and any other),
//!   read and written as the wire string.
//!
//! The README (below the fold on crates.io, and in the repository) walks through the main job,
//! configuration, errors and retries; its examples are compiled as doctests.

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod keys;
#[cfg(feature = "opentelemetry")]
mod otel;
pub mod redacted;
pub mod register;
pub mod resources;
pub mod scope;
pub mod store;
pub mod stream;
pub mod transport;
pub mod types;
#[cfg(feature = "vault")]
mod vault;

pub use client::{RalioClient, RalioClientBuilder};
pub use error::{ApiError, ConfigError, Error, Result};
pub use resources::Page;
pub use resources::payment_intents::{IntentOutcome, IntentStage, TurnIntents};
pub use scope::Scope;
pub use stream::{ChatEvent, ChatStream, StreamError, StreamedReply, ToolEvent};
/// The fuzz targets' entry points (`fuzz/`): compiled only when cargo-fuzz builds the crate.
#[cfg(fuzzing)]
#[doc(hidden)]
pub use transport::fuzzing;
pub use transport::{RetryMiddleware, RetryPolicy};
pub use types::{
    Agent, ApprovalStatus, ChatReply, ChatResponse, Decimal, Message, MessageRole,
    PaymentInstruction, PaymentIntent, PaymentStatus, Transaction,
};

/// The README's code, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
