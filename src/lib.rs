//! Rust SDK for the Ralio agentic payment API.
//!
//! Work in progress: see the README for what has landed.

pub mod api;
pub mod auth;
pub mod hooks;
pub mod redacted;
