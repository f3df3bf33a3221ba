//! Rust SDK for the Ralio agentic payment API.
//!
//! Work in progress: see the README for what has landed.

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
pub mod hooks;
pub mod models;
pub mod pagination;
pub mod redacted;
pub mod register;
pub mod retry;
pub mod store;
pub mod stream;

pub use client::{RalioClient, RalioClientBuilder};
pub use error::{ApiError, ConfigError, Error, Result};
pub use models::{
    Agent, ApprovalStatus, ChatReply, Decimal, Message, MessageRole, PaymentInstruction,
    PaymentIntent, PaymentStatus, Transaction,
};
pub use pagination::Page;
pub use retry::{RetryMiddleware, RetryPolicy};
pub use stream::{ChatEvent, ChatStream, StreamError, StreamedReply, ToolEvent};
