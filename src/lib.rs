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
//! # The public surface
//!
//! What an SDK user needs, and nothing else. Ten public modules, and at the root the names
//! most programs use:
//!
//! - **The client**: [`RalioClient`] (construction with [`RalioClient::builder`] /
//!   [`RalioClientBuilder`] or [`RalioClient::from_env`]) in [`client`]; its settings
//!   ([`RetryPolicy`], timeouts, the HTTP client's TLS and proxy settings through
//!   [`configure_http`](RalioClientBuilder::configure_http) and a [`ConfigureHttp`] closure,
//!   the caller's middleware) on the builder.
//! - **The resources**: [`resources`], one handle per resource
//!   ([`agents`](RalioClient::agents), [`chat`](RalioClient::chat) (send and stream),
//!   [`transactions`](RalioClient::transactions),
//!   [`payment_intents`](RalioClient::payment_intents): pages, lazy streams over every page,
//!   one intent by id, waiting for its outcome, the intents a chat turn created), and the list
//!   machinery ([`Page`], [`resources::ListQuery`], the sealed [`resources::ListItem`]).
//! - **The resource types**: [`types`]: [`Agent`], [`Transaction`], [`PaymentIntent`], … are
//!   the types generated from the OpenAPI document (see [`api`]), re-exported, with the open
//!   enums ([`PaymentStatus`], …) the generator maps status fields to, [`Scope`], and
//!   [`types::RedactedString`], the type of secret fields. A field added to the document
//!   reaches them by rebuilding.
//! - **Errors**: [`error`]: one [`Error`] whose variants say what to do next, and the
//!   errors it carries as causes.
//! - **The chat stream**: [`stream`]: [`ChatStream`] of typed [`ChatEvent`]s.
//! - **The auth layer**, usable against any OAuth 2 server that takes `private_key_jwt` and
//!   DPoP-bound tokens: [`auth`] (token manager, DPoP proofs, the `reqwest-middleware`
//!   layer; [`RetryMiddleware`] is the retry layer for such a stack).
//! - **Keys**: [`keys`]: the P-256 [`PrivateKey`](keys::PrivateKey), the
//!   [`Signer`](keys::Signer) trait for keys that live elsewhere (a PKCS#11 token, AWS KMS),
//!   and the Vault Transit, PKCS#11 and AWS KMS signers.
//! - **Credential stores**: [`store`]: the [`CredentialStore`](store::CredentialStore)
//!   trait (implement it for your own store), the file, keyring, Vault, environment and
//!   memory stores, and [`CredentialStore::report`](store::CredentialStore::report): what a
//!   store holds and what is wrong with it, without a secret (a health check's view; `ralio
//!   doctor` is built on it).
//! - **Registration**: [`register`]: a one-time ticket to an active credential binding, and
//!   resuming one that waits for approval.
//! - **The generated low-level client**: [`api`], for an operation the resources do not
//!   cover yet.
//!
//! Not public: the transport stack, the configuration rules (defaults, "a blank variable is
//! unset", the loopback rule for `http://`) and the environment variable names, which are
//! documented where they apply ([`RalioClient::from_env`], [`store::FileStore::from_env`],
//! [`register::register`]).
//!
//! **Testing against a local API.** The `ralio-sandbox` crate is a faithful local Ralio API
//! (library and binary), as strict as the real server. Add it as a dev-dependency
//! (`cargo add --dev ralio-sandbox`), start it in-process (`Sandbox::builder().start()`),
//! register with a ticket it mints (`sandbox.mint_ticket(TicketSpec::default())`) and point
//! [`RegisterOptions::base_url`](register::RegisterOptions::base_url) and
//! [`RalioClientBuilder::base_url`] at `sandbox.base_url()` (`http://` is accepted for
//! loopback hosts only); `ralio sandbox` runs it from the command line. The examples in
//! `examples/` run against it with no set-up.
//!
//! The README (below the fold on crates.io, and in the repository) walks through the main job,
//! configuration, errors and retries; its examples are compiled as doctests.

pub mod api;
pub mod auth;
pub mod client;
mod config;
pub mod error;
/// The fuzz targets' entry points (`fuzz/`): compiled only when cargo-fuzz builds the crate
/// (and for the unit tests that replay the fuzz seeds).
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
mod origin;
#[cfg(feature = "opentelemetry")]
mod otel;
mod redacted;
pub mod register;
pub mod resources;
mod scope;
pub mod store;
pub mod stream;
mod transport;
pub mod types;
#[cfg(feature = "vault")]
mod vault;

pub use client::{RalioClient, RalioClientBuilder};
pub use error::{ApiError, ConfigError, Error, Result};
pub use resources::Page;
pub use resources::payment_intents::{IntentOutcome, IntentStage, TurnIntents, WaitForOutcome};
pub use stream::{ChatEvent, ChatStream, StreamError, StreamedReply, ToolEvent};
pub use transport::{ConfigureHttp, RetryMiddleware, RetryPolicy};
pub use types::{
    Agent, ApprovalStatus, ChatReply, ChatResponse, Decimal, Message, MessageRole,
    PaymentInstruction, PaymentIntent, PaymentStatus, Scope, Transaction,
};

/// The README's code, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
